"""Assemble a shard's part files into its outputs, in manifest order, streaming.

Parts hold rows in the order they were embedded (an encoder may sort a shard, e.g. audio by
duration). The shard file holds them in manifest order. Nothing here holds the shard in memory:
the small columns (key and error fields) are read whole, the value columns one row group at a
time, and the output is written in chunks bounded by bytes. With image tokens at 12.4 MB a row,
a shard of 10,000 images is 124 GB on disk and a few hundred MB in memory while it is assembled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.store.atomic import atomic_path
from embedpipe.store.footer import with_provenance
from embedpipe.store.parquet_io import CHUNK_BYTES, parquet_options, write_parquet

ERROR_COLUMNS = ("stage", "error_type", "message")
ERROR_SCHEMA = pa.schema([("key", pa.string())] + [(n, pa.string()) for n in ERROR_COLUMNS])


@dataclass
class _Group:
    part: int
    index: int
    start: int  # first row of the group within its part
    bytes_per_row: float


class PartReader:
    """Row groups of the part files, read on demand; only the groups the current chunk needs stay."""

    def __init__(self, paths: list[Path], columns: list[str]) -> None:
        self.files = [pq.ParquetFile(p) for p in paths]
        self.columns = columns
        self.groups: list[list[_Group]] = []
        self.starts: list[np.ndarray] = []
        for i, f in enumerate(self.files):
            start, groups = 0, []
            for g in range(f.metadata.num_row_groups):
                rg = f.metadata.row_group(g)
                groups.append(_Group(i, g, start, rg.total_byte_size / max(rg.num_rows, 1)))
                start += rg.num_rows
            self.groups.append(groups)
            self.starts.append(np.array([g.start for g in groups], dtype=np.int64))
        self._cache: dict[tuple[int, int], pa.Table] = {}

    def group_of(self, part: int, row: int) -> _Group:
        return self.groups[part][int(np.searchsorted(self.starts[part], row, side="right")) - 1]

    def take(self, locations: list[tuple[int, int]]) -> pa.Table:
        """The value columns of the rows at (part, row), in the order given."""
        groups = [self.group_of(part, row) for part, row in locations]
        needed = {(g.part, g.index): g for g in groups}
        for k in [k for k in self._cache if k not in needed]:
            del self._cache[k]
        tables, offsets, total = [], {}, 0
        for k, g in needed.items():
            if k not in self._cache:
                self._cache[k] = self.files[g.part].read_row_group(g.index, columns=self.columns)
            offsets[k] = total - g.start
            tables.append(self._cache[k])
            total += self._cache[k].num_rows
        index = [offsets[(g.part, g.index)] + r for g, (_, r) in zip(groups, locations, strict=True)]
        return pa.concat_tables(tables).take(pa.array(index, pa.int64()))


def _chunks(locations: list[tuple[int, int]], reader: PartReader, limit: int) -> list[list[tuple[int, int]]]:
    chunks, current, size = [], [], 0.0
    for loc in locations:
        current.append(loc)
        size += reader.group_of(*loc).bytes_per_row
        if size >= limit:
            chunks.append(current)
            current, size = [], 0.0
    if current:
        chunks.append(current)
    return chunks


def assemble_shard(
    part_paths: list[Path],
    manifest_keys: list[str],
    value_fields: list[pa.Field],
    embeddings_path: Path,
    errors_path: Path,
    metadata: dict[str, Any],
    chunk_bytes: int = CHUNK_BYTES,
    part_columns: dict[str, list[str]] | None = None,
) -> tuple[int, int]:
    """Write the embedded rows and the error rows of a shard. Returns (rows, errors).

    `part_columns`: string columns whose value is per part (a row's sidecar file), one list entry a part.

    A key found in several parts (a part written twice around a crash) is taken from the first.
    """
    small = [pq.read_table(p, columns=["key", *ERROR_COLUMNS]) for p in part_paths]
    where: dict[str, tuple[int, int]] = {}
    wanted = set(manifest_keys)
    for part, table in enumerate(small):
        for row, key in enumerate(table.column("key").to_pylist()):
            if key in wanted and key not in where:
                where[key] = (part, row)
    missing = len(wanted) - len(where)
    if missing:
        raise RuntimeError(f"{missing} manifest file(s) have no row yet; the shard is incomplete")

    ok: list[tuple[int, int]] = []
    error_rows: dict[str, list[Any]] = {n: [] for n in ERROR_SCHEMA.names}
    failed = [t.column("stage").is_valid().to_numpy(zero_copy_only=False) for t in small]
    for key in manifest_keys:
        part, row = where[key]
        if failed[part][row]:
            error_rows["key"].append(key)
            for n in ERROR_COLUMNS:
                error_rows[n].append(small[part].column(n)[row].as_py())
        else:
            ok.append((part, row))

    with atomic_path(errors_path) as tmp:
        pq.write_table(pa.Table.from_pydict(error_rows, schema=ERROR_SCHEMA), tmp)

    part_columns = part_columns or {}
    fields = [pa.field("key", pa.string(), nullable=False), *value_fields,
              *(pa.field(n, pa.string(), nullable=False) for n in part_columns)]
    schema = with_provenance(fields, metadata)
    keys_of = {loc: key for key, loc in where.items()}
    reader = PartReader(list(part_paths), [f.name for f in value_fields])
    with atomic_path(embeddings_path) as tmp, pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as out:
        for chunk in _chunks(ok, reader, chunk_bytes):
            values = reader.take(chunk)
            table = pa.Table.from_arrays(
                [pa.array([keys_of[loc] for loc in chunk], pa.string()),
                 *(values.column(f.name) for f in value_fields),
                 *(pa.array([per_part[p] for p, _ in chunk], pa.string()) for per_part in part_columns.values())],
                schema=schema,
            )
            write_parquet(table, None, out)
        if not ok:
            out.write_table(schema.empty_table())
    return len(ok), len(error_rows["key"])
