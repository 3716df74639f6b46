"""How long a file says it is, from its header: a truncated file decodes silently shorter.

libsndfile reports a truncated WAV's length from the bytes present, and FFmpeg reads a cut AVI or
MKV up to the cut without an error, so "decoded without error" does not mean "whole". The header
keeps the length the writer meant: a WAV's data chunk size, an AIFF/AIFC's COMM frame count, an
MP3's Xing/Info/VBRI frame count, FLAC's STREAMINFO, a video stream's frame count or duration.
Formats whose header states no length (OGG, MP3 without a VBR header) give None: unknown, not "whole".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

MP3_TAGS = (b"Xing", b"Info", b"VBRI")
STREAMING_SIZES = (0, 0xFFFFFFFF)  # written by recorders that never went back to fill the size in


def _chunks(path: str, container: bytes, forms: tuple[bytes, ...], order: str) -> Iterator[tuple[bytes, int, Any]]:
    """(tag, size, file positioned at the chunk's data) of each chunk of a RIFF (`<`) or IFF (`>`)
    file whose header is `container` and form one of `forms`; chunks are padded to an even size.
    A chunk the caller did not read is skipped."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != container or head[8:12] not in forms:
            return
        while len(chunk := fh.read(8)) == 8:
            tag, size = chunk[:4], struct.unpack(f"{order}I", chunk[4:])[0]
            start = fh.tell()
            yield tag, size, fh
            fh.seek(start + size + (size & 1))


def wav_data_frames(path: str) -> int | None:
    """Frames the RIFF header's `data` chunk declares (None if absent or left unset)."""
    block_align = 0
    for tag, size, fh in _chunks(path, b"RIFF", (b"WAVE",), "<"):
        if tag == b"fmt ":
            fmt = fh.read(size)
            block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
        elif tag == b"data":
            return size // block_align if block_align and size not in STREAMING_SIZES else None
    return None


def aiff_comm_frames(path: str) -> int | None:
    """numSampleFrames of an AIFF or AIFF-C file's COMM chunk (big-endian)."""
    for tag, _, fh in _chunks(path, b"FORM", (b"AIFF", b"AIFC"), ">"):
        if tag == b"COMM":
            comm = fh.read(6)
            return struct.unpack(">I", comm[2:6])[0] if len(comm) == 6 else None
    return None


def mp3_has_length_header(path: str) -> bool:
    """Whether the first MPEG frame carries a Xing/Info/VBRI header (the frame count of the file)."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:  # ID3v2 tag: a 28-bit synchsafe size follows
            start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        fh.seek(start)
        frame = fh.read(4096)
    sync = next((i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    first = frame[sync : sync + 200]  # the tag sits after the side information (at most 36 bytes in)
    return any(tag in first for tag in MP3_TAGS)


def audio_declared_frames(path: str, header_format: str, header_frames: int) -> int | None:
    """Source frames the header declares, given libsndfile's format name and frame count."""
    if header_format == "WAV":
        return wav_data_frames(path)
    if header_format == "AIFF":  # libsndfile's name for AIFF and AIFF-C; its frame count is the bytes present
        return aiff_comm_frames(path)
    if header_format == "FLAC":
        return header_frames or None  # STREAMINFO's total samples; 0 means "not stated"
    if header_format == "MP3":
        return header_frames if mp3_has_length_header(path) else None  # else a size/bitrate guess
    return None


def video_declared_frames(path: str) -> int | None:
    """Frames the container declares for its best video stream (the one decord decodes)."""
    import av

    # Tags that are not UTF-8 (a title written in Latin-1) would raise here; they are not what is read.
    with av.open(path, metadata_errors="replace") as container:
        stream = container.streams.best("video")
        if stream is None:
            return None
        if stream.frames:
            return int(stream.frames)
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            return None
        return round(seconds * float(rate)) if rate else None


def is_truncated(declared: int | None, decoded: int, slack: int) -> bool | None:
    """Shorter than declared by more than 1% and `slack` units (rounding in duration-based counts,
    codec delay and padding); None when the header declares no length."""
    if declared is None:
        return None
    return declared - decoded > max(slack, declared // 100)
