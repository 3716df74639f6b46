#!/usr/bin/env python
"""Check the finished dataset against the manifests; write metrics.json; exit 1 on a failed check."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.atomic import write_text_atomic
from embedpipe.runinfo import setup_logging
from embedpipe.validate import validate_dataset

log = logging.getLogger("validate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", nargs="+", required=True, help="shard ids, in dataset order")
    p.add_argument("--manifests", nargs="+", required=True)
    p.add_argument("--dataset_files", nargs="+", required=True)
    p.add_argument("--error_files", nargs="+", required=True)
    p.add_argument("--expected_dim", type=int, default=None)
    p.add_argument("--max_error_fraction", type=float, default=0.01)
    p.add_argument("--metrics", required=True, help="metrics.json, written only when every check passes")
    args = p.parse_args(argv)
    setup_logging()
    if not len(args.shards) == len(args.manifests) == len(args.dataset_files) == len(args.error_files):
        p.error("--shards, --manifests, --dataset_files and --error_files need one entry per shard")
    metrics = validate_dataset(
        args.shards,
        dict(zip(args.shards, map(Path, args.manifests), strict=True)),
        dict(zip(args.shards, map(Path, args.dataset_files), strict=True)),
        dict(zip(args.shards, map(Path, args.error_files), strict=True)),
        args.expected_dim,
        args.max_error_fraction,
    )
    text = json.dumps(metrics, indent=2)
    for check in metrics["checks"]:
        log.info("%s %s: %s", "PASS" if check["passed"] else "FAIL", check["name"], check["detail"])
    if not metrics["passed"]:
        failed = Path(args.metrics).with_name("metrics.failed.json")
        write_text_atomic(failed, text)
        log.error("validation failed; metrics in %s", failed)
        return 1
    write_text_atomic(args.metrics, text)
    log.info("validation passed: %d rows, %d errors", metrics["totals"]["rows"], metrics["totals"]["errors"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
