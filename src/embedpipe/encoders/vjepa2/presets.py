"""V-JEPA 2 presets: plain data, importable by the Snakefile without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPreset:
    hub_id: str
    dim: int
    crop: int
    batch_size: int


# The EchoJEPA script's four models: width, crop and default batch (sized for a 48 GB L40S).
VJEPA2_PRESETS: dict[str, ModelPreset] = {
    "vitl": ModelPreset("facebook/vjepa2-vitl-fpc64-256", 1024, 256, 256),
    "vith": ModelPreset("facebook/vjepa2-vith-fpc64-256", 1280, 256, 128),
    "vitg": ModelPreset("facebook/vjepa2-vitg-fpc64-256", 1408, 256, 64),
    "vitg-384": ModelPreset("facebook/vjepa2-vitg-fpc64-384", 1408, 384, 16),
}

TUBELET = 2  # every released V-JEPA 2; a custom model's own is checked when it is built
PRESET_FRAMES_PER_CLIP = 64  # the presets are the fpc64 checkpoints; a custom model's config says its own


def too_many_frames(frames: int, frames_per_clip: int) -> str:
    return (f"{frames} frames is more than the model's {frames_per_clip} (its config's frames_per_clip): its "
            "temporal positions were never trained past them. The clip length is this option, not the "
            "checkpoint's config")


DEFAULT_CUSTOM_BATCH = 8  # a custom model's size is unknown before its config is read: a batch any GPU holds


def default_batch(model: str) -> int:
    """The batch `batch_size: 0` means: the preset's (sized for a 48 GB L40S), else a small one."""
    preset = VJEPA2_PRESETS.get(model)
    return preset.batch_size if preset else DEFAULT_CUSTOM_BATCH
