"""Metis's sizes, torch-free: the family's width (validate checks it), the codec's output and its
frame count (validate checks each row's latents against it)."""

from __future__ import annotations

from typing import Any

LATENT_DIM = 8  # the semantic codec's latent width
FRAME, HOP = 400, 160  # Kaldi fbank: 25 ms frames every 10 ms
STRIDE = 2  # frames stacked in pairs: latents at 50 Hz, one per 20 ms


def fbank_frames(n_samples: Any) -> Any:
    """Kaldi frames (snip_edges) in `n_samples` samples (an int, or a numpy array of them)."""
    return (n_samples >= FRAME) * (1 + (n_samples - FRAME) // HOP)


def stacked_frames(n_samples: Any) -> Any:
    """The extractor's output length, so the latents' frames: frames padded to a multiple of 2, then
    stacked in pairs."""
    return -(-fbank_frames(n_samples) // STRIDE)
