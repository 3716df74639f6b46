"""Stopping a shard job on SIGTERM/SIGINT (SLURM preemption, scancel): after the current batch, or at
once when the job is only waiting for decoded files."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Interrupted(BaseException):
    """A stop signal that came while the main process waited for decoded files (see StopRequest.waiting)."""


class StopRequest:
    """Set by SIGTERM/SIGINT (SLURM preemption, scancel): stop after the current batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self._waiting = False

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        self.event.set()
        if self._waiting:
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


def next_or_stop(items: Iterator[T], stop: StopRequest) -> T | None:
    """The next decoded chunk; None at the end, or when a stop signal came while waiting for it."""
    try:
        with stop.waiting():
            return next(items, None)
    except Interrupted:
        return None
