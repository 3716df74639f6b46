"""The frame count an audio container's header states, container by container (declared.py says why).

Each parser reads only the header of the layout it is named for and returns the frames it declares,
or None where this file declares none: a size left unset by a recorder that never went back, a
compression whose count is not in frames, a layout it does not recognise. None means "unknown", never
"whole". libsndfile and FFmpeg both report lengths they worked out from the bytes present (a cut WAV
reads as a shorter whole one) or guessed from a bitrate, so the numbers come from the header here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

STREAMING_SIZES = (0, 0xFFFFFFFF)  # written by recorders that never went back to fill the size in
W64_SUFFIX = bytes.fromhex("f3acd3118cd100c04f8edb8a")  # a Wave64 chunk GUID after its 4 letters
W64_RIFF = b"riff" + bytes.fromhex("2e91cf11a5d628db04c10000")
# WAVE format tags (or WAVE_FORMAT_EXTENSIBLE subformats) whose data is whole frames of block_align
# bytes: PCM, IEEE float, A-law, mu-law. MS ADPCM, IMA ADPCM and GSM 6.10 blocks hold the fmt
# extension's wSamplesPerBlock frames; other compressed ones count their frames in the fact chunk.
FRAMED_WAVE_TAGS = (1, 3, 6, 7)
BLOCK_CODED_WAVE_TAGS = (0x02, 0x11, 0x31)
# AIFF-C compressions whose COMM count is frames; IMA4's counts packets of 64 frames.
AIFC_FRAMES = (b"NONE", b"sowt", b"twos", b"raw ", b"fl32", b"FL32", b"fl64", b"FL64", b"in24", b"42ni",
               b"in32", b"23ni", b"ulaw", b"ULAW", b"alaw", b"ALAW")
AIFC_PACKET_FRAMES = {b"ima4": 64}
AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}  # encoding → bytes; G.72x: not frames
MP3_LENGTH_TAGS = (b"Xing", b"Info")  # LAME's frame-count header (Info: the CBR spelling)
EBML_SEGMENT, EBML_INFO, EBML_CLUSTER = 0x18538067, 0x1549A966, 0x1F43B675
EBML_DURATION, EBML_TIMESTAMP_SCALE = 0x4489, 0x2AD7B1


def _chunks(fh: BinaryIO, id_size: int, size_format: str, size_counts_header: bool,
            align: int) -> Iterator[tuple[bytes, int]]:
    """(id, data size) of each chunk from the file's position on, the file positioned at the chunk's
    data; the next chunk starts at the next multiple of `align` after it, whatever the caller read.
    RIFF/IFF: 4-byte ids, 32-bit sizes, even offsets. Wave64: 16-byte GUIDs, 64-bit sizes counting
    the 24-byte chunk header, 8-byte offsets. CAF: 64-bit signed sizes, -1 for a data chunk whose
    writer did not know its size (the data then runs to the end of the file)."""
    header = id_size + struct.calcsize(size_format)
    while len(raw := fh.read(header)) == header:
        size = struct.unpack(size_format, raw[id_size:])[0] - (header if size_counts_header else 0)
        start = fh.tell()
        yield raw[:id_size], size
        if size < 0:
            return
        end = start + size
        fh.seek(end + (-end) % align)


def _wave_frames(chunks: Iterator[tuple[bytes, int]], fh: BinaryIO, order: str) -> int | None:
    """Frames of a WAVE body: the data size over the frame size, or the fact chunk's count when compressed."""
    tag = block_align = block_frames = 0
    fact = ds64_data = None
    for chunk, size in chunks:
        if chunk == b"ds64":  # RF64/BW64: the 64-bit sizes of chunks whose 32-bit size says 0xFFFFFFFF
            body = fh.read(16)
            ds64_data = struct.unpack("<Q", body[8:16])[0] if len(body) == 16 else None
        elif chunk == b"fmt ":
            fmt = fh.read(min(size, 26))
            if len(fmt) >= 14:
                tag, block_align = struct.unpack(f"{order}H", fmt[:2])[0], struct.unpack(f"{order}H", fmt[12:14])[0]
            if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the SubFormat GUID starts with the tag
                tag = struct.unpack(f"{order}H", fmt[24:26])[0]
            if tag in BLOCK_CODED_WAVE_TAGS and len(fmt) >= 20:
                block_frames = struct.unpack(f"{order}H", fmt[18:20])[0]
        elif chunk == b"fact" and size >= 4:
            fact = struct.unpack(f"{order}I", fh.read(4))[0]
        elif chunk == b"data":
            if size == 0xFFFFFFFF and ds64_data:
                size = ds64_data
            if size in STREAMING_SIZES:
                return None
            if tag in FRAMED_WAVE_TAGS:
                return size // block_align if block_align else None
            if block_frames and block_align:
                coded = -(-size // block_align) * block_frames
                # the fact count is exact where it fits the blocks (libsndfile writes stereo IMA's halved)
                return fact if fact is not None and coded - block_frames < fact <= coded else coded
            return fact
    return None


def wave_frames(path: str) -> int | None:
    """RIFF (and big-endian RIFX) WAVE, WAVE_FORMAT_EXTENSIBLE included; RF64 and BW64."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64") or head[8:12] != b"WAVE":
            return None
        order = ">" if head[:4] == b"RIFX" else "<"
        return _wave_frames(_chunks(fh, 4, f"{order}I", False, 2), fh, order)


def w64_frames(path: str) -> int | None:
    """Sony Wave64: WAVE's chunks under GUIDs ("fmt " + a fixed suffix), with 64-bit sizes."""
    with open(path, "rb") as fh:
        head = fh.read(40)
        if head[:16] != W64_RIFF or head[24:40] != b"wave" + W64_SUFFIX:
            return None
        chunks = ((guid[:4] if guid[4:] == W64_SUFFIX else guid, size)
                  for guid, size in _chunks(fh, 16, "<Q", True, 8))
        return _wave_frames(chunks, fh, "<")


def aiff_frames(path: str) -> int | None:
    """numSampleFrames of an AIFF or AIFF-C COMM chunk, in frames."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        for chunk, size in _chunks(fh, 4, ">I", False, 2):
            if chunk == b"COMM":
                comm = fh.read(min(size, 22))
                if len(comm) < 6:
                    return None
                frames = struct.unpack(">I", comm[2:6])[0]
                compression = b"NONE" if head[8:12] == b"AIFF" else comm[18:22]
                if compression in AIFC_FRAMES:
                    return frames
                return frames * AIFC_PACKET_FRAMES[compression] if compression in AIFC_PACKET_FRAMES else None
    return None


def caf_frames(path: str) -> int | None:
    """Apple CAF: the data size over desc's fixed packet size, or the packet table's valid frames."""
    with open(path, "rb") as fh:
        if fh.read(8)[:4] != b"caff":
            return None
        packet_bytes = packet_frames = 0
        for chunk, size in _chunks(fh, 4, ">q", False, 1):
            if chunk == b"desc" and len(desc := fh.read(32)) == 32:
                packet_bytes, packet_frames = struct.unpack(">II", desc[16:24])
            elif chunk == b"pakt" and len(pakt := fh.read(16)) == 16:
                return struct.unpack(">q", pakt[8:16])[0]  # priming and remainder frames excluded
            elif chunk == b"data" and packet_bytes and packet_frames:
                return (size - 4) // packet_bytes * packet_frames if size >= 4 else None  # 4: edit count
            # variable packet sizes (ALAC, AAC): the packet table may follow the data
    return None


def au_frames(path: str) -> int | None:
    """Sun/NeXT .au (and libsndfile's little-endian "dns."): the data size, 0xFFFFFFFF when unknown."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    order = {b".snd": ">", b"dns.": "<"}.get(head[:4])
    if order is None or len(head) < 24:
        return None
    size, encoding, _, channels = struct.unpack(f"{order}4I", head[8:24])
    if size == 0xFFFFFFFF or encoding not in AU_SAMPLE_BYTES or not channels:
        return None
    return size // (AU_SAMPLE_BYTES[encoding] * channels)


def nist_frames(path: str) -> int | None:
    """NIST SPHERE (TIMIT, Switchboard): the text header's `sample_count -i N`, samples per channel."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head.startswith(b"NIST_1A"):
        return None
    for line in head.split(b"\n"):
        fields = line.split()
        if fields[:2] == [b"sample_count", b"-i"] and len(fields) == 3:
            return int(fields[2])
        if fields[:1] == [b"end_head"]:
            break
    return None


def avr_frames(path: str) -> int | None:
    """Audio Visual Research: the header's frame count, after magic, name and five 16-bit fields and the rate."""
    with open(path, "rb") as fh:
        head = fh.read(30)
    return struct.unpack(">I", head[26:30])[0] if head[:4] == b"2BIT" and len(head) == 30 else None


def _skip_id3(fh: BinaryIO) -> None:
    """Position after an ID3v2 tag at the start, if any (MP3s carry one, some FLACs too)."""
    head = fh.read(10)
    tagged = head[:3] == b"ID3" and len(head) == 10
    fh.seek(10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])) if tagged else 0)


