"""`vjepa2`: V-JEPA 2 on videos (EchoJEPA's script) or photos (DeepEarth's), through transformers."""

from __future__ import annotations

from pathlib import Path

from embedpipe.encoders.family import Export, Family, OptionError, Options
from embedpipe.encoders.vjepa2.presets import VJEPA2_PRESETS

TUBELET = 2  # every released V-JEPA 2; a custom model's own is checked when it is built
PRESET_FRAMES_PER_CLIP = 64  # the presets are the fpc64 checkpoints; a custom model's config says its own


def checks(options: Options, files: bool) -> None:
    if options["model"] not in VJEPA2_PRESETS and not options["path"]:
        raise OptionError("encoder.model", f"{options['model']!r} is not a preset ({', '.join(VJEPA2_PRESETS)}); "
                          "give encoder.path")
    for key in ("num_frames", "image_frames"):
        if options[key] % TUBELET:
            raise OptionError(f"encoder.{key}", f"must be a multiple of V-JEPA 2's tubelet size ({TUBELET})")
        if not options["path"] and options[key] > PRESET_FRAMES_PER_CLIP:
            raise OptionError(f"encoder.{key}", too_many_frames(options[key], PRESET_FRAMES_PER_CLIP))


def too_many_frames(frames: int, frames_per_clip: int) -> str:
    return (f"{frames} frames is more than the model's {frames_per_clip} (its config's frames_per_clip): its "
            "temporal positions were never trained past them. The clip length is this option, not the "
            "checkpoint's config")


def width(options: Options) -> int | None:
    """A preset's width is known; a custom model's is what its config says."""
    preset = VJEPA2_PRESETS.get(options["model"])
    return preset.dim if preset and not options["path"] else None


def without_tokens(options: Options) -> tuple[str, str] | None:
    if "tokens" not in options["outputs"]:
        return "encoder.outputs", "`snakemake export_pt` exports patch tokens; add tokens to encoder.outputs"
    return None


FAMILY = Family(
    name="vjepa2",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder="embedpipe.encoders.vjepa2.build:build",
    checks=checks,
    width=width,
    exports=(Export("export_pt", "deepearth_pt", "embedpipe.encoders.vjepa2.export:export_deepearth_pt",
                    directory=True, per_shard=True, unavailable=without_tokens),),
)
