"""Assemble a shard's part files into its outputs, in manifest order, streaming, within a memory budget.

Parts hold rows in the order they were embedded (an encoder may sort a shard, e.g. audio by
duration). The shard file holds them in manifest order. The value columns are never held whole:
the shard file is written a window of rows at a time (an eighth of `extract.assemble_memory_mb`,
also the most a row group holds), each window gathered from the parts' row groups streamed in
batches (`part_rows.py`). What the budget covers does not grow with the shard or depend on the
order the parts hold the rows in. Measured (bench/assemble.py, bench/RESULTS.md), the default 512 MB,
1024-d float32 rows: peak RSS 295, 364 and 376 MiB beyond the interpreter and pyarrow at 52,500,
105,000 and 500,000 rows (before: 1.06, 1.51 and 3.44 GiB).

What does grow with the shard, within those figures: the small columns (keys and error fields),
read whole as Arrow arrays, the manifest as Arrow strings and the hash that matches them to the
parts' keys: about 180 bytes a row for 41-character keys (80 MiB more at 500,000 rows than at
52,500), beside the caller's manifest list.

When the parts hold the rows out of manifest order (gathering the windows straight from them would
stream each part once per window: reads growing as rows × windows), the rows are first sorted by
window into spill files in one pass over the parts (`spill.py`), and each window is gathered from its
own file. The reads then stay linear in rows (500,000 shuffled 1024-d rows: 11 CPU s, not 106), at
the price of disk: the spill is a temporary extra copy of the shard's value bytes, in the parts
folder, shrinking as the shard file is written and removed when the assembly ends (a killed one's
by the next run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedpipe.extract.part_rows import Held, PartRows
from embedpipe.extract.settings import ExtractOptions
from embedpipe.extract.spill import Spill, fanout_for, remove_spill_leftovers, should_spill, spill_folder
from embedpipe.store.atomic import atomic_path
from embedpipe.store.footer import with_provenance
from embedpipe.store.parquet_io import parquet_options, write_parquet

ERROR_COLUMNS = ("stage", "error_type", "message")
ERROR_SCHEMA = pa.schema([("key", pa.string())] + [(n, pa.string()) for n in ERROR_COLUMNS])
MEMORY_BYTES = ExtractOptions.assemble_memory_mb << 20
# Of the budget: the window of rows gathered (numpy, then written as is), the batch read from a part
# (Arrow holds about 3 times a batch while it decodes one: definition and repetition levels).
# The rest is what Parquet's writer, the allocators and the keys take (measured: bench/assemble.py).
WINDOW_SHARE, BATCH_SHARE = 8, 64


def _small_columns(part_paths: list[Path]) -> pa.Table:
    """Every part's key and error columns, one after the other (row numbers count across the parts)."""
    # One file at a time, no read-ahead, no threads: each of those keeps buffers that outlive the read.
    tables = [pq.ParquetFile(p, pre_buffer=False).read(columns=["key", *ERROR_COLUMNS], use_threads=False)
              for p in part_paths]
    if not tables:
        return ERROR_SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks()


def _windows(bytes_per_row: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) runs of rows, each holding about `limit` bytes (one row at least)."""
    ends = np.cumsum(bytes_per_row)
    windows, start = [], 0
    while start < len(ends):
        before = ends[start - 1] if start else 0.0
        end = max(start + 1, int(np.searchsorted(ends, before + limit, side="right")))
        windows.append((start, end))
        start = end
    return windows


def assemble_shard(
    part_paths: list[Path],
    manifest_keys: list[str],
    value_fields: list[pa.Field],
    embeddings_path: Path,
    errors_path: Path,
    metadata: dict[str, Any],
    memory_bytes: int = MEMORY_BYTES,
    part_columns: dict[str, list[str]] | None = None,
    held: Held | None = None,
    spill: bool | None = None,
) -> tuple[int, int]:
    """Write the embedded rows and the error rows of a shard. Returns (rows, errors).

    `part_columns`: string columns whose value is per part (a row's sidecar file), one list entry a part.
    `memory_bytes`: the budget of the value rows held (`held`, if given, counts them and the part row
    groups streamed). `spill`: whether to sort the rows into spill files in the parts' folder first;
    None: when the parts are out of manifest order (`spill.should_spill`).

    A key found in several parts (a part written twice around a crash) is taken from the first.
    """
    held = held if held is not None else Held()
    small = _small_columns(list(part_paths))
    # Each manifest key's row number in the parts: the first row that holds it.
    found = pc.index_in(pa.array(manifest_keys, pa.string()), value_set=small.column("key").combine_chunks())
    if missing := found.null_count:
        raise RuntimeError(f"{missing} manifest file(s) have no row yet; the shard is incomplete")
    rows = found.to_numpy(zero_copy_only=False).astype(np.int64)
    failed = small.column("stage").is_valid().to_numpy(zero_copy_only=False)[rows]
    ok = rows[~failed]

    with atomic_path(errors_path) as tmp:
        errors = small.take(pa.array(rows[failed], pa.int64()))
        pq.write_table(pa.Table.from_arrays(errors.columns, schema=ERROR_SCHEMA), tmp)
    keys = small.column("key").combine_chunks()
    del small, found, errors

    part_columns = part_columns or {}
    fields = [pa.field("key", pa.string(), nullable=False), *value_fields,
              *(pa.field(n, pa.string(), nullable=False) for n in part_columns)]
    schema = with_provenance(fields, metadata)
    reader = PartRows(list(part_paths), list(value_fields), memory_bytes // BATCH_SHARE, held)
    part_of = np.searchsorted(np.cumsum([m.num_rows for m in reader.metadata]), ok, side="right")
    per_part = [pa.array(values, pa.string()) for values in part_columns.values()]
    window_bytes = memory_bytes // WINDOW_SHARE
    bounds = _windows(reader.bytes_per_row(ok), window_bytes)
    with contextlib.ExitStack() as stack:
        windows: Iterator[tuple[list[pa.Array], int]] = (reader.window(ok[start:end]) for start, end in bounds)
        if part_paths:
            folder = Path(part_paths[0]).parent
            remove_spill_leftovers(folder)
            if should_spill(reader.group_of(ok), bounds) if spill is None else spill:
                spilled = Spill(reader, ok, bounds, stack.enter_context(spill_folder(folder)),
                                fanout_for(memory_bytes // BATCH_SHARE))
                windows = spilled.windows()
        tmp = stack.enter_context(atomic_path(embeddings_path))
        out = stack.enter_context(pq.ParquetWriter(tmp, schema, **parquet_options(schema)))
        for (start, end), (values, nbytes) in zip(bounds, windows, strict=True):
            index = pa.array(ok[start:end], pa.int64())
            table = pa.Table.from_arrays(
                [keys.take(index), *values,
                 *(files.take(pa.array(part_of[start:end], pa.int64())) for files in per_part)],
                schema=schema,
            )
            write_parquet(table, None, out, target=2 * window_bytes)  # one row group: the window
            del table, values  # the window's rows go before the next window is gathered
            held.release(nbytes)
            # mimalloc (pyarrow's pool) keeps freed pages for reuse; the spill's many small reads left
            # them scattered (+130 MiB peak RSS at 500,000 rows). Handing them back costs no measurable CPU.
            pa.default_memory_pool().release_unused()
        if not len(ok):
            out.write_table(schema.empty_table())
    return len(ok), int(failed.sum())
