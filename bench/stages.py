"""The stages of an extract job timed apart, for the benches: decoding alone, writing alone, and the
device sync. With model-only (each bench's own), they are the three ceilings of an end-to-end run."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import file_loader, plan_blocks
from embedpipe.extract.sink import RowSink
from embedpipe.extract.writer import ShardWriter


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def vjepa2_model_only(encoder: Encoder, n: int, frames: int) -> float:
    """The ceiling: V-JEPA 2's forward pass on a batch of `frames`-frame clips already on the device,
    already preprocessed (so the fast path does not resize it again). Files/s."""
    model = encoder.model
    x = torch.randn(encoder.batch_size, frames, 3, model.crop, model.crop, device=model.device)
    batch = Batch(list(x))
    on_device, model.preprocess_on_device = model.preprocess_on_device, False
    try:
        model.encode(batch)  # warm-up (and compilation)
        model.encode(batch)
        steps = max(1, n // encoder.batch_size)
        sync(model.device)
        start = time.perf_counter()
        for _ in range(steps):
            model.encode(batch)
        sync(model.device)
    finally:
        model.preprocess_on_device = on_device
    return steps * encoder.batch_size / (time.perf_counter() - start)


def decode_only(keys: list[str], root: Path, encoder: Encoder, workers: int) -> float:
    """Files/s of the decode workers alone: the same ordering, blocks, loader and workers as run_extract,
    with every chunk dropped instead of encoded. The other ceiling beside model-only: an end-to-end run
    can be no faster than the slower of the two."""
    start = time.perf_counter()
    blocks = plan_blocks(encoder.reader.order(keys, root), set(), encoder.batch_size)
    seen = 0
    for chunk in file_loader(blocks, root, encoder.reader, workers):
        seen += len(chunk.keys) + len(chunk.errors)
    if seen != len(keys):
        raise RuntimeError(f"decode-only saw {seen} of {len(keys)} files")
    return len(keys) / (time.perf_counter() - start)


def write_only(keys: list[str], root: Path, encoder: Encoder, out: Path, save_every: int) -> float:
    """Files/s of the writer alone: the first block's files, decoded and encoded once (untimed), are
    written again and again under new keys until there are as many rows as `keys`, through the job's
    RowSink and a ShardWriter set as the job's (sidecar columns, part size), then assembled into a
    shard file. Parquet encoding, safetensors, fsync and the disk are what it measures."""
    block = plan_blocks(encoder.reader.order(keys, root), set(), encoder.batch_size)[0]
    chunks = [c for c in file_loader([block], root, encoder.reader, 0) if c.keys]
    if not chunks:
        raise RuntimeError("write-only: the first block's files all failed to decode")
    batch = BatchCopies([k for c in chunks for k in c.keys], [f for c in chunks for f in c.facts],
                        encoder.model.encode(Batch.concat([c.batch for c in chunks])))
    batch.write(1, encoder, out, save_every)  # a warm-up: first-use imports and allocations
    return batch.write(math.ceil(len(keys) / len(batch.keys)), encoder, out, save_every)


@dataclass
class BatchCopies:
    """One encoded batch, written as many times as asked under new keys."""

    keys: list[str]
    facts: list[dict[str, Any]]
    outputs: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.outputs.values())

    def write(self, copies: int, encoder: Encoder, out: Path, save_every: int) -> float:
        """Rows/s from the first row queued to the shard file assembled."""
        start = time.perf_counter()
        writer = ShardWriter(out / "write-only-parts", encoder.output_fields(), encoder.fingerprint(),
                             save_every=save_every, sidecar=encoder.output.sidecar)
        sink = RowSink(writer, [f.name for f in encoder.reader.fact_fields()])
        written: list[str] = []
        for copy in range(copies):
            copy_keys = [f"write-only-{copy}/{k}" for k in self.keys]
            sink.add_facts(copy_keys, self.facts)
            sink.rows(copy_keys, PendingOutput(self.outputs))
            sink.block_done()
            written += copy_keys
        sink.close()
        writer.finalize(written, out / "write-only.parquet", out / "write-only.errors.parquet", {})
        rate = len(written) / (time.perf_counter() - start)
        # Gone before the next run: image tokens are GBs, and the end-to-end run's disk should start as this one's.
        writer.remove_parts()
        for path in out.glob("write-only.*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return rate


STAGES = {"model": "model_only_files_per_s", "decoding": "decode_only_files_per_s", "writing": "write_only_files_per_s"}


def bound_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """The slowest stage and the end-to-end rate against it (1.0 = the pipeline adds nothing to it)."""
    rates = {stage: figures[name] for stage, name in STAGES.items() if figures.get(name) is not None}
    if len(rates) < 2:
        return {}
    slowest = min(rates, key=rates.get)
    return {"bound_by": slowest, "ratio_to_slowest_stage": round(figures["end_to_end_files_per_s"] / rates[slowest], 3)}
