"""Pretraining checkpoints: atomic files the `ecg_jepa` family loads, and resuming from them.

A checkpoint is `{'model': MyJepa state (encoder.*, predictor.*, projector.*), 'config': the model
config + sampling_frequency + channels, 'train': the training settings, 'optimizer', 'scheduler',
'step', 'rng': {torch, cuda, numpy, python}, 'format'}`: only tensors and plain containers, so it
loads with `torch.load(weights_only=True)` as embedpipe's inference path reads checkpoints (numpy's
RNG state is stored as a tensor, not as the ndarray numpy gives).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedpipe.store.atomic import atomic_path, remove_stale_tmp

FORMAT = "embedpipe.myjepa/1"
_STEP_FILE = re.compile(r"step_(\d{7,})\.pt")


def step_file(folder: Path, step: int) -> Path:
    return folder / f"step_{step:07d}.pt"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))  # weights_only loading gives lists back as lists


def save(path: Path, payload: dict[str, Any]) -> None:
    """Written beside `path`, fsynced and renamed: a kill leaves the previous checkpoint, never half of one."""
    with atomic_path(path) as tmp:
        torch.save(payload | {"format": FORMAT}, tmp)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, file) of the complete checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    return sorted(found)


def latest(folder: Path) -> Path | None:
    remove_stale_tmp(folder)  # a kill while saving: its temporary file never holds a whole checkpoint
    found = checkpoints(folder)
    return found[-1][1] if found else None


def prune(folder: Path, keep: int) -> None:
    """Only the newest `keep` checkpoints stay (0: all)."""
    if keep > 0:
        for _, path in checkpoints(folder)[:-keep]:
            path.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: not a MyJEPA pretraining checkpoint ({FORMAT})")
    return checkpoint


def publish(src: Path, dest: Path) -> None:
    """`src` under the name `dest`, atomically: hard-linked (no second copy), copied across file systems."""
    with atomic_path(dest) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
