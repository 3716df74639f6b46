"""An error row's type and message: one readable line, whatever the decoder printed; and the error
rows grouped by type, as the validation report lists them.

Native decoders put their own build's source paths and a clock time in front of the reason
(decord: `[13:06:56] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: ...`, repeated once
per layer it passed through). That prefix says nothing about the file, differs from run to run (so
equal failures would not group in the report), and FFmpeg's numeric error codes need a lookup.
"""

from __future__ import annotations

import os
import re
from typing import Any

MAX_MESSAGE = 2000
ERROR_ROWS_SHOWN = 100  # per error type, in metrics.json and the report; all are counted
_CLOCK = re.compile(r"\[\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\]\s*")
_SOURCE_LINE = re.compile(r"(?:[\w.~-]*/)+[\w.-]+\.(?:cc|cpp|cxx|c|h|hpp):\d+:\s*")
# FFmpeg's AVERROR values as decord prints them inside "Check failed: ... (code vs. 0)"
_AVERRORS = {-1094995529: "invalid data found when processing input", -541478725: "end of file",
             -1414092869: "invalid data in the bitstream", -5: "I/O error", -12: "out of memory",
             -1128613112: "decoder not found", -1381258232: "stream not found", -22: "invalid argument"}
_AVERROR_CODE = re.compile(r"\((-\d+) vs\. 0\)")


def clean_message(text: str) -> str:
    """One line, without clock times and native source locations; FFmpeg codes named."""
    line = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    line = _SOURCE_LINE.sub("", _CLOCK.sub("", line))
    line = _AVERROR_CODE.sub(lambda m: f"({_AVERRORS.get(int(m.group(1)), 'FFmpeg error ' + m.group(1))})", line)
    return re.sub(r"\s+", " ", line).strip()[:MAX_MESSAGE]


def relative_to(message: str, root: str | os.PathLike, key: str) -> str:
    """The message with the file's path written as its key, and any other path under an absolute
    input root (a WFDB record's `.dat`) relative to the root: an error row names its file by key,
    wherever the input happened to be mounted. A relative root is only replaced as the file's path:
    as a bare prefix it would also match inside other words (`data/` in `metadata/`)."""
    message = message.replace(os.path.join(os.fspath(root), key), key)
    prefix = os.fspath(root).rstrip("/")
    return message.replace(f"{prefix}/", "") if os.path.isabs(prefix) and prefix else message


def error_fields(exc: BaseException) -> tuple[str, str]:
    """(type name, message) of an exception, as an error row holds them."""
    return type(exc).__name__, clean_message(str(exc)) or repr(exc)[:MAX_MESSAGE]


class ErrorGroups:
    """The error rows by error type: every row counted, the first `shown` of each type kept (a
    corrupt batch of 50,000 files must not put 50,000 rows in memory or in the report)."""

    def __init__(self, shown: int = ERROR_ROWS_SHOWN) -> None:
        self.shown = shown
        self.count: dict[str, int] = {}
        self.rows: dict[str, list[dict[str, str]]] = {}

    def add(self, shard: str, rows: list[dict[str, str]]) -> None:
        for row in rows:
            kind = row["error_type"] or "unknown"
            self.count[kind] = self.count.get(kind, 0) + 1
            kept = self.rows.setdefault(kind, [])
            if len(kept) < self.shown:
                kept.append({"key": row["key"], "shard": shard, "stage": row["stage"], "message": row["message"]})

    def summary(self) -> list[dict[str, Any]]:
        """Most frequent type first: [{error_type, count, rows: [{key, shard, stage, message}, ...]}]."""
        order = sorted(self.count, key=lambda kind: (-self.count[kind], kind))
        return [{"error_type": kind, "count": self.count[kind], "rows": self.rows[kind]} for kind in order]
