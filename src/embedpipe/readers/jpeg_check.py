"""Is a JPEG's entropy-coded data whole? libjpeg decodes a damaged scan without an error: it warns
("Corrupt JPEG data: bad Huffman code", "... premature end of data segment"), fills what it could not
decode with grey or noise, and Pillow, which silences libjpeg's warnings, returns that picture as if
it were the photo. Its embedding is useless, so such a file becomes an error row.

The check decodes the scans again with libjpeg-turbo (simplejpeg, which raises on its warnings) at
1/8 scale to one grey channel: the entropy decoder still walks every coefficient of every component,
but only the DC terms are transformed (2 ms for a 2-megapixel baseline JPEG, 13 ms for 12; a
progressive one costs about what Pillow's reduced decode of it does). Only the markers the scans
need are kept for it (tables, frame, restart interval, then everything from the first scan), so a
metadata quirk libjpeg warns about (an odd JFIF version, junk between APP segments) neither stops
the check before the scans nor makes a good photo an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import simplejpeg

# libjpeg(-turbo)'s warnings about the scan data, the ones whose pixels are filler (jerror.h: JWRN_*)
_DAMAGED = re.compile(r"Corrupt JPEG data: (bad Huffman code|bad arithmetic code|premature end of data segment|"
                      r"found marker 0x\w+ instead of RST\d|\d+ extraneous bytes before marker 0xd[0-7])"
                      r"|Premature end of JPEG file|Inconsistent progression sequence", re.IGNORECASE)
# Bytes left over before EOI: every block was decoded; mostly padding some encoders write (a scan
# that lost sync can end so too, its damage then in the last rows). An SOS whose spectral parameters
# a sequential JPEG should not set: an encoder quirk libjpeg decodes around.
_HARMLESS = re.compile(r"extraneous bytes before marker 0xd9|Invalid SOS parameters for sequential", re.IGNORECASE)
# ISO libjpeg (pylibjpeg-libjpeg) codes for data that ran out or was not a valid code
_REFERENCE_DAMAGED = {-1025, -1026, -1038}
_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-15; C4 is DHT, C8 reserved, CC DAC
_SCAN_MARKERS = _FRAMES | {0xC4, 0xCC, 0xDB, 0xDD}  # frame, Huffman and arithmetic tables, DQT, DRI
_SOS, _EOI = 0xDA, 0xD9
# coding processes beyond Huffman-coded sequential and progressive DCT, by their SOF markers
_PROCESSES = {"hierarchical": {0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF}, "arithmetic-coded": set(range(0xC9, 0xD0)) - {0xCC},
              "lossless": {0xC3, 0xC7, 0xCB, 0xCF}}


class CorruptImageData(OSError):
    """The file decodes, but part of its picture is decoder filler: libjpeg said so."""


def check_jpeg_data(data: bytes) -> None:
    """Raise CorruptImageData when the scans of the JPEG in `data` are damaged."""
    found, scans = frame(data), scan_stream(data)
    if found is None or scans is None:
        return  # no frame and scan to walk: Pillow's decode is all there is to go by
    colours = "CMYK" if found.components == 4 else "GRAY"  # libjpeg converts CMYK to nothing else
    try:
        simplejpeg.decode_jpeg(scans, colorspace=colours, min_height=1, min_width=1, strict=True)
        return
    except ValueError as exc:
        warning = str(exc).strip()
    if _DAMAGED.search(warning):
        raise CorruptImageData(f"corrupt JPEG data (libjpeg-turbo: {warning}): part of the picture is filler")
    if _HARMLESS.search(warning):
        return
    # TurboJPEG refuses some valid layouts libjpeg reads (unusual sampling factors): the ISO reference
    # decoder walks those, whole-size and slower, for the rare file that gets here. It reports bad
    # codes, not a scan cut short (it fills that silently, as Pillow does).
    reference_check(scans)


def reference_check(scans: bytes) -> None:
    from libjpeg import decode  # pylibjpeg-libjpeg, the ISO/IEC 10918 reference decoder

    try:
        decode(scans)
    except RuntimeError as exc:
        found = re.search(r"error code '(-\d+)'.*? - (.*)", str(exc), re.DOTALL)
        if found and int(found.group(1)) in _REFERENCE_DAMAGED:
            raise CorruptImageData(f"corrupt JPEG data (libjpeg: {found.group(2).strip()}): "
                                   "part of the picture is filler") from None


@dataclass(frozen=True)
class Frame:
    marker: int  # SOF0-15: the coding process
    precision: int  # bits per sample
    components: int


def frame(data: bytes) -> Frame | None:
    """The JPEG's frame header, or None where none comes before the first scan."""
    for marker, at, end in segments(data):
        if marker in _FRAMES and end - at > 9:
            return Frame(marker, data[at + 4], data[at + 9])
    return None


def variant(data: bytes) -> str | None:
    """What sets this JPEG apart from the baseline and progressive 8-bit ones every decoder reads."""
    found = frame(data)
    if found is None:
        return None
    words = [f"{found.precision}-bit"] if found.precision != 8 else []
    words += [name for name, markers in _PROCESSES.items() if found.marker in markers]
    return " ".join([*words, "JPEG"]) if words else None


def scan_stream(data: bytes) -> bytes | None:
    """SOI, the marker segments the scans need, and the file from its first SOS on; None without SOS."""
    kept = [b"\xff\xd8"]
    for marker, at, end in segments(data):
        if marker == _SOS:
            return b"".join([*kept, data[at:]])
        if marker in _SCAN_MARKERS:
            kept.append(data[at:end])
    return None


def segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment after SOI, up to the first SOS (whose end is its start)."""
    at = 2
    while at < len(data) - 3:
        if data[at] != 0xFF or data[at + 1] in (0x00, 0xFF):
            at += 1  # fill bytes and junk between segments: libjpeg skips them too (with a warning)
            continue
        marker = data[at + 1]
        if marker == _SOS:
            yield marker, at, at
            return
        if marker == _EOI:
            return
        end = at + 2 + int.from_bytes(data[at + 2: at + 4], "big")
        yield marker, at, end
        at = end
