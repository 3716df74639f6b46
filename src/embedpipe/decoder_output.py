"""What native decoders print while they read a file, in the log under that file's key.

FFmpeg ("[h264 @ 0x55d…] Invalid NAL unit size"), mpg123 inside libsndfile ("Xing stream size off")
and libjpeg write straight to the process's stderr, not through Python: in the log of a 500,000-file
shard such a line names no file, and the one that caused it cannot be found. While a file is read,
file descriptor 2 points at a scratch file; what landed there is logged after, each distinct line
once, prefixed with the file's key. A Python warning raised by a reader lands there too.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

log = logging.getLogger(__name__)
MAX_LINES = 5  # distinct lines logged per file: a corrupt stream can print one per packet
MAX_BYTES = 64 * 1024  # read back at most this much of it
HELD_SIGNALS = {signal.SIGALRM, signal.SIGTERM, signal.SIGINT}
_POINTER = re.compile(r" @ 0x[0-9a-f]+\]")  # FFmpeg's context address: differs every run, names nothing


class DecoderOutput:
    """`with output.labelled(key):` around one file's decoding. One scratch file per process: a
    DataLoader worker forked from the process that made this object opens its own."""

    def __init__(self) -> None:
        self._scratch: IO[bytes] | None = None
        self._pid = 0

    def _file(self) -> IO[bytes]:
        if self._scratch is None or self._pid != os.getpid():
            self._scratch, self._pid = tempfile.TemporaryFile(), os.getpid()  # noqa: SIM115 (kept for the process)
        return self._scratch

    @contextmanager
    def labelled(self, key: str) -> Iterator[None]:
        try:
            scratch = self._file()
            scratch.seek(0)
            scratch.truncate()
            saved = os.dup(2)
        except (OSError, ValueError) as exc:  # a full /tmp, fd 2 closed: the file is read, uncaptured
            log.debug("decoder output not captured: %s", exc)
            yield
            return
        try:
            with _signals_held():  # a deadline's alarm here raises only after fd 2 is swapped: the finally restores it
                _flush_stderr()
                os.dup2(scratch.fileno(), 2)
            yield
        finally:
            with _signals_held():
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
            scratch.seek(0)
            for line in decoder_lines(scratch.read(MAX_BYTES)):
                log.warning("%s: decoder said: %s", key, line)

    def __getstate__(self) -> dict:
        return {"_scratch": None, "_pid": 0}  # a spawned worker opens its own


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGALRM (the decode deadline), SIGTERM and SIGINT wait until the block is done."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _flush_stderr() -> None:
    """Python's own stderr buffer, to the fd it was written for (a reader's warning: captured)."""
    with suppress(Exception):
        sys.stderr.flush()


def decoder_lines(raw: bytes) -> list[str]:
    """The distinct non-empty lines of what a decoder printed (at most MAX_LINES, then a count)."""
    lines = list(dict.fromkeys(_POINTER.sub("]", ln.strip()) for ln in raw.decode(errors="replace").splitlines()))
    lines = [ln for ln in lines if ln]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"(and {len(lines) - MAX_LINES} more distinct lines)"]
    return lines
