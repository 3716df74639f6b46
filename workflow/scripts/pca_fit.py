#!/usr/bin/env python
"""Fit the run's PCA (pca.components) on every shard's embeddings and save it as pca.npz."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.publish.pca import PcaError, fit_pca
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import remove_leftovers_of


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", nargs="+", required=True, help="every shard's embeddings Parquet")
    p.add_argument("--components", type=int, required=True)
    p.add_argument("--out", required=True, type=Path, help="pca.npz")
    p.add_argument("--at_most", action="store_true", help="fewer components when the rows allow no more (a trial)")
    args = p.parse_args(argv)
    setup_logging()
    log = logging.getLogger("pca")
    remove_leftovers_of(args.out)
    try:
        pca = fit_pca(args.shards, args.components, at_most=args.at_most)
    except PcaError as exc:
        log.error("%s", exc)
        return 1
    pca.save(args.out)
    if len(pca.components) < args.components:
        log.warning("a trial's %d rows allow %d components, not pca.components %d", pca.n_rows,
                    len(pca.components), args.components)
    log.info("PCA of %d rows: %d components keep %.1f%% of the variance -> %s", pca.n_rows, len(pca.components),
             100 * pca.explained_variance_ratio.sum(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
