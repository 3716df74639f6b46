"""`ecg_jepa`: the ViT encoder of an ECG-JEPA / MyJEPA checkpoint, preprocessed as ECG-JEPA's own code."""

from __future__ import annotations

from pathlib import Path

from embedpipe.encoders.ecg_checks import ecg_checks
from embedpipe.encoders.family import Family

FAMILY = Family(
    name="ecg_jepa",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder="embedpipe.encoders.ecg_jepa.build:build",
    checks=ecg_checks,
)
