#!/usr/bin/env python
"""A trial run's plan of its full run: the trial's own timings and files, extrapolated to the file counts
discover found (results/<run>-trial<N>/plan.json, plan.md beside it, and the same text on the console)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from embedpipe.encoders import family
from embedpipe.plan.report import PlanInputs, make_plan, render
from embedpipe.plan.sizes import run_files
from embedpipe.plan.timings import run_timings
from embedpipe.store.atomic import write_text_atomic


def full_files(manifests: list[str], shards: list[str], exclusions: dict) -> dict[str, int]:
    """Each shard's full file count: its trial manifest's lines and the files past the limit."""
    beyond = (exclusions.get("trial") or {}).get("beyond_limit") or {}
    counts = {}
    for shard, manifest in zip(shards, manifests, strict=True):
        with open(manifest, "rb") as f:
            counts[shard] = sum(1 for line in f if line.strip()) + int(beyond.get(shard, 0))
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, fromfile_prefix_chars="@")
    p.add_argument("--run", required=True, help="the full run's name (config run)")
    p.add_argument("--run_dir", required=True, help="the trial's results/<run>-trial<N>")
    p.add_argument("--log_dir", required=True, help="the trial's logs/<run>-trial<N>")
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--manifests", nargs="+", required=True, help="the trial's manifests, in --shards order")
    p.add_argument("--exclusions", required=True, help="discover's exclusions.json (beyond_limit per shard)")
    p.add_argument("--dataset_folder", required=True)
    p.add_argument("--merged", nargs="*", default=[], help="merge_all's files, counted where they exist")
    p.add_argument("--encoder", required=True)
    p.add_argument("--encoder_options", required=True, help="the encoder block as JSON, without its name")
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--save_every", type=int, required=True)
    p.add_argument("--shard_by", required=True)
    p.add_argument("--num_shards", type=int, required=True)
    p.add_argument("--max_error_fraction", type=float, required=True)
    p.add_argument("--slots", type=int, required=True, help="extract jobs at once in the full run")
    p.add_argument("--slots_basis", required=True, help="where --slots came from")
    p.add_argument("--job_minutes", type=float, default=None, help="one job's time limit")
    p.add_argument("--results_dir", required=True, help="where the full run writes (its free space)")
    p.add_argument("--out", required=True, help="plan.json")
    p.add_argument("--markdown", required=True, help="plan.md")
    args = p.parse_args(argv)
    encoder = family(args.encoder).options({"name": args.encoder} | json.loads(args.encoder_options))
    run_dir = Path(args.run_dir)
    timings = run_timings(run_dir, Path(args.log_dir), args.shards)
    files = run_files(run_dir, args.shards, Path(args.dataset_folder), [Path(m) for m in args.merged])
    given = PlanInputs(
        run=args.run, limit=args.limit,
        full_files=full_files(args.manifests, args.shards, json.loads(Path(args.exclusions).read_text())),
        slots=args.slots, slots_basis=args.slots_basis, job_minutes=args.job_minutes, shard_by=args.shard_by,
        num_shards=args.num_shards, save_every=args.save_every, batch_size=int(encoder.get("batch_size") or 0),
        max_error_fraction=args.max_error_fraction, results_dir=args.results_dir, encoder=encoder)
    plan = make_plan(timings, files, given)
    text = render(plan, args.out)
    write_text_atomic(args.markdown, text)
    write_text_atomic(args.out, json.dumps(plan, indent=1) + "\n")  # last: the rule's output
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
