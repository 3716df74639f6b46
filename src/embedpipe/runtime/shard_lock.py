"""One extract run per shard: `<parts_dir>.lock`, held with flock for the life of the run.

Two runs on one shard (by hand, or two workflows on one results folder with Snakemake's lock
removed) would write and remove each other's parts. The kernel drops a flock when its process dies,
however it dies, so a killed run never leaves a stale lock; the file itself stays (removing a lock
file that another run may be opening would let two runs hold "the" lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from embedpipe.store.atomic import OutputWriteError

# The lock fds this process holds. A forked decode worker shares each flock until it closes its copy,
# so settle_worker closes them first thing: the lock then ends with the run, not with its last worker
# (one still dying after a SIGKILL of the run would refuse the rerun the shard).
_HELD: set[int] = set()


def close_inherited_locks() -> None:
    """In a forked child: close the copies of the parent's shard-lock fds (the parent's lock stays)."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


class ShardBusy(Exception):
    """Another live process holds the shard; str() is the log line."""


def lock_path(parts_dir: Path) -> Path:
    return parts_dir.with_name(f"{parts_dir.name}.lock")


@contextlib.contextmanager
def shard_lock(parts_dir: Path, shard: str) -> Iterator[Path]:
    """Hold the shard's lock, or raise ShardBusy at once (never waits: the other run may take hours)."""
    path = lock_path(parts_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ShardBusy(f"shard {shard} is being extracted by PID {holder} (lock {path}); "
                            "wait for it or stop it") from None
        _HELD.add(fd)
        with contextlib.suppress(OSError):  # the PID only informs a second run; a full disk is said later
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the lock
