"""Columns that identify people, per metadata kind, and the acknowledgement a public upload needs.

Standard library only: rules/common.smk imports it when the DAG is built, where pandas and pyarrow
need not be installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

# MIMIC-IV-Echo rows: every id, the path (it holds the subject and study ids), the datetimes and the
# note ids. The datetimes are shifted in MIMIC but still tie a row to a person's timeline.
ECHO_IDENTIFYING = ("subject_id", "study_id", "dicom_id", "file_path", "acquisition_datetime", "study_datetime",
                    "note_id", "note_seq", "note_charttime")
# MIMIC-IV-ECG rows: the ids, the path (it holds both) and the machine's time of the ECG.
ECG_IDENTIFYING = ("subject_id", "study_id", "file_path", "ecg_time")
# A MIMIC path component: p<subject_id> or s<study_id>, both eight digits (p10000032, s50000001). The
# group folders (p10, p1000) are shorter and identify nobody.
MIMIC_ID_COMPONENT = re.compile(r"^[ps]\d{8}$")
# What the DAG can know from the config alone; None: it depends on the keys (metadata.kind none).
IDENTIFYING_BY_KIND: dict[str, tuple[str, ...] | None] = {"mimic_iv_echo": ECHO_IDENTIFYING,
                                                          "mimic_iv_ecg": ECG_IDENTIFYING, "deepearth": (),
                                                          "none": None}
ACK_KEY = "upload.public_identifying_columns"


def looks_like_mimic_path(key: str) -> bool:
    return any(MIMIC_ID_COMPONENT.match(part) for part in key.split("/"))


def unacknowledged(present: Iterable[str], acknowledged: Iterable[str]) -> list[str]:
    """Identifying columns a public upload would publish without the config naming them."""
    return sorted(set(present) - set(acknowledged))


def refusal(columns: list[str]) -> str:
    return (f"upload.public is true, and the dataset holds columns that identify people that {ACK_KEY} does "
            f"not name: {', '.join(columns)}. Name each there to publish them, or upload privately")


def recorded_identifying(files: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """(the identifying columns the dataset files record, the files that record none: written before
    embedpipe kept the record)."""
    from embedpipe.footer import read_provenance

    found: set[str] = set()
    unrecorded = []
    for path in files:
        columns = read_provenance(path).get("identifying_columns")
        if columns is None:
            unrecorded.append(os.path.basename(path))
        else:
            found |= set(columns)
    return sorted(found), unrecorded
