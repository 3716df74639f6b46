"""Shards with per-row arrays, as extract writes them (ShardWriter, the families' own columns and facts):
Metis latents, V-JEPA 2 image tokens (sidecars) and ECGFounder feature maps, with faults planted."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedpipe.encoders.ecgfounder.sizes import feature_frames
from embedpipe.encoders.metis.model import LATENT_COLUMNS
from embedpipe.encoders.metis.reader import AudioReader
from embedpipe.encoders.metis.sizes import LATENT_DIM, stacked_frames
from embedpipe.encoders.vjepa2.model import Geometry, token_columns
from embedpipe.extract.writer import ShardWriter
from embedpipe.readers.audio import TARGET_RATE

# Rows are dicts of the family's columns; a fault is a function that changes one row in place.
Fault = Callable[[dict[str, Any]], None]
GEOMETRY = Geometry(crop=64, dim=16, tubelet=2, patch=16, clip_frames=4)  # tokens [2, 4, 4, 16]
ARCHITECTURE = {"filter_list": [8, 8, 16], "stride": 2}  # ECGFounder's Net1D: 4 downsamplings
ECG_DIM = 16


def finish(root: Path, shard: str, fields: list[pa.Field], rows: dict[str, dict[str, Any]],
           provenance: dict[str, Any], sidecar: tuple[str, ...] = ()) -> None:
    """<shard>.parquet (+ sidecars), <shard>.errors.parquet and <shard>.txt, as extract leaves them."""
    w = ShardWriter(root / "parts" / shard, fields, "fp", sidecar=sidecar)
    keys = list(rows)
    w.add_rows(keys, {f.name: [rows[k][f.name] for k in keys] if pa.types.is_list(f.type) or f.name in sidecar
                      else np.asarray([rows[k][f.name] for k in keys]) for f in fields})
    (root / f"{shard}.txt").write_text("".join(f"{k}\n" for k in sorted(keys)))
    w.finalize(sorted(keys), root / f"{shard}.parquet", root / f"{shard}.errors.parquet",
               {**provenance, "key_column": "key"})


def metis_row(rng: np.random.Generator, duration: float, frames: int | None = None) -> dict[str, Any]:
    t = stacked_frames(math.ceil(duration * TARGET_RATE)) if frames is None else frames
    latents = rng.normal(size=(t, LATENT_DIM)).astype(np.float32)
    return {"latents": latents, "embedding": latents.mean(0), "n_frames": t, "duration_s": duration,
            "sample_rate": 16000, "declared_duration_s": duration, "truncated": False, "decoder": "soundfile"}


def write_metis_shard(root: Path, shard: str, durations: list[float],
                      faults: dict[int, Fault] | None = None, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    rows = {f"{shard}/clip{i:03d}.wav": metis_row(rng, d) for i, d in enumerate(durations)}
    for i, fault in (faults or {}).items():
        fault(rows[f"{shard}/clip{i:03d}.wav"])
    finish(root, shard, LATENT_COLUMNS.columns + AudioReader().fact_fields(), rows,
           {"encoder": "metis", "embedding_dim": LATENT_DIM, "latent_rate_hz": 50})
    return list(rows)


def write_image_shard(root: Path, shard: str, n: int, faults: dict[int, Fault] | None = None) -> list[str]:
    rng = np.random.default_rng(1)
    t, h, w = GEOMETRY.grid
    rows = {}
    for i in range(n):
        tokens = rng.normal(size=(t, h, w, GEOMETRY.dim)).astype(np.float16)
        rows[f"{shard}/img_{i}.jpg"] = {"tokens": tokens, "embedding": tokens.astype(np.float32).mean((0, 1, 2)),
                                        "temporal": tokens.astype(np.float32).mean((1, 2)), "spatial": tokens.mean(0)}
    for i, fault in (faults or {}).items():
        fault(rows[f"{shard}/img_{i}.jpg"])
    spec = token_columns(GEOMETRY, ("tokens", "temporal", "spatial"))
    finish(root, shard, spec.columns, rows, {"encoder": "vjepa2", "embedding_dim": GEOMETRY.dim,
                                             "token_grid": list(GEOMETRY.grid)}, sidecar=spec.sidecar)
    return list(rows)


def write_ecgfounder_shard(root: Path, shard: str, samples: list[int],
                           faults: dict[int, Fault] | None = None) -> list[str]:
    rng = np.random.default_rng(2)
    rows = {}
    for i, n in enumerate(samples):
        features = rng.normal(size=(feature_frames(n, ARCHITECTURE), ECG_DIM)).astype(np.float32)
        rows[f"{shard}/ecg_{i}.xml"] = {"embedding": features.mean(0), "features": features, "n_samples": n}
    for i, fault in (faults or {}).items():
        fault(rows[f"{shard}/ecg_{i}.xml"])
    fields = [pa.field("embedding", pa.list_(pa.float32(), ECG_DIM)),  # EcgFounderModel.columns(), keep_features
              pa.field("features", pa.list_(pa.list_(pa.float32(), ECG_DIM))), pa.field("n_samples", pa.int32())]
    finish(root, shard, fields, rows, {"encoder": "ecgfounder", "embedding_dim": ECG_DIM,
                                       "architecture": ARCHITECTURE})
    return list(rows)
