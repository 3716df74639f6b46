"""The ECGFounder script's one JSON per ECG, streamed from the shards."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from embedpipe.store.atomic import staged_dir
from embedpipe.store.export_names import inside, unique_names
from embedpipe.store.parquet_io import streamed


def export_ecgfounder_json(shards: Iterable[Path], out_dir: Path, column: str = "features",
                           batch_rows: int = 64) -> int:
    """One JSON per ECG as the ECGFounder script wrote it, named after the input file (`deid_3.xml` →
    `deid_3.json`): `{"embedding": [[...]], "shape": [T, C], "description": ..., "modality": "ecg"}`.

    Unlike the script's, `embedding` holds only the recording's own frames (no batch padding). Keys
    that would share a name (`rec.hea` and `rec.xml`, `a/x.xml` and `b/x.xml`) are named by their whole
    key instead (`export_names.unique_names`: `a/rec.hea.json`), so none overwrites another. The folder
    appears complete or not at all: it is written beside and renamed into place. Returns the number
    of files written.
    """
    keys = [k for s in shards for k in pq.read_table(s, columns=["key"]).column("key").to_pylist()]
    names = unique_names(keys, lambda key: Path(key).with_suffix("").name, ".json")
    written: set[Path] = set()
    with staged_dir(out_dir) as staging:
        for shard in shards:
            for batch in streamed(shard).iter_batches(batch_size=batch_rows, columns=["key", column]):
                for key, frames in zip(batch.column("key").to_pylist(), batch.column(column).to_pylist(),
                                       strict=True):
                    dest = inside(staging, names[key], key)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    doc = {"embedding": frames, "shape": [len(frames), len(frames[0]) if frames else 0],
                           "description": f"ECG embedding extracted from {Path(key).name} using ECGFounder",
                           "modality": "ecg"}
                    dest.write_text(json.dumps(doc))
                    written.add(dest)
    return len(written)
