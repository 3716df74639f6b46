"""`ecgfounder`: ECGFounder's Net1D. Defaults as the ECGFounder script: the whole record, per-record
z-score, no filter (`length: 10s`, `resample: every_second` and `filter: ecgfounder` are its other ways)."""

from __future__ import annotations

from pathlib import Path

from embedpipe.encoders.ecg_checks import ecg_checks
from embedpipe.encoders.family import Export, Family, Options


def without_features(options: Options) -> tuple[str, str] | None:
    if options["keep_features"] is False:
        return "encoder.keep_features", "`snakemake export_ecg_json` exports the feature maps; set keep_features: true"
    return None


FAMILY = Family(
    name="ecgfounder",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder="embedpipe.encoders.ecgfounder.build:build",
    checks=ecg_checks,
    exports=(Export("export_ecg_json", "ecgfounder_json", "embedpipe.encoders.ecgfounder.export:export_ecgfounder_json",
                    directory=True, unavailable=without_features),),
)
