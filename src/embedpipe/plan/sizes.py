"""Bytes per row of every output folder of a run, measured from its files, as a file's fixed part (a
Parquet footer with its provenance, a .npy header: the same however many rows) and its bytes per row.

At a trial's few rows per file the fixed part is most of a file: extrapolating bytes/row as a file's
size over its rows would multiply the footer by the full run's rows. A Parquet file's bytes per row are
measured by writing its rows again with the file's codec, all of them and the first alone (the
difference, over the rows it adds), and its fixed part is what the rows leave; a file of one row gives
no such difference: its fixed part is the same file written with no rows. merge_all's .pt is measured
the same way (store/ptzip); the .npy is its header and 4 bytes a float; the .keys.txt and the token
sidecars are bytes per row alone.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from embedpipe.store.sidecar import SUFFIX as SIDECAR_SUFFIX

ROWS, ERRORS = "rows", "error rows"  # what a file's rows are: the dataset's rows, or error rows


@dataclass(frozen=True)
class FileBytes:
    """One file: its size, its rows, and the split of its size into a fixed part and bytes per row."""

    label: str  # the folder (embeddings/, staged/, parquet/) or the merged file's name
    counts: str  # ROWS or ERRORS
    size: int
    rows: int
    per_row: float | None  # None: no row to measure it by
    sidecar: bool = False

    @property
    def fixed(self) -> float:
        return self.size - self.rows * (self.per_row or 0.0)


def _parquet_codec(metadata) -> str:
    if not metadata.num_row_groups or not metadata.num_columns:
        return "none"
    codec = metadata.row_group(0).column(0).compression.lower()
    return "none" if codec == "uncompressed" else codec


def parquet_bytes(path: Path, label: str, counts: str) -> FileBytes:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    table, size = pf.read(), path.stat().st_size
    codec = _parquet_codec(pf.metadata)

    def written(rows: int) -> int:
        buffer = io.BytesIO()
        pq.write_table(table.slice(0, rows), buffer, compression=codec)
        return buffer.tell()

    n = table.num_rows
    if n >= 2:
        per_row = (written(n) - written(1)) / (n - 1)
    elif n == 1:
        per_row = max(size - written(0), 0)
    else:
        per_row = None
    return FileBytes(label, counts, size, n, per_row)


def pt_bytes(path: Path, label: str) -> FileBytes:
    """merge_all's .pt, written again (store/ptzip, as merge_all writes it) with its first row and with all."""
    import numpy as np
    import torch

    from embedpipe.store.ptzip import TensorDictWriter

    entries = torch.load(path, map_location="cpu", weights_only=True)
    keys = list(entries)
    n = len(keys)
    matrix = np.stack([entries[k].numpy() for k in keys]) if n else np.zeros((0, 0), "<f4")

    def written(k: int) -> int:
        buffer = io.BytesIO()
        writer = TensorDictWriter(buffer, k, matrix.shape[1])  # type: ignore[arg-type]  # a zip takes a stream
        writer.write(matrix[:k])
        writer.close(keys[:k])
        return buffer.tell()

    per_row = (written(n) - written(1)) / (n - 1) if n >= 2 else (path.stat().st_size - written(0) if n else None)
    return FileBytes(label, ROWS, path.stat().st_size, n, per_row)


def npy_bytes(path: Path, label: str) -> FileBytes:
    import numpy as np

    matrix = np.load(path, mmap_mode="r")
    rows = matrix.shape[0] if matrix.ndim else 0
    per_row = matrix.itemsize * (int(np.prod(matrix.shape[1:])) if matrix.ndim > 1 else 1)
    return FileBytes(label, ROWS, path.stat().st_size, rows, float(per_row))


def per_row_only(path: Path, label: str, rows: int, sidecar: bool = False) -> FileBytes:
    size = path.stat().st_size
    return FileBytes(label, ROWS, size, rows, size / rows if rows else None, sidecar)


def sidecar_rows(path: Path) -> int:
    """Tensors in a safetensors file: its header's entries."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return sum(1 for k in header if k != "__metadata__")


def lines_in(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def folder_files(label: str, files: Iterable[Path]) -> list[FileBytes]:
    """The Parquet files and token sidecars among `files`, measured."""
    found = []
    for path in sorted(files):
        if path.name.endswith(SIDECAR_SUFFIX):
            found.append(per_row_only(path, label, sidecar_rows(path), sidecar=True))
        elif path.name.endswith(".errors.parquet"):
            found.append(parquet_bytes(path, label, ERRORS))
        elif path.suffix == ".parquet":
            found.append(parquet_bytes(path, label, ROWS))
    return found


def merged_file(path: Path) -> FileBytes | None:
    if not path.is_file():
        return None
    if path.suffix == ".pt":
        return pt_bytes(path, path.name)
    if path.suffix == ".npy":
        return npy_bytes(path, path.name)
    return per_row_only(path, path.name, lines_in(path))  # the .keys.txt: a key a line


def _below(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()] if folder.is_dir() else []


def run_files(run_dir: Path, shards: list[str], dataset_folder: Path, merged: list[Path]) -> list[FileBytes]:
    """Every output file of the run the planner extrapolates: embeddings/ and staged/ of `shards` (their
    token sidecar folders too), the dataset folder's files (its card aside) and the merged files."""
    embeddings, staged = run_dir / "embeddings", run_dir / "staged"
    ours = [p for p in _below(embeddings) if any(p.relative_to(embeddings).parts[0].startswith(f"{s}.")
                                                   for s in shards)]
    staged_files = [p for p in _below(staged) if p.name.removesuffix(".parquet") in shards
                    or (len(p.relative_to(staged).parts) > 2 and p.name.endswith(SIDECAR_SUFFIX))]
    dataset = [p for p in _below(dataset_folder) if p.name != "README.md" and not p.name.startswith(".")]
    found = folder_files("embeddings/", ours) + folder_files("staged/", staged_files)
    found += folder_files("parquet/", dataset)
    found += [m for path in merged if (m := merged_file(path)) is not None]
    return found
