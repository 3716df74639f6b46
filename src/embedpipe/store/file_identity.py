"""What a row records about the bytes it was embedded from: the input file's size and modification time.

Taken by one `stat` in the decode worker just before the file is opened, so bytes that change after
it give another modification time on the next run, never a row that claims bytes it did not read
(a stat taken after the read could record a newer file's identity for the older bytes). A row whose
file still has this size and modification time (nanoseconds) was made from these bytes, as `make`,
`rsync` and Snakemake judge files; a tool that rewrites bytes in place at the same size and then sets
the old modification time back defeats it (docs/reliability.md, "Changed inputs").

The columns are the extract job's (the shard file, its parts): the staged step leaves them out of the
published dataset, where a file's local modification time means nothing.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

SIZE, MTIME = "file_size", "file_mtime_ns"
IDENTITY_COLUMNS = (SIZE, MTIME)


def identity_fields() -> list[pa.Field]:
    return [pa.field(SIZE, pa.int64()), pa.field(MTIME, pa.int64())]


# A key whose samples lie in another file: a WFDB header's record is read from its .dat beside it
# (MIMIC-IV-ECG), so replacing the .dat changes the row though the .hea is untouched.
COMPANIONS = {".hea": ".dat"}


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """{file_size, file_mtime_ns} of the file (a link: its target) and of its companion where it has one
    (sizes summed, the later mtime); None for both when the file cannot be read."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return {SIZE: None, MTIME: None}
    size, mtime = st.st_size, st.st_mtime_ns
    root, ext = os.path.splitext(path)
    if (companion := COMPANIONS.get(ext.lower())) is not None:
        try:
            other = os.stat(root + companion)
        except OSError:
            pass
        else:
            size, mtime = size + other.st_size, max(mtime, other.st_mtime_ns)
    return {SIZE: size, MTIME: mtime}
