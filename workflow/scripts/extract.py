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
from datetime import UTC, datetime
from pathlib import Path

from embedpipe.atomic import OutputWriteError
from embedpipe.decode_guard import kill_leftover_children
from embedpipe.discover import normalise_extensions, read_manifest, scan_files
from embedpipe.encoders import build_encoder, resolve_device
from embedpipe.encoders.base import Encoder
from embedpipe.extract import DECODE_TIMEOUT_S, ModelFailure, auto_workers, run_extract
from embedpipe.finished import input_stamp, keep_finished, restore_finished
from embedpipe.gpu_slots import claim_gpu, parse_slots, wants_slot
from embedpipe.model_files import ModelFileError, ModelLoadError, check_model_path, model_error
from embedpipe.runinfo import package_versions, setup_logging
from embedpipe.shard_lock import ShardBusy, shard_lock
from embedpipe.stop import StopRequest
from embedpipe.writer import ShardWriter

log = logging.getLogger("extract")
SLOT_WAIT_S = 6 * 3600  # a job started beyond the GPU count waits for a slot rather than sharing one


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="vjepa2", help="encoder family (default: vjepa2)")
    p.add_argument("--model", default="vitl", help="preset (vitl, vith, vitg, vitg-384) or a name with --model_path")
    p.add_argument("--model_path", default=None, help="local model directory (overrides the preset's hub id)")
    p.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    p.add_argument("--input_dir", required=True, help="input root; keys are paths relative to it")
    p.add_argument("--shard", required=True, help="shard id (top-level folder such as p10)")
    p.add_argument("--manifest", default=None, help="manifest file; default: scan <input_dir>/<shard>")
    p.add_argument("--extensions", nargs="+", default=[".mp4"], help="extensions scanned without --manifest")
    p.add_argument("--output", default=None, help="default: results/<model>/embeddings/<shard>.parquet")
    p.add_argument("--errors", default=None, help="default: <output without .parquet>.errors.parquet")
    p.add_argument("--parts_dir", default=None, help="default: <output dir>/../parts/<shard>")
    p.add_argument("--batch_size", type=int, default=0, help="0 = the model's default")
    p.add_argument("--threads", type=int, default=None,
                   help="CPUs this job was given (the workflow passes its rule's threads); auto workers = threads - 1")
    p.add_argument("--num_workers", default="auto",
                   help="decode workers: auto = --threads - 1 (else usable CPUs - 1); 0 = decode in-process")
    p.add_argument("--num_frames", type=int, default=16, help="frames sampled per video")
    p.add_argument("--save_every", type=int, default=10000, help="rows per atomic part file")
    p.add_argument("--part_mb", type=int, default=512,
                   help="also flush a part once its rows hold this many MB (image tokens are 12 MB a row)")
    p.add_argument("--gpu_slots", default="auto",
                   help="one machine, several GPUs: auto (claim a free GPU when none was assigned), none, "
                        "or device indices such as 0,1,2,3 (repeats share a GPU: 0,0,1,1)")
    p.add_argument("--gpu_lock_dir", default=None, help="where slot locks live (default: a folder in /tmp)")
    p.add_argument("--limit", type=int, default=0, help="embed only the first N files of the shard (0 = all)")
    p.add_argument("--log_every", type=int, default=50, help="throughput log line every N batches")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "bf16-autocast", "fp32"],
                   help="auto = bf16 on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (CUDA; minutes to warm up)")
    p.add_argument("--encoder_options", default="{}",
                   help="JSON object of encoder options (the config's encoder block); overrides the flags above")
    p.add_argument("--keep_parts", action="store_true", help="keep part files after assembling the shard")
    p.add_argument("--decode_timeout_s", type=positive, default=DECODE_TIMEOUT_S,
                   help="a file that takes longer to open and decode is an error row (a FIFO, a hung mount)")
    return p.parse_args(argv)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds > 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    input_root = Path(args.input_dir)
    if args.manifest:
        keys = read_manifest(args.manifest)
    else:
        keys = scan_files(input_root, list(normalise_extensions(args.extensions)), subdir=args.shard)
    if args.limit > 0:
        keys = keys[: args.limit]
    output = Path(args.output or f"results/{args.model}/embeddings/{args.shard}.parquet")
    errors = Path(args.errors or output.with_name(output.name.removesuffix(".parquet") + ".errors.parquet"))
    parts_dir = Path(args.parts_dir or output.parent.parent / "parts" / args.shard)
    try:
        with shard_lock(parts_dir, args.shard):  # before anything reads or tidies the parts
            return extract_shard(args, keys, input_root, output, errors, parts_dir)
    except (ShardBusy, ModelFileError, ModelFailure) as exc:
        log.error("%s", exc)
        return 1
    except OutputWriteError as exc:
        # A full disk or quota: say so in one line and how to go on, rather than in a traceback.
        log.error("%s. Parts already written are kept in %s; free space and rerun: it resumes from them.",
                  exc.strerror, parts_dir)
        return 1
    finally:
        # A decode worker still alive here would be joined forever by multiprocessing at exit.
        if left := kill_leftover_children():
            log.warning("killed %d decode worker(s) still alive at the end of the job", left)


