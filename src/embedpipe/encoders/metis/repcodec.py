"""The encoder half of MaskGCT's semantic codec (RepCodec), up to the quantiser's input projection.

Written from the published architecture: VocosBackbone (Conv1d embed, LayerNorm, ConvNeXt blocks,
final LayerNorm) → Linear back to the SSL width → weight-normed 1×1 Conv1d to the 8-D latent. The
module's parameter names are the released checkpoint's (`amphion/MaskGCT`
`semantic_codec/model.safetensors`), so that file loads as is.

Every time convolution sees zeros beyond a sequence's own length, so a padded batch gives each
item exactly what it gives alone (where a lone sequence sees the convolution's zero padding).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from embedpipe.encoders.family import OptionError
from embedpipe.runtime.error_text import clean_message

# Checkpoint entries this module owns; the rest (decoder, codebook, out_project) are not needed
# to compute the latent and are left out by name.
OWN_PREFIXES = ("encoder.", "quantizer.quantizers.0.in_project.")


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1.0 / 12))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x `[B, C, T]`, keep `[B, 1, T]` (1 inside each sequence, 0 beyond it)."""
        y = self.dwconv(x * keep).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class VocosBackbone(nn.Module):
    def __init__(self, in_dim: int, dim: int, intermediate: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate) for _ in range(layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x `[B, C_in, T]` → `[B, T, dim]`."""
        x = self.norm(self.embed(x * keep).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x, keep)
        return self.final_layer_norm(x.transpose(1, 2))


class WeightNormConv1x1(nn.Module):
    """`weight_norm(Conv1d(k=1))` under its checkpoint names: weight = g · v / ‖v‖ per output channel."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(out_dim, in_dim, 1) * 0.02)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=(1, 2), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x `[B, C, T]` → `[B, out, T]`."""
        return nn.functional.conv1d(x, self.weight(), self.bias)


class _QuantizerStage(nn.Module):
    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.in_project = WeightNormConv1x1(in_dim, latent_dim)


class _Quantizer(nn.Module):
    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.quantizers = nn.ModuleList([_QuantizerStage(in_dim, latent_dim)])


class SemanticCodecEncoder(nn.Module):
    """Normalised SSL features `[B, T, in_dim]` → continuous latents `[B, T, latent_dim]`."""

    def __init__(self, in_dim: int = 1024, dim: int = 384, intermediate: int = 2048, layers: int = 12,
                 latent_dim: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(VocosBackbone(in_dim, dim, intermediate, layers), nn.Linear(dim, in_dim))
        self.quantizer = _Quantizer(in_dim, latent_dim)

    @property
    def in_project(self) -> WeightNormConv1x1:
        return self.quantizer.quantizers[0].in_project

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(feats.shape[1], device=feats.device)
        keep = (steps[None, :] < lengths[:, None]).to(feats.dtype)[:, None, :]
        backbone, to_ssl_width = self.encoder
        x = to_ssl_width(backbone(feats.transpose(1, 2), keep))
        return self.in_project(x.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def geometry(state: dict[str, torch.Tensor]) -> dict[str, int]:
        """Widths and depth read off a checkpoint's tensors, so any size of the codec loads."""
        blocks = {int(k.split(".")[3]) for k in state if k.startswith("encoder.0.convnext.")}
        return {
            "in_dim": state["encoder.0.embed.weight"].shape[1],
            "dim": state["encoder.0.embed.weight"].shape[0],
            "intermediate": state["encoder.0.convnext.0.pwconv1.weight"].shape[0],
            "layers": len(blocks),
            "latent_dim": state["quantizer.quantizers.0.in_project.weight_v"].shape[0],
        }


def own_entries(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(OWN_PREFIXES)}


def load_codec(path: str | Path) -> SemanticCodecEncoder:
    """The codec encoder from a safetensors checkpoint; strict on every entry it owns."""
    from safetensors.torch import load_file

    state = own_entries(load_file(str(path)))
    if "encoder.0.embed.weight" not in state:
        raise ValueError(f"{path}: no 'encoder.0.*' entries; not a MaskGCT semantic codec checkpoint")
    codec = SemanticCodecEncoder(**SemanticCodecEncoder.geometry(state))
    codec.load_state_dict(state, strict=True)
    return codec


def load_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) from the codec's `{"mean": [D], "var": [D]}` statistics file."""
    try:
        stats = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the key, not the model (model_error blames encoder.path for the rest)
        raise OptionError("encoder.stats_path", f"{path}: not a statistics file torch loads ({type(exc).__name__}: "
                          f"{clean_message(str(exc))[:200]})") from None
    if not isinstance(stats, dict) or not {"mean", "var"} <= set(stats):
        raise OptionError("encoder.stats_path", f"{path}: expected a dict with 'mean' and 'var'")
    mean = torch.as_tensor(stats["mean"], dtype=torch.float32)
    var = torch.as_tensor(stats["var"], dtype=torch.float32)
    return mean, torch.sqrt(var)
