"""Embed one shard: workers decode, the model encodes in batches, the ShardWriter keeps parts."""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm import tqdm

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.errors import ModelLoadError
from embedpipe.encoders.roles import Encoder, Model, Reader
from embedpipe.extract.decoder_output import DecoderOutput
from embedpipe.extract.gpu_report import GpuReport
from embedpipe.extract.progress_report import ProgressReport
from embedpipe.extract.settings import ExtractOptions
from embedpipe.extract.sink import RowSink
from embedpipe.extract.writer import ShardWriter
from embedpipe.runtime.decode_guard import GuardedLoader, WorkerSlots, read_within, settle_worker, timeout_error
from embedpipe.runtime.error_text import error_fields, relative_to
from embedpipe.runtime.stop import StopRequest, next_or_stop
from embedpipe.store.file_identity import IDENTITY_COLUMNS, file_identity

log = logging.getLogger(__name__)
LOADER_CHUNK = 16
DECODE_TIMEOUT_S = ExtractOptions.decode_timeout_s  # longer than any sane file takes to open and decode


Item = tuple[str, Any, tuple[str, str] | None, dict[str, Any]]


class FileDataset(Dataset):
    """Maps an index to (key, prepared sample or None, error or None, facts); never raises.

    A file whose opening or decoding takes over `timeout_s` is a DecodeTimeout error (decode_guard.py)."""

    def __init__(self, keys: list[str], root: Path, reader: Reader, timeout_s: float | None = None) -> None:
        self.keys, self.root, self.reader, self.timeout_s = keys, root, reader, timeout_s
        self.slots: WorkerSlots | None = None  # set by GuardedLoader: what each worker decodes, for its watchdog
        self.timed_out: set[int] = set()  # files that hung a worker: not opened again
        self.decoder_output = DecoderOutput()

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Item:
        key = self.keys[i]
        if i in self.timed_out:
            return key, None, timeout_error(self.timeout_s), {}
        if self.slots is not None:
            self.slots.begin(i)
        path, identity = str(self.root / key), {}

        def prepare() -> Any:  # the stat first, inside the deadline (a hung mount hangs it too)
            identity.update(file_identity(path))  # before the read: bytes changed after it show next run
            return self.reader.prepare(path)

        try:
            with self.decoder_output.labelled(key):
                out, error = read_within(prepare, self.timeout_s)
        finally:
            if self.slots is not None:
                self.slots.end()
        if out is None:
            return key, None, (error[0], relative_to(error[1], self.root, key)), {}
        return key, out.sample, None, out.facts | identity


@dataclass
class Collated:
    keys: list[str]
    batch: Batch | None
    errors: list[tuple[str, str, str]]
    facts: list[dict[str, Any]] = field(default_factory=list)  # per key in `keys` (empty: none)

    def pin_memory(self) -> Collated:
        """Called by the DataLoader's pinning thread (pin_memory=True on CUDA)."""
        pinned = self.batch.pin_memory() if self.batch is not None else None
        return Collated(self.keys, pinned, self.errors, self.facts)


def collate(items: list[Item]) -> Collated:
    ok = [(k, s, f) for k, s, e, f in items if e is None]
    errors = [(k, *e) for k, _, e, _ in items if e is not None]
    batch = Batch([s for _, s, _ in ok]) if ok else None
    return Collated([k for k, _, _ in ok], batch, errors, [f for _, _, f in ok])


def auto_workers(threads: int | None = None) -> int:
    """Decode workers for the CPUs this job was given: the workflow's `threads` for the job (what
    --set-threads or the profile gave it), else the affinity mask (which SLURM narrows to the job)."""
    cpus = threads or len(os.sched_getaffinity(0))
    return max(1, cpus - 1)  # one CPU for the main process: GPU feeding and the writer thread


def _worker_init(worker_id: int) -> None:
    settle_worker()
    if (slots := get_worker_info().dataset.slots) is not None:
        slots.enter_worker(worker_id)


class ModelFailure(RuntimeError):
    """The model failed on a whole batch, not on one file of it: a bug, a broken model or device."""


