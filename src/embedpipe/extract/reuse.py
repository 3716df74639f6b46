"""Rows of a shard's previous version, reused when the shard is made again: only new or changed files are embedded.

A shard is made again when its manifest changed (files added or removed, discover rescanned). By
then Snakemake has deleted its outputs, so the job that assembles a shard keeps a hard link of it,
with the sidecar files its rows point at, in `<parts_dir>.previous/` (beside the parts folder: no
disk space while the output exists, the old inode kept until the next assembly of that shard
replaces the folder; deleting results/<run> frees it with the rest). `previous.json` there says
which input_dir (its real path) the rows came from.

At the start of a job, before anything is embedded, each manifest key that no part holds yet is
taken from that shard when all of these hold, and is embedded otherwise:

- the previous shard was made with this run's encoder fingerprint and `made_with` (model, weights,
  preprocessing: the footer records both) and package versions (so the footer's stay true of every
  row), from the same input_dir, and has this run's columns;
- its row records the file's size and modification time (`store/file_identity.py`; shards made
  before embedpipe recorded them have none: nothing is reused) and the file has them still.

Error rows are not in the shard file: a file that failed before is tried again. The rows are
written as ordinary part files (marked reused in their footer, so the shard's footer can count
them), streamed in parts no larger than the writer's, and assembly puts every row in manifest
order: the shard equals a fresh run over the same files wherever the model gives a file the same
numbers in any batch (docs/reliability.md, "Changed inputs").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.extract.writer import ShardWriter
from embedpipe.store.atomic import remove_staged_leftovers, staged_dir
from embedpipe.store.file_identity import IDENTITY_COLUMNS, MTIME, SIZE, file_identity
from embedpipe.store.footer import read_provenance
from embedpipe.store.parquet_io import streamed
from embedpipe.store.sidecar import FILE_SUFFIX, file_column, iter_tensors, referenced_files

log = logging.getLogger(__name__)
RECORD = "previous.json"
READ_ROWS = 1024  # rows read from the previous shard at a time (image tokens live in sidecars)


def previous_dir(parts_dir: Path) -> Path:
    return parts_dir.with_name(f"{parts_dir.name}.previous")


@dataclass(frozen=True)
class Previous:
    """This run's side of the comparison: what a reusable row must have been made with and from."""

    fingerprint: str
    made_with: dict[str, Any]
    input_dir: str  # real path
    fields: list[pa.Field]  # the writer's row columns (key and sidecar columns aside)
    packages: dict[str, str]  # runinfo.package_versions(): the footer's, true of every row only if all match


