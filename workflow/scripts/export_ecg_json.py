#!/usr/bin/env python
"""The ECGFounder script's output from the shard outputs: one JSON per ECG, named after the file.

    python workflow/scripts/export_ecg_json.py --out_dir ecgfounder_embeddings results/mimic-iv-ecg/embeddings/*.parquet

Each JSON is `{"embedding": [[...]], "shape": [T, C], "description": ..., "modality": "ecg"}` with only
the recording's own frames. The folder is written beside the target and renamed into place.
"""

import sys

from export import main  # workflow/scripts/export.py, beside this file

if __name__ == "__main__":
    sys.exit(main(target='export_ecg_json', doc=__doc__))
