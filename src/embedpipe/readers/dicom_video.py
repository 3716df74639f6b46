"""DICOM cines (echo, ultrasound multi-frame) as uint8 RGB clips, decoding only the sampled frames.

Frames are sampled as for an MP4 (`frame_indices` over the frames in the file). An encapsulated
file holds each frame as its own JPEG / JPEG-LS / JPEG 2000 / RLE item, so only the sampled items
are read and decoded; native data is read a frame at a time from where each sampled frame lies.

Privacy: the header is read through `dicom_header` with `ALLOWED_FIELDS` only, so patient and study
fields are never even decoded into the dataset this module holds, and no fact or error message can
carry them. Error messages are this module's own sentences; any other failure, wherever it happens, is
reduced to its type name (`dicom_header.reading`).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np

from embedpipe.readers import dicom_header
from embedpipe.readers.dicom_color import ColourError, frame_to_rgb
from embedpipe.readers.dicom_items import ItemError, encapsulated_frames, read_fragments
from embedpipe.readers.limits import check_decoded
from embedpipe.readers.video_clip import VideoClip, VideoReadError, frame_indices

# The only header fields read (besides the file meta, which pydicom always reads and of which only the
# transfer syntax is used): image geometry and encoding, frame timing, palette tables, offsets.
ALLOWED_FIELDS = (
    "TransferSyntaxUID", "SOPClassUID", "NumberOfFrames", "Rows", "Columns", "SamplesPerPixel",
    "PhotometricInterpretation", "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "FrameTime", "CineRate", "RecommendedDisplayFrameRate", "FrameTimeVector",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
)
PIXEL_DATA = (0x7FE0, 0x0010)


class DicomReadError(VideoReadError):
    """A DICOM file this reader cannot give frames for; the message holds no header value outside
    `ALLOWED_FIELDS`."""


def _values(header: Any, keyword: str) -> list[float]:
    """The field's values as numbers; none if absent or not numbers."""
    try:
        value = header.get(keyword)
        if value is None or value == "":
            return []
        many = isinstance(value, Sequence) and not isinstance(value, str)
        return [float(v) for v in value] if many else [float(value)]
    except (TypeError, ValueError):
        return []


def _number(header: Any, keyword: str) -> float | None:
    """The field's value (the mean of its positive values, if several); None if absent or not a number."""
    positive = [v for v in _values(header, keyword) if np.isfinite(v) and v > 0]
    return float(np.mean(positive)) if positive else None


def _vector_increment_ms(header: Any) -> float | None:
    """The mean of the Frame Time Vector's increments (ms). PS3.3 C.7.6.5.1.2 makes the first entry the
    increment before the first frame, always 0: a leading 0 is left out, as it is no frame interval. Any
    other entry counts, so that the mean is the clip's real one."""
    values = _values(header, "FrameTimeVector")
    if values and values[0] == 0:
        values = values[1:]
    mean = float(np.mean(values)) if values else 0.0
    return mean if np.isfinite(mean) and mean > 0 else None


def _frame_rate(header: Any) -> float | None:
    """Frames per second: Frame Time (ms), else Cine Rate, else Recommended Display Frame Rate, else
    from the Frame Time Vector (`_vector_increment_ms`)."""
    if (frame_ms := _number(header, "FrameTime")) is not None:
        return 1000.0 / frame_ms
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        if (rate := _number(header, keyword)) is not None:
            return rate
    vector_ms = _vector_increment_ms(header)
    return 1000.0 / vector_ms if vector_ms is not None else None


