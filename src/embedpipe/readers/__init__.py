"""Readers decode one file into arrays; they run in DataLoader workers."""
