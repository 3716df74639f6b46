"""A shard's value rows sorted on disk by the window of the shard file they go to, in one pass over the parts.

Gathering each window of the shard file straight from the parts (`part_rows.PartRows.window`)
streams every row group that holds one of the window's rows. In manifest order that is about one
group a window; when the parts hold the rows shuffled (an encoder that sorts its shard, as Metis
does by duration) it is every group for every window, so the reads grow as rows × windows. Then
instead the parts are streamed once: each batch's rows are put in window order (a copy) and cut by
window, each piece appended, with each row's place in the shard file, to its window's spill file
(an Arrow IPC stream); each window is then gathered from its own file only. The parts are read
once, the spill written once and read once.

Files open at once: at most `fanout` (`fanout_for`: a batch cut into that many pieces still leaves
pieces of about PIECE_BYTES, so the per-message overhead stays small; never more than MAX_FANOUT
descriptors). Pieces go straight to their file, no buffer per file: what is held is one batch and its
reordered copy, whatever the number of windows. A shard of more windows than `fanout` is cut in
levels: into `fanout` files of consecutive windows, each cut again when its turn comes, so its rows
are spilled log_fanout(windows) times (once up to 256 windows: 16 GB of values at the default budget).

Disk: the spill is a temporary extra copy of the shard's value bytes, in `.assemble-spill.tmp-<pid>/`
in the parts folder. A window's file is deleted as soon as its rows are gathered, so the spill
shrinks as the shard file grows; the folder is removed when the assembly ends, written or failed,
and one a killed assembly left is removed by the next (here, and by `store.atomic.remove_stale_tmp`
when the job opens its parts folder). It never sits beside the outputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedpipe.extract.part_rows import Column, PartRows
from embedpipe.store.atomic import TMP_MARK

SPILL_NAME = ".assemble-spill"
PLACE = "__spill_place__"  # a row's place in the shard file's rows (0 = its first)
PIECE_BYTES = 32 << 10
MAX_FANOUT = 256
# A batch's rows, which rows of it (`local`), and their places in the shard file.
Source = Iterable[tuple[pa.RecordBatch, np.ndarray, np.ndarray]]


def fanout_for(batch_bytes: int) -> int:
    """The spill files open at once for a budget's batches."""
    return int(min(MAX_FANOUT, max(2, batch_bytes // PIECE_BYTES)))


def should_spill(groups: np.ndarray, bounds: list[tuple[int, int]]) -> bool:
    """Whether gathering each window straight from the parts (`groups`: each row's row group, in the
    shard file's order) streams more than twice as many groups as there are groups and windows: the
    parts are then out of manifest order, and the direct reads grow as rows × windows."""
    if not len(groups):
        return False
    window = np.repeat(np.arange(len(bounds), dtype=np.int64), [end - start for start, end in bounds])
    streams = len(np.unique(window * (int(groups.max()) + 1) + groups))  # one per (window, group)
    return streams > 2 * (len(np.unique(groups)) + len(bounds))


def remove_spill_leftovers(parent: Path) -> int:
    """The spill folders a killed assembly left in `parent` (one job owns a parts folder)."""
    removed = 0
    for p in parent.glob(f"{SPILL_NAME}{TMP_MARK}*"):
        shutil.rmtree(p, ignore_errors=True)
        removed += 1
    return removed


@contextlib.contextmanager
def spill_folder(parent: Path) -> Iterator[Path]:
    """A fresh spill folder in `parent`, removed on leaving, whatever happened."""
    remove_spill_leftovers(parent)
    folder = parent / f"{SPILL_NAME}{TMP_MARK}{os.getpid()}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Spill:
    """The windows (`bounds`: runs of the shard file's rows) of rows `ok` of the parts, gathered through
    spill files in `folder`."""

    def __init__(self, reader: PartRows, ok: np.ndarray, bounds: list[tuple[int, int]], folder: Path,
                 fanout: int) -> None:
        self.reader, self.ok, self.bounds, self.folder = reader, ok, bounds, folder
        self.fanout, self.held, self.files = max(2, fanout), reader.held, 0
        self.starts = np.array([start for start, _ in bounds], dtype=np.int64)
        self.names = [f.name for f in reader.fields]

    def windows(self) -> Iterator[tuple[list[pa.Array], int]]:
        """Each window's value columns, in order, and the bytes they hold (as `PartRows.window`: counted
        in `held` until the caller releases them)."""
        files = self._cut(self._from_parts(), 0, len(self.bounds))
        pa.default_memory_pool().release_unused()  # the pass's freed batches, before a window is held
        yield from self._windows_of(files)

    def _windows_of(self, files: list[tuple[int, int, Path]]) -> Iterator[tuple[list[pa.Array], int]]:
        for first, end, path in files:
            if end - first == 1:
                yield self._gather(path, *self.bounds[first])
            else:  # several windows' rows: cut again, now that it is this file's turn
                yield from self._windows_of(self._cut(self._from_file(path), first, end))

    def _from_parts(self) -> Source:
        """The parts' batches, each row group streamed once, in file order, with the rows of `ok` they hold."""
        order = np.argsort(self.ok, kind="stable")
        rows = self.ok[order]
        if not len(rows):
            return
        groups = self.reader.group_of(rows)
        cuts = np.flatnonzero(np.diff(groups)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            group = int(groups[lo])
            local, places = rows[lo:hi] - self.reader.group_start[group], order[lo:hi]
            for first, batch in self.reader.stream(group, int(local[-1])):
                a, b = np.searchsorted(local, [first, first + batch.num_rows])
                if b > a:
                    yield batch, local[a:b] - first, places[a:b]

    def _from_file(self, path: Path) -> Source:
        """A spill file's pieces, one at a time (counted in `held`); the file is deleted once read."""
        if not path.exists():
            raise RuntimeError(f"spill file {path} is missing: every window holds rows")
        with pa.OSFile(str(path), "r") as source:
            for batch in pa.ipc.open_stream(source):
                self.held.add(batch.nbytes)
                try:
                    yield batch, np.arange(batch.num_rows), batch.column(PLACE).to_numpy()
                finally:
                    self.held.release(batch.nbytes)
                del batch
        path.unlink()

    def _cut(self, source: Source, first: int, end: int) -> list[tuple[int, int, Path]]:
        """The rows of windows first..end-1 from `source`, into at most `fanout` files of consecutive
        windows: (first window, end, file) each."""
        count = min(self.fanout, end - first)
        edges = first + np.arange(count + 1, dtype=np.int64) * (end - first) // count  # strictly increasing
        paths = [self.folder / f"{self.files + i:06d}.arrow" for i in range(count)]
        self.files += count
        sinks: dict[int, tuple[pa.NativeFile, pa.ipc.RecordBatchStreamWriter]] = {}
        try:
            for batch, local, places in source:
                bucket = np.searchsorted(edges, np.searchsorted(self.starts, places, side="right") - 1,
                                         side="right") - 1
                order = np.argsort(bucket, kind="stable")
                piece = batch.select(self.names).take(pa.array(local[order], pa.int64()))
                piece = piece.append_column(PLACE, pa.array(places[order], pa.int64()))
                self.held.add(piece.nbytes)
                cuts = np.searchsorted(bucket[order], np.arange(count + 1))
                for b in map(int, np.flatnonzero(np.diff(cuts))):
                    if b not in sinks:
                        sink = pa.OSFile(str(paths[b]), "wb")
                        sinks[b] = sink, pa.ipc.new_stream(sink, piece.schema)
                    sinks[b][1].write_batch(piece.slice(cuts[b], cuts[b + 1] - cuts[b]))
                self.held.release(piece.nbytes)
                del piece, batch
        finally:
            for sink, writer in sinks.values():
                writer.close()
                sink.close()
        return [(int(edges[b]), int(edges[b + 1]), paths[b]) for b in range(count)]

    def _gather(self, path: Path, start: int, end: int) -> tuple[list[pa.Array], int]:
        columns = [Column(f, end - start, self.held) for f in self.reader.fields]
        for batch, local, places in self._from_file(path):
            for column in columns:
                column.add(batch.column(column.field.name), local, places - start)
        return [c.finish() for c in columns], sum(c.nbytes for c in columns)
