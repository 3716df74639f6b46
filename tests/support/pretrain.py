"""A tiny pretraining preset and its settings."""

from __future__ import annotations

from pathlib import Path

from embedpipe.pretrain.config import build_settings

TINY = {"channel_size": 1000, "dim": 32, "depth": 2, "num_heads": 2, "pred_dim": 16, "pred_depth": 2,
        "pred_num_heads": 2, "proj_hidden": 64, "proj_dim": 16, "min_block_size": 4, "sigreg_slices": 32,
        "batch_size": 8, "warmup_steps": 2, "num_workers": 0, "log_every": 1, "keep_checkpoints": 0}


def settings(out: Path, data: list[str], **over):
    return build_settings(out, data, TINY | over)
