#!/usr/bin/env python
"""DICOM echo cines: files/s decoding only the sampled frames (embedpipe's reader) against pydicom's
whole `pixel_array` (what a script that reads the DICOM and then picks frames does), on the same files.

MIMIC-IV-Echo is 525,000 DICOMs, most of them JPEG Baseline YBR cines of 40–100 frames; at 16
sampled frames per clip the decode is what a 16-CPU node can keep a GPU fed with, so decoding the
other frames is pure waste. Inputs are generated (each frame its own JPEG item, as ultrasound
scanners write them; RLE as a second codec), or any folder of .dcm files with --dicoms.

    python bench/dicom_decode.py --n 24 --frames 64 --rows 480 --cols 640
    python bench/dicom_decode.py --dicoms /data/mimic-iv-echo/files/p10 --n 200
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np


def jpeg_cine(path: Path, frames: np.ndarray, fps: float) -> None:
    """A US Multi-frame file of JPEG Baseline frames (4:2:0, so YBR_FULL_422), one fragment per frame."""
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    items = []
    for img in frames:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90, subsampling=2)
        items.append(buf.getvalue())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = frames.shape[1], frames.shape[2], len(frames), 1000 / fps
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate(items)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def make_inputs(folder: Path, n: int, frames: int, rows: int, cols: int, codec: str) -> list[Path]:
    from embedpipe_demo.dicom import write_dicom_cine
    from embedpipe_demo.video import DemoVideo, render_frames

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{codec}_{i:04d}.dcm"
        if not path.exists():
            pixels = render_frames(DemoVideo(path.name, 0, 0, "", frames, rows, cols), seed=i)
            if codec == "jpeg":
                jpeg_cine(path, pixels, 30.0)
            else:
                write_dicom_cine(path, pixels, 30.0, compressed=True, key=path.name)
        paths.append(path)
    return paths


def rate(paths: list[Path], decode) -> float:
    start = time.perf_counter()
    for path in paths:
        decode(str(path))
    return len(paths) / (time.perf_counter() - start)


def whole_pixel_array(path: str) -> np.ndarray:
    import pydicom

    return pydicom.dcmread(path).pixel_array  # every frame, YBR converted to RGB (pydicom's default)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dicoms", type=Path, help="a folder of .dcm files to read instead of generated ones")
    p.add_argument("--dir", type=Path, default=Path("/tmp/embedpipe-bench-dicom"),
                   help="generated files, in a subfolder per --frames/--rows/--cols")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--frames", type=int, default=64, help="frames per generated cine")
    p.add_argument("--rows", type=int, default=480)
    p.add_argument("--cols", type=int, default=640)
    p.add_argument("--num_frames", type=int, default=16, help="frames sampled per clip (V-JEPA 2: 16)")
    args = p.parse_args()

    from embedpipe.readers.dicom_video import read_dicom_video

    if args.dicoms:
        sets = {"given": sorted(args.dicoms.rglob("*.dcm"))[: args.n]}
    else:
        # Files are reused across runs by name: a folder per size keeps a run from timing another's files.
        folder = args.dir / f"{args.frames}f_{args.rows}x{args.cols}"
        sets = {codec: make_inputs(folder, args.n, args.frames, args.rows, args.cols, codec)
                for codec in ("jpeg", "rle")}
    result: dict = {"bench": "dicom_decode", "host": platform.node(), "num_frames": args.num_frames,
                    "generated": None if args.dicoms else {"frames": args.frames, "rows": args.rows, "cols": args.cols}}
    for name, paths in sets.items():
        whole_pixel_array(str(paths[0]))  # imports and plugin discovery outside the timing
        read_dicom_video(str(paths[0]), args.num_frames)
        sampled = rate(paths, lambda path: read_dicom_video(path, args.num_frames))
        whole = rate(paths, whole_pixel_array)
        result[name] = {"files": len(paths), "sampled_frames_files_per_s": round(sampled, 2),
                        "whole_pixel_array_files_per_s": round(whole, 2), "speedup": round(sampled / whole, 2)}
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
