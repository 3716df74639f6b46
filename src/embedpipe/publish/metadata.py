"""What the metadata kinds' joins share (publish/kinds/<kind>/join.py): MIMIC paths, the record index by
path, the record lists, and the Joiner a kind builds. Each row it joins makes the Parquet row self-contained."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

_SUBJECT = re.compile(r"^p(\d{4,})$")
_STUDY = re.compile(r"^s(\d+)$")


def parse_echo_path(key: str) -> dict[str, Any]:
    """subject, study and file id from `pNN/p<subject>/s<study>/<id>.mp4` (or an ECG's `.hea`)."""
    # str.split, not PurePosixPath: a key is already a normalised relative path, and this runs per row
    parts = key.split("/")[::-1]  # the innermost: a group folder (p10, MIMIC-IV-ECG's p1000) is not a subject
    subject = next((int(m.group(1)) for p in parts if (m := _SUBJECT.match(p))), None)
    study = next((int(m.group(1)) for p in parts if (m := _STUDY.match(p))), None)
    return {"subject_id": subject, "study_id": study, "dicom_id": posixpath.splitext(parts[0])[0]}


def is_mimic_path(key: str) -> bool:
    """The key follows MIMIC's layout: both a subject and a study folder."""
    ids = parse_echo_path(key)
    return ids["subject_id"] is not None and ids["study_id"] is not None


def text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    return str(value)


Record = tuple[int, int, str | None, str]  # subject_id, study_id, a datetime, the list's path


class AmbiguousJoin(ValueError):
    """A file matches two record rows: joining either could give it another subject's metadata."""


def join_path(path: str) -> str:
    """`files/p10/p1/s2/x.dcm` and `p10/p1/s2/x.mp4` → `p10/p1/s2/x`: record rows and keys meet here."""
    return posixpath.splitext(path.removeprefix("./").removeprefix("files/"))[0]


def _same_tail(a: str, b: str) -> bool:
    """One path ends with the other, component by component (an input tree rooted below `files/pNN`)."""
    pa_, pb = a.split("/"), b.split("/")
    n = min(len(pa_), len(pb))
    return pa_[-n:] == pb[-n:]


def _ids(rec: Record) -> str:
    return f"{rec[3]} (subject {rec[0]}, study {rec[1]})"


class RecordIndex:
    """A MIMIC record list's rows by path: the list's path without its leading `files/` and extension
    against the key without its extension, so `p10/p1/s2/x.mp4` meets `files/p10/p1/s2/x.dcm`. Stems
    repeat across studies, so a stem alone never joins; where no path matches, a row whose path ends
    with the key's (or the key's with its) joins, and several such rows are an AmbiguousJoin, as are
    two different rows under one path (raised only if a file needs that row)."""

    def __init__(self, subjects: Iterable[Any], studies: Iterable[Any], times: Iterable[Any],
                 paths: Iterable[str]) -> None:
        self.records: dict[str, Record] = {}
        self.conflicts: dict[str, tuple[Record, Record]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for subj, study, when, path in zip(subjects, studies, times, paths, strict=True):
            rec, where = (int(subj), int(study), text_or_none(when), path), join_path(path)
            if (seen := self.records.get(where)) is None:
                self.records[where] = rec
                self.by_stem.setdefault(where.rsplit("/", 1)[-1], []).append(where)
            elif seen[:3] != rec[:3]:
                self.conflicts.setdefault(where, (seen, rec))

    def record_for(self, key: str) -> Record | None:
        where = join_path(key)
        if where not in self.records:
            tails = [p for p in self.by_stem.get(where.rsplit("/", 1)[-1], []) if _same_tail(p, where)]
            if len(tails) > 1:
                raise AmbiguousJoin(f"{key} matches several record rows by its path's tail: "
                                    f"{_ids(self.records[tails[0]])} and {_ids(self.records[tails[1]])}")
            if not tails:
                return None
            where = tails[0]
        if where in self.conflicts:
            first, second = self.conflicts[where]
            raise AmbiguousJoin(f"{key}: the record list has two rows for it: {_ids(first)} and {_ids(second)}")
        return self.records[where]


def read_list(path: str, columns: set[str]) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=True)
    if missing := columns - set(table.columns):
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return table


class ListedIdentifying:
    """A joiner whose identifying columns are known from its kind; `parses` says whether a key follows
    the kind's naming (`naming`), which judge_keys checks of every key before the rows are written."""

    key_column = "file_path"
    identifying: tuple[str, ...] = ()
    kind = naming = ""
    judges = None  # a kind whose names can be judged to identify no one says which (DeepEarth)

    @staticmethod
    def parses(key: str) -> bool:
        return is_mimic_path(key)


class Joiner(Protocol):
    """What a kind's join gives the staged rule: the columns, which of them identify people, whether
    a key follows the kind's naming (`parses`) and can be judged to name no one (`judges`), and the rows."""

    key_column: str
    fields: list[pa.Field]
    identifying: tuple[str, ...]
    kind: str
    naming: str
    parses: Callable[[str], bool] | None
    judges: Callable[[str], bool] | None
    matched_records: int
    matched_studies: int

    def rows(self, keys: list[str]) -> dict[str, list[Any]]: ...
