"""GPU slots on one machine without a scheduler: each extract job claims a free GPU for its lifetime.

Snakemake's `--resources gpu=N` bounds how many extract jobs run at once, but does not say which
device a job should use. A slot is a lock file per (slot, device) under a machine-local folder; a job
takes the first slot it can `flock` exclusively and sets `CUDA_VISIBLE_DEVICES` before CUDA starts.
The kernel drops a flock when its process dies, however it dies (SIGKILL and OOM kills included), so
a crashed job never leaves its GPU booked. Two slots may name the same device (two jobs sharing one
GPU on purpose).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    # Machine-local and per user: slots describe this machine's GPUs, whatever run or clone uses them.
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"embedpipe-gpu-slots-{os.getuid()}"


def parse_slots(spec: str) -> list[str]:
    """`auto` (every GPU nvidia-smi lists), `0,1,2,3`, or with repeats `0,0,1,1` (two jobs per GPU)."""
    if spec == "auto":
        devices = visible_gpus()
        if not devices:
            raise RuntimeError("extract.gpu_slots: auto found no GPU (nvidia-smi -L lists none)")
        return devices
    slots = [s.strip() for s in spec.split(",") if s.strip()]
    if not slots or not all(s.isdigit() for s in slots):
        raise ValueError(f"extract.gpu_slots: {spec!r} is not auto or a list of device indices like 0,1,2,3")
    return slots


def visible_gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


@dataclass
class GpuSlot:
    index: int
    device: str
    path: Path
    fd: int

    def release(self) -> None:
        """Give the slot back; process exit does the same."""
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def try_claim(slots: list[str], lock_dir: Path) -> GpuSlot | None:
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index, device in enumerate(slots):
        path = lock_dir / f"slot-{index}-gpu-{device}.lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        # Who holds it, for a person looking at the folder; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        return GpuSlot(index, device, path, fd)
    return None


def wants_slot(spec: str, device: str) -> bool:
    """Claim only where nothing chose a device yet: not under SLURM (it sets CUDA_VISIBLE_DEVICES), not
    for an explicit `cuda:K` or `cpu`, not on a machine without GPUs (`auto`)."""
    if spec == "none" or device not in ("auto", "cuda"):
        return False
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return False
    return spec != "auto" or bool(visible_gpus())


def claim_gpu(slots: list[str], lock_dir: Path | None = None, timeout_s: float = 600.0,
              poll_s: float = 0.5, stopped: Callable[[], bool] = lambda: False) -> GpuSlot | None:
    """Claim a free slot and point CUDA at its device; wait for one up to `timeout_s`, or until
    `stopped()` (a SIGTERM while waiting: None).

    With `--resources gpu=N` and N slots a job finds one at once; the wait covers a job that is
    still exiting when Snakemake starts the next.
    """
    lock_dir = lock_dir or default_lock_dir()
    deadline = time.monotonic() + timeout_s
    waiting = False
    while (slot := try_claim(slots, lock_dir)) is None:
        if not waiting:
            log.info("every GPU slot of %s is taken (%s); waiting for one", slots, lock_dir)
            waiting = True
        if stopped():
            return None
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot among {slots} in {lock_dir} after {timeout_s:.0f} s: is "
                               "--resources gpu= larger than extract.gpu_slots, or another run using them?")
        time.sleep(poll_s)
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.device
    log.info("GPU slot %d claimed: CUDA_VISIBLE_DEVICES=%s (%s)", slot.index, slot.device, slot.path)
    return slot
