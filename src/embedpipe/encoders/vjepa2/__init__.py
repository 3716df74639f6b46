"""`vjepa2`: V-JEPA 2 on videos (EchoJEPA's script) or photos (DeepEarth's), through transformers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedpipe.encoders.family import Export, Family, OptionError, Options
from embedpipe.encoders.vjepa2.presets import (  # noqa: F401
    PRESET_FRAMES_PER_CLIP,
    TUBELET,
    VJEPA2_PRESETS,
    default_batch,
    too_many_frames,
)

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder

def checks(options: Options, files: bool) -> None:
    if options["model"] not in VJEPA2_PRESETS and not options["path"]:
        raise OptionError("encoder.model", f"{options['model']!r} is not a preset ({', '.join(VJEPA2_PRESETS)}); "
                          "give encoder.path")
    for key in ("num_frames", "image_frames"):
        if options[key] % TUBELET:
            raise OptionError(f"encoder.{key}", f"must be a multiple of V-JEPA 2's tubelet size ({TUBELET})")
        if not options["path"] and options[key] > PRESET_FRAMES_PER_CLIP:
            raise OptionError(f"encoder.{key}", too_many_frames(options[key], PRESET_FRAMES_PER_CLIP))


def width(options: Options) -> int | None:
    """A preset's width is known; a custom model's is what its config says."""
    preset = VJEPA2_PRESETS.get(options["model"])
    return preset.dim if preset and not options["path"] else None


def without_tokens(options: Options) -> tuple[str, str] | None:
    if "tokens" not in options["outputs"]:
        return "encoder.outputs", "`snakemake export_pt` exports patch tokens; add tokens to encoder.outputs"
    return None


def build_model(options: Options, device: torch.device) -> Encoder:
    """The family's model code (torch, transformers) loads only when a job builds the encoder."""
    from embedpipe.encoders.vjepa2.build import build

    return build(options, device)


def export_deepearth_pt(shard: Path, out: Path, **chosen: Any) -> int:
    from embedpipe.encoders.vjepa2.export import export_deepearth_pt as write

    return write(shard, out, **chosen)


FAMILY = Family(
    name="vjepa2",
    expects="a V-JEPA 2 model folder (config.json with model_type vjepa2, and its weights)",
    model_type="vjepa2",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder=build_model,
    default_batch=lambda options: default_batch(options["model"]),
    checks=checks,
    width=width,
    exports=(Export("export_pt", "deepearth_pt", export_deepearth_pt,
                    directory=True, per_shard=True, unavailable=without_tokens),),
)
