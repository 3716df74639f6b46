#!/usr/bin/env python
"""Several extract jobs on one machine's GPU slots, at once: each job's files/s and the sum.

    python bench/slots.py --model vitl --n 1024 --slots 0,0 --batch_size 128   # two jobs share one GPU
    python bench/slots.py --model vitl --n 1024 --slots 0,1 --batch_size 128   # one job per GPU

Runs workflow/scripts/extract.py as the workflow does, one process per slot, each on its own half of
the same generated videos, with slots claimed through extract.gpu_slots; then one job alone on all
of them for comparison. Rates are the jobs' own log lines (decode + model + Parquet, model load
excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import build_model, make_videos

from embedpipe.discover.scan import scan_files

SCRIPT = Path(__file__).resolve().parent.parent / "workflow" / "scripts" / "extract.py"
RATE = re.compile(r"(\d+)/(\d+) files, ([\d.]+) files/s")


def run_jobs(slots: str, manifests: list[Path], args, tmp: Path, model: Path, videos: Path, tag: str) -> dict:
    jobs = []
    workers = max(1, (os.cpu_count() or 2) // len(manifests) - 1)
    start = time.perf_counter()
    with contextlib.ExitStack() as logs:
        for i, manifest in enumerate(manifests):
            log = logs.enter_context((tmp / f"{tag}-{i}.log").open("w"))
            cmd = [sys.executable, str(SCRIPT), "--model", args.model, "--model_path", str(model),
                   "--input_dir", str(videos), "--shard", f"{tag}{i}", "--manifest", str(manifest), "--output",
                   str(tmp / tag / f"s{i}.parquet"), "--batch_size", str(args.batch_size), "--num_workers",
                   str(workers), "--gpu_slots", slots, "--gpu_lock_dir", str(tmp / "locks")]
            jobs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        for job in jobs:
            job.wait()
    wall = time.perf_counter() - start
    rates, devices = [], []
    for i in range(len(manifests)):
        text = (tmp / f"{tag}-{i}.log").read_text()
        found = RATE.findall(text)
        if not found:
            raise RuntimeError(text[-3000:])
        rates.append(float(found[-1][2]))
        devices.append(re.search(r"runs on GPU (\S+)", text).group(1) if "runs on GPU" in text else None)
    return {"slots": slots, "jobs": len(manifests), "devices": devices, "files_per_s_each": rates,
            "files_per_s_sum": round(sum(rates), 1), "wall_s_incl_model_load": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--slots", default="0,0")
    p.add_argument("--batch_size", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(args.model, tmp / "model")
        videos = tmp / "videos"
        make_videos(videos, args.n, 240, 320, 48)
        keys = scan_files(videos, [".mp4"])
        slots = args.slots.split(",")
        manifests = []
        for i in range(len(slots)):
            manifests.append(tmp / f"m{i}.txt")
            manifests[-1].write_text("\n".join(keys[i::len(slots)]) + "\n")
        (tmp / "all.txt").write_text("\n".join(keys) + "\n")
        together = run_jobs(args.slots, manifests, args, tmp, model, videos, "together")
        alone = run_jobs(slots[0], [tmp / "all.txt"], args, tmp, model, videos, "alone")
    print(json.dumps({"model": args.model, "n": args.n, "batch_size": args.batch_size,
                      "together": together, "alone": alone}, indent=2))


if __name__ == "__main__":
    main()
