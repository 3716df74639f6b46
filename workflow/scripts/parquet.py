#!/usr/bin/env python
"""Build the published dataset folder from this run's staged shard files: the shards that hold rows,
numbered train-0000i-of-0000N.parquet, their sidecars and the README.md card (with what the run keeps on
disk, folder by folder); then list its files (--file_list), which is exactly what `snakemake upload` pushes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.plan.against_actual import newest_trial_plan, plan_section
from embedpipe.plan.timings import run_timings
from embedpipe.publish.card import build_card
from embedpipe.publish.dataset_folder import EmptyDatasetError, build_dataset_folder
from embedpipe.publish.disk_usage import RunFiles, disk_section, matrix_shape, measure
from embedpipe.publish.file_list import write_file_list
from embedpipe.publish.pca import NAME as PCA_NAME
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import out_of_space, remove_leftovers_of

log = logging.getLogger("parquet")


def main(argv: list[str] | None = None) -> int:
    # @<file>: arguments one a line (the rule's per-shard lists: past a command line's 128 KB at 1,000 shards)
    p = argparse.ArgumentParser(description=__doc__, fromfile_prefix_chars="@")
    p.add_argument("--staged", nargs="+", required=True, help="the staged <shard>.parquet files, in shard order")
    p.add_argument("--folder", required=True, help="the dataset folder to (re)build")
    p.add_argument("--metrics", required=True, help="validation/metrics.json")
    p.add_argument("--exclusions", default=None, help="discover's exclusions.json, counted in the card")
    p.add_argument("--dataset", required=True, help="the config's `dataset` section as JSON")
    p.add_argument("--load_name", required=True, help="what load_dataset() is given in the card's snippet")
    p.add_argument("--load_config", default=None, help="and its config (a model's folder in a repo of several)")
    p.add_argument("--file_list", required=True, help="JSON list of the folder's files, written last")
    p.add_argument("--pca", default=None, help="the run's pca.npz, published beside the shards")
    p.add_argument("--embeddings", nargs="*", default=[], help="the shard files (embeddings/<shard>.parquet), and "
                                                                "--errors theirs: counted in the card's Disk section")
    p.add_argument("--errors", nargs="*", default=[], help="the shards' <shard>.errors.parquet")
    p.add_argument("--merged", nargs="*", default=[], help="merge_all's files, counted where they exist")
    p.add_argument("--plan_for", default=None, help="this full run's results/<run>: the card's Plan against actual "
                                                    "section, where a trial beside it wrote a plan.json")
    p.add_argument("--extract_logs", default=None, help="this run's logs/<run> (its extract jobs' timings)")
    args = p.parse_args(argv)
    setup_logging()
    metrics = json.loads(Path(args.metrics).read_text())
    exclusions = json.loads(Path(args.exclusions).read_text()) if args.exclusions else None
    dataset = json.loads(args.dataset)
    folder = Path(args.folder)
    staged = [Path(f) for f in args.staged]
    run_files = RunFiles([Path(f) for f in args.embeddings], [Path(f) for f in args.errors], staged,
                         [Path(f) for f in args.merged])

    def card(published: list[Path]) -> str:
        usage = measure(run_files, published[0].parent)
        disk = disk_section(usage, *matrix_shape(staged))
        return build_card(published, metrics, dataset, args.load_name, exclusions, args.load_config, disk,
                          planned(usage))

    def planned(usage) -> str:
        """The newest trial's plan against this run's extract jobs and folders; "" without one."""
        if not args.plan_for or (plan := newest_trial_plan(Path(args.plan_for))) is None:
            return ""
        shards = [Path(f).name.removesuffix(".parquet") for f in args.embeddings]
        timings = run_timings(Path(args.plan_for), Path(args.extract_logs), shards)
        folders: dict[str, int] = {}
        for u in usage:
            folders[u.label] = folders.get(u.label, 0) + u.bytes
        return plan_section(plan, timings, folders)

    remove_leftovers_of(args.file_list)  # a killed run's; the folder's staging copies: build_dataset_folder
    try:
        files = build_dataset_folder(staged, folder, card, {PCA_NAME: Path(args.pca)} if args.pca else None)
        write_file_list(folder, files, Path(args.file_list))
    except EmptyDatasetError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        if (what := out_of_space(exc)) is None:
            raise
        log.error("%s. The staged shard files are untouched; free space and rerun: the parquet rule builds "
                  "the folder again from them.", what)
        return 1
    log.info("%s lists %d files", args.file_list, len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
