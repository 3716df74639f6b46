"""`mimic_iv_ecg`: MIMIC-IV-ECG's record_list.csv joined by each record's path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe.publish.kinds.kind import Kind
from embedpipe.publish.kinds.mimic_iv_ecg.columns import ECG_IDENTIFYING

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner


def joiner(files: dict[str, str]) -> Joiner:
    """The join reads its lists (pandas) only when a job joins rows."""
    from embedpipe.publish.kinds.mimic_iv_ecg.join import EcgRecordList

    return EcgRecordList(files["record_list"])


KIND = Kind(name="mimic_iv_ecg", files=("record_list",), identifying=ECG_IDENTIFYING, joiner=joiner)
