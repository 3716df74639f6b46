#!/usr/bin/env python
"""Merge every shard's embeddings into `<model>_embeddings_all.pt`, `.npy` + `.keys.txt`, or both (what
merge.formats lists), shard by shard; or, with --folder_pt, write one shard's `{key: tensor}` .pt (the
EchoJEPA script's per-folder file)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import out_of_space
from embedpipe.store.merge import merge_all, shard_pt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", nargs="+", required=True, help="shard embedding Parquet files, in order")
    p.add_argument("--pt", help="output {key: tensor[D]} .pt (needed with --folder_pt)")
    p.add_argument("--npy", help="output float32 [N, D] .npy (merge; with --keys)")
    p.add_argument("--keys", help="output key index, one key per line (merge; with --npy)")
    p.add_argument("--remove", nargs="*", default=[], help="merged files no longer asked for (merge.formats): "
                                                            "removed, so none is left stale beside the new ones")
    p.add_argument("--folder_pt", action="store_true", help="one shard's .pt only (no .npy, no key index)")
    p.add_argument("--strip_prefix", default=None, help="--folder_pt: drop this from every key (e.g. 'p10/')")
    args = p.parse_args(argv)
    if args.folder_pt and len(args.shards) != 1:
        p.error("--folder_pt takes exactly one shard")
    if args.folder_pt and not args.pt:
        p.error("--folder_pt writes a .pt: give --pt")
    if not args.folder_pt and bool(args.npy) != bool(args.keys):
        p.error("--npy and --keys go together: the matrix and its row index")
    if not args.folder_pt and not (args.pt or args.npy):
        p.error("merging needs --pt, or --npy with --keys, or all three")
    setup_logging()
    log = logging.getLogger("merge_all")
    for stale in map(Path, args.remove):
        if stale.exists():
            stale.unlink()
            log.info("removed %s: merge.formats no longer asks for it", stale)
    try:
        if args.folder_pt:
            n = shard_pt(args.shards[0], Path(args.pt), args.strip_prefix)
        else:
            n = merge_all(args.shards, *(Path(a) if a else None for a in (args.pt, args.npy, args.keys)))
    except OSError as exc:
        # A full disk or quota: one line saying which file and what to do, as extract says it.
        if (what := out_of_space(exc)) is None:
            raise
        log.error("%s. The shard files are untouched; free space and rerun: %s starts again from them.", what,
                  "the export" if args.folder_pt else "merge_all")
        return 1
    except ValueError as exc:  # duplicate keys, widths that differ, keys outside the folder
        log.error("%s", exc)
        return 1
    log.info("wrote %d embeddings into %s", n, ", ".join(a for a in (args.pt, args.npy, args.keys) if a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
