"""The stages of an extract job timed apart, for the benches: decoding alone, and the device sync."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from embedpipe.encoders.base import Encoder
from embedpipe.extract import file_loader, plan_blocks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode_only(keys: list[str], root: Path, encoder: Encoder, workers: int) -> float:
    """Files/s of the decode workers alone: the same ordering, blocks, loader and workers as run_extract,
    with every chunk dropped instead of encoded. The other ceiling beside model-only: an end-to-end run
    can be no faster than the slower of the two."""
    start = time.perf_counter()
    blocks = plan_blocks(encoder.order(keys, root), set(), encoder.batch_size)
    seen = 0
    for chunk in file_loader(blocks, root, encoder, workers):
        seen += len(chunk.keys) + len(chunk.errors)
    if seen != len(keys):
        raise RuntimeError(f"decode-only saw {seen} of {len(keys)} files")
    return len(keys) / (time.perf_counter() - start)


def bound_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """The slower stage and the end-to-end rate against it (1.0 = the pipeline adds nothing to it)."""
    model, decode = figures["model_only_files_per_s"], figures.get("decode_only_files_per_s")
    if decode is None:
        return {}
    slower = min(model, decode)
    return {"bound_by": "model" if model <= decode else "decoding",
            "ratio_to_slower_stage": round(figures["end_to_end_files_per_s"] / slower, 3)}
