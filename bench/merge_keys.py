#!/usr/bin/env python
"""merge_all's memory per key at 10^6–10^7 keys: what grows with the rows once the matrix streams.

    python bench/merge_keys.py --keys 1000000 10000000 --dim 8
    python bench/merge_keys.py --keys 1000000 --pythonpath /path/to/older/src   # the same, older code

Ten shards of MIMIC-shaped keys and narrow rows (`--dim 8`: the rows' bytes stream, the keys are what
could grow), written in a child process; then workflow/scripts/merge_all.py runs as the workflow runs
it, in a fresh process whose CPU time and peak RSS the OS reports. One JSON line per size, with the
peak RSS per key above the interpreter's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAKE = """
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
root, keys, dim, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 10
for s in range(shards):
    n = keys // shards + (s < keys % shards)
    names = pa.array([f"p{10 + s}/p{10000000 + i}/s{90000000 + i // 7}/{i:08d}_0001.mp4" for i in range(n)])
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * dim, np.float32)), dim)
    pq.write_table(pa.table({"key": names, "embedding": values}), f"{root}/p{10 + s}.parquet")
"""
# Runs one command; prints the CPU seconds and peak RSS (KiB) of that child alone.
MEASURE = ("import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); u = resource.getrusage("
           "resource.RUSAGE_CHILDREN); print(json.dumps({'rc': r.returncode, 'cpu_s': u.ru_utime + u.ru_stime, "
           "'rss_kib': u.ru_maxrss}))")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--pythonpath", help="the embedpipe src to measure (default: this checkout's)")
    parser.add_argument("--dir", help="a folder for the shards and outputs (default: a temporary one)")
    args = parser.parse_args()
    src = Path(args.pythonpath) if args.pythonpath else HERE.parent / "src"
    script = src.parent / "workflow" / "scripts" / "merge_all.py"
    env = os.environ | {"PYTHONPATH": str(src)}
    for keys in args.keys:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            subprocess.run([sys.executable, "-c", MAKE, tmp, str(keys), str(args.dim)], check=True)
            shards = sorted(str(p) for p in Path(tmp).glob("*.parquet"))
            cmd = [sys.executable, str(script), "--shards", *shards, "--pt", f"{tmp}/m.pt", "--npy", f"{tmp}/m.npy",
                   "--keys", f"{tmp}/m.keys.txt"]
            out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            if got["rc"]:
                raise RuntimeError(f"merge_all failed: {out.stderr[-2000:]}")
            print(json.dumps({"keys": keys, "dim": args.dim, "src": str(src), "cpu_s": round(got["cpu_s"], 1),
                              "peak_rss_mb": round(got["rss_kib"] / 1024), "bytes_per_key_above_150mb": round(
                                  max(0, got["rss_kib"] * 1024 - 150 * 2**20) / keys)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
