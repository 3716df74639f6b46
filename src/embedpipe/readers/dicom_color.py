"""A decoded DICOM frame's samples → uint8 RGB, by its Photometric Interpretation (PS3.3 C.7.6.3.1.2).

Frames come here as the decoder left them (pydicom's `raw=True`): YCbCr still YCbCr, palette
indices still indices, so that the conversion is one piece of code whichever plugin decoded them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedpipe.readers import dicom_header

# PS3.3 C.7.6.3.1.2: RGB → YCbCr as the standard writes it; decoding inverts it.
YBR_FULL_FORWARD = np.array([[0.2990, 0.5870, 0.1140], [-0.1687, -0.3313, 0.5000], [0.5000, -0.4187, -0.0813]])
YBR_FULL_OFFSET = np.array([0.0, 128.0, 128.0])
YBR_PARTIAL_FORWARD = np.array([[0.2568, 0.5041, 0.0979], [-0.1482, -0.2910, 0.4392], [0.4392, -0.3678, -0.0714]])
YBR_PARTIAL_OFFSET = np.array([16.0, 128.0, 128.0])
YBR_INVERSE = {
    "YBR_FULL": (np.linalg.inv(YBR_FULL_FORWARD), YBR_FULL_OFFSET),
    "YBR_FULL_422": (np.linalg.inv(YBR_FULL_FORWARD), YBR_FULL_OFFSET),  # the decoder already upsampled chroma
    "YBR_PARTIAL_422": (np.linalg.inv(YBR_PARTIAL_FORWARD), YBR_PARTIAL_OFFSET),
    "YBR_PARTIAL_420": (np.linalg.inv(YBR_PARTIAL_FORWARD), YBR_PARTIAL_OFFSET),
}
PALETTE_COLOURS = ("Red", "Green", "Blue")
KNOWN_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
                     "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB")


class ColourError(ValueError):
    """Samples this module cannot turn into RGB; the message names only technical fields."""


def _to_uint8(samples: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Stored values → 0..255, the stored range mapped linearly (no windowing: the whole range kept)."""
    if samples.dtype == np.uint8 and bits_stored == 8 and not signed:
        return samples
    values = samples.astype(np.float32)
    if signed:
        values += float(1 << (bits_stored - 1))
    values *= 255.0 / float((1 << bits_stored) - 1)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def ybr_to_rgb(ybr: np.ndarray, photometric: str) -> np.ndarray:
    inverse, offset = YBR_INVERSE[photometric]
    rgb = (ybr.astype(np.float32) - offset.astype(np.float32)) @ inverse.T.astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _lut_to_uint8(entries: np.ndarray) -> np.ndarray:
    """8- or 16-bit LUT entries as 8-bit values. 16-bit tables usually hold an 8-bit value in the high
    byte (v << 8 or v * 257, both of which >> 8 returns exactly); some writers put 8-bit values in
    16-bit entries unscaled, and then every entry is under 256."""
    entries = entries.astype(np.uint16)
    if int(entries.max(initial=0)) > 255:  # also 8-bit entries written one a word, in its high byte
        return (entries >> 8).astype(np.uint8)
    return entries.astype(np.uint8)


def _descriptor(header: Any, colour: str) -> tuple[int, int, int]:
    """A channel's table descriptor: entries (0 stands for 2^16), first stored value mapped, bits an entry."""
    descriptor = header.get(f"{colour}PaletteColorLookupTableDescriptor")
    if not descriptor or len(descriptor) != 3:
        raise ColourError(f"PALETTE COLOR without a {colour} Palette Color Lookup Table Descriptor")
    count, first, bits = (int(v) for v in descriptor)
    return count or 65536, first, bits


def _palette_lut(header: Any, colour: str, little_endian: bool) -> tuple[np.ndarray, int]:
    """One channel's table as uint8, and the first stored value it maps (C.7.6.3.1.5)."""
    count, first, bits = _descriptor(header, colour)
    data = header.get(f"{colour}PaletteColorLookupTableData")
    if not data:
        raise ColourError(f"PALETTE COLOR without a {colour} Palette Color Lookup Table")
    raw = bytes(data)
    if bits == 8 and len(raw) < 2 * count:  # packed a byte an entry (OW padded to even length)
        entries = np.frombuffer(raw, dtype=np.uint8)[:count]
    else:  # 16-bit entries, or 8-bit ones written one a word
        entries = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little_endian else ">u2")[:count]
    if bits not in (8, 16) or len(entries) < count:
        raise ColourError(f"palette {colour} table: descriptor says {count} entries of {bits} bits, "
                          f"data holds {len(entries)}")
    return _lut_to_uint8(entries), first


def _apply_palette(indices: np.ndarray, header: Any, little_endian: bool) -> np.ndarray:
    """Stored values through the Red/Green/Blue tables; values below the first mapped one take the
    first entry and those past the end the last, as C.7.6.3.1.5 says."""
    if "SegmentedRedPaletteColorLookupTableData" in header:
        from pydicom.pixels import apply_color_lut  # segmented tables are rare in echo; pydicom expands them

        # The descriptor's entry size decides the scaling, the same for every frame of the file: the
        # expanded output's own maximum would differ between a dark frame and a bright one.
        bits = _descriptor(header, "Red")[2]
        if bits not in (8, 16):
            raise ColourError(f"segmented palette tables of {bits}-bit entries are not read")
        rgb = apply_color_lut(indices, header)
        return (rgb >> 8).astype(np.uint8) if bits == 16 else rgb.astype(np.uint8)
    channels = []
    for colour in PALETTE_COLOURS:
        lut, first = _palette_lut(header, colour, little_endian)
        position = np.clip(indices.astype(np.int64) - first, 0, len(lut) - 1)
        channels.append(lut[position])
    return np.stack(channels, axis=-1)


def frame_to_rgb(frame: np.ndarray, props: dict[str, Any], header: Any, little_endian: bool) -> np.ndarray:
    """One decoded frame ([H, W] or [H, W, 3]) → uint8 [H, W, 3]. `props` are the decoder's pixel
    properties for it: the photometric interpretation after decoding (a JPEG whose components are
    tagged RGB, or a JPEG 2000 with a colour transform, comes out RGB whatever the header says)."""
    photometric = str(props["photometric_interpretation"])
    bits, signed = int(props["bits_stored"]), bool(props.get("pixel_representation", 0))
    samples = 1 if frame.ndim == 2 else frame.shape[-1]
    if photometric == "PALETTE COLOR" and samples == 1:
        return _apply_palette(frame, header, little_endian)
    if photometric in ("MONOCHROME1", "MONOCHROME2") and samples == 1:
        grey = _to_uint8(frame, bits, signed)
        if photometric == "MONOCHROME1":  # minimum value is white
            grey = 255 - grey
        return np.repeat(grey[..., None], 3, axis=-1)
    if samples == 3 and photometric == "RGB":
        return _to_uint8(frame, bits, signed)
    if samples == 3 and photometric in YBR_INVERSE:
        return ybr_to_rgb(_to_uint8(frame, bits, signed), photometric)
    shown = dicom_header.shown(photometric, KNOWN_PHOTOMETRIC)
    raise ColourError(f"photometric interpretation {shown} with {samples} samples per pixel is not read")
