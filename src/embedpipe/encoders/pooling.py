"""Means over the valid steps of padded sequences (one helper for every family and feature)."""

from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """`[B, steps]` bool: True at the first `lengths[b]` steps of item b."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """The mean of `x` `[B, T, ...]` over each item's first `lengths[b]` steps of axis 1 (what lies
    beyond is ignored, whatever it holds). An item of length 0 gives NaN."""
    inside = length_mask(lengths, x.shape[1]).to(x.dtype).view(*lengths.shape, x.shape[1], *(1,) * (x.dim() - 2))
    count = lengths.to(x.dtype).view(-1, *(1,) * (x.dim() - 1))
    total = (x * inside).sum(1, keepdim=True) / count
    return total if keepdim else total.squeeze(1)
