#!/usr/bin/env python
"""What the decoder chains cost per file, on real files: the video reader (FFmpeg's frame count from
the container, then decord, or PyAV where decord lacks the codec or miscounts) against decord alone,
and the photo reader with its corrupt-scan check against Pillow alone.

The checks run once per file of a 525,000-file shard, in the decode workers: their cost is the
share of a worker's time they take, which this prints per file (best of --repeat runs, one core).

    python bench/decoder_chain.py                       # the shared fixtures
    python bench/decoder_chain.py --videos /data/clips --images /data/photos
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg")


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: libraries loaded, the file in the page cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def decord_alone(path: str, frames: int) -> None:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    reader.get_batch(np.linspace(0, len(reader) - 1, frames, dtype=int)).asnumpy()


def video_rows(files: list[Path], repeat: int) -> list[dict]:
    from embedpipe.readers.video import read_video
    from embedpipe.readers.video_pyav import probe_video

    rows = []
    for path in files:
        clip = read_video(str(path), 16)
        row = {"kind": "video", "file": path.name, "decoder": clip.decoder,
               "probe_ms": best_ms(lambda p=str(path): probe_video(p), repeat),
               "reader_ms": best_ms(lambda p=str(path): read_video(p, 16), repeat)}
        try:
            row["decord_alone_ms"] = best_ms(lambda p=str(path): decord_alone(p, 16), repeat)
        except Exception as exc:  # AV1: decord cannot read it at all
            row["decord_alone_ms"] = f"fails ({type(exc).__name__})"
        rows.append(row)
    return rows


def image_rows(files: list[Path], repeat: int) -> list[dict]:
    from embedpipe.readers import image

    rows = []
    for path in files:
        row: dict = {"kind": "image", "file": path.name}
        for label, min_side in (("full", 0), ("reduced", 292)):  # 292: the fast transform's short side at crop 256
            checked = best_ms(lambda p=str(path), m=min_side: image.read_image(p, m), repeat)
            check = image.check_jpeg_data
            image.check_jpeg_data = lambda data: None
            try:
                plain = best_ms(lambda p=str(path), m=min_side: image.read_image(p, m), repeat)
            finally:
                image.check_jpeg_data = check
            row |= {f"{label}_ms": checked, f"{label}_without_check_ms": plain}
        rows.append(row)
    return rows


def files_under(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and "broken" not in p.parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=FIXTURES / "video")
    parser.add_argument("--images", type=Path, default=FIXTURES / "image")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)  # one core, as a decode worker
    rows = video_rows(files_under(args.videos, VIDEO_EXTENSIONS), args.repeat)
    rows += image_rows(files_under(args.images, IMAGE_EXTENSIONS), args.repeat)
    rounded = [{k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    print(json.dumps({"bench": "decoder_chain", "repeat": args.repeat, "rows": rounded}, indent=1))


if __name__ == "__main__":
    main()
