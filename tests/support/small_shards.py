"""A shard file written with ShardWriter from given keys, values and errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from embedpipe.extract.writer import ShardWriter


def write_shard(tmp_path, shard, keys, values, errors=()):
    w = ShardWriter(tmp_path / "parts" / shard, [pa.field("embedding", pa.list_(pa.float32(), 4))], "fp")
    w.add_rows(list(keys), {"embedding": np.asarray(values, dtype=np.float32)})
    for key in errors:
        w.add_error(key, "decode", "RuntimeError", "unreadable")
    manifest = sorted([*keys, *errors])
    (tmp_path / f"{shard}.txt").write_text("".join(f"{k}\n" for k in manifest))
    w.finalize(manifest, tmp_path / f"{shard}.parquet", tmp_path / f"{shard}.errors.parquet",
               {"embedding_dim": 4, "key_column": "key"})
