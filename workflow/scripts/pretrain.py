#!/usr/bin/env python
"""Pretrain a MyJEPA ECG encoder (ECG-JEPA's masking and prediction, LeJEPA's single encoder and SIGReg).

One GPU, or several with torchrun, as the reference's pretrain.py:

    python workflow/scripts/pretrain.py --data mimic-iv-ecg=path/to/mimic-ecg.npy --out checkpoints/ \\
        --config ViTS_mimic --amp bfloat16 --seed 42
    torchrun --standalone --nproc_per_node=2 workflow/scripts/pretrain.py --data ... --out ...

--data takes `.npy` dumps `[N, 12, samples]` (mV at 500 Hz), manifests of ECG files (`.txt`, keys
relative to --input_dir, as discover writes them) or folders of ECG files, each optionally `name=path`.
A rerun with the same --out resumes from the newest checkpoint in <out>/checkpoints/ and continues
the same loss curve; SIGTERM (SLURM preemption) checkpoints and exits with status 143. The trained
model is <out>/final.pt, which the ecg_jepa encoder (encoder.path) loads.
"""

# ruff: noqa: E402 -- the environment is set before torch loads
from __future__ import annotations

import os

# As extract.py: OpenMP threads that sleep while they wait leave the decode workers their CPUs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import sys

from embedpipe.pretrain.config import PRESETS, build_settings, read_config
from embedpipe.pretrain.train import PretrainStep
from embedpipe.runtime.runinfo import setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="[name=]path: .npy dumps, .txt manifests, folders")
    p.add_argument("--out", required=True, help="the run folder (checkpoints/, metrics.csv, final.pt)")
    p.add_argument("--config", default="ViTS_mimic",
                   help=f"a preset ({', '.join(PRESETS)}) or a YAML file of settings (ECG-JEPA's names read too)")
    p.add_argument("--options", default="{}", help="JSON object of settings over the config's (a workflow's block)")
    p.add_argument("--input_dir", default=None, help="root of .txt manifests' keys (default: their folder)")
    p.add_argument("--amp", default=None, choices=["bfloat16", "float32"], help="bfloat16 (CUDA autocast) or float32")
    p.add_argument("--seed", type=int, default=None, help="data order, crops, masks, initialisation (default 0)")
    p.add_argument("--wandb", action="store_true", help="log to wandb too (pip install wandb)")
    p.add_argument("--device", default=None, help="auto (the default), cpu, cuda")
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides the config)")
    p.add_argument("--batch_size", type=int, default=None, help="over all GPUs (overrides the config)")
    p.add_argument("--num_workers", type=int, default=None, help="decode workers per GPU")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    flags = {"amp": args.amp, "seed": args.seed, "wandb": args.wandb or None, "device": args.device,
             "steps": args.steps, "batch_size": args.batch_size, "num_workers": args.num_workers}
    try:
        values = read_config(args.config) | json.loads(args.options) | {k: v for k, v in flags.items() if v is not None}
        settings = build_settings(args.out, args.data, values, args.input_dir)
    except (ValueError, json.JSONDecodeError) as exc:
        logging.getLogger("pretrain").error("%s", exc)
        return 1
    return PretrainStep(settings).run()


if __name__ == "__main__":
    sys.exit(main())
