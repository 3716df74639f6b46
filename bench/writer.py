#!/usr/bin/env python
"""The writer's ceiling at a V-JEPA 2 preset's real output sizes, without running the model.

Random rows of the job's own schema (the preset's embedding width, token grid, sidecar columns) go
through the job's RowSink → ShardWriter → shard file, as `write_only` in bench/stages.py does with
a real batch. Beside it, the disk's own rate for the same bytes written and fsync'd in part-sized
files, in the same folder: the writer can be no faster than that.

    python bench/writer.py --media image --model vitg-384 --image_frames 16 --rows 256 --dir /scratch/me
    python bench/writer.py --media image --model vitg-384 --image_frames 2 --rows 1024
    python bench/writer.py --media video --model vitl --outputs mean --rows 100000 --batch_size 256

Point --dir at the filesystem the job writes to: on a cluster that is the number to know (40 photos/s
of 16-frame vitg-384 tokens is 520 MB/s of synced writes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from stages import BatchCopies

from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.encoders.vjepa2.presets import VJEPA2_PRESETS
from embedpipe.extract.writer import PART_BYTES


def numpy_shape(typ: pa.DataType) -> tuple[tuple[int, ...], np.dtype]:
    """The per-row array shape and dtype of a nested fixed-size list column."""
    shape: list[int] = []
    while pa.types.is_fixed_size_list(typ):
        shape.append(typ.list_size)
        typ = typ.value_type
    return tuple(shape), typ.to_pandas_dtype()


def random_batch(encoder: Encoder, batch_size: int, seed: int = 0) -> BatchCopies:
    """A batch of random rows in the encoder's output schema (random: zeros would compress)."""
    rng = np.random.default_rng(seed)
    facts = {f.name for f in encoder.reader.fact_fields()}
    outputs = {}
    for f in encoder.output_fields():
        if f.name not in facts:
            shape, dtype = numpy_shape(f.type)
            outputs[f.name] = rng.standard_normal((batch_size, *shape), dtype=np.float32).astype(dtype)
    keys = [f"row{i:06d}" for i in range(batch_size)]
    return BatchCopies(keys, [dict.fromkeys(facts) for _ in keys], outputs)


def synced_disk_rate(folder: Path, batch: BatchCopies, copies: int) -> float:
    """MB/s of the same bytes written raw and fsync'd, one file per part's worth."""
    arrays = list(batch.outputs.values())
    per_copy = batch.nbytes
    copies_per_file = max(1, PART_BYTES // per_copy)
    start = time.perf_counter()
    for first in range(0, copies, copies_per_file):
        path = folder / f"raw-{first}.bin"
        with open(path, "wb") as f:
            for _ in range(min(copies_per_file, copies - first)):
                for a in arrays:
                    f.write(memoryview(a).cast("B"))
            f.flush()
            os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    for path in folder.glob("raw-*.bin"):
        path.unlink()
    return copies * per_copy / elapsed / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--media", default="image", choices=["image", "video"])
    p.add_argument("--model", default="vitg-384", choices=sorted(VJEPA2_PRESETS))
    p.add_argument("--image_frames", type=int, default=16)
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--outputs", default="mean,tokens", help="columns written, comma-separated")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--save_every", type=int, default=10_000)
    p.add_argument("--dir", default=None, help="folder to write in (default: the system's temp folder)")
    args = p.parse_args()
    options = {"model": args.model, "device": "cpu", "batch_size": args.batch_size, "num_frames": args.num_frames,
               "outputs": args.outputs.split(",")}
    if args.media == "image":
        options |= {"media": "image", "image_frames": args.image_frames}
    encoder = build_encoder("vjepa2", options)  # the schema only: the weights are never loaded
    batch = random_batch(encoder, args.batch_size)
    copies = -(-args.rows // args.batch_size)
    mb_per_row = batch.nbytes / args.batch_size / 1e6
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        batch.write(1, encoder, tmp, args.save_every)  # warm-up
        rows_per_s = batch.write(copies, encoder, tmp, args.save_every)
        disk = synced_disk_rate(tmp, batch, copies)
    print(json.dumps({
        "media": args.media, "model": args.model, "outputs": args.outputs.split(","),
        "frames": args.image_frames if args.media == "image" else args.num_frames,
        "rows": copies * args.batch_size, "batch_size": args.batch_size, "mb_per_row": round(mb_per_row, 3),
        "writer_rows_per_s": round(rows_per_s, 2), "writer_mb_per_s": round(rows_per_s * mb_per_row, 1),
        "disk_synced_mb_per_s": round(disk, 1), "writer_over_disk": round(rows_per_s * mb_per_row / disk, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "folder": str(Path(args.dir or tempfile.gettempdir()).resolve()),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
    }, indent=2))


if __name__ == "__main__":
    main()
