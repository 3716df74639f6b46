"""The value rows of a shard's part files, gathered window by window in any order, within a byte budget.

A window (a run of the shard file's rows) is gathered from the row groups that hold its rows; each
group is streamed in batches of bounded bytes (never read whole), and each batch gives the window
the rows it needs, copied straight to their places in the window. So the value bytes held at any
time are one window, one batch and the batch's page buffers, whatever the shard's size and whatever
order the parts hold the rows in. Nothing is cached between windows: a group that two windows need is
streamed twice. Rows in manifest order need at most one group a window; rows shuffled, as an encoder
that sorts its shard leaves them, need every group each window, so assemble.py then sorts the rows
into per-window files in one pass first (`spill.py`) and gathers each window from its own file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STREAM_BUFFER = 1 << 20  # bytes read from a column chunk at a time (the whole chunk at once otherwise)


@dataclass
class Held:
    """Bytes of value rows an assembly holds now and at most (what its budget bounds), and how many
    times it streamed a part's row group (`reads`)."""

    now: int = 0
    peak: int = 0
    reads: int = 0

    def add(self, nbytes: int) -> None:
        self.now += nbytes
        self.peak = max(self.peak, self.now)

    def release(self, nbytes: int) -> None:
        self.now -= nbytes


def _fixed_width(typ: pa.DataType) -> tuple[list[int], pa.DataType] | None:
    """The list sizes (outermost first) and leaf type of nested fixed-size lists of numbers, else None."""
    sizes = []
    while pa.types.is_fixed_size_list(typ):
        sizes.append(typ.list_size)
        typ = typ.value_type
    return (sizes, typ) if sizes and (pa.types.is_floating(typ) or pa.types.is_integer(typ)) else None


def _no_nulls_in(level: pa.Array, rows: int, local: np.ndarray) -> bool:
    """Whether the values of `local` rows (of `rows`) in one level of nested lists are all valid (a
    null row's children are null too: a part's error rows are)."""
    if not level.null_count:
        return True
    return bool(level.is_valid().to_numpy(zero_copy_only=False).reshape(rows, -1)[local].all())


class Column:
    """One value column of a window. Fixed-size lists of numbers (embeddings, token grids) are copied
    row by row into one numpy array of the window; any other column (facts; a null inside a vector)
    is kept as Arrow pieces put in order at the end (these are small)."""

    def __init__(self, field: pa.Field, rows: int, held: Held) -> None:
        self.field, self.rows, self.held = field, rows, held
        self.fixed = _fixed_width(field.type)
        self.values: np.ndarray | None = None
        self.valid = np.ones(rows, dtype=bool)
        self.pieces: list[tuple[pa.Array, np.ndarray]] = []
        self.nbytes = 0  # what this column holds, counted in `held`

    def _hold(self, nbytes: int) -> None:
        self.nbytes += nbytes
        self.held.add(nbytes)

    def add(self, column: pa.Array, local: np.ndarray, places: np.ndarray) -> None:
        """Rows `local` of a batch's column go to the window's rows `places`."""
        if self.fixed is not None:
            leaf, whole = column, True  # the child values of every row, a null row's too (not flatten())
            for size in self.fixed[0]:
                leaf = leaf.values.slice(leaf.offset * size, len(leaf) * size)
                whole = whole and _no_nulls_in(leaf, len(column), local)
            if whole:
                if self.values is None:
                    width = int(np.prod(self.fixed[0]))
                    self.values = np.empty((self.rows, width), dtype=self.fixed[1].to_pandas_dtype())
                    self._hold(self.values.nbytes)
                numbers = np.frombuffer(leaf.buffers()[1], dtype=self.values.dtype)  # null slots too, no copy
                self.values[places] = numbers[leaf.offset:leaf.offset + len(leaf)].reshape(len(column), -1)[local]
                if column.null_count:
                    self.valid[places] = column.is_valid().to_numpy(zero_copy_only=False)[local]
                return
        piece = column.take(pa.array(local, pa.int64()))
        self.pieces.append((piece, places))
        self._hold(piece.nbytes)

    def finish(self) -> pa.Array:
        """The column's rows in window order (the numpy rows without a copy)."""
        out: pa.Array | None = None
        if self.values is not None:
            assert self.fixed is not None
            types = [self.field.type]
            while pa.types.is_fixed_size_list(types[-1]):
                types.append(types[-1].value_type)
            leaf = types.pop()  # the numpy buffer itself, not a copy
            out = pa.Array.from_buffers(leaf, self.values.size, [None, pa.py_buffer(self.values)])
            for typ in reversed(types[1:]):
                out = pa.FixedSizeListArray.from_arrays(out, type=typ)
            mask = None if self.valid.all() else pa.array(~self.valid)
            out = pa.FixedSizeListArray.from_arrays(out, type=types[0], mask=mask)
            if not self.pieces:
                return out
        arrays, index, offset = ([out], np.arange(self.rows), self.rows) if out is not None else ([], None, 0)
        index = np.empty(self.rows, dtype=np.int64) if index is None else index
        for piece, places in self.pieces:
            arrays.append(piece)
            index[places] = np.arange(offset, offset + len(piece))
            offset += len(piece)
        ordered = pa.concat_arrays(arrays).take(pa.array(index, pa.int64()))
        self._hold(ordered.nbytes)
        pieces = sum(p.nbytes for p, _ in self.pieces)
        self.pieces = []
        self.nbytes -= pieces
        self.held.release(pieces)
        return ordered


