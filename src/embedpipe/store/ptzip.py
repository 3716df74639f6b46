"""`torch.save({key: matrix[i]})` written as a stream, without torch and without the matrix in memory.

merge_all's `.pt` is the EchoJEPA script's `{key: tensor[D]}`. Built the usual way, it needs torch
(~360 MB of imports), the whole float32 matrix, 200,000+ tensor objects and torch.save's buffers: a
peak of 2.3× the file. The format is plain: a stored (uncompressed) zip whose `data/0` record holds
the matrix's bytes and whose `data.pkl` pickles, per key, `torch._utils._rebuild_tensor_v2(storage,
offset, (D,), (1,), False, OrderedDict())` over one persistent storage. Rows stream into `data/0`
as the shards are read; the pickle is emitted opcode by opcode. `torch.load` (weights_only, and
mmap=True: the record is 64-byte aligned as torch aligns it) reads it back exactly.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

ARCHIVE = "archive"
ALIGNMENT = 64
_PAD_HEADER = 0x4246  # the extra-field id torch itself pads records with ("FB")


def _unicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT


def _get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET


def tensor_dict_pickle(keys: Iterable[str], numel: int, dim: int, batch: int = 1000) -> Iterator[bytes]:
    """The data.pkl of `{keys[i]: storage[i*dim:(i+1)*dim]}` over one float32 storage of `numel`, in
    pieces of `batch` keys: at 10^7 keys the whole pickle would be gigabytes of small bytes objects."""
    yield b"\x80\x02}"  # PROTO 2, EMPTY_DICT
    rebuild, storage, ordered = 0, 1, 2  # memo slots
    out: list[bytes] = []
    for i, key in enumerate(keys):
        if i % batch == 0:
            if out:
                yield b"".join([*out, b"u"])  # SETITEMS
            out = [b"("]  # MARK for SETITEMS
        out.append(_unicode(key))
        if i == 0:
            out.append(b"ctorch._utils\n_rebuild_tensor_v2\n" + _put(rebuild) + b"(")
            out.append(b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode("0") + _unicode("cpu")
                       + _int(numel) + b"tQ" + _put(storage))  # TUPLE, BINPERSID
        else:
            out.append(_get(rebuild) + b"(" + _get(storage))
        out.append(_int(i * dim) + _int(dim) + b"\x85" + _int(1) + b"\x85" + b"\x89")  # offset, size, stride, False
        out.append((b"ccollections\nOrderedDict\n" + _put(ordered)) if i == 0 else _get(ordered))
        out.append(b")R" + b"tR")  # OrderedDict(), then the tuple and _rebuild_tensor_v2(...)
    if out:
        yield b"".join([*out, b"u"])
    yield b"."


class _Counted:
    """The keys, counted as the pickle reads them."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys, self.n = keys, 0

    def __iter__(self) -> Iterator[str]:
        for key in self.keys:
            self.n += 1
            yield key


class TensorDictWriter:
    """Write rows in order with `write`, then `close(keys)`; the file is a valid .pt only after close."""

    def __init__(self, path: Path, rows: int, dim: int) -> None:
        self.rows, self.dim, self.written = rows, dim, 0
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        for name, text in ((".format_version", b"1"), (".storage_alignment", b"64"), ("byteorder", b"little"),
                           ("version", b"3\n")):
            self.zip.writestr(f"{ARCHIVE}/{name}", text)
        info = zipfile.ZipInfo(f"{ARCHIVE}/data/0", date_time=(1980, 1, 1, 0, 0, 0))
        info.file_size = rows * dim * 4
        # Local header: 30 bytes + name + extra (+ 20 of zip64 sizes, forced below), then the data.
        start = self.zip.fp.tell() + 30 + len(info.filename.encode()) + 4 + 20
        pad = -start % ALIGNMENT
        info.extra = struct.pack("<HH", _PAD_HEADER, pad) + b"\0" * pad
        self.storage = self.zip.open(info, "w", force_zip64=True)

    def write(self, values: np.ndarray) -> None:
        block = np.ascontiguousarray(values, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"rows of width {self.dim} expected, got shape {block.shape}")
        self.storage.write(memoryview(block).cast("B"))
        self.written += block.shape[0]

    def close(self, keys: Iterable[str]) -> None:
        """Name the rows (in order; any iterable: merge_all reads them back from a file) and finish the
        file. Raises, leaving it invalid, unless there is exactly one key per row written."""
        if self.written != self.rows:
            raise ValueError(f"{self.rows} rows declared, {self.written} written")
        self.storage.close()
        counted = _Counted(keys)
        with self.zip.open(f"{ARCHIVE}/data.pkl", "w", force_zip64=True) as pkl:
            for piece in tensor_dict_pickle(counted, self.rows * self.dim, self.dim):
                pkl.write(piece)
        if counted.n != self.rows:
            raise ValueError(f"{self.rows} rows declared and written, {counted.n} keys")
        self.zip.close()

    def __enter__(self) -> TensorDictWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:  # leave no half-written zip handle open; the caller discards the file
            self.storage.close()
            self.zip.close()
