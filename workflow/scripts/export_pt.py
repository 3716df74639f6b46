#!/usr/bin/env python
"""The DeepEarth extractor's output from one shard: one `.pt` per image, `{stem}_features.pt`.

    python workflow/scripts/export_pt.py --out_dir features/taxon_2650927 \
        results/deepearth/embeddings/taxon_2650927.parquet

Each file holds `features` ([4608, 1408] float16 for vitg-384 at 16 frames), `shape`, `dtype`,
`source_chunk` and `image_id`, as DeepEarth's loaders expect. Needs `tokens` in encoder.outputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from embedpipe.export import export_deepearth_pt
from embedpipe.runinfo import setup_logging

log = logging.getLogger("export_pt")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shard", help="one shard output (<shard>.parquet) of a vjepa2 image run with tokens")
    p.add_argument("--out_dir", required=True)
    args = p.parse_args(argv)
    setup_logging()
    n = export_deepearth_pt(Path(args.shard), Path(args.out_dir))
    log.info("%d .pt files -> %s", n, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
