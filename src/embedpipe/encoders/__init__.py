"""Encoders: one small interface, one module per model family, chosen by name in the config."""

from __future__ import annotations

from typing import Any

from embedpipe.encoders.base import Encoder, resolve_device

ENCODERS = ("vjepa2", "metis", "ecgfounder", "ecg_jepa")


def build_encoder(name: str, options: dict[str, Any]) -> Encoder:
    """The encoder `name` configured with `options` (the config's `encoder` block, minus `name`)."""
    if name == "vjepa2":
        media = options.get("media", "video")
        if media == "image":
            from embedpipe.encoders.vjepa2_image import VJEPA2ImageEncoder

            return VJEPA2ImageEncoder.from_options(options)
        if media != "video":
            raise ValueError(f"encoder.media: {media!r} is not video or image")
        from embedpipe.encoders.vjepa2 import VJEPA2Encoder

        return VJEPA2Encoder.from_options(options)
    if name == "metis":
        from embedpipe.encoders.metis import MetisEncoder

        return MetisEncoder.from_options(options)
    if name == "ecgfounder":
        from embedpipe.encoders.ecgfounder import EcgFounderEncoder

        return EcgFounderEncoder.from_options(options)
    if name == "ecg_jepa":
        from embedpipe.encoders.ecg_jepa import EcgJepaEncoder

        return EcgJepaEncoder.from_options(options)
    raise ValueError(f"encoder.name: unknown encoder {name!r}; known: {', '.join(ENCODERS)}")


__all__ = ["ENCODERS", "Encoder", "build_encoder", "resolve_device"]