def extract_shard(args: argparse.Namespace, keys: list[str], input_root: Path, output: Path, errors: Path,
                  parts_dir: Path) -> int:
    options = {
        "model": args.model,
        "path": args.model_path,
        "revision": args.revision,
        "num_frames": args.num_frames,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "compile": args.compile,
    } | json.loads(args.encoder_options)
    stop = StopRequest().install()
    if wants_slot(args.gpu_slots, options["device"]):
        # First of all: CUDA reads CUDA_VISIBLE_DEVICES once, when anything first asks torch.cuda (an
        # encoder resolving device "auto" does). Held until this process exits, however it exits.
        slot = claim_gpu(parse_slots(args.gpu_slots), Path(args.gpu_lock_dir) if args.gpu_lock_dir else None,
                         timeout_s=SLOT_WAIT_S, stopped=lambda: bool(stop))
        if slot is None:
            log.warning("stopped by signal %d while waiting for a GPU slot", stop.signum)
            return 128 + stop.signum
        log.info("shard %s runs on GPU %s (slot %d)", args.shard, slot.device, slot.index)
    check_model_path(args.encoder, options.get("path"))
    try:
        encoder = build_encoder(args.encoder, options)
    except Exception as exc:  # what the model files hold, or an option that contradicts them
        raise model_error(args.encoder, options.get("path"), options["model"], exc) from exc
    inputs = input_stamp(input_root, keys)  # before any file is read: what this run embeds
    if restored := restore_finished(parts_dir, encoder.fingerprint(), keys, output, errors, inputs):
        # A run that finished once: its outputs were deleted (a kill Snakemake saw as a failure).
        log.info("shard %s: restored its finished outputs from %s (same model, preprocessing and files); "
                 "0 files embedded", args.shard, restored)
        if parts_dir.is_dir():  # a kill while the parts were being removed
            ShardWriter(parts_dir, encoder.output_fields(), encoder.fingerprint()).remove_parts()
        return 0
    writer = ShardWriter(parts_dir, encoder.output_fields(), encoder.fingerprint(), args.save_every,
                          part_bytes=args.part_mb << 20, sidecar=encoder.sidecar_columns())
    device = resolve_device(options["device"])
    num_workers = auto_workers(args.threads) if args.num_workers == "auto" else int(args.num_workers)
    log.info("shard %s: %d files; %s %s on %s, batch %d, %d decode workers", args.shard, len(keys), args.encoder,
             options["model"], device, encoder.batch_size, num_workers)
    encoder.device = device
    try:
        run_extract(keys, input_root, encoder, writer, shard=args.shard, device=device, num_workers=num_workers,
                    log_every=args.log_every, stop=stop, decode_timeout_s=args.decode_timeout_s)
        if stop:
            log.warning("stopped by signal %d after flushing the current part; rerun to resume", stop.signum)
            return 128 + stop.signum
        return write_shard(args, keys, encoder, writer, output, errors, inputs)
    except ModelLoadError as exc:
        raise model_error(args.encoder, options.get("path"), options["model"], exc) from exc


def write_shard(args: argparse.Namespace, keys: list[str], encoder: Encoder, writer: ShardWriter,
                output: Path, errors: Path, inputs: dict[str, str]) -> int:
    metadata = {
        **encoder.provenance(),
        "compute_dtype": encoder.compute_dtype(),
        "shard": args.shard,
        "num_files": len(keys),
        "packages": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    n_rows, n_errors = writer.finalize(keys, output, errors, metadata)
    if not args.keep_parts:
        # Until Snakemake has seen this job succeed, its outputs may still be deleted: what the parts
        # held is kept as hard links to the outputs, so a rerun restores instead of embedding again.
        keep_finished(writer.parts_dir, writer.fingerprint, keys, output, errors, inputs)
        writer.remove_parts()
    log.info("shard %s done: %d rows -> %s, %d errors -> %s", args.shard, n_rows, output, n_errors, errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
