"""An error row's type and message: one readable line, whatever the decoder printed.

Native decoders put their own build's source paths and a clock time in front of the reason
(decord: `[13:06:56] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: ...`, repeated once
per layer it passed through). That prefix says nothing about the file, differs from run to run (so
equal failures would not group in the report), and FFmpeg's numeric error codes need a lookup.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 2000
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


def error_fields(exc: BaseException) -> tuple[str, str]:
    """(type name, message) of an exception, as an error row holds them."""
    return type(exc).__name__, clean_message(str(exc)) or repr(exc)[:MAX_MESSAGE]
