#!/usr/bin/env python
"""The ECGFounder script's output from the shard outputs: one JSON per ECG, named after the file.

    python workflow/scripts/export_ecg_json.py --out_dir ecgfounder_embeddings results/mimic-iv-ecg/embeddings/*.parquet

Each JSON is `{"embedding": [[...]], "shape": [T, C], "description": ..., "modality": "ecg"}` with only
the recording's own frames. The folder is written beside the target and renamed into place.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.export import export_ecgfounder_json
from embedpipe.runinfo import setup_logging

log = logging.getLogger("export_ecg_json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", nargs="+", help="shard outputs (<shard>.parquet) of an ecgfounder run")
    p.add_argument("--out_dir", required=True)
    args = p.parse_args(argv)
    setup_logging()
    n = export_ecgfounder_json([Path(s) for s in args.shards], Path(args.out_dir))
    log.info("%d JSON files -> %s", n, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
