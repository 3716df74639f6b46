"""Device and precision names. Resolving "auto" asks torch.cuda: only the extract step does it,
after it has claimed its GPU slot (CUDA reads CUDA_VISIBLE_DEVICES once, on first use)."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device, encoder: str,
                      allowed: tuple[str, ...] = ("auto", "bf16", "fp32")) -> str:
    """auto: bf16 weights and activations on CUDA (SDPA's flash kernels need 16-bit q/k/v), fp32 on CPU."""
    if precision not in allowed:
        raise ValueError(f"encoder.precision: {precision!r} is not one of {allowed} for {encoder}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision
