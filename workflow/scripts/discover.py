#!/usr/bin/env python
"""Scan the input once and write one manifest per shard (sorted keys, one per line).

A manifest is rewritten only when its content changes, so an unchanged rescan re-runs nothing.
What the scan left out is written to --exclusions (JSON) and summed up on stdout, one line a reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from embedpipe.discover.scan import DiscoverError, Exclusions, ShardSpec, discover_shards, files_from_hf_dataset
from embedpipe.discover.settings import HfDatasetOptions, ShardOptions
from embedpipe.publish.source_rows import write_source_rows
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import write_text_if_changed

log = logging.getLogger("discover")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--input_dir", required=True)
    p.add_argument("--manifest_dir")
    p.add_argument("--extensions", nargs="+")
    p.add_argument("--by", choices=["folder", "hash"])
    p.add_argument("--folders", nargs="*", default=[], help="shard folders (--by folder)")
    p.add_argument("--folders_file", default=None,
                   help="a JSON file listing the shard folders (any number, any name, even one that starts with '-')")
    p.add_argument("--all_folders", action="store_true",
                   help="the folders are every top-level folder: a file directly under input_dir is an error")
    p.add_argument("--exclusions", default=None, help="write what was left out, and why, to this JSON file")
    p.add_argument("--num_shards", type=int, default=1, help="number of shards (--by hash)")
    p.add_argument("--max_shards", type=int, default=ShardOptions.max_shards,
                   help="--by folder: group more folders than this into this many shards (0: never)")
    p.add_argument("--hf_dataset", default=None,
                   help="take the files from this Hugging Face dataset (load_from_disk folder or hub name)")
    p.add_argument("--hf_split", default=HfDatasetOptions.split, help="hf_dataset.split")
    p.add_argument("--hf_column", default=HfDatasetOptions.column,
                   help="hf_dataset.column: of paths (str, list or list of lists)")
    p.add_argument("--hf_rows_only", default=None, type=Path,
                   help="only write each listed file's --hf_dataset row indices to this Parquet file")
    p.add_argument("--limit", type=int, default=None, help="a trial run: the first N files of each shard")
    args = p.parse_args(argv)
    if args.hf_rows_only and not args.hf_dataset:
        p.error("--hf_rows_only needs --hf_dataset")
    if not args.hf_rows_only and not (args.manifest_dir and args.extensions and args.by):
        p.error("--manifest_dir, --extensions and --by are required")
    setup_logging()
    folders = json.loads(Path(args.folders_file).read_text(encoding="utf-8")) if args.folders_file else args.folders
    spec = ShardSpec(args.by, tuple(folders), args.num_shards, args.max_shards)
    keys = None
    if args.hf_dataset:
        rows, split = files_from_hf_dataset(args.hf_dataset, args.hf_split, args.hf_column, args.input_dir)
        keys = sorted(rows)
        log.info("%d files listed by %s[%s]", len(keys), args.hf_dataset, args.hf_column)
        if args.hf_rows_only:
            changed = write_source_rows(rows, split, args.hf_rows_only)
            log.info("%s: the rows of %d files (%s)", args.hf_rows_only, len(rows),
                     "rewritten" if changed else "unchanged")
            return 0
    exclusions = Exclusions()
    try:
        discover_shards(args.input_dir, args.extensions, spec, args.manifest_dir, keys,
                        all_folders=args.all_folders, exclusions=exclusions, limit=args.limit)
    except DiscoverError as exc:
        log.error("%s", exc)
        return 1
    if args.exclusions:
        write_text_if_changed(args.exclusions, json.dumps(exclusions.as_dict(), indent=1, ensure_ascii=False) + "\n")
    for line in exclusions.summary():
        print(f"discover: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
