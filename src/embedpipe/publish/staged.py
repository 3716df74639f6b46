"""A shard's staged dataset file: its rows, with the dataset metadata joined in (staged/<shard>.parquet)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.publish.judge_keys import judge_keys
from embedpipe.publish.metadata import Joiner
from embedpipe.publish.pca import COLUMN as PCA_COLUMN
from embedpipe.publish.pca import Pca
from embedpipe.store.atomic import atomic_path, remove_leftovers_of, remove_stale_tmp
from embedpipe.store.file_identity import IDENTITY_COLUMNS
from embedpipe.store.footer import read_provenance, with_provenance
from embedpipe.store.parquet_io import CHUNK_BYTES, parquet_options, rows_per_group, streamed, write_parquet
from embedpipe.store.sidecar import FILE_SUFFIX, publish

log = logging.getLogger(__name__)
BATCH_ROWS = 8192


def batch_rows_for(source: pq.ParquetFile, max_rows: int = BATCH_ROWS, max_bytes: int = CHUNK_BYTES) -> int:
    """Rows per read batch: at most max_rows, and about max_bytes once decoded (image tokens are
    12 MB a row: 8,192 of them would be 100 GB)."""
    meta = source.metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return max(1, min(max_rows, rows_per_group(size, meta.num_rows, max_bytes)))


def hub_safe_name(shard: str) -> str:
    """A folder name for a shard's sidecars that upload can list exactly (no pattern characters, no
    spaces); a shard id that needs changing gets a digest of itself, so two never meet."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", shard).lstrip(".") or "_"
    return safe if safe == shard else f"{safe}-{hashlib.sha1(shard.encode()).hexdigest()[:8]}"


def project(pca: Pca, embeddings: pa.Array, kind: pa.DataType) -> pa.Array:
    """Each row's embedding through the PCA (extract writes no null embedding: a failed file is an
    error row; a non-finite one projects to non-finite values, as validate reports it)."""
    if embeddings.null_count:
        raise ValueError(f"{embeddings.null_count} null embeddings in an extract output")
    values = embeddings.flatten().to_numpy(zero_copy_only=False).reshape(-1, len(pca.mean))
    return pa.FixedSizeListArray.from_arrays(pa.array(pca.transform(values).reshape(-1), pa.float32()), type=kind)


class SidecarLinks:
    """Sidecar files (`tokens_file` columns) follow their rows into the dataset folder, hard-linked:
    `<dataset>/tokens/<shard>/part-*.safetensors`, and the column says so."""

    def __init__(self, source_dir: Path, out_path: Path) -> None:
        self.source_dir, self.out_dir = source_dir, out_path.parent
        self.stem = hub_safe_name(out_path.name.removesuffix(".parquet"))
        self.done: dict[str, str] = {}

    def rewrite(self, name: str, column: pa.Array) -> pa.Array:
        out = []
        kind = name.removesuffix(FILE_SUFFIX)
        for rel in column.to_pylist():
            if rel not in self.done:
                self.done[rel] = f"{kind}/{self.stem}/{Path(rel).name}"
                publish(self.source_dir / rel, self.out_dir / self.done[rel])
            out.append(self.done[rel])
        return pa.array(out, pa.string())


def write_dataset_shard(
    embeddings_path: Path, out_path: Path, joiner: Joiner, extra: dict[str, Any], pca: Pca | None = None,
    identifying_patterns: Iterable[str] = (),
) -> int:
    """Stream one shard's embeddings into a self-contained dataset file. Returns rows written.
    `pca`: the run's PCA, each row's `embedding` projected into an `embedding_pca` column after it.
    `identifying_patterns`: the config's own identifier shapes (judge_keys), besides the known ones.
    Raises judge_keys.KindMismatch, before writing, where the metadata kind does not fit the keys."""
    source = streamed(embeddings_path)
    judgement = judge_keys(joiner, source, str(extra.get("shard", out_path.name)), identifying_patterns)
    provenance = read_provenance(embeddings_path)
    # the file's size and modification time are the extract job's (what a rerun reuses a row by), not data
    value_fields = [f for f in source.schema_arrow if f.name != "key" and f.name not in IDENTITY_COLUMNS]
    pca_fields = [pa.field(PCA_COLUMN, pa.list_(pa.float32(), len(pca.components)))] if pca is not None else []
    meta = {**provenance, **extra, "key_column": joiner.key_column, **judgement.record()}
    schema = with_provenance(list(joiner.fields) + value_fields + pca_fields, meta)
    rows = 0
    sidecars = SidecarLinks(embeddings_path.parent, out_path)
    remove_leftovers_of(out_path)  # a killed run's, as large as the file
    for f in value_fields:  # copied sidecars (no hard links there): this shard's folder, one job's
        if f.name.endswith(FILE_SUFFIX):
            remove_stale_tmp(sidecars.out_dir / f.name.removesuffix(FILE_SUFFIX) / sidecars.stem)
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd",
                                                           **parquet_options(schema)) as writer:
        for batch in source.iter_batches(batch_size=batch_rows_for(source),
                                         columns=["key", *(f.name for f in value_fields)]):
            keys = batch.column("key").to_pylist()
            joined = joiner.rows(keys)
            arrays = [pa.array(joined[f.name], f.type) for f in joiner.fields]
            arrays += [sidecars.rewrite(f.name, batch.column(f.name)) if f.name.endswith(FILE_SUFFIX)
                       else batch.column(f.name) for f in value_fields]
            if pca is not None:
                arrays.append(project(pca, batch.column("embedding"), pca_fields[0].type))
            table = pa.Table.from_arrays(arrays, schema=schema)
            write_parquet(table, None, writer)
            rows += len(keys)
        if rows == 0:
            writer.write_table(schema.empty_table())
    log.info(
        "%s: %d rows (%d with a record row, %d with a study row)",
        out_path.name, rows, joiner.matched_records, joiner.matched_studies,
    )
    return rows
