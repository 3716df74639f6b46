#!/usr/bin/env python
"""The Metis audio script's JSON from the shard outputs: `{relative_path: [[8 floats], ...], ...}`.

    python workflow/scripts/export_json.py --out semantic_audio_embeddings.json results/versaface/embeddings/*.parquet

Streamed row by row (the document for 378,686 files is ~4 GB and is never held in memory), written
to a temporary file and renamed when complete. Files that failed are in the errors tables, not here.
"""

import sys

from export import main  # workflow/scripts/export.py, beside this file

if __name__ == "__main__":
    sys.exit(main(target='export_json', doc=__doc__))
