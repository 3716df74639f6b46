#!/usr/bin/env python
"""Write one shard's staged dataset file (staged/<shard>.parquet) with the dataset metadata joined."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.publish.joined import JoinedSlice
from embedpipe.publish.judge_keys import KindMismatch
from embedpipe.publish.kinds import KINDS, build_joiner, kind
from embedpipe.publish.metadata import Joiner
from embedpipe.publish.pca import Pca
from embedpipe.publish.staged import write_dataset_shard
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import out_of_space


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--embeddings", required=True, help="the shard's <shard>.parquet from extract")
    p.add_argument("--output", required=True)
    p.add_argument("--shard", required=True)
    p.add_argument("--metadata", choices=list(KINDS), default="none", help="the metadata kind (metadata.kind)")
    p.add_argument("--joined", help="the joined rule's joined/<shard>.parquet: what the kind's lists and "
                                    "hf_rows.parquet join to this shard's keys (needed where there are such tables)")
    p.add_argument("--pca", help="the run's pca.npz: each row's embedding_pca")
    p.add_argument("--identifying_patterns_file", type=lambda f: json.loads(Path(f).read_text(encoding="utf-8")),
                   default=[], help="a JSON list of regular expressions: keys matching any identify people "
                                    "(besides MIMIC ids, DICOM UIDs and dates)")
    args = p.parse_args(argv)
    setup_logging()
    if args.joined:
        joiner: Joiner = JoinedSlice(Path(args.joined))
        if joiner.kind != args.metadata:
            p.error(f"--joined {args.joined} was joined for metadata kind {joiner.kind}, not {args.metadata}: "
                    "rerun the joined rule")
    elif files := kind(args.metadata).files:
        p.error(f"--metadata {args.metadata} joins {' and '.join(files)}: give the joined rule's slice as --joined")
    else:
        joiner = build_joiner(args.metadata, {})
    try:
        write_dataset_shard(Path(args.embeddings), Path(args.output), joiner,
                            {"shard": args.shard, "metadata": args.metadata},
                            Pca.load(args.pca) if args.pca else None, args.identifying_patterns_file)
    except KindMismatch as exc:
        logging.getLogger("staged").error("%s", exc)
        return 1
    except OSError as exc:
        # A full disk or quota: one line saying which file and what to do, as extract says it.
        if (what := out_of_space(exc)) is None:
            raise
        logging.getLogger("staged").error("%s. The shard's embeddings %s are untouched; free space and rerun.",
                                           what, args.embeddings)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
