#!/usr/bin/env python
"""Probe the dataset's frozen embeddings against labels: a linear probe (C chosen on validation) and
cosine k-NN; macro and per-class AUROC with bootstrap 95 % intervals.

Writes metrics.json, roc.png and report.html into --out_dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.evaluate.labels import LabelError
from embedpipe.evaluate.run import evaluate, write_evaluation
from embedpipe.evaluate.settings import EvaluationSettings
from embedpipe.runtime.runinfo import setup_logging

log = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset_files", nargs="+", required=True, help="the staged <shard>.parquet files")
    p.add_argument("--settings", required=True, help="the config's `evaluate` block as JSON")
    p.add_argument("--out_dir", required=True, help="evaluation folder (metrics.json, roc.png, report.html)")
    p.add_argument("--title", default="embedpipe dataset")
    p.add_argument("--threads", type=int, default=1, help="probe fits in parallel (one per class)")
    args = p.parse_args(argv)
    setup_logging()
    settings = EvaluationSettings.from_config(json.loads(args.settings))
    try:
        result = evaluate(settings, [Path(f) for f in args.dataset_files], n_jobs=args.threads)
    except LabelError as exc:
        log.error("%s", exc)
        return 1
    paths = write_evaluation(result, Path(args.out_dir), args.title)
    m = result.metrics
    log.info("%s (%s): macro AUROC %s (95%% CI %s), %d classes, %d test rows%s; report %s", m["task"],
             m["protocol"]["kind"], m["macro_auroc"]["value"], m["macro_auroc"]["ci95"], len(m["classes"]),
             m["n_test"], "" if m["protocol"]["kind"] == "split" else " per fold", paths["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
