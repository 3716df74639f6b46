#!/usr/bin/env python
"""Scan the input once and write one manifest per shard (sorted keys, one per line).

A manifest is rewritten only when its content changes, so an unchanged rescan re-runs nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from embedpipe.discover import ShardSpec, discover_shards, keys_from_hf_dataset
from embedpipe.runinfo import setup_logging

log = logging.getLogger("discover")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--input_dir", required=True)
    p.add_argument("--manifest_dir", required=True)
    p.add_argument("--extensions", nargs="+", required=True)
    p.add_argument("--by", choices=["folder", "hash"], required=True)
    p.add_argument("--folders", nargs="*", default=[], help="shard folders (--by folder)")
    p.add_argument("--num_shards", type=int, default=1, help="number of shards (--by hash)")
    p.add_argument("--hf_dataset", default=None,
                   help="take the files from this Hugging Face dataset (load_from_disk folder or hub name)")
    p.add_argument("--hf_split", default="train")
    p.add_argument("--hf_column", default="ecg_paths", help="column of paths (str, list or list of lists)")
    args = p.parse_args(argv)
    setup_logging()
    spec = ShardSpec(args.by, tuple(args.folders), args.num_shards)
    keys = None
    if args.hf_dataset:
        keys = keys_from_hf_dataset(args.hf_dataset, args.hf_split, args.hf_column, args.input_dir)
        log.info("%d files listed by %s[%s]", len(keys), args.hf_dataset, args.hf_column)
    discover_shards(args.input_dir, args.extensions, spec, args.manifest_dir, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
