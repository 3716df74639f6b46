#!/usr/bin/env python
"""Every benchmark of one machine in one command: each run's JSON, command and wall time, one line each.

    python bench/suite.py --suite cpu --out bench-cpu.jsonl
    python bench/suite.py --suite gpu --out bench-gpu.jsonl --only vitl,ecgfounder --timeout 540
    python bench/suite.py --suite gpu --list

A run that fails or passes its timeout is recorded (exit status, the end of its stderr) and the
suite goes on: one broken bench must not cost a GPU session the others. Lines are appended as each
run ends, so a suite killed half-way keeps what it measured. Generated inputs are made once per
kind in --inputs and reused by the runs after the first (the benches' `--videos`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TP = "throughput.py"
# name → (script, arguments, generated-input kind or None). Figures in RESULTS.md come from these.
SUITES: dict[str, dict[str, tuple[str, list[str], str | None]]] = {
    "cpu": {
        "ecgfounder": (TP, ["--encoder", "ecgfounder", "--model", "tiny", "--n", "1024", "--batch_size", "16"], "ecg"),
        "ecg_jepa": (TP, ["--encoder", "ecg_jepa", "--model", "tiny", "--n", "1024", "--batch_size", "16"], "ecg"),
        "images": (TP, ["--encoder", "images", "--model", "tiny", "--n", "384", "--batch_size", "8"], "photos"),
        "metis": (TP, ["--encoder", "metis", "--model", "tiny", "--n", "512", "--batch_size", "16"], "clips"),
        "video": (TP, ["--encoder", "vjepa2", "--model", "tiny", "--n", "256", "--batch_size", "8"], "videos"),
        "writer": ("writer.py", ["--image_frames", "2", "--rows", "1024", "--batch_size", "64"], None),
        "dicom": ("dicom_decode.py", ["--n", "24", "--frames", "64"], None),
        "pretraining": ("pretraining.py", ["--config", "tiny", "--records", "64", "--steps", "40", "--batch_size",
                                           "16"], None),
        "upload_filter": ("upload_filter.py", ["--files", "1000", "2000", "4000"], None),
        "validate_arrays": ("validate_arrays.py", ["--rows", "25000", "100000"], None),
        "assemble": ("assemble.py", ["--rows", "52500", "105000", "500000"], None),  # 2 GB of parts at 500k
        "disk": ("disk.py", ["--rows", "20000", "--dim", "1024"], None),
    },
    "gpu": {
        "vitl": (TP, ["--model", "vitl", "--n", "6144", "--batch_size", "256"], "videos"),
        "vitl_compile": (TP, ["--model", "vitl", "--n", "6144", "--batch_size", "256", "--compile"], "videos"),
        "metis": (TP, ["--encoder", "metis", "--model", "w2v-bert-2.0", "--n", "4096", "--batch_size", "256"],
                  "clips"),
        "ecgfounder": (TP, ["--encoder", "ecgfounder", "--model", "ecgfounder", "--n", "8192", "--batch_size",
                            "256"], "ecg"),
        "ecg_jepa": (TP, ["--encoder", "ecg_jepa", "--model", "ecg-jepa-vits", "--n", "8192", "--batch_size",
                          "256"], "ecg"),
        "images": (TP, ["--encoder", "images", "--model", "vitg-384", "--n", "512", "--batch_size", "16"],
                   "photos"),
        "images_2f": (TP, ["--encoder", "images", "--model", "vitg-384", "--n", "1024", "--batch_size", "64",
                           "--image_frames", "2"], "photos1024"),
        "writer_16f": ("writer.py", ["--image_frames", "16", "--rows", "512", "--batch_size", "16"], None),
        "writer_2f": ("writer.py", ["--image_frames", "2", "--rows", "2048", "--batch_size", "64"], None),
        "dicom": ("dicom_decode.py", ["--n", "64", "--frames", "64"], None),
        "pretraining": ("pretraining.py", ["--config", "ViTS_mimic", "--records", "1024", "--steps", "30",
                                           "--batch_size", "256", "--num_workers", "8", "--amp", "bfloat16"], None),
    },
}


def command(suite: str, name: str, inputs: Path, tmp: Path | None) -> list[str]:
    script, args, kind = SUITES[suite][name]
    cmd = [sys.executable, str(HERE / script), *args]
    if script == TP:
        cmd += ["--device", "cuda" if suite == "gpu" else "cpu"]
        cmd += ["--num_workers", "1"] if suite == "cpu" else []
        cmd += ["--videos", str(inputs / kind)]
        cmd += ["--tmp", str(tmp)] if tmp and "images" in args else []
    elif tmp:
        cmd += ["--dir", str(tmp)]
    return cmd


def run_one(cmd: list[str], timeout: float) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return {"status": "timeout", "stderr_tail": err[-2000:], "wall_s": round(time.perf_counter() - start, 1)}
    wall = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        return {"status": f"exit {done.returncode}", "stderr_tail": done.stderr[-2000:], "wall_s": wall}
    try:  # the benches print one JSON object last; progress bars and logs go to stderr
        return {"status": "ok", "result": json.loads(done.stdout[done.stdout.index("{"):]), "wall_s": wall}
    except ValueError:
        return {"status": "no result", "stdout_tail": done.stdout[-2000:], "wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), required=True)
    p.add_argument("--only", default="", help="comma-separated run names (default: all; see --list)")
    p.add_argument("--out", type=Path, help="JSON lines, appended")
    p.add_argument("--inputs", type=Path, default=Path(tempfile.gettempdir()) / "embedpipe-bench-inputs",
                   help="generated files, reused by later runs and suites")
    p.add_argument("--tmp", type=Path, default=None, help="scratch for outputs (image tokens: GBs)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--list", action="store_true", help="print the runs' commands and exit")
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SUITES[args.suite])
    if unknown := [n for n in names if n not in SUITES[args.suite]]:
        p.error(f"--only: {unknown} not in suite {args.suite}: {', '.join(SUITES[args.suite])}")
    if args.list:
        for name in names:
            print(name, " ".join(command(args.suite, name, args.inputs, args.tmp)))
        return
    if args.out is None:
        p.error("--out is required unless --list")
    args.inputs.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        cmd = command(args.suite, name, args.inputs, args.tmp)
        print(f"[suite] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        line = {"suite": args.suite, "name": name, "command": " ".join(cmd[1:])} | run_one(cmd, args.timeout)
        failed += line["status"] != "ok"
        with args.out.open("a") as out:
            out.write(json.dumps(line) + "\n")
        print(f"[suite] {name}: {line['status']} in {line['wall_s']} s", file=sys.stderr, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
