"""The ECG-JEPA ViT encoder (Weimann & Conrad's layout, as MyJEPA trains it), under its checkpoint names.

Conv1d patches (12 → dim, kernel = stride = 25: 200 tokens for 10 s at 500 Hz), fixed sinusoidal
positions, register tokens in front, pre-LN blocks (no qkv bias), final LayerNorm; the released
configs have no biases at all (`bias: False`). Widths, depth, patch size, registers and biases are
read off the tensors; the head count and the crop length from the checkpoint's `config` (a
checkpoint without one needs `encoder.num_heads`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(dim: int, n: int) -> torch.Tensor:
    position = torch.arange(n).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, n, dim)
    table[0, :, 0::2] = torch.sin(position * freq)
    table[0, :, 1::2] = torch.cos(position * freq)
    return table


class PatchEmbedding(nn.Module):
    def __init__(self, dim: int, leads: int, patch: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Conv1d(leads, dim, kernel_size=patch, stride=patch, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, qkv_bias: bool, layer_scale: bool, eps: float,
                 bias: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps, bias=bias), nn.LayerNorm(dim, eps=eps, bias=bias)
        self.attn, self.mlp = Attention(dim, heads, qkv_bias, bias), Mlp(dim, hidden, bias)
        self.attn_ls = LayerScale(dim) if layer_scale else nn.Identity()
        self.mlp_ls = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_ls(self.attn(self.norm1(x)))
        return x + self.mlp_ls(self.mlp(self.norm2(x)))


class EcgViT(nn.Module):
    """`[B, leads, n]` → (register tokens `[B, R, dim]`, patch tokens `[B, n // patch, dim]`)."""

    def __init__(self, dim: int = 384, depth: int = 8, heads: int = 6, leads: int = 12, patch: int = 25,
                 length: int = 5000, registers: int = 1, mlp_hidden: int = 1536, qkv_bias: bool = False,
                 layer_scale: bool = False, eps: float = 1e-6, bias: bool = True) -> None:
        super().__init__()
        if dim % heads or dim % 2:
            raise ValueError(f"ecg_jepa: width {dim} does not split into {heads} heads")
        self.patch = patch
        self.patch_embed = PatchEmbedding(dim, leads, patch, bias)
        self.register_buffer("pos_embed", sinusoidal_positions(dim, length // patch), persistent=False)
        self.registers = nn.Parameter(torch.zeros(1, registers, dim)) if registers else None
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_hidden, qkv_bias, layer_scale, eps, bias)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps, bias=bias)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(register tokens, patch tokens). `keep [B, K]`: only those patches go through the blocks
        (pretraining's context); positions are added first, so each kept token knows where it lies."""
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, : x.shape[1]]
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        r = 0
        if self.registers is not None:
            r = self.registers.shape[1]
            x = torch.cat([self.registers.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, :r], x[:, r:]

    @staticmethod
    def geometry(state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What the tensors say (everything but the head count and the crop length)."""
        proj = state["patch_embed.proj.weight"]  # [dim, leads, patch]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        return {
            "dim": proj.shape[0], "leads": proj.shape[1], "patch": proj.shape[2], "depth": depth,
            "registers": state["registers"].shape[1] if "registers" in state else 0,
            "mlp_hidden": state["blocks.0.mlp.fc1.weight"].shape[0],
            "qkv_bias": "blocks.0.attn.qkv.bias" in state,
            "layer_scale": "blocks.0.attn_ls.weight" in state,
            "bias": "patch_embed.proj.bias" in state,
        }


@dataclass
class EcgJepaCheckpoint:
    state: dict[str, torch.Tensor]  # the encoder's tensors under EcgViT's names
    config: dict[str, Any] | None  # the training config saved beside them (ECG-JEPA's asdict(Config))
    source: str  # which entry the encoder came from, for the provenance


def read_checkpoint(checkpoint: Any, path: str) -> EcgJepaCheckpoint:
    """The encoder of an ECG-JEPA / MyJEPA checkpoint.

    Accepted: pretrain.py's `{'model': JEPA state (encoder.*, predictor.*, target_encoder.*), 'config',
    'optimizer', 'step'}` and its minified `{'model': target_encoder.*, 'config'}` (the target encoder,
    as finetune.py loads it; MyJEPA has no EMA target, so `encoder.*`), `{'encoder': state}`, and a
    bare encoder state dict. DistributedDataParallel / torch.compile prefixes are dropped.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: not an ECG-JEPA checkpoint (a {type(checkpoint).__name__}, not a dict)")
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else None
    candidates = [("model", checkpoint.get("model")), ("encoder", checkpoint.get("encoder")), ("", checkpoint)]
    for entry, tensors in candidates:
        if not isinstance(tensors, dict):
            continue
        tensors = {_strip(k): v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
        for prefix in ("target_encoder.", "encoder.", ""):
            if f"{prefix}patch_embed.proj.weight" in tensors:
                state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
                return EcgJepaCheckpoint(state, config, f"{entry or 'state dict'}: {prefix or '(no prefix)'}")
    raise ValueError(f"{path}: not an ECG-JEPA encoder checkpoint: no 'patch_embed.proj.weight' under "
                     "model.target_encoder, model.encoder, encoder or the top level")


def _strip(key: str) -> str:
    return key.removeprefix("module.").replace("_orig_mod.", "")
