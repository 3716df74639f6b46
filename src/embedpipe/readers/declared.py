"""How long a file says it is, from its header: a truncated file decodes silently shorter.

libsndfile reports a truncated WAV's length from the bytes present, and FFmpeg reads a cut AVI or
MKV up to the cut without an error, so "decoded without error" does not mean "whole". The header
keeps the length the writer meant: a WAV/RF64/Wave64 data size, an AIFF COMM or CAF desc/pakt count,
FLAC's STREAMINFO, an MP3's Xing/Info/VBRI frame count, an MP4 track's mdhd, Matroska's Duration
(a video's frame count: `video_pyav.probe_video`). Formats whose header states no length (Ogg Vorbis/Opus, raw
ADTS AAC, MP3 without a VBR header) give None: unknown, not "whole". A duration FFmpeg or libsndfile
estimated from the file size and a bitrate is no declaration, and flags nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from embedpipe.readers import audio_headers as headers

# The parser for each container, under the decoder's own name for it: libsndfile's format (upper
# case), FFmpeg's demuxer (lower case). Containers not named here state no length, or none parsed
# here (IRCAM, PAF, PVF, SD2, MAT4/5, MPC2K, VOC, WVE, XI, SDS; FFmpeg's avi, asf, ...): unknown.
HEADER_FRAMES: dict[str, Callable[[str], int | None]] = {
    **dict.fromkeys(("WAV", "WAVEX", "RF64", "wav"), headers.wave_frames),  # FFmpeg's wav: RIFX, BW64 too
    **dict.fromkeys(("W64", "w64"), headers.w64_frames),
    **dict.fromkeys(("AIFF", "aiff"), headers.aiff_frames),
    **dict.fromkeys(("CAF", "caf"), headers.caf_frames),
    **dict.fromkeys(("FLAC", "flac"), headers.flac_frames),
    **dict.fromkeys(("OGG", "ogg"), headers.ogg_flac_frames),
    **dict.fromkeys(("AU", "au"), headers.au_frames),
    **dict.fromkeys(("NIST", "nistsphere"), headers.nist_frames),
    **dict.fromkeys(("AVR", "avr"), headers.avr_frames),
}
MP3 = ("MP3", "mp3")
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"  # FFmpeg's stream duration there is the track's mdhd duration
MATROSKA = "matroska,webm"


def audio_declared_frames(path: str, container: str, rate: int, stated: int | None) -> int | None:
    """Source frames the header declares. `container`: the decoder's name for the format; `stated`:
    the decoder's own frame count (libsndfile's frames, FFmpeg's stream duration × rate), used only
    where this module has checked that the header holds the number it came from."""
    try:
        if container in MP3:
            return stated if headers.mp3_states_length(path) else None
        if container == MP4:
            return stated
        if container == MATROSKA:
            seconds = headers.matroska_seconds(path)
            return None if seconds is None else round(seconds * rate)
        parse = HEADER_FRAMES.get(container)
        return parse(path) if parse else None
    except (OSError, ValueError, struct.error):  # a header the decoder got past but this reading cannot
        return None


def is_truncated(declared: int | None, decoded: int, slack: int) -> bool | None:
    """Shorter than declared by more than 1% and `slack` units (rounding in duration-based counts,
    codec delay and padding); None when the header declares no length."""
    if declared is None:
        return None
    return declared - decoded > max(slack, declared // 100)
