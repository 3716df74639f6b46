#!/usr/bin/env python
"""Write one of an encoder family's exports (the formats of the scripts embedpipe replaces):

    python workflow/scripts/export.py --target export_json --out semantic_audio_embeddings.json \
        results/versaface/embeddings/*.parquet

`--target` is the `snakemake <target>` name; each family lists its own (encoders/<family>/__init__.py).
The output appears complete or not at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.encoders import all_exports
from embedpipe.runtime.runinfo import setup_logging
from embedpipe.store.atomic import remove_leftovers_of
from embedpipe.store.export_names import ExportError

log = logging.getLogger("export")


def main(argv: list[str] | None = None, target: str | None = None, doc: str | None = None) -> int:
    exports = {e.target: e for _, e in all_exports()}
    p = argparse.ArgumentParser(description=doc or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", nargs="+", help="shard outputs (<shard>.parquet); one for a per-shard export")
    p.add_argument("--target", default=target, required=target is None, choices=sorted(exports))
    p.add_argument("--out", "--out_dir", dest="out", required=True, help="the file or folder to write")
    p.add_argument("--column", default=None, help="the column to export (default: the export's own)")
    args = p.parse_args(argv)
    setup_logging()
    export = exports[args.target]
    if export.per_shard and len(args.shards) != 1:
        p.error(f"{args.target} writes one shard's folder: give one shard file, not {len(args.shards)}")
    remove_leftovers_of(args.out)  # a file's temporary or a folder's staging copy, from a killed run
    try:
        n = export.write([Path(s) for s in args.shards], Path(args.out), args.column)
    except ExportError as exc:  # a key the export cannot place: one line naming it, not a traceback
        log.error("%s: %s", args.target, exc)
        return 1
    log.info("%s: %d files -> %s", args.target, n, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
