"""The Metis audio script's JSON, streamed from the shards."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from embedpipe.store.atomic import atomic_path
from embedpipe.store.parquet_io import streamed


def export_latents_json(shards: Iterable[Path], out: Path, column: str = "latents", batch_rows: int = 256) -> int:
    """The Metis audio script's single JSON, `{relative_path: [[8 floats], ...], ...}`.

    Written one row at a time, so memory holds one Parquet batch, not the ~4 GB document; floats
    are float32 values printed as Python floats, as `ndarray.tolist()` + `json.dump` printed them.
    Returns the number of files written.
    """
    n = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("{")
        for shard in shards:
            for batch in streamed(shard).iter_batches(batch_size=batch_rows, columns=["key", column]):
                for key, frames in zip(batch.column("key").to_pylist(), batch.column(column).to_pylist(),
                                       strict=True):
                    f.write(("," if n else "") + "\n" + json.dumps(key) + ": " + json.dumps(frames))
                    n += 1
        f.write("\n}\n")
    return n
