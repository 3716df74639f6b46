"""V-JEPA 2's options → its reader, model and columns, and the provenance of what they make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from embedpipe.encoders.device import resolve_precision
from embedpipe.encoders.roles import Encoder
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.encoders.vjepa2.model import TOKEN_OUTPUTS, Geometry, VJEPA2Model, token_columns
from embedpipe.encoders.vjepa2.presets import PRESET_FRAMES_PER_CLIP, VJEPA2_PRESETS, too_many_frames
from embedpipe.encoders.vjepa2.reader import ImageReader, VideoReader

PRECISIONS = ("auto", "bf16", "bf16-autocast", "fp32")
ORIENTATION = {"apply": "EXIF orientation applied",
               "ignore": "EXIF orientation ignored (the stored pixel grid, as Pillow's convert('RGB'))"}


def read_geometry(source: str, preset: Any, clip_frames: int) -> tuple[Geometry, int]:
    """Crop, width, tubelet and patch size from the model's config.json (local) or the preset (hub), and
    the most frames its temporal positions were trained on (its frames_per_clip)."""
    local = Path(source)
    if (local / "config.json").is_file():
        from transformers import VJEPA2Config

        cfg = VJEPA2Config.from_pretrained(local)
        geometry = Geometry(cfg.crop_size, cfg.hidden_size, cfg.tubelet_size, cfg.patch_size, clip_frames)
        return geometry, int(cfg.frames_per_clip)
    if preset is None:
        raise FileNotFoundError(f"encoder.path: no config.json in {source!r}")
    return Geometry(preset.crop, preset.dim, 2, 16, clip_frames), PRESET_FRAMES_PER_CLIP


def build(options: dict[str, Any], device: torch.device) -> Encoder:
    preset = VJEPA2_PRESETS.get(options["model"])
    source = options["path"] or preset.hub_id
    image = options["media"] == "image"
    frames_key = "image_frames" if image else "num_frames"
    geometry, frames_per_clip = read_geometry(source, preset, options[frames_key])
    for key in dict.fromkeys(("num_frames", frames_key)):
        if options[key] < geometry.tubelet or options[key] % geometry.tubelet:
            raise ValueError(f"encoder.{key}: {options[key]} is not a positive multiple of tubelet size "
                             f"{geometry.tubelet}")
        if options[key] > frames_per_clip:
            raise ValueError(f"encoder.{key}: {too_many_frames(options[key], frames_per_clip)}")
    outputs = tuple(o for o in TOKEN_OUTPUTS if o in options["outputs"] and o != "mean")
    precision = resolve_precision(options["precision"], device, "vjepa2", PRECISIONS)
    transform = transforms.resolve_transform(options["transform"], device)
    # The official transform resizes with OpenCV on uint8 frames, which only the workers do.
    on_device = device.type == "cuda" and transform == "fast"
    reader_type = ImageReader if image else VideoReader
    photo = {"exif_orientation": options["exif_orientation"]} if image else {}
    reader = reader_type(options["num_frames"], geometry.crop, transform, on_device, **photo)
    batch_size = options["batch_size"]  # options() resolved 0 to the preset's
    model = VJEPA2Model(source, options["revision"], geometry, outputs, batch_size, precision, options["compile"],
                        reader, repeat=options["image_frames"] if image else None)
    model.device = device

    def describe() -> dict[str, Any]:
        prov = {
            "encoder": "vjepa2",
            "model": options["model"],
            "model_id": preset.hub_id if preset and source == preset.hub_id else source,
            "revision": options["revision"],
            "embedding_dim": geometry.dim,
            "pooling": f"{options['pooling']} over all tokens",
            "precision": precision,
            "preprocessing": transforms.describe(geometry.crop, options["num_frames"], transform),
        }
        if outputs:
            prov |= {"outputs": list(outputs), "token_grid": list(geometry.grid),
                     "token_order": "last_hidden_state[t*H'*W' + i*W' + j] is grid[t, i, j]"}
        if image:
            reduction = ("; images over twice the short side reduced first (JPEG draft, else integer box reduce)"
                         if reader.reduce_to else "; full size, no reduction")
            prov["media"] = "image"
            prov["image_frames"] = options["image_frames"]
            prov["preprocessing"] |= {
                "frames": f"the image repeated {options['image_frames']} times ({geometry.grid[0]} temporal tokens)",
                "exif_orientation": options["exif_orientation"],
                "reader": f"Pillow (+ pillow-heif for HEIF); {ORIENTATION[options['exif_orientation']]}; JPEG scan "
                          "data checked (libjpeg's corrupt-data warnings are errors); alpha composited on white; "
                          "16-bit gray scaled" + reduction,
            }
        return prov

    return Encoder("vjepa2", reader, model, token_columns(geometry, outputs), describe)
