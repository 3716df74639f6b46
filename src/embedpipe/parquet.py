"""The published dataset: one `train-0000i-of-0000N.parquet` per shard, metadata joined in."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.atomic import atomic_path
from embedpipe.metadata import EchoMetadata, KeyOnly
from embedpipe.writer import META_KEY, read_embedpipe_metadata

log = logging.getLogger(__name__)
BATCH_ROWS = 8192


def write_dataset_shard(
    embeddings_path: Path, out_path: Path, joiner: EchoMetadata | KeyOnly, extra: dict[str, Any]
) -> int:
    """Stream one shard's embeddings into a self-contained dataset file. Returns rows written."""
    source = pq.ParquetFile(embeddings_path)
    provenance = read_embedpipe_metadata(embeddings_path)
    value_fields = [f for f in source.schema_arrow if f.name != "key"]
    meta = {**provenance, **extra, "key_column": joiner.key_column}
    schema = pa.schema(
        list(joiner.fields) + value_fields, metadata={META_KEY: json.dumps(meta, sort_keys=True).encode()}
    )
    rows = 0
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in source.iter_batches(batch_size=BATCH_ROWS):
            keys = batch.column("key").to_pylist()
            joined = joiner.rows(keys)
            arrays = [pa.array(joined[f.name], f.type) for f in joiner.fields]
            arrays += [batch.column(f.name) for f in value_fields]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(keys)
        if rows == 0:
            writer.write_table(schema.empty_table())
    log.info(
        "%s: %d rows (%d with a record row, %d with a study row)",
        out_path.name, rows, joiner.matched_records, joiner.matched_studies,
    )
    return rows
