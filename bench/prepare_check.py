#!/usr/bin/env python
"""Per-file CPU cost of an encoder's `prepare` (what one decode worker does), with BLAS limited or not.

    python bench/prepare_check.py --encoder metis --files DIR
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import threadpoolctl

from embedpipe.discover.scan import scan_files
from embedpipe.encoders import build_encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="metis", choices=["metis"])
    p.add_argument("--files", required=True, help="folder of audio files")
    p.add_argument("--n", type=int, default=64)
    args = p.parse_args()
    import audio  # bench/audio.py

    with tempfile.TemporaryDirectory() as tmp:
        model = audio.build_metis("tiny", Path(tmp) / "m")
        encoder = build_encoder("metis", {"path": str(model),
                                          "codec_path": str(model / "semantic_codec" / "model.safetensors"),
                                          "stats_path": str(model / "wav2vec2bert_stats.pt"), "device": "cpu"})
        reader = encoder.reader
        root = Path(args.files)
        keys = [k for k in scan_files(root, [".wav", ".flac", ".mp3", ".ogg"]) if "broken" not in k][: args.n]
        for label, limit in (("BLAS threads unlimited", None), ("BLAS threads 1", 1)):
            with threadpoolctl.threadpool_limits(limit):
                reader.prepare(str(root / keys[0]))
                start = time.perf_counter()
                for k in keys:
                    reader.prepare(str(root / k))
                print(f"{label}: {(time.perf_counter() - start) / len(keys) * 1000:.2f} ms per file")


if __name__ == "__main__":
    main()
