"""Columns too large for Parquet rows (image patch tokens, 12.4 MB each) live in safetensors files beside it.

Why not Parquet: a float16 Parquet column writes at ~190 MB/s on one core (per-value encoding,
statistics) where a photo's tokens arrive at ~40 × 12.4 MB/s, and reading one image's tokens means
decoding a whole page. A safetensors file is the raw bytes behind a JSON header: written at disk
speed, memory-mapped, one image read by name without touching the others
(`safe_open(file, "np").get_tensor(key)`).

One file per part and column, `part-000003.tokens.safetensors`, one tensor per row named by its key.
It is written (atomically) before its Parquet part: a part exists only once both are complete, and
a sidecar without its part is a leftover of a kill, removed on the next start. Rows point at their
file with a `<column>_file` column, relative to the Parquet file that holds the row.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from embedpipe.store.atomic import atomic_path

SUFFIX = ".safetensors"
FILE_SUFFIX = "_file"  # the row column naming a sidecar file: tokens -> tokens_file


def sidecar_path(part: Path, column: str) -> Path:
    return part.with_name(f"{part.name.removesuffix('.parquet')}.{column}{SUFFIX}")


def file_column(column: str) -> str:
    return f"{column}{FILE_SUFFIX}"


def write_sidecar(path: Path, keys: list[str], values: list[np.ndarray]) -> None:
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v) for k, v in zip(keys, values, strict=True)}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"format": "embedpipe", "rows": str(len(keys))})
        except SafetensorError as exc:  # its I/O errors carry the errno only in the message
            if code := re.search(r"os error (\d+)", str(exc)):
                raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from exc
            raise


def remove_orphans(parts_dir: Path, part_names: set[str]) -> int:
    """Sidecars whose Parquet part was never completed (a kill between the two renames)."""
    removed = 0
    for p in parts_dir.glob(f"part-*{SUFFIX}"):
        if p.name.split(".")[0] + ".parquet" not in part_names:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def publish(src: Path, dest: Path) -> None:
    """Put `src` at `dest` without copying where the filesystem allows (a hard link), else copy.

    Idempotent, so a rerun after a kill between publishing and writing the shard file is safe.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if dest.stat().st_ino == src.stat().st_ino:
            return
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or one without hard links
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)


def referenced_files(parquet_path: Path) -> list[str]:
    """The sidecar files the rows of `parquet_path` point at (its `*_file` columns), relative to it."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = [f.name for f in pq.read_schema(parquet_path) if f.name.endswith(FILE_SUFFIX)]
    if not columns:
        return []
    table = pq.read_table(parquet_path, columns=columns)
    return sorted({v for c in columns for v in pc.unique(table.column(c)).to_pylist() if v is not None})


def read_tensor(parquet_path: str | os.PathLike, relative_file: str, key: str) -> np.ndarray:
    """One row's sidecar value, given the Parquet file that holds the row."""
    from safetensors import safe_open

    with safe_open(str(Path(parquet_path).parent / relative_file), "np") as f:
        return f.get_tensor(key)


def iter_tensors(parquet_path: str | os.PathLike, relative_file: str,
                 keys: Iterable[str]) -> Iterator[tuple[str, np.ndarray | None]]:
    """Rows' sidecar values from one file, opened once and read one tensor at a time (validate's
    streamed check); None for a key the file does not hold. A missing file raises FileNotFoundError."""
    from safetensors import safe_open

    path = Path(parquet_path).parent / relative_file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sidecar file")
    with safe_open(str(path), "np") as f:
        held = set(f.keys())
        for key in keys:
            yield key, f.get_tensor(key) if key in held else None


def remove_sidecars(parts_dir: Path) -> None:
    for p in parts_dir.glob(f"part-*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
