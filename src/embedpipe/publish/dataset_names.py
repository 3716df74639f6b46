"""Output names: plain data."""

from __future__ import annotations


def dataset_file_name(index: int, total: int, split: str = "train") -> str:
    """Hugging Face's shard naming: train-00000-of-00010.parquet."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"
