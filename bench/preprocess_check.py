#!/usr/bin/env python
"""The fast transform on the GPU against the same transform on the CPU, on real decoded H.264 clips
of mixed sizes (`encoder.transform: fast` either way; the official transform is OpenCV on the CPU only).

    python bench/preprocess_check.py --device cuda --n 64

Prints the largest absolute difference of the model input (normalised pixels, range about ±2.6) and
the time of each path. The two run the same float32 operations; they differ by the devices'
interpolation rounding only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.encoders.vjepa2.model import Geometry, VJEPA2Model
from embedpipe.encoders.vjepa2.reader import VideoReader
from embedpipe.readers.video import read_video_frames
from embedpipe_demo.video import DemoVideo, render_frames, write_h264

SIZES = [(240, 320), (480, 640), (600, 800), (112, 112)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--crop", type=int, default=256)
    args = p.parse_args()
    device = torch.device(args.device)
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            h, w = SIZES[i % len(SIZES)]
            video = DemoVideo(f"v{i}.mp4", 0, 0, f"v{i}", 32, h, w)
            write_h264(Path(tmp) / video.key, render_frames(video, i))
            clips.append(torch.from_numpy(read_video_frames(str(Path(tmp) / video.key), 16)))
    start = time.perf_counter()
    cpu = torch.stack([transforms.preprocess_clip(c, args.crop) for c in clips])
    cpu_s = time.perf_counter() - start
    # Only the model's input is made: no network is loaded (width, source and batch size do not matter).
    reader = VideoReader(16, args.crop, "fast", preprocess_on_device=True)
    model = VJEPA2Model("unused", None, Geometry(args.crop, 0, 2, 16, 16), (), args.n, "fp32", False, reader)
    model.device = device
    batch = Batch(clips).pin_memory() if device.type == "cuda" else Batch(clips)
    model.model_input(batch)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    dev = model.model_input(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dev_s = time.perf_counter() - start
    diff = (dev.cpu() - cpu).abs()
    print(json.dumps({
        "clips": args.n, "sizes": SIZES, "crop": args.crop, "device": str(device),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "cpu_threads": torch.get_num_threads(),
        "cpu_ms_per_clip": round(1000 * cpu_s / args.n, 2), "device_ms_per_clip": round(1000 * dev_s / args.n, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
