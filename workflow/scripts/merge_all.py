#!/usr/bin/env python
"""Merge every shard's embeddings into `<model>_embeddings_all.{pt,npy,keys.txt}`, shard by shard."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

from embedpipe.atomic import OutputWriteError
from embedpipe.merge import merge_all
from embedpipe.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", nargs="+", required=True, help="shard embedding Parquet files, in order")
    p.add_argument("--pt", required=True, help="output {key: tensor[D]} .pt")
    p.add_argument("--npy", required=True, help="output float32 [N, D] .npy")
    p.add_argument("--keys", required=True, help="output key index, one key per line")
    args = p.parse_args(argv)
    setup_logging()
    log = logging.getLogger("merge_all")
    try:
        n = merge_all(args.shards, Path(args.pt), Path(args.npy), Path(args.keys))
    except OSError as exc:
        if not isinstance(exc, OutputWriteError) and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full disk or quota: one line saying which file and what to do, as extract says it.
        what = exc.strerror if isinstance(exc, OutputWriteError) else f"could not write {exc.filename}: {exc.strerror}"
        log.error("%s. The shard files are untouched; free space and rerun: merge_all starts again from them.",
                  what)
        return 1
    log.info("merged %d embeddings into %s", n, args.pt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
