"""The image half of bench/throughput.py: species photos (JPEG, 1024×768) → V-JEPA 2 vitg-384, tokens written.

End to end = JPEG files → decode workers → GPU resize → model (16 repeated frames) → `embedding` and
`tokens` ([8, 24, 24, 1408] float16, 12.4 MB a photo) in Parquet parts → the assembled shard file.
Model only = the same model and batch on a pre-made [B, 16, 3, 384, 384] tensor.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stages import decode_only, vjepa2_model_only, write_only

from embedpipe.discover.scan import scan_files
from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import run_extract
from embedpipe.extract.writer import ShardWriter
from embedpipe_demo.image import draw_specimen, encode_variant


def _write_photo(args: tuple[Path, int]) -> None:
    root, i = args
    data, ext = encode_variant(draw_specimen(np.random.default_rng(i), 1024, 768), "jpeg")
    path = root / "taxon_1" / f"gbif_{i}_taxon_1_bench_species_img_1{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_photos(root: Path, n: int) -> None:
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.map(_write_photo, [(root, i) for i in range(n)], chunksize=16)


def model_only(encoder: Encoder, n: int) -> float:
    return vjepa2_model_only(encoder, n, encoder.model.repeat)


def stage(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def run(args: Any, device: torch.device, workers: int, build_model) -> dict[str, Any]:
    outputs = args.outputs.split(",")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model_dir = build_model(args.model, tmp / "model")
        stage(f"model built in {time.perf_counter() - t0:.0f} s")
        photos = Path(args.videos) if args.videos else tmp / "photos"
        if len(scan_files(photos, [".jpg"]) if photos.is_dir() else []) != args.n:
            shutil.rmtree(photos, ignore_errors=True)
            make_photos(photos, args.n)
        keys = scan_files(photos, [".jpg"])
        stage(f"{len(keys)} photos ready")
        encoder = build_encoder("vjepa2", {
            "media": "image", "model": args.model, "path": str(model_dir), "device": str(device),
            "batch_size": args.batch_size, "precision": args.precision, "compile": args.compile,
            "image_frames": args.image_frames, "outputs": outputs})
        encoder.model.ensure_loaded(device)
        stage("model loaded")
        ref = model_only(encoder, min(args.n, 4 * args.batch_size))
        stage(f"model only: {ref:.1f} files/s")
        decode = decode_only(keys, photos, encoder, workers)
        stage(f"decode only: {decode:.1f} files/s")
        write = write_only(keys, photos, encoder, tmp, save_every=10**6)
        stage(f"write only: {write:.1f} files/s")
        writer = ShardWriter(tmp / "parts", encoder.output_fields(), encoder.fingerprint(), save_every=10**6,
                             sidecar=encoder.output.sidecar)
        start = time.perf_counter()
        run_extract(keys, photos, encoder, writer, shard="bench", device=device, num_workers=workers,
                    log_every=10**9)
        embedded = time.perf_counter() - start
        stage(f"embedded into parts: {len(keys) / embedded:.1f} files/s")
        writer.finalize(keys, tmp / "out.parquet", tmp / "out.errors.parquet", {})
        total = time.perf_counter() - start
        return {
            "precision": encoder.model.precision, "compile": args.compile, "image_frames": args.image_frames,
            "outputs": outputs, "photo": "JPEG 1024x768",
            "end_to_end_files_per_s": round(len(keys) / total, 2),
            "to_parts_files_per_s": round(len(keys) / embedded, 2),
            "model_only_files_per_s": round(ref, 2), "decode_only_files_per_s": round(decode, 2),
            "write_only_files_per_s": round(write, 2),
            "ratio": round(len(keys) / total / ref, 3),
            "ratio_to_parts": round(len(keys) / embedded / ref, 3),
            "output_mb_per_file": round(sum(f.stat().st_size for f in [tmp / "out.parquet", *tmp.glob("out.tokens/*")])
                                        / len(keys) / 1e6, 2),
        }
