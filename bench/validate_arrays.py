#!/usr/bin/env python
"""What validate's per-row array check (embedpipe.validate.arrays) costs at N Metis rows: CPU seconds and peak RSS.

    python bench/validate_arrays.py --rows 100000 378686

Synthetic staged files as the audio run writes them (key, latents [T, 8] float32 with T the Metis
frames of the row's duration, embedding, n_frames, duration_s; durations uniform in 2–15 s, random
latents that do not compress; zstd, row groups of ROW_GROUP_BYTES), `--shard_rows` rows a shard. The
largest size is generated once; each size reads its first shards. The check runs in its own process
(scan_arrays over those files, then array_checks); its peak RSS and CPU time come from getrusage of
that process alone. Prints one JSON line per size: RSS should not grow with rows.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.encoders.metis.sizes import LATENT_DIM, stacked_frames
from embedpipe.readers.audio import TARGET_RATE
from embedpipe.store.footer import with_provenance
from embedpipe.store.parquet_io import parquet_options, write_parquet

CHUNK = 5000  # rows generated at a time
# The check alone, in a child; prints its own verdict, then the wrapper prints peak RSS (KiB) and CPU s.
CHECK = ("import json, sys; from pathlib import Path; from embedpipe.validate.arrays import array_checks, scan_arrays\n"
         "t = {}\n"
         "for i, p in enumerate(sys.argv[1:]): scan_arrays(Path(p), f's{i}', t)\n"
         "print(json.dumps({'rows': sum(x.rows for x in t.values()), 'checks': array_checks(t)}))")
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); u = resource.getrusage("
        "resource.RUSAGE_CHILDREN); print(u.ru_maxrss, u.ru_utime + u.ru_stime); sys.exit(r.returncode)")


def schema() -> pa.Schema:
    return with_provenance([pa.field("key", pa.string()), pa.field("latents", pa.list_(pa.list_(pa.float32(),
                            LATENT_DIM))), pa.field("embedding", pa.list_(pa.float32(), LATENT_DIM)),
                            pa.field("n_frames", pa.int32()), pa.field("duration_s", pa.float64())],
                           {"encoder": "metis", "embedding_dim": LATENT_DIM, "latent_rate_hz": 50, "key_column": "key"})


def chunk(rng: np.random.Generator, start: int, n: int, kind: pa.Schema) -> pa.Table:
    durations = rng.uniform(2.0, 15.0, n)
    frames = stacked_frames(np.ceil(durations * TARGET_RATE).astype(np.int64)).astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(frames, out=offsets[1:])
    values = rng.standard_normal(int(offsets[-1]) * LATENT_DIM, dtype=np.float32)
    latents = pa.ListArray.from_arrays(pa.array(offsets), pa.FixedSizeListArray.from_arrays(pa.array(values),
                                                                                           LATENT_DIM))
    means = np.add.reduceat(values.reshape(-1, LATENT_DIM), offsets[:-1], axis=0) / frames[:, None]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(means.astype(np.float32).reshape(-1)), LATENT_DIM)
    keys = pa.array([f"spk{i % 1000:04d}/utt{i:07d}.flac" for i in range(start, start + n)])
    return pa.Table.from_arrays([keys, latents, embedding, pa.array(frames), pa.array(durations)], schema=kind)


def make_shards(root: Path, rows: int, shard_rows: int) -> list[Path]:
    rng, kind, paths = np.random.default_rng(0), schema(), []
    for s in range(math.ceil(rows / shard_rows)):
        path = root / f"s{s:03d}.parquet"
        n = min(shard_rows, rows - s * shard_rows)
        with pq.ParquetWriter(path, kind, compression="zstd", **parquet_options(kind)) as writer:
            for start in range(0, n, CHUNK):
                write_parquet(chunk(rng, s * shard_rows + start, min(CHUNK, n - start), kind), None, writer)
        paths.append(path)
    return paths


def measure(paths: list[Path]) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-c", CHECK, *map(str, paths)],
                         capture_output=True, text=True, check=True)
    verdict, usage = out.stdout.strip().splitlines()[-2:]
    rss_kib, cpu_s = usage.split()
    checks = json.loads(verdict)
    return {"rows": checks["rows"], "peak_rss_mib": round(int(rss_kib) / 1024, 1), "cpu_s": round(float(cpu_s), 2),
            "wall_s": round(time.perf_counter() - start, 2), "passed": all(c["passed"] for c in checks["checks"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 378_686])
    p.add_argument("--shard_rows", type=int, default=25_000)
    p.add_argument("--dir", help="where the files are generated (default: a temporary folder)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        start = time.perf_counter()
        paths = make_shards(Path(tmp), max(args.rows), args.shard_rows)
        size = sum(f.stat().st_size for f in paths)
        print(json.dumps({"generated_rows": max(args.rows), "files": len(paths), "mib_on_disk": round(size / 2**20),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        for rows in sorted(args.rows):
            first = paths[: math.ceil(rows / args.shard_rows)]
            print(json.dumps(measure(first) | {"files": len(first)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
