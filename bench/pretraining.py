#!/usr/bin/env python
"""MyJEPA pretraining throughput (samples/s) against its two stages, in one run on one machine.

    python bench/pretraining.py --config tiny --records 64 --steps 40 --batch_size 16            # CPU
    python bench/pretraining.py --config ViTS_mimic --records 1024 --steps 30 --batch_size 256 \\
        --num_workers 8 --amp bfloat16                                                            # a GPU

Three runs of the same code on the same generated WFDB records (MIMIC-IV-ECG's layout, the ECG
demo's generator, 10 s at 500 Hz):

- `step_only`: PretrainStep's own training loop on one decoded batch, repeated: the model's forward,
  backward and optimiser step, nothing read;
- `data_only`: PretrainStep's own DataLoader (the ecg_jepa reader, crops, block masks, workers), no model;
- `end_to_end`: PretrainStep.run() as the workflow's pretrain job runs it (metrics.csv and checkpoints).

Each rate skips the first `--warmup` steps (worker start-up, allocator, cuDNN). `ratio` is
end_to_end over the slower stage: 1.0 means the overlap of reading and training is perfect. Peak
memory is the OS's (ru_maxrss of this process and of its reaped children, the decode workers) and, on
CUDA, the allocator's peak. One JSON object is printed last.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from embedpipe.pretrain.config import PRESETS, build_settings, read_config
from embedpipe.pretrain.settings import PretrainSettings
from embedpipe.pretrain.train import PretrainStep, Ranks, setup_ranks
from embedpipe.runtime.decode_guard import stop_workers
from embedpipe_demo.ecg import make_demo_ecg


class OneBatchStep(PretrainStep):
    """The training loop fed one batch over and over: what the model costs without the data."""

    def loader(self, ranks: Ranks, device: torch.device, step: int):  # type: ignore[override]
        batches = iter(super().loader(ranks, device, step))
        batch = next(batches)
        stop_workers(batches)
        return itertools.repeat(batch)


def settings(out: Path, records: Path, args: argparse.Namespace) -> PretrainSettings:
    values = read_config(args.config) | {"steps": args.steps, "batch_size": args.batch_size,
                                         "num_workers": args.num_workers, "device": args.device, "amp": args.amp,
                                         "checkpoint_every": args.steps, "log_every": max(1, args.steps // 4),
                                         "warmup_steps": 0}
    return build_settings(out, [str(records)], values)


def rate_from_metrics(path: Path, warmup: int) -> float:
    rows = [r for r in csv.DictReader(path.open()) if int(r["step"]) > warmup]
    return sum(int(r["samples"]) for r in rows) / sum(float(r["step_time"]) for r in rows)


def data_only(s: PretrainSettings, warmup: int) -> float:
    ranks, device = setup_ranks(s.device)
    batches = iter(PretrainStep(s).loader(ranks, device, 0))
    for _ in range(warmup):
        next(batches)
    start, samples = time.perf_counter(), 0
    for _ in range(s.steps - warmup):
        samples += len(next(batches)["x"])
    rate = samples / (time.perf_counter() - start)
    stop_workers(batches)
    return rate


def peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_children_mb": round(children, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--records", type=int, default=64, help="generated WFDB records (one is truncated on purpose)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_workers", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="bfloat16", choices=["bfloat16", "float32"], help="bfloat16: CUDA only")
    p.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        records = root / "records"
        make_demo_ecg(records, ["p1000"], args.records, seed=0)
        rates = {"data_only": data_only(settings(root / "data", records, args), args.warmup)}
        for name, step in (("step_only", OneBatchStep), ("end_to_end", PretrainStep)):
            s = settings(root / name, records, args)
            if step(s).run() != 0:
                raise SystemExit(f"{name}: the pretraining run failed")
            rates[name] = rate_from_metrics(s.out / "metrics.csv", args.warmup)
        _, device = setup_ranks(args.device)
        slowest = min(rates["step_only"], rates["data_only"])
        result = {
            "bench": "pretraining", "config": args.config, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "amp": args.amp if device.type == "cuda" else "float32", "batch_size": args.batch_size,
            "num_workers": args.num_workers, "records": args.records, "steps": args.steps, "warmup": args.warmup,
            "samples_per_s": {k: round(v, 1) for k, v in rates.items()},
            "slowest_stage": "step_only" if rates["step_only"] <= rates["data_only"] else "data_only",
            "ratio": round(rates["end_to_end"] / slowest, 3),
            "torch_threads": torch.get_num_threads(), **peak_rss_mb(),
            "cuda_peak_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda"
            else None,
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
