#!/usr/bin/env python
"""Throughput of one extract job: end-to-end files/s against the model-only forward pass.

End to end = real video files on disk → decode workers → model → Parquet parts → shard output.
Model only = the same model, the same batch size, on pre-made tensors of the same shape.
Both run in this process, on this machine, one after the other; the ratio is what counts.

    python bench/throughput.py --encoder vjepa2 --model tiny --device cpu --n 64
    python bench/throughput.py --encoder vjepa2 --model vitl --device cuda --n 2048 --batch_size 256
    python bench/throughput.py --encoder metis --model tiny --device cpu --n 64 --batch_size 16
    python bench/throughput.py --encoder metis --model w2v-bert-2.0 --device cuda --n 4096 --batch_size 128
    python bench/throughput.py --encoder ecgfounder --model ecgfounder --device cuda --n 8192 --batch_size 256
    python bench/throughput.py --encoder images --model vitg-384 --device cuda --n 1024 --batch_size 16

metis also reports one-at-a-time files/s (batch size 1, the Metis audio script's way) on the same model.

The model has the real architecture of the preset with random weights: the FLOPs are real.
"""

# ruff: noqa: E402 -- the environment is set before torch loads
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as workflow/scripts/extract.py sets it for a job

import argparse
import json
import multiprocessing
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import audio
import ecg
import images
import torch
from stages import bound_figures, decode_only, vjepa2_model_only, write_only

from embedpipe.discover.scan import scan_files
from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.encoders.vjepa2.presets import VJEPA2_PRESETS
from embedpipe.extract.loop import auto_workers, run_extract
from embedpipe.extract.writer import ShardWriter
from embedpipe_demo.video import DemoVideo, render_frames, write_h264

ARCH = {  # transformers VJEPA2Config fields of each preset's encoder
    "vitl": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "vith": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16},
    "vitg": {"hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22, "mlp_ratio": 48 / 11},
    "vitg-384": {"hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22, "mlp_ratio": 48 / 11},
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2.0},
}


def build_model(model: str, out: Path) -> Path:
    from transformers import VJEPA2Config, VJEPA2Model

    crop = VJEPA2_PRESETS[model].crop if model in VJEPA2_PRESETS else 64
    torch.manual_seed(0)
    cfg = VJEPA2Config(crop_size=crop, frames_per_clip=16, pred_num_hidden_layers=1, num_pooler_layers=1,
                       **ARCH[model])
    VJEPA2Model(cfg).save_pretrained(out)
    return out


def _make_video(args: tuple[Path, int, int, int, int]) -> None:
    root, i, height, width, frames = args
    video = DemoVideo(f"bench/v{i:05d}.mp4", 0, 0, f"v{i}", frames, height, width)
    write_h264(root / video.key, render_frames(video, i))


def make_videos(root: Path, n: int, height: int, width: int, frames: int) -> None:
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.map(_make_video, [(root, i, height, width, frames) for i in range(n)], chunksize=8)


def model_only(encoder: Encoder, n: int) -> float:
    return vjepa2_model_only(encoder, n, encoder.reader.num_frames)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="vjepa2", choices=["vjepa2", "metis", "ecgfounder", "ecg_jepa", "images"])
    p.add_argument("--model", default="tiny", choices=sorted({*ARCH, *audio.SIZES, *ecg.SIZES}))
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, default=64, help="videos")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--num_workers", default="auto", help="decode workers; auto = CPUs - 1")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "bf16-autocast", "fp32"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--videos", default=None, help="folder for the generated files, reused if it holds them")
    p.add_argument("--seconds", type=float, default=5.0, help="metis: clip length")
    p.add_argument("--single_n", type=int, default=64, help="metis: files for the one-at-a-time run")
    p.add_argument("--size", default="240x320", help="video HxW")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--image_frames", type=int, default=16, help="images: frames per photo (16 or 2)")
    p.add_argument("--outputs", default="mean,tokens", help="images: columns written, comma-separated")
    p.add_argument("--tmp", default=None, help="scratch folder (images write 12 MB a photo: put it on a big disk)")
    args = p.parse_args()
    device = torch.device(args.device)
    workers = auto_workers() if args.num_workers == "auto" else int(args.num_workers)
    if args.encoder == "metis":
        report(args, device, workers, audio.run(args, device, workers))
        return
    if args.encoder == "images":
        report(args, device, workers, images.run(args, device, workers, build_model))
        return
    if args.encoder in ("ecgfounder", "ecg_jepa"):
        report(args, device, workers, ecg.run(args, device, workers))
        return
    h, w = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_model(args.model, tmp / "model")
        videos = Path(args.videos) if args.videos else tmp / "videos"
        if len(scan_files(videos, [".mp4"]) if videos.is_dir() else []) != args.n:
            shutil.rmtree(videos, ignore_errors=True)
            make_videos(videos, args.n, h, w, args.frames)
        keys = scan_files(videos, [".mp4"])
        encoder = build_encoder("vjepa2", {"model": args.model, "path": str(model_dir), "batch_size": args.batch_size,
                                           "device": args.device, "precision": args.precision,
                                           "compile": args.compile})
        writer = ShardWriter(tmp / "parts", encoder.output_fields(), encoder.fingerprint(), save_every=1000)
        encoder.model.ensure_loaded(device)
        ref = model_only(encoder, min(args.n, 4 * args.batch_size))
        decode = decode_only(keys, videos, encoder, workers)
        write = write_only(keys, videos, encoder, tmp, save_every=1000)
        start = time.perf_counter()
        run_extract(keys, videos, encoder, writer, shard="bench", device=device,
                    num_workers=workers, log_every=10**9)
        writer.finalize(keys, tmp / "out.parquet", tmp / "out.errors.parquet", {})
        e2e = len(keys) / (time.perf_counter() - start)
    report(args, device, workers, {
        "precision": encoder.model.precision, "compile": args.compile, "video": f"{args.size}x{args.frames}f",
        "end_to_end_files_per_s": round(e2e, 2), "model_only_files_per_s": round(ref, 2),
        "ratio": round(e2e / ref, 3), "decode_only_files_per_s": round(decode, 2),
        "write_only_files_per_s": round(write, 2),
    })


def report(args: argparse.Namespace, device: torch.device, workers: int, figures: dict) -> None:
    result = {
        "encoder": args.encoder, "model": args.model, "device": str(device), "n": args.n,
        "batch_size": args.batch_size, "num_workers": workers, **figures, **bound_figures(figures),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_workers_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
