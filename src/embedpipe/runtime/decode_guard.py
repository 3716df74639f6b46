"""Decode deadlines: a file that blocks on open or read (a FIFO, a hung network mount, a decoder stuck
in C) becomes a `decode` error row instead of hanging its shard.

Soft deadline, in whichever process decodes: SIGALRM `timeout_s` after a file starts raises
DecodeTimeout out of the decoder, out of a blocking open() of a FIFO too (the call fails with EINTR:
PEP 475 retries it only when the handler returns). It repeats every second in case a decoder catches it.

Hard deadline, for code that never returns to Python (or blocks SIGALRM): each worker publishes the
file it is on and since when; a watchdog thread of the main process SIGKILLs a worker past timeout +
grace. The loader then fails with "worker exited unexpectedly", and GuardedLoader starts a new one
at the first chunk not yet received, the files the killed workers were stuck on answered as timeouts
without being opened again. Chunks never span blocks, so every model batch is still the block it
would have been: a timed-out file is one more decode error in its block.

Stopping workers uses private members of torch's multi-process loader iterator (`_workers`,
`_shutdown_workers`, `_worker_pids_set`); tests/extract/test_robustness.py fails if they change.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from torch.utils.data import DataLoader

from embedpipe.readers.limits import cap_worker_memory
from embedpipe.runtime.error_text import error_fields
from embedpipe.runtime.shard_lock import close_inherited_locks
from embedpipe.runtime.stop import critical

log = logging.getLogger(__name__)
REPEAT_S = 1.0  # the alarm again every second after the deadline, until the decoder gives up
STUCK_S = 1.0  # a worker this long on one file is not handing over a chunk: killing it tears no message
PR_SET_PDEATHSIG = 1


class DecodeTimeout(BaseException):
    """Raised by the alarm: a BaseException so that a decoder's own `except Exception` does not swallow it."""


def timeout_error(timeout_s: float | None) -> tuple[str, str]:
    return "DecodeTimeout", f"timed out after {timeout_s:g} s"


def kill_grace(timeout_s: float) -> float:
    """How long past its deadline a worker may take to act on the alarm before it is killed."""
    return min(30.0, max(1.0, timeout_s / 10))


