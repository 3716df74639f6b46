"""Stopping a shard job on SIGTERM/SIGINT (SLURM preemption, scancel): after the current batch, or at
once when the job is only waiting for decoded files."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Interrupted(BaseException):
    """A stop signal that came while the main process waited for decoded files (see StopRequest.waiting)."""


class _Critical:
    """Main-thread state of `critical()`: how deep inside it the main thread is, and the StopRequest
    whose Interrupted waits for its end."""

    depth = 0
    deferred: StopRequest | None = None


class StopRequest:
    """Set by SIGTERM/SIGINT (SLURM preemption, scancel): stop after the current batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self._waiting = False
        self._pid = os.getpid()

    def install(self) -> StopRequest:
        self._pid = os.getpid()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def restore(self) -> None:
        """The handlers from before `install` (a step run inside a longer-lived process)."""
        for sig, handler in getattr(self, "_previous", {}).items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        # A process forked from this one (a decode worker before its init sets SIG_IGN) inherits this
        # handler and `_waiting`: a terminal's Ctrl-C reaches the whole process group, and raising
        # there would print a traceback per worker. The main process stops them.
        if os.getpid() != self._pid:
            return
        self.signum = signum
        self.event.set()
        if self._waiting:
            if _Critical.depth:
                _Critical.deferred = self  # raised when the critical section ends (see critical())
                return
            self._waiting = False
            raise Interrupted

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """While the block waits on the loader, a signal raises Interrupted there: a worker stuck on a
        file would otherwise keep the job waiting past its SIGTERM (nothing is lost: the unfinished
        block is left for the rerun either way)."""
        if self:
            raise Interrupted  # the signal came before the wait
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False

    def __bool__(self) -> bool:
        return self.event.is_set()


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Inside the block a stop signal does not raise Interrupted: it is remembered, and raised when the
    block ends (if it ends normally and the job still waits). A loader half built, or half shut down,
    when Interrupted cut it would leave workers that nothing stops, and the job would wait for them
    at exit.

    A flag rather than a signal mask: pthread_sigmask holds the signals in the calling thread only,
    so the kernel hands them to another thread (the watchdog, tqdm's monitor, the writer) and Python
    still runs the handler in the main thread, inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run in the main thread only: nothing to hold here
        return
    _Critical.depth += 1  # from here on the handler defers: no Interrupted between this and the try
    ended = False
    try:
        yield
        ended = True
    finally:
        _Critical.depth -= 1
        stop, _Critical.deferred = (_Critical.deferred, None) if _Critical.depth == 0 else (None, _Critical.deferred)
    # A block that raised keeps its own exception; the stop is still set, and the job ends on it.
    if ended and stop is not None and stop._waiting:
        stop._waiting = False
        raise Interrupted


def next_or_stop(items: Iterator[T], stop: StopRequest) -> T | None:
    """The next decoded chunk; None at the end, or when a stop signal came while waiting for it."""
    try:
        with stop.waiting():
            return next(items, None)
    except Interrupted:
        return None
