"""Where each frame of encapsulated DICOM Pixel Data lies (PS3.5 A.4), found from item headers and
offset tables without reading the frames, so that only the sampled ones are read."""

from __future__ import annotations

import struct
from itertools import pairwise
from typing import Any, BinaryIO

ITEM, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
JPEG_END = b"\xff\xd9"  # EOI of JPEG and JPEG-LS, EOC of JPEG 2000: the last bytes of a frame
Fragments = list[tuple[int, int]]  # (value offset in the file, length) of each item


class ItemError(ValueError):
    """Encapsulated pixel data that is not a sequence of items."""


def _items(fh: BinaryIO, start: int, end: int, endian: str) -> tuple[Fragments, bool]:
    """The encapsulated value's whole items as (value offset, length), and whether the sequence
    delimiter was reached (False: the file ends inside the pixel data)."""
    items, position = [], start
    while position + 8 <= end:
        fh.seek(position)
        group, element, length = struct.unpack(f"{endian}HHL", fh.read(8))
        if (group, element) == SEQUENCE_END:
            return items, True
        if (group, element) != ITEM or length == 0xFFFFFFFF:
            raise ItemError("encapsulated Pixel Data holds something other than items")
        if position + 8 + length > end:
            break
        items.append((position + 8, length))
        position += 8 + length
    return items, False


def _table(raw: bytes, width: int, endian: str) -> list[int] | None:
    """An offset table's entries (4-byte Basic, 8-byte Extended); None if its length is no whole number of them."""
    if not raw or len(raw) % width:
        return None
    return list(struct.unpack(f"{endian}{len(raw) // width}{'L' if width == 4 else 'Q'}", raw))


def _group_by_offsets(fragments: Fragments, offsets: list[int], closed: bool) -> list[Fragments] | None:
    """Frames from a Basic or Extended Offset Table (offsets of each frame's first item tag, counted
    from the first fragment's); a frame is whole when the next one starts within what is present.
    None for a table that cannot be right: not starting at 0, not strictly increasing, or an offset
    within the data that is no fragment's start (which also leaves no frame empty); after the
    sequence's end no offset may remain, while in a file cut short the later ones lie past the cut."""
    if not fragments:
        return []
    origin = fragments[0][0] - 8
    starts = [offset - 8 - origin for offset, _ in fragments]  # each fragment's item tag, as the table counts
    present_end = starts[-1] + 8 + fragments[-1][1]
    known = set(starts)
    if offsets[0] != 0 or any(b <= a for a, b in pairwise(offsets)):
        return None
    if any(at not in known for at in offsets if at < present_end) or (closed and offsets[-1] >= present_end):
        return None
    frames = []
    for k, begin in enumerate(offsets):
        stop = offsets[k + 1] if k + 1 < len(offsets) else None
        if (stop is None and not closed) or (stop is not None and stop > present_end):
            break
        inside = [begin <= at and (stop is None or at < stop) for at in starts]
        frames.append([f for f, keep in zip(fragments, inside, strict=True) if keep])
    return frames


def _group_by_markers(fh: BinaryIO, fragments: Fragments, closed: bool) -> list[Fragments]:
    """Frames without an offset table: a frame ends at a fragment whose last bytes hold the JPEG
    end marker (the rule pydicom and DCMTK use); trailing fragments with none are one last frame
    only when the sequence closed."""
    frames, current = [], []
    for offset, length in fragments:
        current.append((offset, length))
        fh.seek(offset + max(0, length - 10))
        if JPEG_END in fh.read(min(10, length)):
            frames.append(current)
            current = []
    if current and closed:
        frames.append(current)
    return frames


def _grouped(fh: BinaryIO, start: int, end: int, syntax: Any, declared: int, extended: bytes | None) -> list[Fragments]:
    from pydicom.uid import RLELossless

    endian = "<" if syntax.is_little_endian else ">"
    items, closed = _items(fh, start, end, endian)
    if not items:
        return []
    (table_at, table_length), fragments = items[0], items[1:]
    fh.seek(table_at)
    basic = fh.read(table_length)
    for offsets in (_table(bytes(extended or b""), 8, endian), _table(basic, 4, endian)):
        # a table that cannot be right is ignored, as if absent: the frames are then found without it
        if offsets and (frames := _group_by_offsets(fragments, offsets, closed)) is not None:
            return frames
    if declared == 1:
        return [fragments] if closed and fragments else []
    if syntax == RLELossless or (closed and len(fragments) == declared):
        return [[f] for f in fragments]  # RLE: one fragment a frame (PS3.5 G.2)
    return _group_by_markers(fh, fragments, closed)


def encapsulated_frames(fh: BinaryIO, start: int, end: int, syntax: Any, declared: int,
                        extended: bytes | None = None) -> list[Fragments]:
    """Each whole frame's fragments (at most `declared` frames) in the encapsulated value at
    [start, end) of `fh`, from the item headers and offset tables alone; only without a table are
    frame ends peeked at. A file cut inside its pixel data gives the frames before the cut."""
    return _grouped(fh, start, end, syntax, declared, extended)[:declared]


def read_fragments(fh: BinaryIO, fragments: Fragments) -> bytes:
    """One frame's encoded bytes."""
    parts = []
    for offset, length in fragments:
        fh.seek(offset)
        parts.append(fh.read(length))
    return b"".join(parts)
