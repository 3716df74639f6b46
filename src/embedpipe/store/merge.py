"""merge_all: every shard's embeddings in one file that loads all at once.

Outputs, in the formats merge.formats lists (each one more full copy of the embeddings: asked for):
- `pt`: `<model>_embeddings_all.pt`, `{key: tensor[D]}` (torch.load), the EchoJEPA layout
- `npy`: `<model>_embeddings_all.npy`, float32 `[N, D]` (np.load(..., mmap_mode="r")), and
  `<model>_embeddings_all.keys.txt`: row i of the matrix is line i
and, per shard, the EchoJEPA script's per-folder `<model>_embeddings_<folder>.pt` (`shard_pt`).

Shards are read one at a time in batches and each batch goes straight to every file asked for: nothing
holds the matrix. The `.pt` is written without torch (embedpipe.store.ptzip): one storage, every row a
view of it, exactly what torch.save writes for a dict of views of one matrix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from embedpipe.store.atomic import atomic_path, remove_leftovers_of, tmp_path_for, writing
from embedpipe.store.key_hashes import key_hashes, repeated_keys
from embedpipe.store.parquet_io import streamed
from embedpipe.store.ptzip import TensorDictWriter

log = logging.getLogger(__name__)
BATCH_ROWS = 8192


def shard_geometry(paths: Sequence[Path], column: str) -> tuple[int, int]:
    """(total rows, embedding width), read from Parquet footers only."""
    total, dim = 0, None
    for p in paths:
        f = pq.ParquetFile(p)
        total += f.metadata.num_rows
        width = f.schema_arrow.field(column).type.list_size
        if dim is not None and width != dim:
            raise ValueError(f"{p}: embedding width {width} differs from {dim} in earlier shards")
        dim = width
    if dim is None:
        raise ValueError("no shard outputs to merge")
    return total, dim


def shard_batches(path: Path, column: str, dim: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """A shard's (keys, float32 [n, dim] values), BATCH_ROWS rows at a time, in file order."""
    for batch in streamed(path).iter_batches(batch_size=BATCH_ROWS, columns=["key", column]):
        values = batch.column(column).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        yield batch.column("key").to_pylist(), values.astype("<f4", copy=False)


def shard_pt(shard_path: str | os.PathLike, pt_path: Path, strip_prefix: str | None = None,
             column: str = "embedding") -> int:
    """One shard's `{key: tensor[D]}` .pt, streamed like merge_all. `strip_prefix` (the shard's
    folder and "/"): keys relative to the folder, as the EchoJEPA script wrote its per-folder files."""
    path = Path(shard_path)
    remove_leftovers_of(pt_path)  # a killed run's half-written .pt, as large as the shard
    total, dim = shard_geometry([path], column)
    keys: list[str] = []
    with atomic_path(pt_path) as tmp, TensorDictWriter(tmp, total, dim) as pt:
        for batch_keys, values in shard_batches(path, column, dim):
            pt.write(values)
            keys.extend(batch_keys)
        if strip_prefix:
            if outside := [k for k in keys if not k.startswith(strip_prefix)]:
                raise ValueError(f"{path}: keys outside {strip_prefix!r}, e.g. {outside[0]!r}")
            keys = [k[len(strip_prefix):] for k in keys]
        pt.close(keys)
    return total


def merge_all(shard_paths: Sequence[str | os.PathLike], pt_path: Path | None, npy_path: Path | None = None,
              keys_path: Path | None = None, column: str = "embedding") -> int:
    """Merge shard Parquet files (in the given order) into the .pt, the .npy and its key index, or
    either. Returns the row count. Memory does not grow with the rows but by 8 bytes a key (the
    duplicate check): the keys go to a file as they are read (the key index, or a temporary one beside
    the .pt) and the `.pt`'s pickle is written from that file, not from a list."""
    if pt_path is None and npy_path is None:
        raise ValueError("nothing to merge into: give a .pt, a .npy or both")
    if (npy_path is None) != (keys_path is None):
        raise ValueError("the .npy and its key index are written together")
    paths = [Path(p) for p in shard_paths]
    remove_leftovers_of(*(p for p in (pt_path, npy_path, keys_path) if p))  # a killed run's, never complete
    total, dim = shard_geometry(paths, column)
    hashes: list[np.ndarray] = []
    # Every file is written before any is renamed: a failed write (a full disk) leaves no new file
    # under any of their names, and never a matrix without its key index.
    with ExitStack() as files:
        npy = pt = None
        if npy_path is not None and keys_path is not None:
            keys_file, keys_dest = files.enter_context(atomic_path(keys_path)), keys_path
            npy = files.enter_context(open(files.enter_context(atomic_path(npy_path)), "wb"))
            with writing(npy_path):
                np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False,
                                                           "shape": (total, dim)})
        elif pt_path is not None:  # no key index asked for: the keys wait in a temporary file
            keys_file, keys_dest = Path(f"{tmp_path_for(pt_path)}.keys"), pt_path
            files.callback(keys_file.unlink, missing_ok=True)
        if pt_path is not None:
            pt = files.enter_context(TensorDictWriter(files.enter_context(atomic_path(pt_path)), total, dim))
        with open(keys_file, "w", encoding="utf-8") as keys_out:
            for p in paths:
                for batch_keys, values in shard_batches(p, column, dim):
                    if npy is not None:
                        with writing(npy_path):
                            npy.write(memoryview(np.ascontiguousarray(values)).cast("B"))
                    if pt is not None:
                        pt.write(values)
                    with writing(keys_dest):
                        keys_out.write("".join(f"{k}\n" for k in batch_keys))
                    hashes.append(key_hashes(batch_keys))
                log.info("merged %s (%d rows so far)", p.name, sum(map(len, hashes)))
        if (twice := next(repeated_keys(hashes, read_keys(keys_file)), None)) is not None:
            raise ValueError(f"duplicate keys across shards (e.g. {twice!r}); refusing to merge")
        if pt is not None:
            with writing(pt_path):
                pt.close(read_keys(keys_file))
        if npy is not None:
            with writing(npy_path):
                npy.flush()  # here, not at close: a write error must come before any file is renamed
    return total


def read_keys(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield line.removesuffix("\n")


def load_merged(npy_path: Path, keys_path: Path) -> tuple[np.ndarray, list[str]]:
    """The memory-mapped matrix and its key index."""
    keys = Path(keys_path).read_text(encoding="utf-8").splitlines()
    return np.load(npy_path, mmap_mode="r"), keys
