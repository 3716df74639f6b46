#!/usr/bin/env python
"""Bytes a run keeps on disk, folder by folder, against its float32 embedding matrix (rows × dim × 4).

    python bench/disk.py --rows 100000 --dim 1024 --merged pt,npy   # main before issue 34: `rule all` wrote both
    python bench/disk.py --rows 100000 --dim 1024                   # a plain run now: no merged copy
    python bench/disk.py --rows 100000 --dim 1024 --merged pt       # and `snakemake merge_all` (merge.formats' default)

A run's outputs are built by the project's own writers, in the format the rules write: extract's
ShardWriter (parts, then the shard file and its errors assembled from them, the parts removed),
staged's write_dataset_shard, the parquet rule's build_dataset_folder and merge_all. Each file is
counted once per inode (a hard link is not counted again), in the order embeddings/, staged/,
parquet/, the merged files. Only library calls every checkout has are used, so one script measures
any of them: PYTHONPATH=<checkout>/src. The embeddings are random normal float32, which Parquet's zstd
cannot shrink: real embeddings compress a few per cent, so real runs are a little smaller.
Where the library has the card's count (embedpipe.publish.disk_usage), its ratio is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

import embedpipe
from embedpipe.extract.writer import ShardWriter
from embedpipe.publish.dataset_folder import build_dataset_folder
from embedpipe.publish.kinds import build_joiner
from embedpipe.publish.staged import write_dataset_shard
from embedpipe.store.merge import merge_all

BATCH = 4096
MERGED = {"pt": ("all.pt",), "npy": ("all.npy", "all.keys.txt")}


def extract(run: Path, shard: str, rows: int, dim: int, rng: np.random.Generator) -> tuple[Path, Path]:
    """One shard through ShardWriter as the extract job writes it, parts removed after assembly."""
    field = pa.field("embedding", pa.list_(pa.float32(), dim))
    writer = ShardWriter(run / "parts" / shard, [field], "bench-fingerprint")
    keys = [f"{shard}/{shard}{i:06d}/s9{i:07d}/9{i:07d}_0001.mp4" for i in range(rows)]
    for start in range(0, rows, BATCH):
        batch = keys[start:start + BATCH]
        writer.add_rows(batch, {"embedding": rng.standard_normal((len(batch), dim), dtype=np.float32)})
        writer.maybe_flush()
    out, errors = run / "embeddings" / f"{shard}.parquet", run / "embeddings" / f"{shard}.errors.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.finalize(keys, out, errors, {"encoder": "synthetic", "model": "synthetic", "embedding_dim": dim,
                                        "shard": shard, "num_files": rows})
    writer.remove_parts()
    return out, errors


def disk(run: Path) -> dict[str, dict[str, int]]:
    """Bytes per top-level entry of the run folder, each inode counted once, embeddings/ first."""
    order = ["embeddings", "staged", "parquet"]
    entries = sorted(os.listdir(run), key=lambda n: (order.index(n) if n in order else len(order), n))
    seen: set[tuple[int, int]] = set()
    out: dict[str, dict[str, int]] = {}
    for name in entries:
        row = out.setdefault(name, {"files": 0, "bytes": 0, "own_bytes": 0})
        top = run / name
        paths = [top] if top.is_file() else [Path(r) / f for r, _, fs in os.walk(top) for f in fs]
        for path in paths:
            st = path.lstat()
            row["files"] += 1
            row["bytes"] += st.st_size
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                row["own_bytes"] += st.st_size
    return {k: v for k, v in out.items() if v["files"]}


def card_ratio(run: Path, shards: list[Path], errors: list[Path], staged: list[Path],
               merged: list[Path]) -> float | None:
    """The card's own count (this branch's library), None where the library has none."""
    try:
        from embedpipe.publish.disk_usage import RunFiles, matrix_shape, measure, ratio
    except ImportError:
        return None
    usage = measure(RunFiles(shards, errors, staged, merged), run / "parquet")
    return round(ratio(usage, *matrix_shape(staged)), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--merged", default="", help="merged files the run writes: pt, npy or pt,npy (none: empty)")
    p.add_argument("--dir", type=Path, default=None, help="where to build the run (a scratch folder)")
    p.add_argument("--keep", action="store_true", help="leave the run's files")
    args = p.parse_args()
    formats = [f for f in args.merged.split(",") if f]
    if unknown := set(formats) - set(MERGED):
        p.error(f"--merged: {sorted(unknown)} not in {sorted(MERGED)}")
    tmp = Path(tempfile.mkdtemp(prefix="embedpipe-disk-", dir=args.dir))
    run, rng, seconds = tmp / "run", np.random.default_rng(0), {}
    try:
        start = time.perf_counter()
        per = [args.rows // args.shards + (i < args.rows % args.shards) for i in range(args.shards)]
        outputs = [extract(run, f"p{10 + i}", n, args.dim, rng) for i, n in enumerate(per)]
        seconds["extract_writer"] = time.perf_counter() - start
        start = time.perf_counter()
        staged = []
        for shard, _ in outputs:
            staged.append(run / "staged" / shard.name)
            write_dataset_shard(shard, staged[-1], build_joiner("none", {}), {"shard": shard.stem, "metadata": "none"})
        seconds["staged"] = time.perf_counter() - start
        start = time.perf_counter()
        build_dataset_folder(staged, run / "parquet", lambda published: "card\n")
        seconds["parquet"] = time.perf_counter() - start
        merged = {name: run / f"synthetic_embeddings_{name}" for fmt in formats for name in MERGED[fmt]}
        if merged:
            start = time.perf_counter()
            merge_all([s for s, _ in outputs], merged.get("all.pt"), merged.get("all.npy"), merged.get("all.keys.txt"))
            seconds["merge_all"] = time.perf_counter() - start
        folders = disk(run)
        matrix = args.rows * args.dim * 4
        total = sum(f["own_bytes"] for f in folders.values())
        print(json.dumps({
            "library": str(Path(embedpipe.__file__).parent), "rows": args.rows, "dim": args.dim,
            "shards": args.shards, "merged": formats, "matrix_bytes": matrix, "folders": folders,
            "total_bytes": total, "ratio": round(total / matrix, 4),
            "card_ratio": card_ratio(run, [s for s, _ in outputs], [e for _, e in outputs], staged,
                                     list(merged.values())),
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
