"""What a file that no image plugin reads is, by its first bytes, so that its error row names the
format ("JPEG XL image: no decoder available") instead of Pillow's "cannot identify image file",
which reads the same for a damaged photo, an unsupported format and a file that is no image at all.
Camera RAW files built on TIFF are caught after opening too: Pillow reads their first directory,
a small preview (or sensor data it cannot render), as if it were the photo.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

from PIL import TiffImagePlugin

from embedpipe.readers.jpeg_check import variant


class UnsupportedImageFormat(OSError):
    """An image format embedpipe has no decoder for."""


class NotAnImage(OSError):
    """A file that is no image: another kind of file, an empty one, or bytes no image format starts with."""


NO_DECODER = "no decoder available"
RAW = "(camera RAW) image"
# (offset, signature, what it is): the first match names the file
_IMAGES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\x0a", "JPEG XL image"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL image"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (0, b"II*\x00\x10\x00\x00\x00CR", f"Canon CR2 {RAW}"),
    (0, b"II\x1a\x00\x00\x00HEAPCCDR", f"Canon CRW {RAW}"),
    (0, b"IIRO", f"Olympus ORF {RAW}"),
    (0, b"IIRS", f"Olympus ORF {RAW}"),
    (0, b"MMOR", f"Olympus ORF {RAW}"),
    (0, b"IIU\x00", f"Panasonic RW2 {RAW}"),
    (0, b"FUJIFILMCCD-RAW", f"Fujifilm RAF {RAW}"),
    (0, b"\x00MRM", f"Minolta MRW {RAW}"),
    (0, b"FOVb", f"Sigma X3F {RAW}"),
    (0, b"8BPS", "Photoshop PSD image"),
    (0, b"gimp xcf", "GIMP XCF image"),
    (0, b"v/1\x01", "OpenEXR image"),
    (0, b"#?RADIANCE", "Radiance HDR image"),
    (0, b"#?RGBE", "Radiance HDR image"),
    (0, b"BPG\xfb", "BPG image"),
    (0, b"FLIF", "FLIF image"),
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"GIF8", "GIF image"),
    (0, b"II*\x00", "TIFF image"),
    (0, b"MM\x00*", "TIFF image"),
    (0, b"II+\x00", "TIFF image"),  # BigTIFF
    (0, b"MM\x00+", "TIFF image"),
)
_OTHER_FILES: tuple[tuple[int, bytes, str], ...] = (
    (128, b"DICM", "DICOM file"),
    (0, b"%PDF", "PDF document"),
    (0, b"RIFF", "RIFF file (WAV audio or AVI video)"),
    (4, b"moov", "QuickTime video"),
    (4, b"mdat", "QuickTime video"),
    (4, b"wide", "QuickTime video"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
    (0, b"OggS", "Ogg audio or video"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"ID3", "MP3 audio"),
    (0, b"PK\x03\x04", "ZIP archive"),
)
# Formats Pillow (or, for HEIF, libheif) reads: a file that starts like one but does not open is
# damaged, or a variant the decoder does not read.
_DECODED_BY = {"JPEG image": "Pillow", "PNG image": "Pillow", "GIF image": "Pillow", "TIFF image": "Pillow",
               "WebP image": "Pillow", "Photoshop PSD image": "Pillow", "JPEG 2000 image": "Pillow",
               "JPEG 2000 codestream": "Pillow", "HEIF image": "libheif"}
# ISO base media (ftyp) brands of stills: HEIF, AVIF, Canon's CR3; any other brand is audio or video
_BRANDS = {"avif": "AVIF image", "avis": "AVIF image sequence", "crx ": f"Canon CR3 {RAW}",
           **dict.fromkeys(("heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "mif2",
                            "msf1", "heif"), "HEIF image")}
# TIFF tags: NewSubfileType, PhotometricInterpretation, Make, SubIFDs, DNGVersion
_SUBFILE, _PHOTOMETRIC, _MAKE, _SUB_IFDS, _DNG_VERSION = 254, 262, 271, 330, 50706
_SENSOR_DATA = {32803, 34892}  # photometric interpretations CFA (colour filter array) and LinearRaw


def unreadable(data: bytes) -> OSError:
    """The error for a file (its bytes) that no image plugin opened."""
    if not data:
        return NotAnImage("not an image: the file is empty")
    kind, image = sniff(data[:512])
    if kind is None:
        return NotAnImage(f"not an image: no known image format starts with the bytes {data[:8].hex(' ')}")
    if not image:
        return NotAnImage(f"not an image: {kind}")
    if kind == "TIFF image":
        kind = camera_raw(data) or kind
    elif kind == "JPEG image":
        kind = f"{found} image" if (found := variant(data)) else kind
    if kind in _DECODED_BY:
        return UnsupportedImageFormat(f"{kind} that {_DECODED_BY[kind]} cannot open (a damaged header, or a "
                                      f"variant it does not read): {NO_DECODER}")
    return UnsupportedImageFormat(f"{kind}: {NO_DECODER}")


def sniff(head: bytes) -> tuple[str | None, bool]:
    """(what the file starting with `head` is, whether that is an image); (None, False): unknown."""
    if head[4:8] == b"ftyp":
        brands = [head[i: i + 4].decode("latin-1") for i in range(8, min(len(head), 8 + 4 * 16), 4)]
        # AVIF and CR3 files list HEIF's structural brands (mif1) too: theirs decide
        found = [_BRANDS[b] for b in brands if b in _BRANDS]
        if found:
            return next((k for k in found if k != "HEIF image"), found[0]), True
        return f"ISO media file (brand {brands[0].strip()!r}: audio or video)", False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image", True
    text = head.lstrip()
    if text.startswith((b"<svg ", b"<svg>")) or (text.startswith(b"<?xml") and b"<svg" in head):
        return "SVG (vector) image", True
    for table, image in ((_IMAGES, True), (_OTHER_FILES, False)):
        if kind := next((kind for at, sig, kind in table if head[at: at + len(sig)] == sig), None):
            return kind, image
    return None, False


def camera_raw(data: bytes) -> str | None:
    """What camera RAW file the TIFF in `data` is, or None for an ordinary TIFF. Some say so in their
    header; DNG in its first directory; the others keep sensor data (a CFA or linear-raw layout)
    there or in a sub-directory, behind a reduced-size preview Pillow would read as the photo."""
    if (kind := sniff(data[:16])[0]) and kind.endswith(RAW):
        return kind
    first = directory(data, None)
    if _DNG_VERSION in first:
        return f"DNG {RAW}"
    offsets = first.get(_SUB_IFDS) or ()
    subs = [directory(data, at) for at in (offsets if isinstance(offsets, tuple) else (offsets,))]
    preview = int(first.get(_SUBFILE) or 0) & 1 and subs
    if preview or any(d.get(_PHOTOMETRIC) in _SENSOR_DATA for d in (first, *subs)):
        make = str(first.get(_MAKE) or "").strip(" \x00")
        return f"{make} {RAW}" if make else f"TIFF-based {RAW}"
    return None


def directory(data: bytes, at: int | None) -> Mapping[int, Any]:
    """The TIFF directory at offset `at` (None: the first one); empty where it cannot be read."""
    big = b"+" in data[2:4]  # BigTIFF: a 16-byte header
    try:
        tags = TiffImagePlugin.ImageFileDirectory_v2(data[:16] if big else data[:8])
        fp = io.BytesIO(data)
        fp.seek(tags.next if at is None else at)
        tags.load(fp)
        return tags
    except (SyntaxError, ValueError, OSError, EOFError, KeyError, struct.error):
        return {}


def heif_cut_short(data: bytes) -> str | None:
    """Why the HEIF/AVIF file in `data` is truncated, or None. libheif decodes a grid image whose
    tiles were cut off without an error, the missing tiles filled in green; the top-level boxes
    show the cut: one, usually 'mdat' with the pictures, declares more bytes than the file has left."""
    at = 0
    while at + 8 <= len(data):
        size, name = int.from_bytes(data[at: at + 4], "big"), data[at + 4: at + 8].decode("latin-1")
        if size == 1 and at + 16 <= len(data):
            size = int.from_bytes(data[at + 8: at + 16], "big")  # 64-bit size
        elif size == 0:
            return None  # the last box, to the end of the file, whatever its length
        if size < 8:
            return None  # not a box structure this check can follow; libheif judges it
        if at + size > len(data):
            return f"its {name!r} box declares {size} bytes, {len(data) - at} are left in the file"
        at += size
    return None
