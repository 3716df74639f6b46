"""MIMIC-IV-ECG's join: each record's row of record_list.csv, by path."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from embedpipe.publish.kinds.mimic_iv_ecg.columns import ECG_IDENTIFYING
from embedpipe.publish.metadata import ListedIdentifying, RecordIndex, parse_echo_path, read_list

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
