#!/usr/bin/env python
"""Write one shard's dataset file (train-0000i-of-0000N.parquet) with the dataset metadata joined."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.publish.judge_keys import KindMismatch
from embedpipe.publish.metadata import build_metadata
from embedpipe.publish.pca import Pca
from embedpipe.publish.source_rows import WithSourceRows, read_source_rows
from embedpipe.publish.staged import write_dataset_shard
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import out_of_space


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--embeddings", required=True, help="the shard's <shard>.parquet from extract")
    p.add_argument("--output", required=True)
    p.add_argument("--shard", required=True)
    p.add_argument("--metadata", choices=["none", "mimic_iv_echo", "mimic_iv_ecg", "deepearth"], default="none")
    p.add_argument("--record_list", help="echo-record-list.csv (mimic_iv_echo), record_list.csv (mimic_iv_ecg)")
    p.add_argument("--study_list", help="echo-study-list.csv (mimic_iv_echo)")
    p.add_argument("--hf_rows", help="discover's hf_rows.parquet: the source dataset's rows of each file")
    p.add_argument("--pca", help="the run's pca.npz: each row's embedding_pca")
    p.add_argument("--identifying_patterns_file", type=lambda f: json.loads(Path(f).read_text(encoding="utf-8")),
                   default=[], help="a JSON list of regular expressions: keys matching any identify people "
                                    "(besides MIMIC ids, DICOM UIDs and dates)")
    args = p.parse_args(argv)
    setup_logging()
    if args.metadata == "mimic_iv_echo" and not (args.record_list and args.study_list):
        p.error("--metadata mimic_iv_echo needs --record_list and --study_list")
    if args.metadata == "mimic_iv_ecg" and not args.record_list:
        p.error("--metadata mimic_iv_ecg needs --record_list")
    joiner = build_metadata(args.metadata, {"record_list": args.record_list, "study_list": args.study_list})
    if args.hf_rows:
        joiner = WithSourceRows(joiner, *read_source_rows(Path(args.hf_rows)))
    try:
        write_dataset_shard(Path(args.embeddings), Path(args.output), joiner,
                            {"shard": args.shard, "metadata": args.metadata},
                            Pca.load(args.pca) if args.pca else None, args.identifying_patterns_file)
    except KindMismatch as exc:
        logging.getLogger("parquet").error("%s", exc)
        return 1
    except OSError as exc:
        # A full disk or quota: one line saying which file and what to do, as extract says it.
        if (what := out_of_space(exc)) is None:
            raise
        logging.getLogger("parquet").error("%s. The shard's embeddings %s are untouched; free space and rerun.",
                                           what, args.embeddings)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
