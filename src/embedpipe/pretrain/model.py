"""MyJEPA: ECG-JEPA's masking and prediction with LeJEPA's single encoder and SIGReg.

One encoder (embedpipe's `EcgViT`, the class the `ecg_jepa` family loads for inference) encodes the
context patches and the whole record; there is no EMA copy and no stop-gradient, so the loss reaches
the encoder through both passes. A transformer predictor of its own width and depth predicts the
target patches' tokens from the context; a projector MLP maps the mean of the whole record's patch
tokens to the space SIGReg keeps isotropic Gaussian:

    loss = smooth_L1(predicted, target tokens) + λ · SIGReg(projector(mean of the patch tokens))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embedpipe.encoders.ecg_jepa.vit import Block, EcgViT, sinusoidal_positions
from embedpipe.pretrain.sigreg import sigreg
from embedpipe.readers.ecg import LEADS, TARGET_RATE


@dataclass
class MyJepaConfig:
    """The network, masking and loss; saved as a checkpoint's `config`, whose keys the `ecg_jepa`
    family reads (num_heads, channel_size, channels, patch_size, dim, depth, mlp_ratio, …)."""

    channel_size: int = 5000  # samples per crop: 10 s at 500 Hz
    patch_size: int = 25
    dim: int = 384
    depth: int = 8
    num_heads: int = 6
    pred_dim: int = 192
    pred_depth: int = 8
    pred_num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    bias: bool = False
    num_registers: int = 1
    norm_eps: float = 1e-6
    proj_hidden: int = 2048
    proj_dim: int = 128
    sigreg_lambda: float = 0.02
    sigreg_slices: int = 256
    sigreg_knots: int = 17
    sigreg_t_max: float = 3.0
    min_keep_ratio: float = 0.15
    max_keep_ratio: float = 0.25
    min_block_size: int = 10

    def __post_init__(self) -> None:
        if self.channel_size % self.patch_size:
            raise ValueError(f"channel_size {self.channel_size} is not a whole number of {self.patch_size}-sample "
                             "patches")

    @property
    def num_patches(self) -> int:
        return self.channel_size // self.patch_size

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MyJepaConfig:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown model config keys {unknown} (known: {sorted(known)})")
        return cls(**values)

    def checkpoint_config(self) -> dict[str, Any]:
        """What a checkpoint's `config` holds: these values and the input they were trained on."""
        return asdict(self) | {"sampling_frequency": TARGET_RATE, "channels": list(LEADS)}


class Predictor(nn.Module):
    """Context tokens `[B, K, dim]` and their patch indices, target indices `[B, T]` → `[B, T, dim]`."""

    def __init__(self, c: MyJepaConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(c.dim, c.pred_dim, bias=c.bias)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.pred_dim))
        self.register_buffer("pos_embed", sinusoidal_positions(c.pred_dim, c.num_patches), persistent=False)
        hidden = int(c.pred_dim * c.mlp_ratio)
        self.blocks = nn.ModuleList(Block(c.pred_dim, c.pred_num_heads, hidden, c.qkv_bias, False, c.norm_eps, c.bias)
                                    for _ in range(c.pred_depth))
        self.norm = nn.LayerNorm(c.pred_dim, eps=c.norm_eps, bias=c.bias)
        self.proj = nn.Linear(c.pred_dim, c.dim, bias=c.bias)

    def forward(self, context: torch.Tensor, context_index: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        pos = self.pos_embed.expand(context.shape[0], -1, -1)
        x = self.embed(context) + gather_tokens(pos, context_index)
        queries = self.mask_token + gather_tokens(pos, target_index)
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.proj(self.norm(x[:, context.shape[1]:]))


class Projector(nn.Module):
    """LeJEPA's projector: Linear-BatchNorm-GELU twice, then Linear to `proj_dim`."""

    def __init__(self, c: MyJepaConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(c.dim, c.proj_hidden), nn.BatchNorm1d(c.proj_hidden), nn.GELU(),
            nn.Linear(c.proj_hidden, c.proj_hidden), nn.BatchNorm1d(c.proj_hidden), nn.GELU(),
            nn.Linear(c.proj_hidden, c.proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`tokens [B, n, d]` at `index [B, k]` → `[B, k, d]`."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def encode_patches(encoder: EcgViT, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The encoder on the patches `keep [B, K]` only: their tokens `[B, K, dim]`."""
    return encoder(x, keep)[1]


class MyJepa(nn.Module):
    def __init__(self, config: MyJepaConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = EcgViT(dim=c.dim, depth=c.depth, heads=c.num_heads, leads=len(LEADS), patch=c.patch_size,
                              length=c.channel_size, registers=c.num_registers, mlp_hidden=int(c.dim * c.mlp_ratio),
                              qkv_bias=c.qkv_bias, eps=c.norm_eps, bias=c.bias)
        self.predictor = Predictor(c)
        self.projector = Projector(c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ECG-JEPA's initialisation: truncated normal (std 0.02) weights, the residual branches'
        output projections scaled down by sqrt(2 · depth), zero biases; registers and the mask token
        at std 0.02. PyTorch's defaults give a deep pre-LN stack a residual stream that grows with depth."""
        for module in (self.encoder, self.predictor):
            for name, layer in module.named_modules():
                if isinstance(layer, nn.Linear | nn.Conv1d):
                    residual = name.endswith(("attn.proj", "mlp.fc2"))
                    std = 0.02 / math.sqrt(2 * self.config.depth) if residual else 0.02
                    nn.init.trunc_normal_(layer.weight, std=std)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
        if self.encoder.registers is not None:
            nn.init.trunc_normal_(self.encoder.registers, std=0.02)
        nn.init.trunc_normal_(self.predictor.mask_token, std=0.02)

    def encode_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return encode_patches(self.encoder, x, context)

    def encode_full(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[1]  # the inference path itself: the patch tokens, registers left out

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """`batch`: x `[B, 12, channel_size]`, context `[B, K]` and target `[B, T]` patch indices,
        sigreg_seed (int: the directions, the same on every rank) → loss, pred_loss, sigreg_loss."""
        c = self.config
        x, context, target = batch["x"], batch["context"], batch["target"]
        full = self.encode_full(x)
        predicted = self.predictor(self.encode_context(x, context), context, target)
        pred_loss = F.smooth_l1_loss(predicted.float(), gather_tokens(full, target).float())
        generator = torch.Generator().manual_seed(int(batch["sigreg_seed"]))
        sigreg_loss = sigreg(self.projector(full.mean(1)), generator, c.sigreg_slices, c.sigreg_t_max,
                             c.sigreg_knots)
        return {"loss": pred_loss + c.sigreg_lambda * sigreg_loss, "pred_loss": pred_loss, "sigreg_loss": sigreg_loss}
