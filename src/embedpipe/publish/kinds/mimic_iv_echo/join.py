"""MIMIC-IV-Echo's join: each video's record (by path) and study (by subject and study id)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from embedpipe.publish.kinds.mimic_iv_echo.columns import ECHO_IDENTIFYING
from embedpipe.publish.metadata import ListedIdentifying, RecordIndex, parse_echo_path, read_list, text_or_none

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
            (int(subj), int(study)): tuple(text_or_none(v) for v in rest)
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
