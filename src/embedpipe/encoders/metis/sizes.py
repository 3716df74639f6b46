"""Metis's sizes, torch-free: the family's width (validate checks it) and the codec's output."""

LATENT_DIM = 8  # the semantic codec's latent width
