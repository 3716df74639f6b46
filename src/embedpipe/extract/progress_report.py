"""What an extract job tells its shard's progress file (store/progress.py) while it runs and at its end.

The job calls `begin` once it holds the shard, `resumed` once it knows what its parts already hold,
`attach` when the loop starts, `timed` around the loop's waits, and `end` with the final state. A
thread rewrites the record every WRITE_INTERVAL_S: a job whose loop waits minutes (a file decoding to
its timeout, a model loading, torch.compile warming up) is alive and must not look stale; a job
killed outright stops writing, and its record grows stale, which is what `status` looks for.

Writing the record never fails the job: a full disk or a read-only results folder is logged once,
and the embedding goes on.

The rate is the files this attempt processed over the seconds since its loop began: the start-up
(model loading, torch.compile's warm-up), minutes on a large model, would make a live rate, and the
ETA `status` draws from it, wrong for long after; the attempt's wall time is `updated - started`.

The stage seconds, all of this attempt and wall-clock:
- decode: the main process waiting for the loader's next decoded chunk;
- model: the main process in `encode_or_split`. On CUDA that returns once a batch's forward pass
  and its copy back are queued; the main process waits for the GPU only when the device's queue or
  the writer's (RowSink's batches in flight) is full, which a GPU-bound job is in steady state;
  the writer thread's wait for each batch's copy back is not counted in any stage;
- write: the writer thread's time in the ShardWriter (rows, error rows, parts: beside the other two,
  so the three may add up to more than the loop's time), the last flush, and the shard file's assembly.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq

from embedpipe.extract.gpu_report import GpuReport
from embedpipe.extract.sink import RowSink
from embedpipe.store.progress import (
    FINISHED,
    RUNNING,
    WRITE_INTERVAL_S,
    ShardProgress,
    StageSeconds,
    read_progress,
    where_am_i,
    write_progress,
)

log = logging.getLogger("extract")
T = TypeVar("T")
STAGES = ("decode", "model", "write")
MAX_MESSAGE = 300


def errors_in_parts(parts: list[Path], keys: set[str]) -> Counter[str]:
    """Error rows an earlier attempt left in the parts, as "<stage>:<error type>"."""
    found: Counter[str] = Counter()
    for part in parts:
        table = pq.read_table(part, columns=["key", "stage", "error_type"])
        for key, stage, error_type in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            if error_type is not None and key in keys:
                found[f"{stage}:{error_type}"] += 1
    return found


def one_line(message: str) -> str:
    line = " ".join(str(message).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def attempt_after(previous: ShardProgress | None) -> int:
    """This attempt's number: one more than the shard's last record when that did not finish (a requeue
    after preemption, a retry after a failure, a job that was killed), else SLURM's restart count. The
    record is the surer count: SLURM_RESTART_COUNT is set in a job's batch script, not always in the
    step that runs the job (not on the test cluster's 22.05), and a Snakemake retry is a new job."""
    if previous is not None and previous.state != FINISHED:
        return previous.attempt + 1
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


class ProgressReport:
    """One attempt's record of a shard; `path` None: nothing written (a job run outside a results folder)."""

    def __init__(self, path: Path | None, shard: str, interval_s: float = WRITE_INTERVAL_S) -> None:
        self.path, self.shard, self.interval_s = path, shard, interval_s
        self.total = self.done_before = self.reused = self.processed = 0
        self.errors_before: Counter[str] = Counter()
        self.seconds = dict.fromkeys(STAGES, 0.0)  # the main process's share; the writer thread's is the sink's
        self.sink: RowSink | None = None
        self.gpu: GpuReport | None = None
        self.device, self.batch_size = "", 0
        self.started = time.time()
        self.attempt = 0
        self._loop_start: float | None = None  # when the loop began: the rate leaves the start-up out
        self._begun = False
        self._done: int | None = None
        self._failed_write = False
        self._lock = threading.Lock()  # the heartbeat and the main process write the same file
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def begin(self, total: int) -> None:
        """The job holds the shard: a RUNNING record now, and every interval until `end`."""
        self.total, self._begun = total, True
        self.attempt = attempt_after(read_progress(self.path) if self.path is not None else None)
        self.write(RUNNING)
        if self.path is not None:
            self._heartbeat = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._heartbeat.start()

    def resumed(self, done: int, reused: int, errors: Counter[str]) -> None:
        """What the parts hold before this attempt embeds anything: written at once."""
        self.done_before, self.reused, self.errors_before = done, reused, errors
        self.write(RUNNING)

    def attach(self, sink: RowSink, gpu: GpuReport, device: str, batch_size: int) -> None:
        """The loop starts (the model is loaded): what it writes through and runs on."""
        self.sink, self.gpu, self.device, self.batch_size = sink, gpu, device, batch_size
        self._loop_start = time.monotonic()

    def timed(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def end(self, state: str, message: str | None = None, done: int | None = None) -> None:
        """The final record (FINISHED, FAILED or STOPPED); nothing when the job never held the shard.
        `done`: a finished shard's files as its outputs count them (rows + error rows)."""
        if not self._begun:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        self._done = done
        self.write(state, one_line(message) if message else None)
        self._begun = False

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.write(RUNNING)

    def record(self, state: str, message: str | None = None) -> ShardProgress:
        now = time.time()
        elapsed = time.monotonic() - self._loop_start if self._loop_start is not None else 0.0
        sink = self.sink
        # A copy first: the main process adds error types while the heartbeat reads them.
        errors = self.errors_before + Counter(dict(sink.errors_by_type) if sink is not None else {})
        write = self.seconds["write"] + (sink.write_seconds if sink is not None else 0.0)
        gpu = self.gpu
        return ShardProgress(
            shard=self.shard, state=state, total=self.total,
            done=self.done_before + self.processed if self._done is None else self._done,
            embedded_now=self.processed, reused=self.reused,
            rate=round(self.processed / elapsed, 4) if elapsed > 0 else 0.0,
            errors=dict(sorted(errors.items())), started=self.started, updated=now,
            **(where_am_i() | {"attempt": self.attempt}),
            device=self.device, batch_size=self.batch_size,
            gpu=gpu.now() if gpu is not None else None,
            seconds=StageSeconds(round(self.seconds["decode"], 3), round(self.seconds["model"], 3), round(write, 3)),
            # The main process's peak (decode workers are processes of their own; Linux counts KiB).
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            peak_gpu_memory_gib=round(peak, 3) if gpu is not None and (peak := gpu.peak_gib()) is not None else None,
            message=message,
        )

    def write(self, state: str, message: str | None = None) -> None:
        if self.path is None:
            return
        try:
            with self._lock:
                if state == RUNNING and self._stop.is_set():
                    return  # the heartbeat, late: the final record is written or being written
                write_progress(self.path, self.record(state, message))
        except Exception as exc:  # the record is for people watching: the embedding goes on without it
            if not self._failed_write:
                self._failed_write = True
                log.warning("cannot write the progress file %s (%s: %s); the job goes on without it",
                            self.path, type(exc).__name__, exc)