def encode_or_split(model: Model, keys: list[str], batch: Batch, sink: RowSink) -> None:
    """Encode a batch; when it fails, encode it in halves, so that CUDA out-of-memory costs no file
    and a file the model fails on becomes one `encode` error row.

    A failure that is not out-of-memory is a file's only when the halves prove it, some of the
    batch encoding: when none does (or a lone file fails before the model encoded anything in this
    run), it is the code, model or device, and ModelFailure stops the job instead of turning every
    file into an error row."""
    failed: list[tuple[str, BaseException]] = []
    before = sink.encoded
    _encode_in_halves(model, keys, batch, sink, failed)
    if not failed:
        return
    other = [exc for _, exc in failed if not isinstance(exc, torch.cuda.OutOfMemoryError)]
    if other and sink.encoded == before and (len(keys) > 1 or before == 0):
        exc = other[0]
        raise ModelFailure(f"the model failed on all {len(keys)} files of a batch ({keys[0]} …): "
                           f"{type(exc).__name__}: {str(exc).strip()[:500]}") from exc
    for key, exc in failed:
        sink.error(key, "encode", *error_fields(exc))


def _encode_in_halves(model: Model, keys: list[str], batch: Batch, sink: RowSink,
                      failed: list[tuple[str, BaseException]]) -> None:
    try:
        pending = model.encode_async(batch)
    except Exception as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        if len(keys) == 1:
            failed.append((keys[0], exc))
            return
        log.warning("batch of %d failed (%s); retrying in halves", len(keys), type(exc).__name__)
    else:  # outside the try: a failed write (full disk) stops the job, it is not the batch's fault
        sink.rows(keys, pending)
        return
    half = len(keys) // 2
    for lo, hi in ((0, half), (half, len(keys))):
        _encode_in_halves(model, keys[lo:hi], batch.subset(lo, hi), sink, failed)


def plan_blocks(ordered: list[str], done: set[str], batch_size: int) -> list[list[str]]:
    """The keys still to embed, in blocks of the *whole* ordered shard: block i is always
    ordered[i*batch_size:(i+1)*batch_size] minus what is done.

    A model batch is one block's decoded files, so which files share a batch does not depend on
    where an earlier run was killed: a resumed shard gives the same rows, bit for bit, as an
    uninterrupted one (batch composition changes floating-point results on most devices)."""
    blocks = (ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size))
    return [todo for block in blocks if (todo := [k for k in block if k not in done])]


def loader_chunks(block_sizes: list[int], chunk: int) -> list[list[int]]:
    """Dataset indices per loader chunk; a chunk never spans two blocks."""
    chunks, start = [], 0
    for size in block_sizes:
        chunks += [list(range(i, min(i + chunk, start + size))) for i in range(start, start + size, chunk)]
        start += size
    return chunks


class BatchAssembler:
    """Loader chunks → one model batch per block (files that failed to decode left out)."""

    def __init__(self, block_sizes: list[int]) -> None:
        self.ends = deque(itertools.accumulate(block_sizes))
        self.arrived = 0
        self.at_block_end = False  # the last add() completed a block
        self.keys: list[str] = []
        self.parts: list[Batch] = []

    def add(self, item: Collated) -> tuple[list[str], Batch] | None:
        """Returns the block's batch when `item` completes it (None if all of it failed to decode)."""
        self.arrived += len(item.keys) + len(item.errors)
        if item.keys:
            self.keys += item.keys
            self.parts.append(item.batch)
        self.at_block_end = bool(self.ends) and self.arrived >= self.ends[0]
        if not self.at_block_end:
            return None
        self.ends.popleft()
        return self.take()

    def take(self) -> tuple[list[str], Batch] | None:
        if not self.keys:
            return None
        keys, batch = self.keys, Batch.concat(self.parts)
        self.keys, self.parts = [], []
        return keys, batch


def file_loader(blocks: list[list[str]], input_root: Path, reader: Reader, num_workers: int,
                timeout_s: float | None = None, pin: bool = False) -> DataLoader:
    """Decode workers over the files of the planned blocks, in their order; yields Collated chunks."""
    dataset = FileDataset([k for block in blocks for k in block], input_root, reader, timeout_s)
    return chunk_loader(dataset, block_chunks(blocks), num_workers, pin)


def block_chunks(blocks: list[list[str]]) -> list[list[int]]:
    # Workers hand over small chunks, not whole model batches: the first batch is ready after
    # LOADER_CHUNK decodes per worker rather than batch_size, and host memory holds a few chunks.
    return loader_chunks([len(b) for b in blocks], LOADER_CHUNK)


