"""A shard job's progress file, `results/<run>/progress/<shard>.json`: what the running job writes, every
few seconds and atomically, and what it leaves at its end (then with its stats). Read by the `status`
command on any machine that sees the results folder (SLURM jobs run on other nodes), by the planner
(a trial's stats predict the full run), and by validation and the card.

One file per shard, not a declared output of the extract rule: an existing run without it is not
planned again, and a shard without one is simply "no progress known" (made before this file existed,
or pending). Standard library only: `status` runs on a login node without torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embedpipe.store.atomic import write_text_atomic

FOLDER = "progress"
VERSION = 1
# States a job writes. A job killed outright (SIGKILL, node failure, out of memory) writes nothing more:
# its file stays "running" and grows stale; the status command says so.
RUNNING, FINISHED, FAILED, STOPPED = "running", "finished", "failed", "stopped"  # stopped: SIGTERM (preempted)
WRITE_INTERVAL_S = 5.0  # a running job rewrites its record this often
# A running record older than this belongs to a job that died: six missed writes, and never under a
# minute (a results folder on NFS may show a file's new version seconds late).
# NFS clients cache a folder's attributes up to 60 s by default, so a reader may see a record a minute
# old from a live job; and nodes' clocks differ by seconds. Three minutes is past both.
STALE_AFTER_S = max(180.0, 6 * WRITE_INTERVAL_S)


def progress_path(run_dir: str | os.PathLike, shard: str) -> Path:
    return Path(run_dir) / FOLDER / f"{shard}.json"


def progress_path_of_parts(parts_dir: str | os.PathLike, shard: str) -> Path:
    """The extract job knows its parts folder (results/<run>/parts/<shard>): the run folder is above it."""
    return progress_path(Path(parts_dir).parent.parent, shard)


@dataclass(frozen=True)
class StageSeconds:
    """Wall seconds of this attempt by stage: waiting for decoded files, the model (the forward passes
    and, on a GPU, the waits for it), writing rows, parts and the shard file. Rows and parts are written
    on a thread of their own, beside the other two: the sum may exceed the loop's time
    (extract/progress_report.py says what each one counts)."""

    decode: float = 0.0
    model: float = 0.0
    write: float = 0.0


@dataclass(frozen=True)
class GpuNow:
    name: str
    memory_used_gib: float | None = None
    memory_total_gib: float | None = None
    utilization_pct: float | None = None


@dataclass(frozen=True)
class ShardProgress:
    shard: str
    state: str  # RUNNING, FINISHED, FAILED or STOPPED
    total: int  # files in the shard's manifest (a trial's: its first N)
    done: int  # files with a row or an error row, this attempt's and earlier attempts' parts together
    embedded_now: int = 0  # files this attempt processed (rate's numerator)
    reused: int = 0  # rows taken from the shard's previous version (unchanged files)
    rate: float = 0.0  # files/s of this attempt since its loop began (start-up left out: see `started`)
    errors: dict[str, int] = field(default_factory=dict)  # error rows by type (decode:<ExceptionName>, ...)
    started: float = 0.0  # this attempt's start, unix seconds
    updated: float = 0.0  # when this file was written, unix seconds
    host: str = ""
    pid: int = 0
    slurm_job: str | None = None  # 4711_3 for an array task, 4712 for a plain job, None outside SLURM
    attempt: int = 0  # starts of this shard's job before this one that did not finish (requeue, retry, kill)
    device: str = ""
    batch_size: int = 0
    gpu: GpuNow | None = None
    seconds: StageSeconds = field(default_factory=StageSeconds)
    peak_rss_mb: float | None = None
    peak_gpu_memory_gib: float | None = None
    message: str | None = None  # FAILED/STOPPED: the reason, one line
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.updated


def from_dict(data: dict[str, Any]) -> ShardProgress:
    """A progress record as written; keys of a later version are left out, missing ones take defaults."""
    known = {f.name for f in fields(ShardProgress)}
    values = {k: v for k, v in data.items() if k in known}
    if isinstance(values.get("gpu"), dict):
        values["gpu"] = GpuNow(**{k: v for k, v in values["gpu"].items() if k in {f.name for f in fields(GpuNow)}})
    if isinstance(values.get("seconds"), dict):
        values["seconds"] = StageSeconds(**{k: float(v) for k, v in values["seconds"].items()
                                            if k in {f.name for f in fields(StageSeconds)}})
    return ShardProgress(**values)


def read_progress(path: str | os.PathLike) -> ShardProgress | None:
    """The record, or None when there is none or it cannot be read (a half-written file never exists:
    it is written to a temporary name and renamed)."""
    try:
        return from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_progress(path: str | os.PathLike, record: ShardProgress) -> None:
    """Atomically (temporary file, then rename): a reader on another node sees the old or the new."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, record.to_json() + "\n")


def where_am_i() -> dict[str, Any]:
    """host, pid, slurm_job and attempt of this process, for a record."""
    env = os.environ
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else env.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job,
            "attempt": int(env.get("SLURM_RESTART_COUNT") or 0)}
