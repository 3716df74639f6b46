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
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from embedpipe.runtime.stop import critical

log = logging.getLogger(__name__)
MAX_LINES = 5  # distinct lines logged per file: a corrupt stream can print one per packet
MAX_BYTES = 64 * 1024  # read back at most this much of it
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
            # A stop signal (SIGTERM, with num_workers 0) raises only after a swap, where the finally
            # restores fd 2; the decode deadline's alarm is armed inside read_within, within this block.
            with critical():
                _flush_stderr()
                os.dup2(scratch.fileno(), 2)
            yield
        finally:
            with critical():
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
            scratch.seek(0)
            for line in decoder_lines(scratch.read(MAX_BYTES)):
                log.warning("%s: decoder said: %s", key, line)

    def __getstate__(self) -> dict:
        return {"_scratch": None, "_pid": 0}  # a spawned worker opens its own


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