def chunk_loader(dataset: FileDataset, chunks: list[list[int]], num_workers: int, pin: bool) -> DataLoader:
    """`pin`: pinned host memory (a CUDA model), so that copies to the device are asynchronous."""
    return DataLoader(
        dataset,
        batch_sampler=chunks,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=_worker_init if num_workers else None,
        pin_memory=pin,
        prefetch_factor=2 if num_workers else None,
        persistent_workers=False,
    )


def run_extract(
    keys: list[str],
    input_root: Path,
    encoder: Encoder,
    writer: ShardWriter,
    *,
    shard: str,
    device: torch.device,
    num_workers: int,
    log_every: int = ExtractOptions.log_every,
    stop: StopRequest | None = None,
    decode_timeout_s: float = DECODE_TIMEOUT_S,
    progress: ProgressReport | None = None,
) -> int:
    """Embed the keys no part holds yet. Returns the number processed in this run. `progress` times the
    waits for decoded files and for the model, and counts the files (the shard's progress file)."""
    done = writer.completed_keys()
    blocks = plan_blocks(encoder.reader.order(keys, input_root), done, encoder.batch_size)
    todo = [k for block in blocks for k in block]
    log.info("%s: %d files, %d already in parts, %d to embed", shard, len(keys), len(keys) - len(todo), len(todo))
    if not todo:
        return 0
    gpu = GpuReport(device)
    if line := gpu.start_line():  # before the model is on it: the memory the job found
        log.info("%s", line)
    try:
        encoder.model.ensure_loaded(device)
    except Exception as exc:
        raise ModelLoadError(str(exc)) from exc  # the script says it in one line
    stop = StopRequest() if stop is None else stop  # not `or`: an unset StopRequest is falsy
    progress = ProgressReport(None, shard) if progress is None else progress
    start = time.monotonic()
    processed = errors = step = 0
    bar = tqdm(total=len(todo), desc=shard, unit="file", file=sys.stderr, mininterval=5.0, dynamic_ncols=True)
    recorded = {f.name for f in writer.row_fields}  # the file's identity where the writer keeps it (reuse.py)
    facts = [f.name for f in encoder.reader.fact_fields()] + [n for n in IDENTITY_COLUMNS if n in recorded]
    sink = RowSink(writer, facts)
    progress.attach(sink, gpu, str(device), encoder.batch_size)
    assembler = BatchAssembler([len(b) for b in blocks])
    dataset = FileDataset(todo, input_root, encoder.reader, decode_timeout_s)
    pin = device.type == "cuda"
    items = GuardedLoader(dataset, block_chunks(blocks), num_workers, decode_timeout_s,
                          lambda chunks: chunk_loader(dataset, chunks, num_workers, pin))
    try:
        while (item := progress.timed("decode", next_or_stop, items, stop)) is not None:
            for key, etype, msg in item.errors:
                sink.error(key, "decode", etype, msg)
            errors += len(item.errors)
            processed += len(item.errors)
            sink.add_facts(item.keys, item.facts)
            bar.update(len(item.errors))
            if (block := assembler.add(item)) is not None:
                progress.timed("model", encode_or_split, encoder.model, *block, sink)
                processed += len(block[0])
                bar.update(len(block[0]))
                step += 1
                if step % log_every == 0:
                    log_throughput(shard, processed, len(todo), errors, start, gpu.usage())
            if assembler.at_block_end:
                sink.block_done()  # parts end on block boundaries, so a resume rebuilds the same batches
            progress.processed = processed
            if stop:
                # The unfinished block is left for the rerun: encoding part of it now would batch
                # those files differently from an uninterrupted run.
                break
    finally:
        items.close()  # workers too, stuck ones included
        bar.close()
        sink.close()
        progress.timed("write", writer.flush)
    log_throughput(shard, processed, len(todo), errors, start, gpu.peak())
    return processed


def log_throughput(shard: str, n: int, total: int, errors: int, start: float, gpu: str = "") -> None:
    """`gpu`: GpuReport's part of the line (its use and utilisation, or at the end its peak)."""
    elapsed = max(time.monotonic() - start, 1e-9)
    log.info("%s: %d/%d files, %.1f files/s, %d decode errors%s", shard, n, total, n / elapsed, errors, gpu)
