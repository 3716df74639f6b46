"""Embed one shard: workers decode, the model encodes in batches, the ShardWriter keeps parts."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import threadpoolctl
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from embedpipe.encoders.base import Encoder
from embedpipe.sink import RowSink
from embedpipe.writer import ShardWriter

log = logging.getLogger(__name__)
MAX_MESSAGE = 2000
LOADER_CHUNK = 16


def error_fields(exc: BaseException) -> tuple[str, str]:
    message = str(exc).strip().splitlines()
    text = " ".join(line.strip() for line in message)[:MAX_MESSAGE]
    return type(exc).__name__, text or repr(exc)[:MAX_MESSAGE]


class FileDataset(Dataset):
    """Maps an index to (key, prepared sample or None, error or None); never raises."""

    def __init__(self, keys: list[str], root: Path, encoder: Encoder) -> None:
        self.keys, self.root, self.encoder = keys, root, encoder

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[str, Any, tuple[str, str] | None]:
        key = self.keys[i]
        try:
            return key, self.encoder.prepare(str(self.root / key)), None
        except Exception as exc:  # any decoder failure is data, not a crash
            return key, None, error_fields(exc)


@dataclass
class Collated:
    keys: list[str]
    batch: Any
    errors: list[tuple[str, str, str]]

    def pin_memory(self) -> Collated:
        """Called by the DataLoader's pinning thread (pin_memory=True on CUDA)."""
        pinned = self.batch.pin_memory() if hasattr(self.batch, "pin_memory") else self.batch
        return Collated(self.keys, pinned, self.errors)


class Collator:
    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, items: list[tuple[str, Any, tuple[str, str] | None]]) -> Collated:
        ok = [(k, s) for k, s, e in items if e is None]
        errors = [(k, *e) for k, _, e in items if e is not None]
        batch = self.encoder.collate([s for _, s in ok]) if ok else None
        return Collated([k for k, _ in ok], batch, errors)


def auto_workers() -> int:
    """Decode workers for the CPUs this job was given (SLURM's allocation, else the affinity mask)."""
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or len(os.sched_getaffinity(0))
    return max(1, cpus - 1)  # one CPU for the main process: GPU feeding and the writer thread


def _worker_init(_: int) -> None:
    # Decoding threads per worker = 1: the worker count is the parallelism. numpy's BLAS too (the
    # audio feature extractor multiplies matrices): 15 workers × 16 BLAS threads each ran 20× slower.
    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
    # The main process handles preemption; a worker dying on SIGTERM would only lose its batch.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopRequest:
    """Set by SIGTERM/SIGINT (SLURM preemption, scancel): stop after the current batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


def encode_or_split(encoder: Encoder, keys: list[str], batch: Any, sink: RowSink) -> None:
    """Encode a batch; on failure (CUDA OOM, one bad item) split it in halves so no item is lost."""
    try:
        sink.rows(keys, encoder.encode_async(batch))
        return
    except Exception as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        if len(keys) == 1:
            sink.error(keys[0], "encode", *error_fields(exc))
            return
        log.warning("batch of %d failed (%s); retrying in halves", len(keys), type(exc).__name__)
    half = len(keys) // 2
    for lo, hi in ((0, half), (half, len(keys))):
        encode_or_split(encoder, keys[lo:hi], encoder.subset(batch, lo, hi), sink)


class BatchAssembler:
    """Loader chunks → model batches of exactly batch_size (the last one may be shorter)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.keys: list[str] = []
        self.parts: list[Any] = []

    def add(self, item: Collated) -> tuple[list[str], Any] | None:
        if item.keys:
            self.keys += item.keys
            self.parts.append(item.batch)
        if len(self.keys) < self.encoder.batch_size:
            return None
        size = self.encoder.batch_size
        keys, batch = self.take()  # type: ignore[misc]
        if len(keys) > size:  # keep the overflow for the next batch
            self.keys, self.parts = keys[size:], [self.encoder.subset(batch, size, len(keys))]
            keys, batch = keys[:size], self.encoder.subset(batch, 0, size)
        return keys, batch

    def take(self) -> tuple[list[str], Any] | None:
        if not self.keys:
            return None
        keys, batch = self.keys, self.encoder.concat(self.parts)
        self.keys, self.parts = [], []
        return keys, batch


def run_extract(
    keys: list[str],
    input_root: Path,
    encoder: Encoder,
    writer: ShardWriter,
    *,
    shard: str,
    device: torch.device,
    num_workers: int,
    log_every: int = 50,
    stop: StopRequest | None = None,
) -> int:
    """Embed the keys no part holds yet. Returns the number processed in this run."""
    done = writer.completed_keys()
    todo = encoder.order([k for k in keys if k not in done], input_root)
    log.info("%s: %d files, %d already in parts, %d to embed", shard, len(keys), len(keys) - len(todo), len(todo))
    if not todo:
        return 0
    encoder.ensure_loaded(device)
    loader = DataLoader(
        FileDataset(todo, input_root, encoder),
        # Workers hand over small chunks, not whole model batches: the first batch is ready after
        # LOADER_CHUNK decodes per worker rather than batch_size, and host memory holds a few chunks.
        batch_size=min(encoder.batch_size, LOADER_CHUNK),
        shuffle=False,
        num_workers=num_workers,
        collate_fn=Collator(encoder),
        worker_init_fn=_worker_init if num_workers else None,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=2 if num_workers else None,
        persistent_workers=False,
    )
    start = time.monotonic()
    processed = errors = step = 0
    bar = tqdm(total=len(todo), desc=shard, unit="file", file=sys.stderr, mininterval=5.0, dynamic_ncols=True)
    sink = RowSink(writer)
    assembler = BatchAssembler(encoder)
    try:
        for item in loader:
            for key, etype, msg in item.errors:
                sink.error(key, "decode", etype, msg)
            errors += len(item.errors)
            processed += len(item.errors)
            bar.update(len(item.errors))
            batches = [assembler.add(item)]
            if stop:  # preempted: encode what is decoded, then flush
                batches.append(assembler.take())
            for keys, batch in filter(None, batches):
                encode_or_split(encoder, keys, batch, sink)
                processed += len(keys)
                bar.update(len(keys))
                step += 1
                if step % log_every == 0:
                    log_throughput(shard, processed, len(todo), errors, start, encoder.device)
            if stop:
                break
        else:
            if last := assembler.take():
                encode_or_split(encoder, *last, sink)
                processed += len(last[0])
                bar.update(len(last[0]))
    finally:
        bar.close()
        sink.close()
        writer.flush()
    log_throughput(shard, processed, len(todo), errors, start, encoder.device)
    return processed


def log_throughput(shard: str, n: int, total: int, errors: int, start: float, device: torch.device) -> None:
    elapsed = max(time.monotonic() - start, 1e-9)
    line = f"{shard}: {n}/{total} files, {n / elapsed:.1f} files/s, {errors} decode errors"
    if device.type == "cuda":
        line += f", GPU mem peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
    log.info(line)
