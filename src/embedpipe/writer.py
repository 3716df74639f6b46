"""ShardWriter: rows go to atomic part files; the shard output is assembled from them at the end.

A killed job leaves only complete parts (plus temp files that are ignored), so a rerun embeds
exactly the keys that no part holds yet: no row lost, none written twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedpipe.atomic import atomic_path, remove_stale_tmp

log = logging.getLogger(__name__)

META_KEY = b"embedpipe"
FINGERPRINT_KEY = b"embedpipe.fingerprint"
ERROR_SCHEMA = pa.schema(
    [("key", pa.string()), ("stage", pa.string()), ("error_type", pa.string()), ("message", pa.string())]
)
PART_RE = re.compile(r"^part-(\d{6})\.parquet$")


def to_arrow(values: np.ndarray | list[np.ndarray], typ: pa.DataType) -> pa.Array:
    """A numpy batch as an Arrow column; fixed-size lists come from the trailing axes, variable-length
    lists from a list of per-item arrays (their first axes)."""
    if pa.types.is_list(typ):
        lengths = np.array([len(v) for v in values], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        flat = np.concatenate(values) if len(values) else np.zeros((0,), np.float32)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), to_arrow(flat, typ.value_type))
    if pa.types.is_fixed_size_list(typ):
        inner = to_arrow(values.reshape(values.shape[0] * typ.list_size, *values.shape[2:]), typ.value_type)
        return pa.FixedSizeListArray.from_arrays(inner, typ.list_size)
    return pa.array(values, type=typ)


def read_embedpipe_metadata(path: str | os.PathLike) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


@dataclass
class ShardWriter:
    parts_dir: Path
    output_fields: list[pa.Field]
    fingerprint: str
    save_every: int = 10000
    _batches: list[tuple[list[str], dict[str, np.ndarray]]] = field(default_factory=list)
    _errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    _pending: int = 0

    def __post_init__(self) -> None:
        self.parts_dir = Path(self.parts_dir)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if removed := remove_stale_tmp(self.parts_dir):
            log.info("removed %d half-written part(s) left by an earlier run", removed)
        self.part_schema = pa.schema(
            [pa.field("key", pa.string(), nullable=False)]
            + [f.with_nullable(True) for f in self.output_fields]
            + [pa.field(n, pa.string()) for n in ("stage", "error_type", "message")],
            metadata={FINGERPRINT_KEY: self.fingerprint.encode()},
        )
        self._drop_foreign_parts()

    def part_paths(self) -> list[Path]:
        return sorted(p for p in self.parts_dir.iterdir() if PART_RE.match(p.name))

    def _drop_foreign_parts(self) -> None:
        # Parts made by another model or preprocessing must not be mixed into this output.
        for p in self.part_paths():
            meta = pq.read_schema(p).metadata or {}
            if meta.get(FINGERPRINT_KEY) != self.fingerprint.encode():
                log.warning("discarding %s: written with a different model or preprocessing", p.name)
                p.unlink()

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

    def add_error(self, key: str, stage: str, error_type: str, message: str) -> None:
        self._errors.append((key, stage, error_type, message))
        self._pending += 1

    def maybe_flush(self) -> None:
        if self._pending >= self.save_every:
            self.flush()

    def flush(self) -> Path | None:
        """Write everything pending as one atomic part file."""
        if not self._pending:
            return None
        columns: dict[str, list[pa.Array]] = {f.name: [] for f in self.part_schema}
        for keys, outputs in self._batches:
            columns["key"].append(pa.array(keys, pa.string()))
            for f in self.output_fields:
                columns[f.name].append(to_arrow(outputs[f.name], f.type))
            for n in ("stage", "error_type", "message"):
                columns[n].append(pa.nulls(len(keys), pa.string()))
        if self._errors:
            err = list(zip(*self._errors, strict=True))
            columns["key"].append(pa.array(err[0], pa.string()))
            for f in self.output_fields:
                columns[f.name].append(pa.nulls(len(self._errors), f.type))
            for i, n in enumerate(("stage", "error_type", "message"), start=1):
                columns[n].append(pa.array(err[i], pa.string()))
        arrays = [pa.chunked_array(columns[f.name], f.type) for f in self.part_schema]
        table = pa.Table.from_arrays(arrays, schema=self.part_schema)
        existing = self.part_paths()
        index = int(PART_RE.match(existing[-1].name).group(1)) + 1 if existing else 0
        dest = self.parts_dir / f"part-{index:06d}.parquet"
        with atomic_path(dest) as tmp:
            pq.write_table(table, tmp)
        self._batches, self._errors, self._pending = [], [], 0
        return dest

    def finalize(
        self, manifest_keys: list[str], embeddings_path: Path, errors_path: Path, metadata: dict[str, Any]
    ) -> tuple[int, int]:
        """Assemble the parts into the shard outputs, in manifest order. Returns (rows, errors)."""
        self.flush()
        parts = [pq.read_table(p) for p in self.part_paths()]
        table = pa.concat_tables(parts) if parts else self.part_schema.empty_table()
        order = {k: i for i, k in enumerate(manifest_keys)}
        keys = table.column("key").to_pylist()
        first_seen: dict[str, int] = {}
        for row, k in enumerate(keys):
            if k in order and k not in first_seen:
                first_seen[k] = row
        missing = len(order) - len(first_seen)
        if missing:
            raise RuntimeError(f"{missing} manifest file(s) have no row yet; the shard is incomplete")
        rows = np.array([first_seen[k] for k in manifest_keys], dtype=np.int64)
        table = table.take(pa.array(rows, pa.int64()))
        failed = table.column("stage").is_valid()
        ok_table = table.filter(pc.invert(failed))
        err_table = table.filter(failed)

        errors = pa.Table.from_arrays([err_table.column(n) for n in ERROR_SCHEMA.names], schema=ERROR_SCHEMA)
        fields = [pa.field("key", pa.string(), nullable=False)] + self.output_fields
        meta = {META_KEY: json.dumps(metadata, sort_keys=True).encode()}
        embedded = pa.Table.from_arrays(
            [ok_table.column(f.name) for f in fields], schema=pa.schema(fields, metadata=meta)
        )
        with atomic_path(errors_path) as tmp:
            pq.write_table(errors, tmp)
        with atomic_path(embeddings_path) as tmp:
            pq.write_table(embedded, tmp)
        return embedded.num_rows, errors.num_rows

    def remove_parts(self) -> None:
        for p in self.part_paths():
            p.unlink()
        if not any(self.parts_dir.iterdir()):
            self.parts_dir.rmdir()
