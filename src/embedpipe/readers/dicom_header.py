"""How every embedpipe reader reads a DICOM header: only an allow-list of fields, pydicom kept quiet,
and any failure as one line of this module's own words.

Privacy: `read_header` parses with `specific_tags=allowed`, so patient and study fields are never even
decoded into the dataset a reader holds (pydicom adds Specific Character Set, which says how the
allowed text is encoded; the file meta is always read and holds no patient field). A sequence kept
keeps its items whole: an allow-list names top-level fields. A parser's exception text can quote header
bytes, so errors keep only what kind of failure it was; SOP classes are named only when registered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

ALWAYS_READ = ("SpecificCharacterSet",)  # pydicom reads it whatever `specific_tags` says
ErrorFactory = Callable[[str], Exception]  # a reader's own error type, given the sentence
DEFLATED = "1.2.840.10008.1.2.1.99"  # positions in a deflated data set are not positions in the file
# A code a message may quote: short, with a letter, no separators a name or an ID is written with.
_CODE = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9\[\]/.%]{1,8}")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pydicom warns (and logs) per file about things like a misspelt character set; over 525,000
    files that is noise, the values read do not depend on it, and a warning can quote header bytes.
    Not thread-safe: decode workers are processes."""
    logger = logging.getLogger("pydicom")
    disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = disabled


def unreadable(exc: BaseException) -> str:
    """A failure the reader has no sentence for, named by its kind only. An OS error keeps the system's
    own reason (permission denied, I/O error), which quotes nothing from the file."""
    reason = f": {exc.strerror}" if isinstance(exc, OSError) and exc.errno and exc.strerror else ""
    return f"DICOM unreadable ({type(exc).__name__}{reason})"


@contextlib.contextmanager
def reading(error: ErrorFactory, own: type[Exception]) -> Iterator[None]:
    """pydicom quiet; any exception but the reader's own (already a sentence of its own words) becomes
    `error(unreadable(exc))`: a damaged header can fail anywhere, also in a value pydicom converts lazily
    (an unknown VR, a multi-valued UID). A BaseException such as the decode deadline passes through."""
    with quiet():
        try:
            yield
        except own:
            raise
        except Exception as exc:
            raise error(unreadable(exc)) from None


def read_header(source: str | BinaryIO, allowed: Sequence[str], error: ErrorFactory, *,
                stop_before_pixels: bool = True) -> Any:
    """The allow-listed fields of a DICOM file, stopping before the pixel data unless told otherwise.
    A file that does not parse (cut short, not DICOM, a deflated stream that ends early) is `error`."""
    import pydicom  # looked up at each call: tests watch what is parsed through pydicom.dcmread

    try:
        header = pydicom.dcmread(source, stop_before_pixels=stop_before_pixels, specific_tags=list(allowed))
    except Exception as exc:
        raise error(f"DICOM header unreadable ({type(exc).__name__}): cut short, or not DICOM") from None
    if (field := _field_past_the_end(header, source)) is not None:
        raise error(f"DICOM cut short (or a length damaged): the file ends inside its {field}")
    return header


def _field_past_the_end(header: Any, source: str | BinaryIO) -> str | None:
    """The name of a field whose value runs past the end of the file. pydicom reads what a cut file still
    holds and fails, if at all, only where the value is converted (a sequence's items, when first used),
    with an error that does not say the file is cut."""
    if str(getattr(header, "file_meta", {}).get("TransferSyntaxUID", "")) == DEFLATED:
        return None  # a cut deflated stream fails to inflate, in dcmread
    try:
        size = os.path.getsize(source) if isinstance(source, str | os.PathLike) else os.fstat(source.fileno()).st_size
    except (OSError, AttributeError, ValueError):  # a stream without a file behind it
        return None
    from pydicom.datadict import keyword_for_tag

    for part in (getattr(header, "file_meta", None) or {}, header):  # a cut meta UID can read as another
        for tag in part.keys():  # noqa: SIM118 - iterating the Dataset would convert each value
            element = part.get_item(tag)  # as read: no conversion
            at, length = getattr(element, "value_tell", None), getattr(element, "length", 0xFFFFFFFF)
            if at is not None and length != 0xFFFFFFFF and at + length > size:
                return keyword_for_tag(tag) or "private field"
    return None


def shown(value: Any, known: Sequence[str] = ()) -> str:
    """A header value fit to quote in a message: one of `known`, or a short code ('uV', 'mm[Hg]');
    anything else (damaged bytes, or text that a damaged length took from another field) is not quoted."""
    text = str(value)
    return repr(text) if not text or text in known or _CODE.fullmatch(text) else "(not shown)"


def sop_class(header: Any) -> tuple[str, str] | None:
    """The file's SOP class as (UID, registered name), from SOP Class UID or else the file meta's; None
    when neither is a class pydicom knows: a UID cut short reads as a shorter, unregistered one, and an
    unregistered UID is not quoted (it is a header value like any other)."""
    from pydicom.uid import UID

    meta = getattr(header, "file_meta", None) or {}
    for value in (header.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID")):
        uid = str(value or "")
        if uid and (name := UID(uid).name) != uid:
            return uid, name
    return None
