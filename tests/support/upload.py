"""A dataset shard file with metadata joined, as the staged rule writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.staged import write_dataset_shard


def dataset_file(tmp_path: Path, out: Path, joiner, keys: list[str]) -> Path:
    """One dataset file as the staged step writes it, from a real shard's embeddings."""
    work = tmp_path / f"emb-{out.stem}"
    w = ShardWriter(work / "parts", [pa.field("embedding", pa.list_(pa.float32(), 4))], "fp")
    w.add_rows(keys, {"embedding": np.arange(4 * len(keys), dtype=np.float32).reshape(len(keys), 4) + 1})
    w.finalize(sorted(keys), work / "emb.parquet", work / "emb.errors.parquet", {"embedding_dim": 4})
    write_dataset_shard(work / "emb.parquet", out, joiner, {"shard": "all"})
    return out
