"""`mimic_iv_echo`: MIMIC-IV-Echo's record and study lists joined by each video's path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe.publish.kinds.kind import Kind
from embedpipe.publish.kinds.mimic_iv_echo.columns import ECHO_IDENTIFYING

if TYPE_CHECKING:
    from embedpipe.publish.metadata import Joiner


def joiner(files: dict[str, str]) -> Joiner:
    """The join reads its lists (pandas) only when a job joins rows."""
    from embedpipe.publish.kinds.mimic_iv_echo.join import EchoMetadata

    return EchoMetadata(files["record_list"], files["study_list"])


KIND = Kind(name="mimic_iv_echo", files=("record_list", "study_list"), identifying=ECHO_IDENTIFYING, joiner=joiner)
