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
from pathlib import Path

from embedpipe.encoders import OptionError, family
from embedpipe.extract.loop import DECODE_TIMEOUT_S
from embedpipe.extract.step import ExtractSettings, ExtractStep
from embedpipe.readers.limits import DEFAULT_MAX_DECODED_GB
from embedpipe.runtime.runinfo import setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="vjepa2", help="encoder family (default: vjepa2)")
    p.add_argument("--model", default=None,
                   help="vjepa2: a preset (vitl, the default; vith, vitg, vitg-384) or a name with --model_path")
    p.add_argument("--model_path", default=None, help="local model directory (overrides the preset's hub id)")
    p.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    p.add_argument("--input_dir", required=True, help="input root; keys are paths relative to it")
    p.add_argument("--shard", required=True, help="shard id (top-level folder such as p10)")
    p.add_argument("--manifest", default=None, help="manifest file; default: scan <input_dir>/<shard>")
    p.add_argument("--extensions", nargs="+", default=[".mp4"], help="extensions scanned without --manifest")
    p.add_argument("--output", default=None, help="default: results/<model>/embeddings/<shard>.parquet")
    p.add_argument("--errors", default=None, help="default: <output without .parquet>.errors.parquet")
    p.add_argument("--parts_dir", default=None, help="default: <output dir>/../parts/<shard>")
    p.add_argument("--batch_size", type=int, default=None, help="0 = the model's default")
    p.add_argument("--threads", type=int, default=None,
                   help="CPUs this job was given (the workflow passes its rule's threads); auto workers = threads - 1")
    p.add_argument("--num_workers", default="auto",
                   help="decode workers: auto = --threads - 1 (else usable CPUs - 1); 0 = decode in-process")
    p.add_argument("--num_frames", type=int, default=None, help="vjepa2: frames sampled per video (16)")
    p.add_argument("--save_every", type=int, default=10000, help="rows per atomic part file")
    p.add_argument("--part_mb", type=int, default=512,
                   help="also flush a part once its rows hold this many MB (image tokens are 12 MB a row)")
    p.add_argument("--gpu_slots", default="auto",
                   help="one machine, several GPUs: auto (claim a free GPU when none was assigned), none, "
                        "or device indices such as 0,1,2,3 (repeats share a GPU: 0,0,1,1)")
    p.add_argument("--gpu_lock_dir", default=None, help="where slot locks live (default: a folder in /tmp)")
    p.add_argument("--limit", type=int, default=0, help="embed only the first N files of the shard (0 = all)")
    p.add_argument("--log_every", type=int, default=50, help="throughput log line every N batches")
    p.add_argument("--device", default=None, help="auto (the default), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default=None, choices=["auto", "bf16", "bf16-autocast", "fp32"],
                   help="auto = bf16 on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (CUDA; minutes to warm up)")
    p.add_argument("--encoder_options", default="{}",
                   help="JSON object of encoder options (the config's encoder block); overrides the flags above")
    p.add_argument("--keep_parts", action="store_true", help="keep part files after assembling the shard")
    p.add_argument("--decode_timeout_s", type=positive, default=DECODE_TIMEOUT_S,
                   help="a file that takes longer to open and decode is an error row (a FIFO, a hung mount)")
    p.add_argument("--max_decoded_gb", type=positive, default=DEFAULT_MAX_DECODED_GB,
                   help="GiB one file may decode to, from its header: more is an error row (a tiny rate resampled)")
    p.add_argument("--require_gpu", action="store_true",
                   help="fail at once when no GPU is visible (as the Metis script refused to run on the CPU)")
    return p.parse_args(argv)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds > 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        model = args.model or family(args.encoder).options({})["model"]
    except OptionError as exc:  # an unknown --encoder
        logging.getLogger("extract").error("%s", exc)
        return 1
    output = Path(args.output or f"results/{model}/embeddings/{args.shard}.parquet")
    flags = {"model": model, "path": args.model_path, "revision": args.revision, "num_frames": args.num_frames,
             "batch_size": args.batch_size, "device": args.device, "precision": args.precision,
             "compile": args.compile or None}
    # Only the flags given: each family takes its own options, and the config's block overrides them.
    options = {k: v for k, v in flags.items() if v is not None} | json.loads(args.encoder_options)
    return ExtractStep(ExtractSettings(
        encoder=args.encoder,
        options=options,
        input_dir=Path(args.input_dir),
        shard=args.shard,
        output=output,
        errors=Path(args.errors or output.with_name(output.name.removesuffix(".parquet") + ".errors.parquet")),
        parts_dir=Path(args.parts_dir or output.parent.parent / "parts" / args.shard),
        manifest=Path(args.manifest) if args.manifest else None,
        extensions=args.extensions,
        limit=args.limit,
        threads=args.threads,
        num_workers=args.num_workers,
        save_every=args.save_every,
        part_mb=args.part_mb,
        gpu_slots=args.gpu_slots,
        gpu_lock_dir=Path(args.gpu_lock_dir) if args.gpu_lock_dir else None,
        log_every=args.log_every,
        keep_parts=args.keep_parts,
        decode_timeout_s=args.decode_timeout_s,
        max_decoded_gb=args.max_decoded_gb,
        require_gpu=args.require_gpu,
    )).run()


if __name__ == "__main__":
    sys.exit(main())