def _declared_frames(header: Any) -> int:
    try:
        return max(1, int(header.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _read_header(fh: BinaryIO) -> tuple[Any, Any]:
    """The allow-listed header and the transfer syntax, `fh` left at the element after the header."""
    header = dicom_header.read_header(fh, ALLOWED_FIELDS, DicomReadError)
    syntax = header.file_meta.get("TransferSyntaxUID")
    if not isinstance(syntax, str) or not syntax.is_transfer_syntax:  # absent, or several (a MultiValue)
        raise DicomReadError("DICOM file meta has no Transfer Syntax UID that pydicom knows")
    return header, syntax


def _not_an_image(header: Any) -> DicomReadError:
    if (sop := dicom_header.sop_class(header)) is None:
        return DicomReadError("DICOM without Pixel Data or a known SOP class: cut short, or not an image")
    name = sop[1]
    if name.endswith("Image Storage"):  # an image class without pixels: the file ends before them
        return DicomReadError(f"DICOM {name} without Pixel Data: the file is cut short before its pixels")
    return DicomReadError(f"DICOM is not an image: {name} has no Pixel Data")


def _pixel_source(fh: BinaryIO, header: Any, syntax: Any) -> tuple[BinaryIO, int, int, Any, str]:
    """Where the Pixel Data value starts and ends, in `fh` (or, deflated, in the inflated value), and its VR."""
    if syntax.is_deflated:  # zlib over the whole dataset: it is inflated whole, then read as native
        fh.seek(0)
        header = dicom_header.read_header(fh, (*ALLOWED_FIELDS, "PixelData"), DicomReadError,
                                          stop_before_pixels=False)
        if header.get("PixelData") is None:
            raise _not_an_image(header)
        value = bytes(header.PixelData)
        return io.BytesIO(value), 0, len(value), header, header["PixelData"].VR
    endian = "<" if syntax.is_little_endian else ">"
    head = fh.read(8)
    if len(head) < 8 or struct.unpack(f"{endian}HH", head[:4]) != PIXEL_DATA:
        raise _not_an_image(header)  # the header ran to the end, or to Float Pixel Data (not an image we read)
    # A file whose meta says explicit VR but whose dataset is written implicit (pydicom reads those
    # too, with a warning): no VR letters after the tag.
    explicit = not syntax.is_implicit_VR and head[4:6].isalpha()
    length = struct.unpack(f"{endian}L", fh.read(4) if explicit else head[4:])[0]
    # Big-endian OW holds 8-bit samples byte-swapped in 16-bit words: the decoder must know the VR.
    vr = head[4:6].decode("ascii") if explicit else ("OW" if int(header.BitsAllocated) > 8 else "OB")
    start, size = fh.tell(), os.fstat(fh.fileno()).st_size
    return fh, start, size if length == 0xFFFFFFFF else min(size, start + length), header, vr


def _preferred_plugin(decoder: Any, syntax: Any, header: Any) -> str:
    """The faster of pydicom's plugins where it has one: pylibjpeg-rle decodes RLE ~8x faster than
    pydicom's numpy decoder, Pillow's libjpeg-turbo 8-bit JPEG ~3x faster than pylibjpeg-libjpeg.
    pydicom would try its plugins in name order; the others remain the fallback."""
    from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit, RLELossless

    plugin = {RLELossless: "pylibjpeg", JPEGBaseline8Bit: "pillow", JPEGExtended12Bit: "pillow"}.get(syntax, "")
    if syntax == JPEGExtended12Bit and int(header.get("BitsStored") or 8) > 8:
        return ""  # Pillow decodes 8-bit samples only
    return plugin if plugin in decoder.available_plugins else ""


def _sampled(fh: BinaryIO, start: int, end: int, header: Any, syntax: Any, vr: str,
             num_frames: int) -> tuple[Callable[[str], Iterator[tuple[np.ndarray, dict]]], str, int, np.ndarray]:
    """A decoding of the distinct sampled frames (lazy, given a plugin name), the plugin to try first,
    the whole frames present, and where each of the `num_frames` samples sits among the distinct ones."""
    from pydicom.encaps import encapsulate
    from pydicom.pixels import as_pixel_options, get_decoder
    from pydicom.pixels.decoders.base import DecodeRunner

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DicomReadError(f"no pixel data decoder for {syntax.name}") from None
    declared = _declared_frames(header)
    try:
        options = as_pixel_options(header)
        if not syntax.is_encapsulated:
            runner = DecodeRunner(syntax)
            runner.set_options(**options | {"number_of_frames": 1})
            present = min(declared, int((end - start) // runner.frame_length(unit="bytes")))
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
        raise DicomReadError("the Image Pixel module is incomplete (Rows, Columns, Bits Allocated ...)") from None
    options.pop("extended_offsets", None)  # resolved here: the decoder sees only the sampled frames
    options["pixel_keyword"] = "PixelData"  # what a Dataset source would tell it; a file-like cannot
    options["pixel_vr"] = vr
    if syntax.is_encapsulated:
        try:
            frames = encapsulated_frames(fh, start, end, syntax, declared, header.get("ExtendedOffsetTable"))
        except ItemError as exc:
            raise DicomReadError(str(exc)) from None
        present = len(frames)
    if present == 0:
        raise DicomReadError(f"no whole frame in the Pixel Data ({declared} declared): the file is cut short")
    wanted, positions = np.unique(frame_indices(present, num_frames), return_inverse=True)
    # Before a decoder allocates a frame: 400 KB of RLE can declare 30000×30000 pixels. The decoder's
    # frames (at Bits Allocated) and the uint8 RGB clip.
    rows, columns, per_pixel = int(header.Rows), int(header.Columns), int(header.get("SamplesPerPixel") or 1)
    frame_bytes = rows * columns * per_pixel * -(-int(header.BitsAllocated) // 8)
    check_decoded(len(wanted) * frame_bytes + num_frames * rows * columns * 3,
                  f"{rows}×{columns}×{per_pixel} × {len(wanted)} frames", DicomReadError)
    if syntax.is_encapsulated:
        encoded = encapsulate([read_fragments(fh, frames[i]) for i in wanted])
        options["number_of_frames"] = len(wanted)

        def decode(plugin: str) -> Iterator[tuple[np.ndarray, dict]]:
            return decoder.iter_array(encoded, raw=True, decoding_plugin=plugin, **options)
    else:
        options["number_of_frames"] = present

        def decode(plugin: str) -> Iterator[tuple[np.ndarray, dict]]:
            # A runner a frame: pydicom 3.0's iter_array marks native YBR_FULL_422 as YBR_FULL once it
            # has expanded the first frame, and then reads the next ones at the wrong length.
            for index in wanted.tolist():
                fh.seek(start)  # pydicom reads frame i of a file-like at (position + i * frame length), and no more
                yield decoder.as_array(fh, index=index, raw=True, decoding_plugin=plugin, **options)
    return decode, _preferred_plugin(decoder, syntax, header), present, positions


def _message(exc: Exception) -> str:
    """A decoder's complaint, on one line. Decoders see only the pixel bytes and the allow-listed fields."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_dicom_video(path: str, num_frames: int) -> VideoClip:
    """`num_frames` frames of a DICOM cine as uint8 [T, H, W, 3], sampled as for a video file. A
    single-frame image gives its frame T times (frames_decoded 1); a file cut inside its pixel
    data gives frames spread over the whole frames left, flagged truncated. Every failure is a
    DicomReadError whose message quotes no header value."""
    with dicom_header.reading(DicomReadError, DicomReadError), open(path, "rb") as fh:
        header, syntax = _read_header(fh)
        src, start, end, header, vr = _pixel_source(fh, header, syntax)
        decode, preferred, present, positions = _sampled(src, start, end, header, syntax, vr, num_frames)
        for plugin in dict.fromkeys((preferred, "")):  # the preferred plugin, then all of pydicom's
            try:
                rgb = [frame_to_rgb(frame, props, header, syntax.is_little_endian) for frame, props in decode(plugin)]
                break
            except (DicomReadError, ColourError) as exc:
                raise DicomReadError(str(exc)) from None
            except Exception as exc:
                failure = f"{syntax.name} frame did not decode ({type(exc).__name__}: {_message(exc)})"
        else:
            raise DicomReadError(failure)
        frames = np.stack(rgb)[positions]
        return VideoClip(frames, present, _declared_frames(header), frame_rate=_frame_rate(header),
                         height=int(header.Rows), width=int(header.Columns), transfer_syntax=syntax.name,
                         counts_exact=True, decoder="pydicom")
