"""What FFmpeg (through PyAV) says a video holds, and PyAV as the second video decoder.

decord is the first decoder (the official V-JEPA 2 numbers come from it), but its FFmpeg (4.1) is old
and its frame index is its own: it has no AV1 decoder, hangs seeking in MPEG-TS, and counts every
packet of an MP4 or MOV, also those an edit list leaves out (an iPhone clip's trimmed last frame, the
preroll frame before a clip's first picture); it then timestamps frames one early and fills the end
with copies of the last frame. The probe reads the container's own index, with the header only,
counting what FFmpeg presents; when decord's count disagrees, PyAV decodes the file instead, every
frame, and the count is the frames that really decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DecodeFailed(RuntimeError):
    """The decoder stopped on an error part way through the stream."""


@dataclass(frozen=True)
class VideoProbe:
    """A video file's header as FFmpeg reads it (nothing decoded)."""

    container: str  # FFmpeg's demuxer: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mpegts", ...
    codec: str  # the codec's short name, upper case: "H264", "HEVC", "AV1"
    presented: int | None  # frames the container presents (edit lists applied); None: its index does not say
    declared: int | None  # frames the header declares (an edit list's drops taken off), else from its duration
    exact: bool  # `declared` is a count, not a duration times a rate that rounds
    frame_rate: float | None
    has_decoder: bool  # PyAV's FFmpeg decodes this codec


class ProbeError(RuntimeError):
    """FFmpeg cannot open the file, or finds no video stream in it."""


def probe_video(path: str) -> VideoProbe:
    import av

    try:
        # a title that is not UTF-8 would raise here; tags are not what is read
        with av.open(path, metadata_errors="replace") as container:
            stream = container.streams.best("video")
            if stream is None:
                raise ProbeError("no video stream")
            codec, has_decoder = _codec(stream)
            rate = stream.average_rate or stream.guessed_rate
            declared, exact = _declared(container, stream, rate)
            presented = None
            entries = stream.index_entries
            if exact and len(entries) == declared:
                # An index of every frame (MP4, MOV, AVI), read with the header. Matroska's and
                # MPEG-TS's list keyframes or nothing: reading every packet instead would cost a
                # long file's whole length, so there decord's own count stands.
                declared -= sum(1 for entry in entries if entry.is_discard)
                presented = declared
            return VideoProbe(container.format.name, codec, presented, declared, exact,
                              float(rate) if rate else None, has_decoder)
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        unclear = "Invalid data found when processing input"  # FFmpeg's word for both
        raise ProbeError("not a video FFmpeg reads, or cut short" if reason == unclear else reason) from None
    except OSError as exc:
        raise ProbeError(exc.strerror or str(exc)) from None


def _codec(stream) -> tuple[str, bool]:
    """The codec's name, and whether PyAV can decode it. Without a decoder FFmpeg still knows the
    stream's codec tag (the fourcc: `av01`, `hvc1`), which then names it."""
    try:
        context = stream.codec_context
        codec = getattr(context, "codec", None)
        if codec is not None and codec.is_decoder:
            return (codec.canonical_name or codec.name).upper(), True
        return (str(context.codec_tag or "").strip() or "unknown codec").upper(), False
    except Exception:  # a stream PyAV builds no context for
        return "UNKNOWN CODEC", False


def _declared(container, stream, rate) -> tuple[int | None, bool]:
    """The header's frame count (MP4's sample table, AVI's header), else its duration times its rate."""
    if stream.frames:
        return int(stream.frames), True
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return None, False
    return (round(seconds * float(rate)) if rate else None), False


def _rotated(frame) -> np.ndarray:
    """The frame as shown: PyAV leaves the display matrix (a phone's portrait clip) to the caller,
    decord applies it."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) / 90) % 4  # FFmpeg's rotation is counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def decode_frames(path: str, indices: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Every frame of the best video stream decoded, those at `indices` (sorted) kept as uint8 RGB.
    Returns (kept frames, frames decoded). A decoder error raises: a file that fails part way is an
    error, not a shorter clip."""
    import av

    wanted = np.bincount(indices) if len(indices) else np.zeros(0, int)  # an index sampled twice is kept twice
    kept: list[np.ndarray] = []
    decoded = 0
    with av.open(path, metadata_errors="replace") as container:
        stream = container.streams.best("video")
        stream.codec_context.thread_count = 1  # a decode worker is one thread; the workers are the parallelism
        try:
            for frame in container.decode(stream):
                if decoded < len(wanted) and wanted[decoded]:
                    kept += [_rotated(frame)] * int(wanted[decoded])
                decoded += 1
        except av.FFmpegError as exc:
            raise DecodeFailed(f"{exc.strerror or exc} after {decoded} frames") from None
    return kept, decoded
