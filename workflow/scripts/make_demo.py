#!/usr/bin/env python
"""Generate the embedded demos: `data` (videos + MIMIC-IV-Echo CSVs), `model` (tiny V-JEPA 2),
`audio-data` (a VersaFace-shaped WAV tree), `audio-model` (tiny w2v-bert + codec + statistics),
`ecg-data` (MIMIC-IV-ECG-shaped WFDB + Philips XML), `ecg-model` (tiny ECGFounder and ECG-JEPA) or
`image-data` (a DeepEarth taxon tree of drawn photos; the model is `model`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from embedpipe.runtime.runinfo import setup_logging
from embedpipe_demo.audio import make_demo_audio, make_tiny_metis
from embedpipe_demo.ecg import make_demo_ecg, make_tiny_ecg_models
from embedpipe_demo.image import make_image_demo
from embedpipe_demo.video import make_demo_data, make_tiny_vjepa2

# command: (what it writes, the function; data makers take folders and per_folder, model makers do not)
DATA = {
    "data": ("videos under OUT/mp4 and the CSVs in OUT", make_demo_data),
    "audio-data": ("WAVs under OUT/<part>/ab/cd/<md5>.wav, one empty and one corrupt", make_demo_audio),
    "ecg-data": ("WFDB records under OUT/pNNNN/, Philips XML under OUT/philips/", make_demo_ecg),
    "image-data": ("DeepEarth-named photos under OUT/taxon_<id>/, one truncated", make_image_demo),
}
MODELS = {
    "model": ("a random-weight V-JEPA 2 saved with save_pretrained", make_tiny_vjepa2),
    "audio-model": ("tiny w2v-bert + semantic codec + statistics in OUT", make_tiny_metis),
    "ecg-model": ("OUT/ecgfounder.pth and OUT/ecg_jepa.pt, tiny and random", make_tiny_ecg_models),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    for name, (text, _) in {**DATA, **MODELS}.items():
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--out", required=True)
        cmd.add_argument("--seed", type=int, default=0)
        if name in DATA:
            cmd.add_argument("--folders", type=json.loads, required=True, help="JSON list (any name, even '-x')")
            cmd.add_argument("--per_folder", type=int, default=10)
        if name == "ecg-data":
            cmd.add_argument("--labels", type=Path, default=None, help="also a labels CSV (key, heart rate, fast)")
    args = p.parse_args(argv)
    setup_logging()
    if args.what in DATA:
        labels = {"labels": args.labels} if getattr(args, "labels", None) else {}
        DATA[args.what][1](Path(args.out), args.folders, args.per_folder, args.seed, **labels)
    else:
        MODELS[args.what][1](Path(args.out), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
