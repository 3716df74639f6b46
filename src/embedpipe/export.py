"""Compatibility exports: the formats the scripts embedpipe replaces wrote, streamed from the shards."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from embedpipe.atomic import atomic_path, staged_dir


def export_latents_json(shards: Iterable[Path], out: Path, column: str = "latents", batch_rows: int = 256) -> int:
    """The Metis audio script's single JSON, `{relative_path: [[8 floats], ...], ...}`.

    Written one row at a time, so memory holds one Parquet batch, not the ~4 GB document; floats
    are float32 values printed as Python floats, as `ndarray.tolist()` + `json.dump` printed them.
    Returns the number of files written.
    """
    n = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("{")
        for shard in shards:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=["key", column]):
                for key, frames in zip(batch.column("key").to_pylist(), batch.column(column).to_pylist(),
                                       strict=True):
                    f.write(("," if n else "") + "\n" + json.dumps(key) + ": " + json.dumps(frames))
                    n += 1
        f.write("\n}\n")
    return n


def export_ecgfounder_json(shards: Iterable[Path], out_dir: Path, column: str = "features",
                           batch_rows: int = 64) -> int:
    """One JSON per ECG as the ECGFounder script wrote it, named after the input file (`deid_3.xml` →
    `deid_3.json`): `{"embedding": [[...]], "shape": [T, C], "description": ..., "modality": "ecg"}`.

    Unlike the script's, `embedding` holds only the recording's own frames (no batch padding). Two
    inputs with the same file name in different folders would overwrite each other flat, so then
    the keys' folders are kept. The folder appears complete or not at all: it is written beside
    and renamed into place. Returns the number of files written.
    """
    keys = [k for s in shards for k in pq.read_table(s, columns=["key"]).column("key").to_pylist()]
    stems = [Path(k).with_suffix("").name for k in keys]
    nested = len(set(stems)) < len(stems)
    n = 0
    with staged_dir(out_dir) as staging:
        for shard in shards:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=["key", column]):
                for key, frames in zip(batch.column("key").to_pylist(), batch.column(column).to_pylist(),
                                       strict=True):
                    name = Path(key).with_suffix(".json")
                    dest = staging / (name.relative_to(name.anchor) if nested else name.name)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    doc = {"embedding": frames, "shape": [len(frames), len(frames[0]) if frames else 0],
                           "description": f"ECG embedding extracted from {Path(key).name} using ECGFounder",
                           "modality": "ecg"}
                    dest.write_text(json.dumps(doc))
                    n += 1
    return n


def export_deepearth_pt(shard: Path, out_dir: Path, column: str = "tokens") -> int:
    """One `.pt` per image as the DeepEarth extractor saved it, for one shard (a taxon folder):
    `<out_dir>/<stem>_features.pt` = `{"features": [T'·H'·W', D] float16, "shape", "dtype", "source_chunk",
    "image_id"}`, `features` flattened t-major as DeepEarth's `[4608, 1408]`.

    Streams: one image's tokens in memory at a time, read from the shard's safetensors beside it. The
    folder appears complete or not at all (written beside, renamed into place). Returns the files written.
    """
    import torch
    from safetensors import safe_open

    source = pq.ParquetFile(shard)
    file_col = f"{column}_file"
    if file_col not in source.schema_arrow.names:
        raise ValueError(f"{shard} has no {column!r}: run with encoder.outputs including {column!r}")
    n, opened = 0, {}
    with staged_dir(out_dir) as staging:
        for batch in source.iter_batches(batch_size=256, columns=["key", file_col]):
            for key, rel in zip(batch.column("key").to_pylist(), batch.column(file_col).to_pylist(), strict=True):
                if rel not in opened:
                    opened.clear()  # rows come in part order: one file open at a time
                    opened[rel] = safe_open(str(shard.parent / rel), "pt")
                grid = opened[rel].get_tensor(key)
                features = grid.reshape(-1, grid.shape[-1]).contiguous()
                stem = Path(key).name.split(".")[0]
                torch.save({"features": features, "shape": features.shape, "dtype": "float16",
                            "source_chunk": Path(rel).name, "image_id": stem},
                           staging / f"{stem}_features.pt")
                n += 1
    return n
