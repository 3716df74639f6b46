"""Watching a run's progress files from a test: wait for a record, or follow `status` through a run
(`StatusWatcher`: for the SLURM cluster test, while its run goes on)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from embedpipe.runtime.status import RunStatus, run_status
from embedpipe.store.progress import ShardProgress, read_progress


def wait_for_record(path: Path, wanted: Callable[[ShardProgress], bool], job: subprocess.Popen | None = None,
                    timeout_s: float = 180.0) -> ShardProgress:
    """Poll the progress file until its record is `wanted`; fail when the job ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = read_progress(path)
        if record is not None and wanted(record):
            return record
        if job is not None and job.poll() is not None:
            raise AssertionError(f"the job ended ({job.returncode}) before its record did; last: {record}")
        time.sleep(0.1)
    raise AssertionError(f"no wanted record in {path} after {timeout_s:g} s; last: {read_progress(path)}")


class StatusWatcher:
    """`status` of a run every `every_s` on a thread, while the test drives the run (the SLURM cluster
    test: a requeue). `seen`: each (shard, state, job) it saw; the last status is `last`.

        with StatusWatcher(work / "results/demo") as watch:
            ...  # the run, a requeue
        assert ("p10", "running", "4711_1") in watch.seen
    """

    def __init__(self, run_dir: Path, every_s: float = 0.5) -> None:
        self.run_dir, self.every_s = run_dir, every_s
        self.seen: set[tuple[str, str, str]] = set()
        self.last: RunStatus | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while True:
            self.last = run_status(self.run_dir)
            self.seen |= {(s.shard, s.state, s.job) for s in self.last.shards}
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> StatusWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.last = run_status(self.run_dir)


def status_command(run_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m embedpipe status <run_dir>` as a user types it."""
    return subprocess.run([sys.executable, "-m", "embedpipe", "status", str(run_dir), *args], env=env,
                          capture_output=True, text=True, timeout=120)