class PartRows:
    """Where each row of the part files is (row numbers count across the parts, in their order), and
    the value columns of any rows, read a window at a time."""

    def __init__(self, paths: list[Path], fields: list[pa.Field], batch_bytes: int, held: Held) -> None:
        self.paths = list(paths)
        self.metadata = [pq.read_metadata(p) for p in self.paths]
        self.fields, self.batch_bytes, self.held = fields, batch_bytes, held
        names = {f.name for f in fields}
        starts, where, per_row, first = [], [], [], 0
        for i, meta in enumerate(self.metadata):
            value_columns = [c for c in range(meta.num_columns)
                             if meta.schema.column(c).path.split(".")[0] in names]
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                starts.append(first)
                where.append((i, g))
                value_bytes = sum(rg.column(c).total_uncompressed_size for c in value_columns)
                per_row.append(value_bytes / max(rg.num_rows, 1))
                first += rg.num_rows
        self.num_rows = first
        self.group_start = np.array(starts, dtype=np.int64)
        self.group_where = where
        self.group_bytes_per_row = np.array(per_row, dtype=np.float64)

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.group_start, rows, side="right") - 1

    def bytes_per_row(self, rows: np.ndarray) -> np.ndarray:
        """The value bytes of each row (its row group's mean, from the parts' metadata)."""
        return self.group_bytes_per_row[self.group_of(rows)]

    def window(self, rows: np.ndarray) -> tuple[list[pa.Array], int]:
        """The value columns of `rows` (row numbers, any order), in that order, and the bytes they hold
        (counted in `held` until the caller releases them)."""
        columns = [Column(f, len(rows), self.held) for f in self.fields]
        groups = self.group_of(rows)
        # Each group visited once, its rows in file order: a batch's rows are then one run of them.
        visit = np.lexsort((rows, groups))
        for span in np.split(visit, np.flatnonzero(np.diff(groups[visit])) + 1) if len(visit) else []:
            group = int(groups[span[0]])
            self._from_group(group, rows[span] - self.group_start[group], span, columns)
        return [c.finish() for c in columns], sum(c.nbytes for c in columns)

    def _from_group(self, group: int, local: np.ndarray, places: np.ndarray, columns: list[Column]) -> None:
        for first, batch in self.stream(group, int(local[-1])):
            lo, hi = np.searchsorted(local, [first, first + batch.num_rows])
            if hi > lo:
                for column in columns:
                    column.add(batch.column(column.field.name), local[lo:hi] - first, places[lo:hi])

    def stream(self, group: int, last: int) -> Iterator[tuple[int, pa.RecordBatch]]:
        """A row group's value columns in batches of about `batch_bytes`, up to its row `last`: (the
        batch's first row in the group, the batch), counted in `held` until the caller asks for the next."""
        part, index = self.group_where[group]
        per_row = max(self.group_bytes_per_row[group], 1.0)
        batch_rows = max(1, int(self.batch_bytes // per_row))
        self.held.reads += 1
        # Opened for this group only: an open file's reader keeps its last batch's buffers.
        source = pq.ParquetFile(self.paths[part], metadata=self.metadata[part], buffer_size=STREAM_BUFFER,
                                pre_buffer=False)
        batches = source.iter_batches(batch_size=batch_rows, row_groups=[index],
                                      columns=[f.name for f in self.fields], use_threads=False)
        first = 0
        try:
            for batch in batches:
                self.held.add(batch.nbytes)
                try:
                    yield first, batch
                finally:
                    self.held.release(batch.nbytes)
                first += batch.num_rows
                del batch
                if first > last:
                    break
        finally:
            batches.close()
            source.close()
