#!/usr/bin/env python
"""Generate the embedded demos: `data` (videos + MIMIC-IV-Echo CSVs), `model` (tiny V-JEPA 2),
`audio-data` (a VersaFace-shaped WAV tree), `audio-model` (tiny w2v-bert + codec + statistics),
`ecg-data` (MIMIC-IV-ECG-shaped WFDB + Philips XML) or `ecg-model` (tiny ECGFounder and ECG-JEPA)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embedpipe.demo import make_demo_data, make_tiny_vjepa2
from embedpipe.demo_audio import make_demo_audio, make_tiny_metis
from embedpipe.demo_ecg import make_demo_ecg, make_tiny_ecg_models
from embedpipe.runinfo import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data", help="videos under OUT/mp4 and the CSVs in OUT")
    d.add_argument("--out", required=True)
    d.add_argument("--folders", nargs="+", required=True)
    d.add_argument("--per_folder", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("model", help="a random-weight V-JEPA 2 saved with save_pretrained")
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("audio-data", help="WAVs under OUT/<part>/ab/cd/<md5>.wav, one empty and one corrupt")
    a.add_argument("--out", required=True)
    a.add_argument("--folders", nargs="+", required=True)
    a.add_argument("--per_folder", type=int, default=10)
    a.add_argument("--seed", type=int, default=0)
    am = sub.add_parser("audio-model", help="tiny w2v-bert + semantic codec + statistics in OUT")
    am.add_argument("--out", required=True)
    am.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("ecg-data", help="WFDB records under OUT/pNNNN/, Philips XML under OUT/philips/")
    e.add_argument("--out", required=True)
    e.add_argument("--folders", nargs="+", required=True)
    e.add_argument("--per_folder", type=int, default=10)
    e.add_argument("--seed", type=int, default=0)
    em = sub.add_parser("ecg-model", help="OUT/ecgfounder.pth and OUT/ecg_jepa.pt, tiny and random")
    em.add_argument("--out", required=True)
    em.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    setup_logging()
    if args.what == "data":
        make_demo_data(Path(args.out), args.folders, args.per_folder, args.seed)
    elif args.what == "model":
        make_tiny_vjepa2(Path(args.out), args.seed)
    elif args.what == "audio-data":
        make_demo_audio(Path(args.out), args.folders, args.per_folder, args.seed)
    elif args.what == "audio-model":
        make_tiny_metis(Path(args.out), args.seed)
    elif args.what == "ecg-data":
        make_demo_ecg(Path(args.out), args.folders, args.per_folder, args.seed)
    else:
        make_tiny_ecg_models(Path(args.out), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