def keep_previous(parts_dir: Path, shard: Path, input_root: Path, rows: int) -> Path | None:
    """After assembly: hard-link the shard file and its sidecar files into `<parts_dir>.previous/`,
    replacing the folder there (a shard without rows leaves none). None where links are impossible."""
    dest = previous_dir(parts_dir)
    remove_staged_leftovers(dest)
    if not rows:
        shutil.rmtree(dest, ignore_errors=True)
        return None
    try:
        with staged_dir(dest) as staging:
            for rel in referenced_files(shard):
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(shard.parent / rel, staging / rel)
            os.link(shard, staging / shard.name)
            record = {"shard": shard.name, "input_dir": os.path.realpath(input_root)}
            (staging / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
    except OSError as exc:
        log.info("no copy of the shard kept for reuse in %s (%s): a rerun of this shard embeds every file",
                 dest, exc.strerror or exc)
        shutil.rmtree(dest, ignore_errors=True)
        return None
    return dest


def previous_shard(parts_dir: Path) -> Path | None:
    """The shard file kept in `<parts_dir>.previous/`, if there is a whole one."""
    source = previous_dir(parts_dir)
    remove_staged_leftovers(source)
    try:
        record = json.loads((source / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    path = source / str(record.get("shard", "")) if isinstance(record, dict) else None
    return path if path is not None and path.is_file() and path.parent == source else None


def why_not(shard: Path, wanted: Previous) -> str:
    """Why no row of the previous shard at `shard` can be reused for this run; empty when rows can."""
    try:
        record = json.loads((shard.parent / RECORD).read_text(encoding="utf-8"))
        provenance = read_provenance(shard)
        schema = streamed(shard).schema_arrow
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"it cannot be read ({type(exc).__name__})"
    if provenance.get("fingerprint") != wanted.fingerprint or provenance.get("made_with", {}) != wanted.made_with:
        return "made with another model, weights or preprocessing"
    if differ := sorted(k for k in wanted.packages.keys() | provenance.get("packages", {}).keys()
                        if provenance.get("packages", {}).get(k) != wanted.packages.get(k)):
        return f"made by other package versions ({', '.join(differ[:3])})"
    if record.get("input_dir") != wanted.input_dir:
        return f"made from another input_dir ({record.get('input_dir')})"
    if any(n not in schema.names for n in IDENTITY_COLUMNS):
        return "it records no file sizes and modification times (made by an earlier embedpipe)"
    if odd := [f.name for f in wanted.fields if f.name not in schema.names or schema.field(f.name).type != f.type]:
        return f"its columns differ from this run's ({odd[0]} first)"
    return ""


def select_reusable(shard: Path, keys: list[str], input_root: Path) -> list[str]:
    """The keys, in the order given, whose previous row records the size and modification time
    their file has now (one stat each, nothing read)."""
    recorded = streamed(shard).read(columns=["key", *IDENTITY_COLUMNS]).to_pydict()
    then = {k: (s, m) for k, s, m in zip(recorded["key"], recorded[SIZE], recorded[MTIME], strict=True)
            if s is not None and m is not None}
    chosen = []
    for key in keys:
        if key in then:
            now = file_identity(input_root / key)
            if (now[SIZE], now[MTIME]) == then[key]:
                chosen.append(key)
    return chosen


def reuse_previous(writer: ShardWriter, keys: list[str], input_root: Path, wanted: Previous) -> tuple[int, str]:
    """Write the reusable rows of the previous shard as parts, for the keys no part holds yet.
    Returns (rows reused, why none could be: empty when there was a shard to compare with)."""
    shard = previous_shard(writer.parts_dir)
    if shard is None:
        return 0, "none kept"
    if why := why_not(shard, wanted):
        return 0, why
    done = writer.completed_keys()
    chosen = select_reusable(shard, [k for k in keys if k not in done], input_root)
    written, chunks = 0, _chunks(shard, set(chosen), writer)
    while True:
        try:
            rows, values = next(chunks)
        except StopIteration:
            return written, ""
        except (Unreadable, pa.ArrowInvalid) as exc:  # a write failure (full disk) is not caught: it stops the job
            log.warning("stopped reusing rows of %s after %d: %s", shard, written, exc)
            return written, ""
        writer.write_reused(rows, values)  # parts: a rerun after a kill keeps them, as any part
        written += rows.num_rows


class Unreadable(RuntimeError):
    """A sidecar file of the previous shard is missing or damaged: its rows are embedded instead."""


Chunk = tuple[pa.Table, dict[str, list[np.ndarray]]]  # rows, and their sidecar values by column


def _chunks(shard: Path, chosen: set[str], writer: ShardWriter) -> Iterator[Chunk]:
    """The chosen rows with their sidecar values, in parts of at most the writer's rows and bytes."""
    if not chosen:
        return
    source = streamed(shard)
    columns = ["key", *(f.name for f in writer.row_fields), *(file_column(c) for c in writer.sidecar)]
    wanted = pa.array(sorted(chosen), pa.string())
    tables: list[pa.Table] = []
    values: dict[str, list[np.ndarray]] = {c: [] for c in writer.sidecar}
    rows = size = 0
    for batch in source.iter_batches(batch_size=READ_ROWS, columns=columns):
        table = pa.Table.from_batches([batch]).filter(pc.is_in(batch.column("key"), value_set=wanted))
        if not table.num_rows:
            continue
        for column in writer.sidecar:
            got = _sidecar_values(shard, table, column)
            values[column] += got
            size += sum(v.nbytes for v in got)
        tables.append(table.drop_columns([file_column(c) for c in writer.sidecar]))
        rows, size = rows + table.num_rows, size + table.nbytes
        if rows >= writer.save_every or size >= writer.part_bytes:
            yield pa.concat_tables(tables), values
            tables, values, rows, size = [], {c: [] for c in writer.sidecar}, 0, 0
    if tables:
        yield pa.concat_tables(tables), values


def _sidecar_values(shard: Path, table: pa.Table, column: str) -> list[np.ndarray]:
    """Each row's value of a sidecar column, read from the files the rows name (one file open at a time)."""
    keys = table.column("key").to_pylist()
    files = table.column(f"{column}{FILE_SUFFIX}").to_pylist()
    found: dict[str, np.ndarray] = {}
    for rel in dict.fromkeys(files):
        try:
            for key, value in iter_tensors(shard, rel, [k for k, f in zip(keys, files, strict=True) if f == rel]):
                if value is None:
                    raise Unreadable(f"{shard.parent / rel} holds no {column} for {key}")
                found[key] = value
        except Unreadable:
            raise
        except Exception as exc:  # a missing file, or safetensors' own error for a damaged one
            raise Unreadable(f"{shard.parent / rel}: {exc}") from exc
    return [found[k] for k in keys]
