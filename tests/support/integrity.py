"""Small shards written directly, validated in-process, and the one-line error check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedpipe.extract.writer import ShardWriter
from embedpipe.validate.checks import ValidationConfig, validate_dataset

DIM = 4


def write_shard(root: Path, shard: str, keys: list[str], errors: list[str], dim: int = DIM,
                seed: int = 0) -> None:
    """A shard as extract leaves it (<shard>.parquet, <shard>.errors.parquet) and its manifest."""
    values = np.random.default_rng(seed).normal(size=(len(keys), dim)).astype(np.float32)
    w = ShardWriter(root / "parts" / shard, [pa.field("embedding", pa.list_(pa.float32(), dim))], "fp")
    w.add_rows(keys, {"embedding": values})
    for key in errors:
        w.add_error(key, "decode", "RuntimeError", "unreadable")
    manifest = sorted([*keys, *errors])
    (root / f"{shard}.txt").write_text("".join(f"{k}\n" for k in manifest))
    w.finalize(manifest, root / f"{shard}.parquet", root / f"{shard}.errors.parquet",
               {"embedding_dim": dim, "key_column": "key"})


def validate(root: Path, shards: list[str]) -> dict:
    return validate_dataset(
        shards, {s: root / f"{s}.txt" for s in shards}, {s: root / f"{s}.parquet" for s in shards},
        {s: root / f"{s}.errors.parquet" for s in shards},
        ValidationConfig(max_error_fraction=0.5, min_effective_rank=0),
    ).metrics


def check(metrics: dict, name: str) -> dict:
    return next(c for c in metrics["checks"] if c["name"] == name)


def assert_one_line(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and re.search(pattern, errors[0]), proc.stderr
