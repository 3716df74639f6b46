#!/usr/bin/env python
"""Scan the input once and write one manifest per shard (sorted keys, one per line).

A manifest is rewritten only when its content changes, so an unchanged rescan re-runs nothing.
"""

from __future__ import annotations

import argparse
import sys

from embedpipe.discover import ShardSpec, discover_shards
from embedpipe.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--input_dir", required=True)
    p.add_argument("--manifest_dir", required=True)
    p.add_argument("--extensions", nargs="+", required=True)
    p.add_argument("--by", choices=["folder", "hash"], required=True)
    p.add_argument("--folders", nargs="*", default=[], help="shard folders (--by folder)")
    p.add_argument("--num_shards", type=int, default=1, help="number of shards (--by hash)")
    args = p.parse_args(argv)
    setup_logging()
    spec = ShardSpec(args.by, tuple(args.folders), args.num_shards)
    discover_shards(args.input_dir, args.extensions, spec, args.manifest_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
