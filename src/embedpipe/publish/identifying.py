"""Columns that identify people by what the keys hold (each metadata kind names its own: publish/kinds/),
and the acknowledgement a public upload needs.

Standard library only: rules/common.smk imports it when the DAG is built, where pandas and pyarrow
need not be installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ACK_KEY = "upload.public_identifying_columns"
PATTERNS_KEY = "metadata.identifying_patterns"
# Identifier shapes looked for in every key, whatever the kind. Digits are bounded so that a long
# number (a GBIF id) holds no date by accident.
SHAPES: dict[str, re.Pattern[str]] = {
    "MIMIC subject/study ids": re.compile(r"(?:^|/)[ps]\d{8}(?:/|$)"),
    # a root arc, then 2+ components (2.25.<a UUID as one integer> has only two more), 10+ characters
    "DICOM UIDs": re.compile(r"(?<!\d)(?<!\d\.)(?=[\d.]{10,})[0-2](?:\.\d+){2,}(?!\.?\d)"),
    # year first (2023-01-15, 20230115), or last after day and month in either order (15.01.2023)
    "dates": re.compile(r"(?<!\d)(?:(?:19|20)\d\d([-_.]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])"
                        r"|(?:0?[1-9]|[12]\d|3[01])([-_.])(?:0?[1-9]|[12]\d|3[01])\2(?:19|20)\d\d)(?!\d)"),
}


def shapes_with(patterns: Iterable[str]) -> dict[str, re.Pattern[str]]:
    """The known shapes and the config's own (named by position: a pattern may itself identify someone,
    and the names reach the card)."""
    return SHAPES | {f"{PATTERNS_KEY}[{i}]": re.compile(p) for i, p in enumerate(patterns)}


def pattern_problem(patterns: object) -> str | None:
    """Why the config's metadata.identifying_patterns cannot be used, or None."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        return "a list of regular expressions (Python `re`), each matched anywhere in a file's relative path"
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"entry {i} ({pattern!r}) is not a regular expression: {exc}"
    return None


@dataclass
class KeyScan:
    """Which identifier shapes a key column holds (a shape once found is not looked for again)."""

    shapes: dict[str, re.Pattern[str]]
    found: set[str] = field(default_factory=set)

    def add(self, keys: Sequence[str]) -> None:
        for name, shape in self.shapes.items():
            if name not in self.found and any(shape.search(key) for key in keys):
                self.found.add(name)


def unacknowledged(present: Iterable[str], acknowledged: Iterable[str]) -> list[str]:
    """Identifying columns a public upload would publish without the config naming them."""
    return sorted(set(present) - set(acknowledged))


def refusal(columns: list[str]) -> str:
    return (f"upload.public is true, and the dataset holds columns that identify people (or file paths embedpipe "
            f"cannot judge) that {ACK_KEY} does not name: {', '.join(columns)}. Name each there to publish them, "
            "or upload privately")


@dataclass
class Recorded:
    """What the dataset files record about the people their columns could identify."""

    identifying: set[str] = field(default_factory=set)
    unjudged: set[str] = field(default_factory=set)  # file paths of unknown origin
    shapes: dict[str, set[str]] = field(default_factory=dict)  # column → identifier shapes found in it
    unrecorded: list[str] = field(default_factory=list)  # files written before embedpipe kept the record

    @property
    def to_acknowledge(self) -> list[str]:
        """What a public upload must name: the identifying columns, and those nobody judged."""
        return sorted(self.identifying | self.unjudged)


def recorded(files: Iterable[str | os.PathLike]) -> Recorded:
    from embedpipe.store.footer import read_provenance

    out = Recorded()
    for path in files:
        meta = read_provenance(path)
        if meta.get("identifying_columns") is None:
            out.unrecorded.append(os.path.basename(path))
            continue
        out.identifying |= set(meta["identifying_columns"])
        out.unjudged |= set(meta.get("unjudged_columns", []))
        for column, shapes in meta.get("identifier_shapes", {}).items():
            out.shapes.setdefault(column, set()).update(shapes)
    out.unjudged -= out.identifying
    return out


def recorded_identifying(files: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """(the columns a public upload must name, the files that record none: written before embedpipe kept
    the record)."""
    found = recorded(files)
    return found.to_acknowledge, found.unrecorded
