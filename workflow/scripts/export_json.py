#!/usr/bin/env python
"""The Metis audio script's JSON from the shard outputs: `{relative_path: [[8 floats], ...], ...}`.

    python workflow/scripts/export_json.py --out semantic_audio_embeddings.json results/versaface/embeddings/*.parquet

Streamed row by row (the document for 378,686 files is ~4 GB and is never held in memory), written
to a temporary file and renamed when complete. Files that failed are in the errors tables, not here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.export import export_latents_json
from embedpipe.runinfo import setup_logging

log = logging.getLogger("export_json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", nargs="+", help="shard outputs (<shard>.parquet), in the order wanted")
    p.add_argument("--out", required=True, help="the JSON file")
    p.add_argument("--column", default="latents", help="per-frame column to export (default: latents)")
    args = p.parse_args(argv)
    setup_logging()
    n = export_latents_json([Path(s) for s in args.shards], Path(args.out), args.column)
    log.info("%d files -> %s (%.1f MB)", n, args.out, Path(args.out).stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
