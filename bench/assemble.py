#!/usr/bin/env python
"""Peak memory and CPU time of a shard's assembly (parts → shard file), against the shard's size.

    python bench/assemble.py --rows 52500 105000 500000 --dim 1024
    python bench/assemble.py --rows 52500 --order shuffled --src /path/to/another/checkout/src

Part files are written by the job's own ShardWriter (save_every 10,000, part_mb 512: the defaults) from
random float32 rows of one `embedding` column, a few error rows among them, in manifest order or
shuffled (an encoder that sorts its shard, as Metis does by duration). Each assembly then runs as its
own process (`assemble_shard`, the budget of `extract.assemble_memory_mb`, or the code under --src
with its own defaults) and its peak RSS and CPU seconds are read from the OS (getrusage of a
wrapper's only child). `baseline_rss_mib` is the same process importing what it imports and
assembling nothing. The shard files of two runs can be compared with --check (rows hashed in order).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe.extract.writer import ShardWriter

SRC = Path(__file__).resolve().parent.parent / "src"
# Runs one command; prints the peak RSS (KiB) and the user + system CPU seconds of that child alone.
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(u.ru_maxrss, u.ru_utime + u.ru_stime); sys.exit(r.returncode)")
# The assembly itself, in the child: argv = parts folder, keys file, output folder, dim, budget MiB or "".
ASSEMBLE = """
import sys
from pathlib import Path
import pyarrow as pa
from embedpipe.extract.assemble import assemble_shard
parts, keys, out, dim, mib = sys.argv[1:]
if parts:
    paths = sorted(Path(parts).glob("part-*.parquet"))
    manifest = Path(keys).read_text().split()
    budget = {"memory_bytes": int(mib) << 20} if mib else {}
    rows = assemble_shard(paths, manifest, [pa.field("embedding", pa.list_(pa.float32(), int(dim)))],
                          Path(out) / "shard.parquet", Path(out) / "shard.errors.parquet", {"bench": 1}, **budget)
    print(rows)
"""


def make_parts(folder: Path, rows: int, dim: int, order: str, error_every: int = 997) -> list[str]:
    """Part files as the job writes them; returns the manifest (the keys in manifest order)."""
    keys = [f"p10/p10{i:06d}/s9{i:07d}/9{i:07d}_0001.mp4" for i in range(rows)]
    embedded = np.random.default_rng(1).permutation(rows) if order == "shuffled" else np.arange(rows)
    rng = np.random.default_rng(0)
    writer = ShardWriter(folder, [pa.field("embedding", pa.list_(pa.float32(), dim))], "bench")
    for start in range(0, rows, 1000):
        batch = embedded[start:start + 1000]
        good = [int(i) for i in batch if i % error_every]
        writer.add_rows([keys[i] for i in good], {"embedding": rng.random((len(good), dim), dtype=np.float32)})
        for i in batch[batch % error_every == 0]:
            writer.add_error(keys[int(i)], "decode", "OSError", f"synthetic error {int(i)}")
        writer.maybe_flush()
    writer.flush()
    return keys


def run_child(parts: str, keys: Path, out: Path, dim: int, mib: str, src: Path) -> tuple[float, float, float]:
    """(peak RSS MiB, CPU s, wall s) of one assembly process run with `src` first on its path."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-c", ASSEMBLE, parts, str(keys), str(out),
                           str(dim), mib], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    rss_kib, cpu = done.stdout.strip().splitlines()[-1].split()
    return int(rss_kib) / 1024, float(cpu), time.perf_counter() - start


def rows_digest(path: Path) -> str:
    """A hash of the shard file's rows in order (keys, then values; whatever its row groups), read a
    group at a time."""
    keys, values, f = hashlib.sha256(), hashlib.sha256(), pq.ParquetFile(path)
    for g in range(f.num_row_groups):
        t = f.read_row_group(g)
        keys.update("".join(f"{k}\n" for k in t.column("key").to_pylist()).encode())
        values.update(t.column("embedding").combine_chunks().flatten().to_numpy().tobytes())
    return hashlib.sha256(keys.digest() + values.digest()).hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[52_500, 105_000, 500_000])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--order", choices=["manifest", "shuffled"], default="manifest", help="the order parts hold rows in")
    p.add_argument("--memory_mb", default="", help="the budget passed (default: the code's own default)")
    p.add_argument("--src", type=Path, action="append", default=None,
                   help="a checkout's src/ to assemble with (repeat to compare; default: this one)")
    p.add_argument("--check", action="store_true", help="hash each shard file's rows; every --src must agree")
    p.add_argument("--dir", default=None, help="folder to write in (default: the system's temp folder)")
    args = p.parse_args()
    sources = args.src or [SRC]
    results = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            tmp = Path(tmp)
            start = time.perf_counter()
            keys = make_parts(tmp / "parts", rows, args.dim, args.order)
            (tmp / "keys.txt").write_text("\n".join(keys))
            made_s = time.perf_counter() - start
            parts_mib = sum(q.stat().st_size for q in (tmp / "parts").iterdir()) / 2**20
            for src in sources:
                out = tmp / "out"
                out.mkdir()
                base_rss, _, _ = run_child("", tmp / "keys.txt", out, args.dim, "", src)
                rss, cpu, wall = run_child(str(tmp / "parts"), tmp / "keys.txt", out, args.dim, args.memory_mb, src)
                shard = out / "shard.parquet"
                line = {"rows": rows, "dim": args.dim, "order": args.order, "src": str(src),
                        "memory_mb": args.memory_mb or "default", "parts_mib": round(parts_mib, 1),
                        "parts_s": round(made_s, 1), "peak_rss_mib": round(rss, 1),
                        "baseline_rss_mib": round(base_rss, 1), "assembly_mib": round(rss - base_rss, 1),
                        "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                        "row_groups_out": pq.ParquetFile(shard).num_row_groups}
                if args.check:
                    line["rows_sha256"] = rows_digest(shard)[:16]
                print(json.dumps(line), file=sys.stderr, flush=True)
                results.append(line)
                for q in out.iterdir():
                    q.unlink()
                out.rmdir()
    digests = {(r["rows"], r["rows_sha256"]) for r in results if "rows_sha256" in r}
    same = len(digests) == len({r["rows"] for r in results}) if args.check else None
    print(json.dumps({"runs": results, "same_rows": same}, indent=2))
    if same is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
