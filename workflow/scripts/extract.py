#!/usr/bin/env python
"""Embed one shard of files into `<shard>.parquet` + `<shard>.errors.parquet`.

Run by the workflow's extract rule, or by hand as the EchoJEPA script was:

    python workflow/scripts/extract.py --model vitl --input_dir /data/mimic-iv-echo-mp4 --shard p10 --limit 50

Every --save_every rows an atomic part file is written under --parts_dir; a rerun after a kill or
preemption resumes from the parts. SIGTERM flushes the current part and exits with status 143.
"""

# ruff: noqa: E402 -- the environment is set before torch loads
from __future__ import annotations

import os

# The model's OpenMP threads sleep instead of spinning while they wait. Spinning threads took the
# cores from the decode workers on CPU runs: a tiny ECGFounder on 2 CPUs ran at 370 files/s, 510
# with this (bench/RESULTS.md). libgomp reads it once, when torch loads; a user's value is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from embedpipe.encoders import OptionError, family
from embedpipe.extract.settings import BLOCK, ExtractOptions
from embedpipe.extract.step import ExtractSettings, ExtractStep
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.runtime.step_settings import SettingError, add_arguments, from_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    job = p.add_argument_group("the shard, its files and outputs")
    job.add_argument("--input_dir", required=True, help="input root; keys are paths relative to it")
    job.add_argument("--shard", required=True, help="shard id (top-level folder such as p10)")
    job.add_argument("--manifest", default=None, help="manifest file (discover's); default: scan <input_dir>/<shard>")
    job.add_argument("--extensions", nargs="+", default=[".mp4"], help="extensions scanned without --manifest")
    job.add_argument("--output", default=None, help="default: results/<model>/embeddings/<shard>.parquet")
    job.add_argument("--errors", default=None, help="default: <output without .parquet>.errors.parquet")
    job.add_argument("--parts_dir", default=None, help="default: <output dir>/../parts/<shard>")
    job.add_argument("--threads", type=int, default=None,
                     help="CPUs this job was given (the workflow passes its rule's threads); auto workers: these - 1")
    job.add_argument("--keep_parts", action="store_true", help="keep part files after assembling the shard")
    model = p.add_argument_group("the encoder (the config's encoder block; --encoder_options overrides these flags)")
    model.add_argument("--encoder", default="vjepa2", help="encoder family (default: vjepa2)")
    model.add_argument("--model", default=None,
                       help="vjepa2: a preset (vitl, the default; vith, vitg, vitg-384) or a name with --model_path")
    model.add_argument("--model_path", default=None, help="local model directory (overrides the preset's hub id)")
    model.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    model.add_argument("--batch_size", type=int, default=None, help="0 = the model's default")
    model.add_argument("--num_frames", type=int, default=None, help="vjepa2: frames sampled per video")
    model.add_argument("--device", default=None, help="auto (the default), cpu, cuda, cuda:1, ...")
    model.add_argument("--precision", default=None, choices=["auto", "bf16", "bf16-autocast", "fp32"],
                       help="auto = bf16 on CUDA, fp32 on CPU")
    model.add_argument("--compile", action="store_true", help="torch.compile the encoder (CUDA; minutes to warm up)")
    model.add_argument("--encoder_options", default="{}", help="JSON object of encoder options (the config's block)")
    add_arguments(p, ExtractOptions, BLOCK)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        model = args.model or family(args.encoder).options({})["model"]
        block = from_args(ExtractOptions, args, BLOCK)
    except (OptionError, SettingError) as exc:  # an unknown --encoder, a setting the block does not have
        logging.getLogger("extract").error("%s", exc)
        return 1
    output = Path(args.output or f"results/{model}/embeddings/{args.shard}.parquet")
    flags = {"model": model, "path": args.model_path, "revision": args.revision, "num_frames": args.num_frames,
             "batch_size": args.batch_size, "device": args.device, "precision": args.precision,
             "compile": args.compile or None}
    # Only the flags given: each family takes its own options, and the config's block overrides them.
    options = {k: v for k, v in flags.items() if v is not None} | json.loads(args.encoder_options)
    return ExtractStep(ExtractSettings(
        **asdict(block),
        encoder=args.encoder,
        options=options,
        input_dir=Path(args.input_dir),
        shard=args.shard,
        output=output,
        errors=Path(args.errors or output.with_name(output.name.removesuffix(".parquet") + ".errors.parquet")),
        parts_dir=Path(args.parts_dir or output.parent.parent / "parts" / args.shard),
        manifest=Path(args.manifest) if args.manifest else None,
        extensions=args.extensions,
        threads=args.threads,
        keep_parts=args.keep_parts,
    )).run()


if __name__ == "__main__":
    sys.exit(main())
