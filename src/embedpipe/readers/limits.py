"""Limits on what one file may decode to, checked from what its header declares before anything that
size is allocated: a 100-KB ECG declaring 0.1 Hz asks for gigabytes once resampled to 500 Hz, a
400-KB RLE DICOM declaring 30000×30000 pixels for 2.6 GB a frame. Such a file is an error row naming
the size it declares, not a job killed by the kernel for memory.

The byte limit is extract.max_decoded_gb: the extract step sets it (`set_max_decoded_gb`) before its
decode workers are forked, so they inherit it. What a header hides (a count that lies) is left to the
workers' memory ceiling (`cap_worker_memory`, set by `decode_guard.settle_worker`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

GIB = 1 << 30
DEFAULT_MAX_DECODED_GB = 4.0  # a 16-frame clip, a 10-s ECG or a 1-h clip takes well under 1 GiB
# One hour, as ECG's MAX_SECONDS: 1 h of 48-kHz stereo is 1.4 GB decoded (float32) before the 16-kHz
# copy, and a worker's chunk of 16 one-hour clips holds 3.7 GB. A longer recording (a day-long field
# recorder) is one vector for hours of sound: cut it into clips first.
MAX_AUDIO_SECONDS = 3600.0
# A decode worker may grow by this many times the limit: a file's decoding holds a few copies (source,
# resampled, converted), and a worker holds a chunk of 16 decoded files until it hands them over.
WORKER_CEILING_FACTOR = 3.0
_limit = {"bytes": int(DEFAULT_MAX_DECODED_GB * GIB)}


class DecodedTooLarge(RuntimeError):
    """A file whose header declares more than a limit allows."""


def set_max_decoded_gb(gb: float) -> None:
    _limit["bytes"] = int(gb * GIB)


def max_decoded_bytes() -> int:
    return _limit["bytes"]


def check_decoded(nbytes: float, declares: str, error: Callable[[str], Exception] = DecodedTooLarge) -> None:
    """Refuse a decoding of `nbytes` over the limit; `declares` says in words what the header declares."""
    limit = max_decoded_bytes()
    if not nbytes <= limit:  # NaN too: a size that cannot be computed is no size to allocate
        raise error(f"declares {declares}: {nbytes / GIB:.3g} GiB decoded, over the {limit / GIB:.3g} GiB limit "
                    "(extract.max_decoded_gb)")


def check_duration(seconds: float, max_seconds: float, where: str, hint: str = "",
                   error: Callable[[str], Exception] = DecodedTooLarge) -> None:
    if not (math.isfinite(seconds) and seconds <= max_seconds):
        raise error(f"{where}: {seconds:.0f} s is longer than {max_seconds:.0f} s{hint}")


def cap_worker_memory(factor: float = WORKER_CEILING_FACTOR) -> int | None:
    """In a decode worker: RLIMIT_DATA at what it holds now plus `factor` × the decoded-size limit, so that
    whatever a header hides (an LZW stream that grows without bound, a count that lies) fails an allocation,
    a MemoryError and an error row, before the kernel kills the job for memory. The new bytes; None when
    /proc does not say what the worker holds.

    RLIMIT_DATA, not RLIMIT_AS: it counts private writable memory (malloc, numpy, torch, FFmpeg's
    buffers, thread stacks), not the address space that CUDA and the allocators reserve and never touch.
    Measured from the worker's start: a forked worker's inherited pages (the parent's heap, a model on
    the CPU) count in it, though shared until written."""
    import resource

    held = _data_bytes()
    if held is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    ceiling = held + int(factor * max_decoded_bytes())
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    if soft == resource.RLIM_INFINITY or soft > ceiling:  # a stricter limit set by the user stays
        resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    return ceiling - held


def _data_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
