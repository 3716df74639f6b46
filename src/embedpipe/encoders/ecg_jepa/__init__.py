"""`ecg_jepa`: the ViT encoder of an ECG-JEPA / MyJEPA checkpoint, preprocessed as ECG-JEPA's own code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from embedpipe.encoders.ecg_checks import ecg_checks
from embedpipe.encoders.family import Family, Options

if TYPE_CHECKING:
    import torch

    from embedpipe.encoders.roles import Encoder

DEFAULT_BATCH = 256  # what batch_size: 0 means
# vit.read_checkpoint's places for the encoder (an entry, then a prefix in it), torch-free
ENTRIES, PREFIXES = ("model.", "encoder.", ""), ("target_encoder.", "encoder.", "")


def holds_encoder(names: frozenset[str]) -> bool:
    """A patch embedding where read_checkpoint looks (DDP's `module.`, torch.compile's `_orig_mod.` dropped)."""
    plain = {name.replace("_orig_mod.", "").replace("module.", "") for name in names}
    return any(f"{entry}{prefix}patch_embed.proj.weight" in plain for entry in ENTRIES for prefix in PREFIXES)


def build_model(options: Options, device: torch.device) -> Encoder:
    """The family's model code (torch, transformers) loads only when a job builds the encoder."""
    from embedpipe.encoders.ecg_jepa.build import build

    return build(options, device)


FAMILY = Family(
    name="ecg_jepa",
    expects="an ECG-JEPA checkpoint file (pretrain.py's .pt, or an encoder state dict)",
    schema_file=Path(__file__).with_name("schema.yaml"),
    builder=build_model,
    default_batch=lambda options: DEFAULT_BATCH,
    checks=ecg_checks,
    checkpoint_holds=holds_encoder,
)
