"""Dataset metadata joined onto embedding rows, so every Parquet row is self-contained."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa

from embedpipe.publish.identifying import ECG_IDENTIFYING, ECHO_IDENTIFYING

ECHO_FIELDS = [
    pa.field("subject_id", pa.int64()),
    pa.field("study_id", pa.int64()),
    pa.field("dicom_id", pa.string()),
    pa.field("file_path", pa.string()),
    pa.field("acquisition_datetime", pa.string()),
    pa.field("study_datetime", pa.string()),
    pa.field("note_id", pa.string()),
    pa.field("note_seq", pa.string()),
    pa.field("note_charttime", pa.string()),
]
_SUBJECT = re.compile(r"^p(\d{4,})$")
_STUDY = re.compile(r"^s(\d+)$")


def parse_echo_path(key: str) -> dict[str, Any]:
    """subject, study and file id from `pNN/p<subject>/s<study>/<id>.mp4` (or an ECG's `.hea`)."""
    parts = PurePosixPath(key).parts[::-1]  # the innermost: a group folder (p10, MIMIC-IV-ECG's p1000) is not a subject
    subject = next((int(m.group(1)) for p in parts if (m := _SUBJECT.match(p))), None)
    study = next((int(m.group(1)) for p in parts if (m := _STUDY.match(p))), None)
    return {"subject_id": subject, "study_id": study, "dicom_id": PurePosixPath(key).stem}


def is_mimic_path(key: str) -> bool:
    """The key follows MIMIC's layout: both a subject and a study folder."""
    ids = parse_echo_path(key)
    return ids["subject_id"] is not None and ids["study_id"] is not None


def _text(value: Any) -> str | None:
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
            rec, where = (int(subj), int(study), _text(when), path), join_path(path)
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


class EchoMetadata(ListedIdentifying):
    """MIMIC-IV-Echo: echo-record-list.csv (per video, joined by path: RecordIndex) and
    echo-study-list.csv (per study, joined by (subject_id, study_id)). A video without a record row
    keeps the ids parsed from its path and null datetimes."""

    fields = ECHO_FIELDS
    identifying = ECHO_IDENTIFYING
    kind, naming = "mimic_iv_echo", "p<NN>/p<subject_id>/s<study_id>/<file>"

    def __init__(self, record_list: str, study_list: str) -> None:
        records = read_list(record_list, {"subject_id", "study_id", "dicom_filepath", "acquisition_datetime"})
        self.index = RecordIndex(records["subject_id"], records["study_id"], records["acquisition_datetime"],
                                 records["dicom_filepath"])
        study_cols = ("study_datetime", "note_id", "note_seq", "note_charttime")
        studies = read_list(study_list, {"subject_id", "study_id", *study_cols})
        self.studies = {
            (int(subj), int(study)): tuple(_text(v) for v in rest)
            for subj, study, *rest in zip(
                studies["subject_id"], studies["study_id"], *(studies[c] for c in study_cols), strict=True
            )
        }
        self.matched_records = self.matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {f.name: [] for f in ECHO_FIELDS}
        for key in keys:
            meta = parse_echo_path(key)
            acquisition = None
            if (rec := self.index.record_for(key)) is not None:
                meta["subject_id"], meta["study_id"], acquisition, _ = rec
                self.matched_records += 1
            study = self.studies.get((meta["subject_id"], meta["study_id"]))
            self.matched_studies += study is not None
            out["subject_id"].append(meta["subject_id"])
            out["study_id"].append(meta["study_id"])
            out["dicom_id"].append(meta["dicom_id"])
            out["file_path"].append(key)
            out["acquisition_datetime"].append(acquisition)
            for col, value in zip(ECHO_FIELDS[5:], study or (None,) * 4, strict=True):
                out[col.name].append(value)
        return out


ECG_FIELDS = [
    pa.field("subject_id", pa.int64()),
    pa.field("study_id", pa.int64()),
    pa.field("file_path", pa.string()),
    pa.field("ecg_time", pa.string()),
]


class EcgRecordList(ListedIdentifying):
    """MIMIC-IV-ECG: record_list.csv (subject_id, study_id, file_name, ecg_time, path), joined by path
    as the echo record list is (`files/p1000/p10000032/s40689238/40689238` meets
    `p1000/p10000032/s40689238/40689238.hea`). A record without a row keeps the ids parsed from its
    path (p<subject>/s<study>) and a null ecg_time."""

    fields = ECG_FIELDS
    identifying = ECG_IDENTIFYING
    kind, naming = "mimic_iv_ecg", "p<NNNN>/p<subject_id>/s<study_id>/<record>"

    def __init__(self, record_list: str) -> None:
        records = read_list(record_list, {"subject_id", "study_id", "ecg_time", "path"})
        self.index = RecordIndex(records["subject_id"], records["study_id"], records["ecg_time"], records["path"])
        self.matched_records = self.matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {f.name: [] for f in ECG_FIELDS}
        for key in keys:
            meta, when = parse_echo_path(key), None
            if (rec := self.index.record_for(key)) is not None:
                meta["subject_id"], meta["study_id"], when, _ = rec
                self.matched_records += 1
            out["subject_id"].append(meta["subject_id"])
            out["study_id"].append(meta["study_id"])
            out["file_path"].append(key)
            out["ecg_time"].append(when)
        return out


DEEPEARTH_FIELDS = [
    pa.field("file_path", pa.string()),
    pa.field("gbif_id", pa.int64()),
    pa.field("taxon_id", pa.int64()),
    pa.field("species", pa.string()),
    pa.field("image_number", pa.int32()),
    pa.field("image_id", pa.string()),
]
# gbif_{gbif_id}_taxon_{taxon_id}_{species}_img_{n}, optionally with DeepEarth's _features suffix
_DEEPEARTH = re.compile(r"^gbif_(\d+)_taxon_(\d+)_(.+)_img_(\d+)(?:_features)?$")
_TAXON_DIR = re.compile(r"^taxon_(\d+)$")
# The same names with a species of letters only: nothing else in the path to judge
_DEEPEARTH_JUDGED = re.compile(r"^gbif_\d+_taxon_\d+_[A-Za-z][A-Za-z_-]*_img_\d+(?:_features)?$")


def parse_deepearth_name(key: str) -> dict[str, Any]:
    """Ids from a DeepEarth file name; a name outside the convention keeps only its taxon folder's id."""
    path = PurePosixPath(key)
    stem = path.name.split(".")[0]
    row: dict[str, Any] = {"file_path": key, "gbif_id": None, "taxon_id": None, "species": None,
                           "image_number": None, "image_id": stem}
    if m := _DEEPEARTH.match(stem):
        row |= {"gbif_id": int(m.group(1)), "taxon_id": int(m.group(2)), "species": m.group(3),
                "image_number": int(m.group(4))}
    elif folder := next((m for p in path.parts[:-1] if (m := _TAXON_DIR.match(p))), None):
        row["taxon_id"] = int(folder.group(1))
    return row


class DeepEarthNames(ListedIdentifying):
    """DeepEarth photos: GBIF occurrence, taxon, species and image number from each file's name."""

    fields = DEEPEARTH_FIELDS
    identifying: tuple[str, ...] = ()  # GBIF occurrences and taxa name no person
    kind, naming = "deepearth", "gbif_<id>_taxon_<id>_<species>_img_<n>.<ext>"

    @staticmethod
    def parses(key: str) -> bool:
        return parse_deepearth_name(key)["gbif_id"] is not None

    @staticmethod
    def judges(key: str) -> bool:
        """The whole path is DeepEarth's and names no one: taxon folders only, a species of letters."""
        path = PurePosixPath(key)
        return (all(_TAXON_DIR.match(part) for part in path.parts[:-1])
                and _DEEPEARTH_JUDGED.match(path.name.split(".")[0]) is not None)

    def __init__(self) -> None:
        self.matched_records = self.matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {f.name: [] for f in DEEPEARTH_FIELDS}
        for key in keys:
            row = parse_deepearth_name(key)
            self.matched_records += row["gbif_id"] is not None
            for name, value in row.items():
                out[name].append(value)
        return out


class KeyOnly:
    """No dataset metadata: the row is the key and the embedding."""

    key_column = "key"
    fields = [pa.field("key", pa.string())]
    # The keys are file paths of unknown origin: judge_keys finds them identifying or not judgeable.
    identifying: tuple[str, ...] = ()
    kind, naming = "none", ""
    parses = judges = None  # no naming to follow
    matched_records = matched_studies = 0

    def rows(self, keys: list[str]) -> dict[str, list[Any]]:
        return {"key": list(keys)}


Joiner = EchoMetadata | EcgRecordList | DeepEarthNames | KeyOnly


def build_metadata(kind: str, options: dict[str, Any]) -> Joiner:
    if kind == "deepearth":
        return DeepEarthNames()
    if kind == "mimic_iv_echo":
        return EchoMetadata(options["record_list"], options["study_list"])
    if kind == "mimic_iv_ecg":
        return EcgRecordList(options["record_list"])
    if kind == "none":
        return KeyOnly()
    raise ValueError(f"metadata.kind: unknown kind {kind!r}")
