"""ECGFounder's sizes, torch-free: the length of its feature map (validate checks each row's `features`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def output_length(n: int, downsamplings: int = 8, stride: int = 2) -> int:
    """Frames of the last stage for n input samples (the first conv and 7 stages each divide by 2, rounding up)."""
    for _ in range(downsamplings):
        n = (n + stride - 1) // stride
    return n


def feature_frames(n: int, architecture: Mapping[str, Any]) -> int:
    """Frames of the `features` map of n samples, for the architecture a shard's provenance records
    (Net1D.geometry: the first conv and each stage of `filter_list` downsample by `stride`)."""
    return output_length(n, 1 + len(architecture["filter_list"]), int(architecture["stride"]))
