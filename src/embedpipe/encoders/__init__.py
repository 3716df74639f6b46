"""Encoder families: one package each under encoders/<family>/, registered here by one line.

A family package exports `FAMILY` (family.py): its options schema, start-up checks, builder, output
width and exports. Nothing here imports torch; building an encoder does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedpipe.encoders.family import Export, Family, OptionError

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder

# The registry: family name → its package.
FAMILIES = {
    "vjepa2": "embedpipe.encoders.vjepa2",
    "metis": "embedpipe.encoders.metis",
    "ecgfounder": "embedpipe.encoders.ecgfounder",
    "ecg_jepa": "embedpipe.encoders.ecg_jepa",
}
ENCODERS = tuple(FAMILIES)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise OptionError("encoder.name", f"unknown encoder {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name]).FAMILY


def all_exports() -> list[tuple[Family, Export]]:
    return [(f, e) for f in map(family, FAMILIES) for e in f.exports]


def build_encoder(name: str, options: dict[str, Any], device: torch.device | None = None) -> Encoder:
    """The encoder `name` configured with `options` (the config's `encoder` block, `name` optional),
    for `device` (default: the options' `device`, resolved now)."""
    from embedpipe.encoders.device import resolve_device

    fam = family(name)
    opts = fam.check(fam.options({k: v for k, v in options.items() if k != "name"}))
    return fam.build(opts, resolve_device(opts.get("device", "auto")) if device is None else device)


__all__ = ["ENCODERS", "FAMILIES", "Export", "Family", "OptionError", "all_exports", "build_encoder", "family"]
