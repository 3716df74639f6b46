"""ShardWriter: rows go to atomic part files; the shard output is assembled from them at the end.

A killed job leaves only complete parts (plus temp files that are ignored), so a rerun embeds
exactly the keys that no part holds yet: no row lost, none written twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.extract.assemble import ERROR_COLUMNS, MEMORY_BYTES, assemble_shard
from embedpipe.extract.settings import ExtractOptions
from embedpipe.store.atomic import atomic_path, remove_stale_tmp, remove_stale_tmp_of
from embedpipe.store.footer import read_fingerprint, with_fingerprint
from embedpipe.store.parquet_io import write_parquet
from embedpipe.store.sidecar import file_column, publish, remove_orphans, remove_sidecars, sidecar_path, write_sidecar

log = logging.getLogger(__name__)

PART_BYTES = ExtractOptions.part_mb << 20  # a part is flushed at save_every rows or this many bytes, whichever first
PART_RE = re.compile(r"^part-(\d{6})\.parquet$")
REUSED_KEY = b"embedpipe.reused"  # in the footer of a part of rows taken from the previous shard


def to_arrow(values: np.ndarray | list[np.ndarray], typ: pa.DataType) -> pa.Array:
    """A numpy batch as an Arrow column; fixed-size lists come from the trailing axes, variable-length
    lists from a list of per-item arrays (their first axes)."""
    if pa.types.is_list(typ):
        lengths = np.array([len(v) for v in values], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        if not lengths.sum():  # every item empty: numpy would make them float64, whatever the column holds
            return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array([], typ.value_type))
        flat = np.concatenate([np.asarray(v) for v in values])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), to_arrow(flat, typ.value_type))
    if pa.types.is_fixed_size_list(typ):
        inner = to_arrow(values.reshape(values.shape[0] * typ.list_size, *values.shape[2:]), typ.value_type)
        return pa.FixedSizeListArray.from_arrays(inner, typ.list_size)
    return pa.array(values, type=typ)


def _nbytes(values: np.ndarray | list[Any]) -> int:
    """Bytes of a column batch; per-item lists of strings (ECG lead names) count as nothing."""
    return values.nbytes if isinstance(values, np.ndarray) else sum(getattr(v, "nbytes", 0) for v in values)


@dataclass
class ShardWriter:
    parts_dir: Path
    output_fields: list[pa.Field]
    fingerprint: str
    save_every: int = ExtractOptions.save_every
    part_bytes: int = PART_BYTES
    sidecar: tuple[str, ...] = ()  # output columns written to safetensors beside each part (see sidecar.py)
    assemble_bytes: int = MEMORY_BYTES  # the value bytes held while the shard file is assembled
    _batches: list[tuple[list[str], dict[str, np.ndarray]]] = field(default_factory=list)
    _errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    _pending: int = 0
    _pending_bytes: int = 0

    def __post_init__(self) -> None:
        self.parts_dir = Path(self.parts_dir)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if removed := remove_stale_tmp(self.parts_dir):
            log.info("removed %d half-written part(s) left by an earlier run", removed)
        self.row_fields = [f for f in self.output_fields if f.name not in self.sidecar]
        self.part_schema = with_fingerprint(
            [pa.field("key", pa.string(), nullable=False)]
            + [f.with_nullable(True) for f in self.row_fields]
            + [pa.field(n, pa.string()) for n in ERROR_COLUMNS],
            self.fingerprint,
        )
        self._drop_foreign_parts()
        if removed := remove_orphans(self.parts_dir, {p.name for p in self.part_paths()}):
            log.info("removed %d sidecar file(s) whose part was never completed", removed)

    def part_paths(self) -> list[Path]:
        return sorted(p for p in self.parts_dir.iterdir() if PART_RE.match(p.name))

    def _drop_foreign_parts(self) -> None:
        # Parts made by another model or preprocessing must not be mixed into this output; nor parts
        # without a column this job writes (an older embedpipe's, before rows recorded their file's
        # identity): assembly needs every column of every part.
        wanted = set(self.part_schema.names)
        for p in self.part_paths():
            if read_fingerprint(p) != self.fingerprint or wanted - set(pq.read_schema(p).names):
                log.warning("discarding %s: written with a different model, preprocessing or columns", p.name)
                p.unlink()
                for column in self.sidecar:
                    sidecar_path(p, column).unlink(missing_ok=True)

    def completed_keys(self) -> set[str]:
        done: set[str] = set()
        for p in self.part_paths():
            done.update(pq.read_table(p, columns=["key"]).column("key").to_pylist())
        return done

    @property
    def pending(self) -> int:
        return self._pending

    def add_rows(self, keys: list[str], outputs: dict[str, np.ndarray]) -> None:
        if keys:
            self._batches.append((list(keys), outputs))
            self._pending += len(keys)
            self._pending_bytes += sum(_nbytes(v) for v in outputs.values())

    def add_error(self, key: str, stage: str, error_type: str, message: str) -> None:
        self._errors.append((key, stage, error_type, message))
        self._pending += 1

    def maybe_flush(self) -> None:
        if self._pending >= self.save_every or self._pending_bytes >= self.part_bytes:
            self.flush()

    def flush(self) -> Path | None:
        """Write everything pending as one atomic part file."""
        if not self._pending:
            return None
        columns: dict[str, list[pa.Array]] = {f.name: [] for f in self.part_schema}
        for keys, outputs in self._batches:
            columns["key"].append(pa.array(keys, pa.string()))
            for f in self.row_fields:
                columns[f.name].append(to_arrow(outputs[f.name], f.type))
            for n in ERROR_COLUMNS:
                columns[n].append(pa.nulls(len(keys), pa.string()))
        if self._errors:
            err = list(zip(*self._errors, strict=True))
            columns["key"].append(pa.array(err[0], pa.string()))
            for f in self.row_fields:
                columns[f.name].append(pa.nulls(len(self._errors), f.type))
            for i, n in enumerate(ERROR_COLUMNS, start=1):
                columns[n].append(pa.array(err[i], pa.string()))
        arrays = [pa.chunked_array(columns[f.name], f.type) for f in self.part_schema]
        table = pa.Table.from_arrays(arrays, schema=self.part_schema)
        row_keys = [k for batch_keys, _ in self._batches for k in batch_keys]
        values = {c: [row for _, outputs in self._batches for row in outputs[c]] for c in self.sidecar}
        dest = self._write_part(table, row_keys, values)
        self._batches, self._errors, self._pending, self._pending_bytes = [], [], 0, 0
        return dest

    def write_reused(self, rows: pa.Table, sidecar_values: dict[str, list[np.ndarray]]) -> Path:
        """One part of rows taken from the previous shard (reuse.py): `key` and the row columns, and each
        sidecar column's values in row order. Marked as reused in its footer, so the shard counts them."""
        if self._pending:
            raise RuntimeError("reused rows are written before any row is embedded")
        n = rows.num_rows
        arrays = [rows.column(f.name).cast(f.type) if f.name in rows.column_names else pa.nulls(n, f.type)
                  for f in self.part_schema]
        schema = self.part_schema.with_metadata({**self.part_schema.metadata, REUSED_KEY: b"1"})
        table = pa.Table.from_arrays(arrays, schema=schema)
        return self._write_part(table, rows.column("key").to_pylist(), sidecar_values)

    def _write_part(self, table: pa.Table, row_keys: list[str], sidecar_values: dict[str, list[Any]]) -> Path:
        existing = self.part_paths()
        index = int(PART_RE.match(existing[-1].name).group(1)) + 1 if existing else 0
        dest = self.parts_dir / f"part-{index:06d}.parquet"
        for column in self.sidecar if row_keys else ():  # before the part: a part on disk has its sidecars
            write_sidecar(sidecar_path(dest, column), row_keys, sidecar_values[column])
        with atomic_path(dest) as tmp:
            write_parquet(table, tmp)
        return dest

    def reused_rows(self, manifest_keys: list[str]) -> int:
        """Rows of the shard that come from parts of reused rows (the first part holding a key gives its row)."""
        wanted, seen, reused = set(manifest_keys), set(), 0
        for p in self.part_paths():
            keys = [k for k in pq.read_table(p, columns=["key"]).column("key").to_pylist() if k in wanted]
            if REUSED_KEY in (pq.read_schema(p).metadata or {}):
                reused += len(set(keys) - seen)
            seen.update(keys)
        return reused

    def finalize(
        self, manifest_keys: list[str], embeddings_path: Path, errors_path: Path, metadata: dict[str, Any]
    ) -> tuple[int, int]:
        """Assemble the parts into the shard outputs, in manifest order, streaming within `assemble_bytes`.
        Returns (rows, errors)."""
        self.flush()
        parts = self.part_paths()
        stem = embeddings_path.name.removesuffix(".parquet")
        for dest in (embeddings_path, errors_path):  # a kill during an earlier assembly
            remove_stale_tmp_of(dest)
        for column in self.sidecar:
            remove_stale_tmp(embeddings_path.parent / f"{stem}.{column}")
        files: dict[str, list[str]] = {}
        for column in self.sidecar:  # published before the shard file that points at them
            files[file_column(column)] = [f"{stem}.{column}/{p.name.removesuffix('.parquet')}.safetensors"
                                          for p in parts]
            for part, rel in zip(parts, files[file_column(column)], strict=True):
                if sidecar_path(part, column).exists():  # a part of error rows only has none
                    publish(sidecar_path(part, column), embeddings_path.parent / rel)
        return assemble_shard(parts, manifest_keys, self.row_fields, embeddings_path, errors_path, metadata,
                              memory_bytes=self.assemble_bytes, part_columns=files)

    def remove_parts(self) -> None:
        remove_sidecars(self.parts_dir)
        for p in self.part_paths():
            p.unlink()
        if not any(self.parts_dir.iterdir()):
            self.parts_dir.rmdir()
