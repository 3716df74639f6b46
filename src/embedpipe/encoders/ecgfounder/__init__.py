"""`ecgfounder`: ECGFounder's Net1D. Defaults as the ECGFounder script: the whole record, per-record
z-score, no filter (`length: 10s`, `resample: every_second` and `filter: ecgfounder` are its other ways)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedpipe.encoders.ecg_checks import ecg_checks
from embedpipe.encoders.family import Export, Family, Options

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder


DEFAULT_BATCH = 256  # what batch_size: 0 means

def without_features(options: Options) -> tuple[str, str] | None:
    if options["keep_features"] is False:
        return "encoder.keep_features", "`snakemake export_ecg_json` exports the feature maps; set keep_features: true"
    return None


def build_model(options: Options, device: torch.device) -> Encoder:
    """The family's model code (torch, transformers) loads only when a job builds the encoder."""
    from embedpipe.encoders.ecgfounder.build import build

    return build(options, device)


def export_ecgfounder_json(shards: Iterable[Path], out: Path, **chosen: Any) -> int:
    from embedpipe.encoders.ecgfounder.export import export_ecgfounder_json as write

    return write(shards, out, **chosen)


FAMILY = Family(
    name="ecgfounder",
    expects="an ECGFounder checkpoint file (a .pth holding {'state_dict': Net1D weights})",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder=build_model,
    default_batch=lambda options: DEFAULT_BATCH,
    checks=ecg_checks,
    # founder_state's 'state_dict', and the first tensor Net1D.geometry reads from it
    checkpoint_holds=lambda names: "state_dict.first_conv.conv.weight" in names,
    exports=(Export("export_ecg_json", "ecgfounder_json", export_ecgfounder_json,
                    directory=True, unavailable=without_features),),
)
