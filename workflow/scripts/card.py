#!/usr/bin/env python
"""Write the dataset card (README.md beside the Parquet files) from the data, its provenance and metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from embedpipe.atomic import write_text_atomic
from embedpipe.card import build_card
from embedpipe.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset_files", nargs="+", required=True, help="train-*.parquet, in shard order")
    p.add_argument("--metrics", required=True, help="validation/metrics.json")
    p.add_argument("--dataset", required=True, help="the config's `dataset` section as JSON")
    p.add_argument("--load_name", required=True, help="what load_dataset() is given in the snippet")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    setup_logging()
    metrics = json.loads(Path(args.metrics).read_text())
    text = build_card([Path(f) for f in args.dataset_files], metrics, json.loads(args.dataset), args.load_name)
    write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
