#!/usr/bin/env python
"""Draw a pretraining run's curves (metrics.csv → loss.png): the total loss, its prediction and
SIGReg parts, and the learning rate, per step. A job of its own: a drawing that fails never costs
the trained model, and a run trained before loss.png existed gets one without training again."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.pretrain.curves import plot_curves
from embedpipe.pretrain.metrics import MetricsCsv
from embedpipe.runtime.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics", required=True, type=Path, help="the run's metrics.csv")
    p.add_argument("--out", required=True, type=Path, help="the PNG to write")
    args = p.parse_args(argv)
    setup_logging()
    rows = MetricsCsv(args.metrics).rows()
    if not rows:
        logging.getLogger("pretrain").error("%s has no rows to draw", args.metrics)
        return 1
    plot_curves(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
