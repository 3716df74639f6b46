#!/usr/bin/env python
"""The DeepEarth extractor's output from one shard: one `.pt` per image, `{stem}_features.pt`.

    python workflow/scripts/export_pt.py --out_dir features/taxon_2650927 \
        results/deepearth/embeddings/taxon_2650927.parquet

Each file holds `features` ([4608, 1408] float16 for vitg-384 at 16 frames), `shape`, `dtype`,
`source_chunk` and `image_id`, as DeepEarth's loaders expect. Needs `tokens` in encoder.outputs.
"""

import sys

from export import main  # workflow/scripts/export.py, beside this file

if __name__ == "__main__":
    sys.exit(main(target='export_pt', doc=__doc__))