class Deadline:
    """`with Deadline(t):` raises DecodeTimeout in the block after t seconds (main thread only: signals)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.fired = False  # the alarm went off: whatever the decoder raised then is a timeout
        self._armed = False
        self._previous: Any = None

    def __enter__(self) -> Deadline:
        if self.timeout_s and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            self._armed = True
            try:
                signal.setitimer(signal.ITIMER_REAL, self.timeout_s, REPEAT_S)
            except DecodeTimeout:
                # Due before the block began (a tiny timeout on a loaded machine): `with` calls no
                # __exit__ when __enter__ raises, so stop the repeating timer here, or it fires anywhere.
                self.__exit__()
                raise
        return self

    def _alarm(self, _signum: int, _frame: Any) -> None:
        if self._armed:  # an alarm handled after the block ended does nothing
            self.fired = True
            raise DecodeTimeout(timeout_error(self.timeout_s)[1])

    def __exit__(self, *_exc: object) -> None:
        if not self._armed:
            return
        while True:  # an alarm due just now raises here at most once: never past the timer's stop
            try:
                self._armed = False  # from here the handler does nothing
                break
            except DecodeTimeout:
                pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)


T = TypeVar("T")


def read_within(read: Callable[[], T], timeout_s: float | None) -> tuple[T | None, tuple[str, str] | None]:
    """(read(), None), or (None, (kind, message)) when it raised or ran past `timeout_s`: a file that
    cannot be decoded is data (an error row, a dropped record), never a crash of the job."""
    deadline = Deadline(timeout_s)
    try:
        with deadline:
            return read(), None
    except (Exception, DecodeTimeout) as exc:
        return None, timeout_error(timeout_s) if deadline.fired else error_fields(exc)


def settle_worker() -> None:
    """What every DataLoader worker of a job does first: one compute thread (torch and numpy's BLAS:
    the worker count is the parallelism; 15 workers × 16 BLAS threads each ran 20× slower), SIGTERM
    and SIGINT ignored (the main process handles preemption and Ctrl-C and stops the workers itself:
    a worker running the handler it was forked with on a terminal's SIGINT would die printing a
    traceback), death with the main process however that dies, no share in its shard lock, and a
    memory ceiling (`limits.cap_worker_memory`: an allocation past it is an error row, not an OOM kill)."""
    import threadpoolctl
    import torch

    close_inherited_locks()
    cap_worker_memory()
    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    die_with_parent()


def die_with_parent() -> None:
    """In a worker: the kernel kills it when the main process dies, however that dies (a stuck worker
    ignores SIGTERM and never reaches torch's own check of its parent)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl
        os._exit(1)


class WorkerSlots:
    """Per decode worker, in shared memory: its pid, the dataset index it decodes (-1: none) and since when."""

    def __init__(self, workers: int) -> None:
        self.table = multiprocessing.RawArray("d", [0.0, -1.0, 0.0] * workers)
        self.me = -1  # this process's slot; set in the worker's copy

    def enter_worker(self, worker_id: int) -> None:
        self.me = worker_id
        self.table[3 * worker_id] = os.getpid()

    def begin(self, index: int) -> None:
        if self.me >= 0:
            self.table[3 * self.me + 2] = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
            self.table[3 * self.me + 1] = index

    def end(self) -> None:
        if self.me >= 0:
            self.table[3 * self.me + 1] = -1

    def busy(self) -> list[tuple[int, int, int, float]]:
        """(slot, pid, index, seconds on it) of each worker inside a decode."""
        out, now = [], time.monotonic()
        for w in range(len(self.table) // 3):
            index, started = self.table[3 * w + 1], self.table[3 * w + 2]
            if index >= 0 and self.table[3 * w + 1] == index:  # not torn by the worker moving on
                out.append((w, int(self.table[3 * w]), int(index), now - started))
        return out

    def free(self, slot: int) -> None:
        """The worker in `slot` was killed: it decodes nothing any more."""
        self.table[3 * slot + 1] = -1

    def clear(self) -> None:
        self.table[:] = [0.0, -1.0, 0.0] * (len(self.table) // 3)


class GuardedDataset(Protocol):
    keys: list[str]
    slots: WorkerSlots | None
    timed_out: set[int]  # indices answered as timeouts without opening them


def _forget_worker_pids(it: Any) -> None:
    # torch's SIGCHLD handler raises "worker killed" in the main thread wherever it is (inside an
    # encode, a part write); unregistered, a dead worker is found by the loader's own check in next().
    if getattr(it, "_worker_pids_set", False):
        from torch.utils.data._utils import signal_handling

        signal_handling._remove_worker_pids(id(it))
        it._worker_pids_set = False


def stop_workers(it: Any) -> None:
    """Stop a DataLoader iterator's workers now (nothing for one without workers). torch stops them
    only when the iterator is exhausted or collected, and then with a SIGTERM our workers ignore; an
    iterator still alive at exit (an endless sampler's) would hang multiprocessing's exit handler."""
    if not getattr(it, "_workers", None):
        return
    _forget_worker_pids(it)
    it._shutdown_workers()  # idle workers exit at once, the others after their batch
    for w in it._workers:
        if w.is_alive():
            w.kill()
            w.join(1)


class GuardedLoader:
    """Iterates `make_loader(chunks)` over `dataset` chunk by chunk, in order; replaces stuck workers."""

    def __init__(self, dataset: GuardedDataset, chunks: list[list[int]], num_workers: int,
                 timeout_s: float | None, make_loader: Callable[[list[list[int]]], DataLoader]) -> None:
        self.dataset, self.chunks, self.timeout_s, self.make_loader = dataset, chunks, timeout_s, make_loader
        self.received = 0  # chunks handed out; a new loader starts at the first one not received
        self.slots = dataset.slots = WorkerSlots(num_workers) if num_workers else None
        self._it: Any = None
        self._lock = threading.Lock()  # the watchdog and the main thread both stop workers
        self._killed: list[int] = []
        self._done = threading.Event()
        self._watchdog = None
        if self.slots is not None and timeout_s:
            self._watchdog = threading.Thread(target=self._watch, name="decode-watchdog", daemon=True)
            self._watchdog.start()

    def __iter__(self) -> GuardedLoader:
        return self

    def __next__(self) -> Any:
        while True:
            if self._it is None:
                if self.received >= len(self.chunks):
                    raise StopIteration
                # critical(): a stop signal is acted on once the iterator, and so its workers, is ours
                with critical(), self._lock:
                    self._it = iter(self.make_loader(self.chunks[self.received:]))
            try:
                item = next(self._it)  # the one place a stop signal may interrupt (StopRequest.waiting)
            except StopIteration:
                self._it = None  # exhausted: torch has shut its workers down
                raise
            except Exception:
                with self._lock:
                    killed, self._killed = self._killed, []
                if not killed:
                    raise
                # The loader broke because the watchdog killed a worker (also seen as a chunk whose
                # tensors that worker still had to hand over): go on without it.
                self.dataset.timed_out.update(killed)
                with critical():  # every worker is dead before a stop signal ends the wait
                    self._abandon()
                continue
            self.received += 1
            return item

    def _watch(self) -> None:
        assert self.slots is not None and self.timeout_s
        limit = self.timeout_s + kill_grace(self.timeout_s)
        while not self._done.wait(min(1.0, limit / 4)):
            with self._lock:
                overdue = [(slot, pid, i) for slot, pid, i, seconds in self.slots.busy() if seconds > limit]
                if self._it is None or not overdue:
                    continue
                workers = {w.pid: w for w in self._it._workers}
                _forget_worker_pids(self._it)
                for slot, pid, index in overdue:
                    if pid in workers:
                        workers[pid].kill()
                        self.slots.free(slot)
                        self._killed.append(index)
                        log.warning("decode worker %d spent over %g s on %s: killed; it is a timeout error row "
                                    "and a new worker goes on", pid, limit, self.dataset.keys[index])

    def _abandon(self) -> None:
        """Stop the current loader's workers now, stuck ones too (torch's shutdown only sends SIGTERM,
        which workers ignore)."""
        with self._lock:
            # self._it is dropped last: were this cut short, close() would still find the workers
            if (it := self._it) is None:
                return
            if self.slots is not None:  # None: decoding in this process, no worker to stop
                _forget_worker_pids(it)
                self._kill_busy(it)
                stop_workers(it)
                self.slots.clear()
            self._it = None

    def _kill_busy(self, it: Any) -> None:
        """SIGKILL the workers inside a decode (their chunks are given up). One that began its file
        under STUCK_S ago may still be handing its last chunk over, so it is given until then."""
        assert self.slots is not None
        workers, deadline = {w.pid: w for w in it._workers}, time.monotonic() + STUCK_S
        while busy := self.slots.busy():
            for slot, pid, _, seconds in busy:
                if seconds >= STUCK_S and pid in workers:
                    workers[pid].kill()
                    self.slots.free(slot)
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._done.set()
        if self._watchdog is not None:
            self._watchdog.join()
        self._abandon()


def kill_leftover_children() -> int:
    """SIGKILL the job's child processes still alive; returns how many. The last thing a job does:
    multiprocessing's exit handler SIGTERMs its daemon children (decode workers ignore SIGTERM) and
    then joins them, so one stuck worker that escaped GuardedLoader.close() would hang the job forever."""
    left = multiprocessing.active_children()
    for child in left:
        child.kill()
    for child in left:
        child.join(5)
    return len(left)
