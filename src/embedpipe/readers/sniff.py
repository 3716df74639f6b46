"""What a file is by its first bytes, where a name does not say (DICOMs named by a UID alone).

A file is DICOM when it has the Part 10 preamble ("DICM" at byte 128), whatever its name: that is the
one test every reader and the discovery scan use. A `.dcm` name without it (an ACR-NEMA or bare data
set, or a file cut before byte 132) is not read as DICOM: pydicom's `force=True` would parse any bytes
as some data set and fail further on with errors that no longer say what is wrong. Such a file is
refused as not DICOM by the video and the ECG reader alike.
"""

from __future__ import annotations

import os
import stat

DICOM_MAGIC_AT = 128  # "DICM" follows the DICOM Part 10 file's 128-byte preamble


def has_dicom_preamble(path: str | os.PathLike, block: bool = True) -> bool:
    """"DICM" at byte 128 of a regular file. An unreadable file is not a DICOM (its reader says why).

    `block=False` is for the discovery scan: a FIFO (or a device) is then not waited on, and not read.
    The readers keep the default: in a decode worker a FIFO that never answers should block, so that
    the decode deadline makes it a timeout error row rather than a misleading "not DICOM"."""
    try:
        fd = os.open(path, os.O_RDONLY | (0 if block else os.O_NONBLOCK))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 4, DICOM_MAGIC_AT) == b"DICM"
    except OSError:
        return False
    finally:
        os.close(fd)