def _streaminfo_total(info: bytes) -> int | None:
    """FLAC STREAMINFO's 36-bit total samples (0: the encoder did not know, as when streaming)."""
    if len(info) != 34:
        return None
    return int.from_bytes(info[10:18], "big") & (1 << 36) - 1 or None


def flac_frames(path: str) -> int | None:
    """FLAC: STREAMINFO, the metadata block that must come first."""
    with open(path, "rb") as fh:
        _skip_id3(fh)
        head = fh.read(42)
    return _streaminfo_total(head[8:42]) if head[:4] == b"fLaC" and head[4] & 0x7F == 0 else None


def ogg_flac_frames(path: str) -> int | None:
    """Ogg pages state no total. Ogg FLAC carries STREAMINFO in its first packet; Vorbis, Opus and
    Speex headers hold no length (FFmpeg's comes from the granule of the last page present)."""
    with open(path, "rb") as fh:
        page = fh.read(27 + 255 + 51)
    if page[:4] != b"OggS" or len(page) < 27:
        return None
    packet = page[27 + page[26]:]  # after the segment table
    return _streaminfo_total(packet[17:51]) if packet[:5] == b"\x7fFLAC" and packet[9:13] == b"fLaC" else None


def mp3_states_length(path: str) -> bool:
    """Whether the first MPEG frame is a Xing/Info header with its frame-count field, or a VBRI header.
    Without one, any MP3 length (libsndfile's, FFmpeg's) is the file size over a bitrate."""
    with open(path, "rb") as fh:
        _skip_id3(fh)
        frame = fh.read(4096)
    sync = next((i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    first = frame[sync : sync + 200]  # the tag sits after the side information (at most 36 bytes in)
    for tag in MP3_LENGTH_TAGS:
        at = first.find(tag)
        if at >= 0:
            return len(first) >= at + 8 and bool(first[at + 7] & 1)  # big-endian flags; bit 0: frames
    return b"VBRI" in first


def _ebml_number(fh: BinaryIO, keep_marker: bool) -> int | None:
    """An EBML variable-length number: an element id keeps its length marker, a size drops it."""
    first = fh.read(1)
    if not first or not first[0]:
        return None
    length = 9 - first[0].bit_length()
    rest = fh.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = int.from_bytes(first + rest, "big")
    return value if keep_marker else value & (1 << 7 * length) - 1


def matroska_seconds(path: str) -> float | None:
    """Segment Info's Duration × TimestampScale. Muxers that cannot seek back (a live WebM, a browser's
    MediaRecorder) leave Duration out; FFmpeg then reports a guess or nothing."""
    with open(path, "rb") as fh:
        while (element := _ebml_number(fh, True)) is not None and (size := _ebml_number(fh, False)) is not None:
            if element == EBML_SEGMENT:
                continue  # its children follow; its size may be "unknown"
            if element == EBML_CLUSTER:
                return None  # the media began and no Info came before it
            if element != EBML_INFO:
                fh.seek(size, 1)
                continue
            end, duration, scale = fh.tell() + size, 0.0, 1_000_000
            while fh.tell() < end and (child := _ebml_number(fh, True)) is not None:
                child_size = _ebml_number(fh, False) or 0
                body = fh.read(min(child_size, 8))
                fh.seek(child_size - len(body), 1)
                if child == EBML_DURATION and len(body) in (4, 8):
                    duration = struct.unpack(">f" if len(body) == 4 else ">d", body)[0]
                elif child == EBML_TIMESTAMP_SCALE and body:
                    scale = int.from_bytes(body, "big")
            return duration * scale / 1e9 if duration > 0 else None
    return None
