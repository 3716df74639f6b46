"""Two runs' shards compared row for row and bit for bit (tokens sidecars too)."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.store.file_identity import IDENTITY_COLUMNS
from embedpipe.store.sidecar import read_tensor


def shard_rows(out: Path) -> pa.Table:
    """The shard's rows sorted by key, without the file metadata (it holds a creation time), without
    `tokens_file` (which part a row's tokens sit in depends on where the run was cut) and without the
    input files' size and modification time (runs compared may read copies of the input, made apart)."""
    table = pq.read_table(out / "embeddings" / "p10.parquet").replace_schema_metadata(None)
    return table.drop_columns(["tokens_file", *IDENTITY_COLUMNS]).sort_by("key")


def ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue()


def tokens(out: Path) -> dict[str, bytes]:
    path = out / "embeddings" / "p10.parquet"
    table = pq.read_table(path, columns=["key", "tokens_file"]).to_pylist()
    return {r["key"]: read_tensor(path, r["tokens_file"], r["key"]).tobytes() for r in table}


def assert_same_shard(out: Path, ref: Path) -> None:
    got, want = shard_rows(out), shard_rows(ref)
    assert got.column("key").to_pylist() == want.column("key").to_pylist()  # no duplicate, no gap
    assert ipc_bytes(got) == ipc_bytes(want)  # every value, bit for bit
    assert tokens(out) == tokens(ref)
    errors = [pq.read_table(d / "embeddings" / "p10.errors.parquet").sort_by("key") for d in (out, ref)]
    assert errors[0].equals(errors[1])
