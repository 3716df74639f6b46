#!/usr/bin/env python
"""Join the run-wide tables (the metadata kind's lists, hf_rows.parquet) to every shard's keys, once:
joined/<shard>.parquet per manifest, which that shard's staged job reads instead of the whole tables."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from embedpipe.discover.scan import read_manifest
from embedpipe.publish.joined import write_joined
from embedpipe.publish.kinds import KINDS, build_joiner, kind
from embedpipe.publish.metadata import AmbiguousJoin
from embedpipe.publish.source_rows import WithSourceRows, read_source_rows
from embedpipe.runtime.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--manifests", nargs="+", required=True, help="discover's manifests/<shard>.txt")
    p.add_argument("--output_dir", required=True, help="writes <shard>.parquet here for each manifest")
    p.add_argument("--metadata", choices=list(KINDS), default="none", help="the metadata kind (metadata.kind)")
    for key in sorted({key for name in KINDS for key in kind(name).files}):
        p.add_argument(f"--{key}", help=f"metadata.{key}: a list the kind's join reads")
    p.add_argument("--hf_rows", help="discover's hf_rows.parquet: the source dataset's rows of each file")
    args = p.parse_args(argv)
    setup_logging()
    log = logging.getLogger("joined")
    if missing := [key for key in kind(args.metadata).files if not getattr(args, key)]:
        p.error(f"--metadata {args.metadata} needs {' and '.join(f'--{key}' for key in missing)}")
    start = time.perf_counter()
    joiner = build_joiner(args.metadata, vars(args))
    if args.hf_rows:
        joiner = WithSourceRows(joiner, *read_source_rows(Path(args.hf_rows)))
    log.info("read the run-wide tables in %.1f s", time.perf_counter() - start)
    for manifest in map(Path, args.manifests):
        try:
            rows = write_joined(joiner, read_manifest(manifest), Path(args.output_dir) / f"{manifest.stem}.parquet")
        except AmbiguousJoin as exc:
            log.error("shard %s: %s", manifest.stem, exc)
            return 1
        log.info("%s: %d keys joined", manifest.stem, rows)
    log.info("%d records and %d studies matched", joiner.matched_records, joiner.matched_studies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
