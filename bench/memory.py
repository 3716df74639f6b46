#!/usr/bin/env python
"""Peak memory of merge_all and parquet at synthetic scale, against the size of what they write.

    python bench/memory.py --rows 200000 --dim 1024 --shards 10

Shard outputs are generated as extract writes them (key + fixed_size_list<float32>[D] + embedpipe
metadata); then each step runs as its own process and its peak RSS is read from the OS
(getrusage of a wrapper's only child). The target: merge_all peak RSS / output size ≤ 1.3.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.store.footer import META_KEY

SCRIPTS = Path(__file__).resolve().parent.parent / "workflow" / "scripts"
# Runs one command and prints the peak RSS (KiB) of that child alone.
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def make_shards(root: Path, rows: int, dim: int, shards: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths, per = [], rows // shards
    meta = {META_KEY: json.dumps({"encoder": "synthetic", "embedding_dim": dim}).encode()}
    schema = pa.schema([pa.field("key", pa.string(), nullable=False),
                        pa.field("embedding", pa.list_(pa.float32(), dim))], metadata=meta)
    for s in range(shards):
        path = root / f"p{10 + s}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            for start in range(0, per, 10_000):
                n = min(10_000, per - start)
                keys = [f"p{10 + s}/p{10 + s}{i:06d}/s9{i:07d}/9{i:07d}_0001.mp4" for i in range(start, start + n)]
                values = rng.standard_normal((n, dim), dtype=np.float32)
                emb = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dim)
                writer.write_table(pa.Table.from_arrays([pa.array(keys), emb], schema=schema))
        paths.append(path)
    return paths


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--shards", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = make_shards(tmp, args.rows, args.dim, args.shards)
        out = tmp / "merged"
        out.mkdir()
        merge_rss, merge_s = peak_rss_mib([sys.executable, str(SCRIPTS / "merge_all.py"), "--shards", *map(str, shards),
                                           "--pt", str(out / "all.pt"), "--npy", str(out / "all.npy"),
                                           "--keys", str(out / "all.keys.txt")])
        pt_mib = (out / "all.pt").stat().st_size / 2**20
        parquet_rss, parquet_s = peak_rss_mib([sys.executable, str(SCRIPTS / "staged.py"), "--embeddings",
                                               str(shards[0]), "--output", str(tmp / "train-00000-of-00010.parquet"),
                                               "--shard", "p10"])
        shard_mib = (tmp / "train-00000-of-00010.parquet").stat().st_size / 2**20
        print(json.dumps({
            "rows": args.rows, "dim": args.dim, "shards": args.shards,
            "merge_all": {"peak_rss_mib": round(merge_rss, 1), "output_pt_mib": round(pt_mib, 1),
                          "ratio": round(merge_rss / pt_mib, 3), "seconds": round(merge_s, 1)},
            "parquet_one_shard": {"peak_rss_mib": round(parquet_rss, 1), "output_mib": round(shard_mib, 1),
                                  "ratio": round(parquet_rss / shard_mib, 3), "seconds": round(parquet_s, 1)},
        }, indent=2))


if __name__ == "__main__":
    main()
