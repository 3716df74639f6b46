"""V-JEPA 2's encoder through transformers (VJEPA2Model, predictor skipped) and its token columns."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import Model, OutputSpec
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.encoders.vjepa2.reader import VideoReader

# Columns beside `embedding` (the mean of all tokens, always written): the patch tokens on their
# grid, their mean per temporal position, and their mean over time per spatial position.
TOKEN_OUTPUTS = ("mean", "tokens", "temporal", "spatial")


@dataclass(frozen=True)
class Geometry:
    crop: int
    dim: int
    tubelet: int
    patch: int
    clip_frames: int  # frames the model sees per item

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W'): last_hidden_state's tokens are these, flattened t-major."""
        side = self.crop // self.patch
        return self.clip_frames // self.tubelet, side, side


def token_columns(geometry: Geometry, outputs: tuple[str, ...]) -> OutputSpec:
    t, h, w = geometry.grid
    shapes = {"tokens": ((t, h, w), pa.float16()), "temporal": ((t,), pa.float32()),
              "spatial": ((h, w), pa.float16())}
    fields = [pa.field("embedding", pa.list_(pa.float32(), geometry.dim))]
    for name in outputs:
        shape, dtype = shapes[name]
        typ = pa.list_(dtype, geometry.dim)
        for size in reversed(shape):
            typ = pa.list_(typ, size)
        fields.append(pa.field(name, typ))
    return OutputSpec(fields, geometry.dim, ("tokens",) if "tokens" in outputs else ())


class VJEPA2Model(Model):
    """`repeat`: frames per item when each item is one photo (repeated on the device, after the
    resize, so neither the workers nor the host-to-device copy pay for the repetition)."""

    def __init__(self, source: str, revision: str | None, geometry: Geometry, outputs: tuple[str, ...],
                 batch_size: int, precision: str, compile: bool, reader: VideoReader,
                 repeat: int | None = None) -> None:
        self.source, self.revision, self.geometry, self.outputs = source, revision, geometry, outputs
        self.batch_size, self.precision, self.compile = batch_size, precision, compile
        self.reader, self.repeat = reader, repeat
        self.network: torch.nn.Module | None = None

    @property
    def preprocess_on_device(self) -> bool:
        """What the reader hands over decides what the model does: uint8 frames are resized here."""
        return self.reader.preprocess_on_device

    @preprocess_on_device.setter
    def preprocess_on_device(self, value: bool) -> None:
        self.reader.preprocess_on_device = value

    @property
    def crop(self) -> int:
        return self.geometry.crop

    def load(self, device: torch.device) -> None:
        from transformers import VJEPA2Model as HFVJEPA2Model

        self.device = device
        model = HFVJEPA2Model.from_pretrained(self.source, revision=self.revision, attn_implementation="sdpa")
        if model.config.hidden_size != self.geometry.dim:
            raise ValueError(f"model at {self.source} has width {model.config.hidden_size}, "
                             f"expected {self.geometry.dim}")
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)
        self.network = model.to(device).eval()
        # The encoder alone: with skip_predictor the full model returns exactly its output.
        # dynamic=False: one static graph for the batch size; short batches are padded up to it
        self._forward = torch.compile(self.network.encoder, dynamic=False) if self.compile else self.network.encoder

    def model_input(self, batch: Batch) -> torch.Tensor:
        """The batch on the device as `[B, T, 3, crop, crop]`: resized there (one batched resize per
        distinct clip size) on the fast path, else stacked as the workers made it."""
        if not self.preprocess_on_device:
            x = batch.stacked(self.device)
        else:
            groups = batch.groups()
            if len(groups) == 1:  # the common case: one size, no scatter
                x = transforms.preprocess_clips(batch.stacked(self.device), self.crop)
            else:
                x = torch.empty((len(batch), batch.items[0].shape[0], 3, self.crop, self.crop), device=self.device)
                for indices in groups.values():
                    # The index goes through pinned memory: a pageable copy would block this thread until
                    # the GPU finished the previous batch, and the next batch could not be queued behind it.
                    index = torch.tensor(indices)
                    index = index.pin_memory() if self.device.type == "cuda" else index
                    x.index_copy_(0, index.to(self.device, non_blocking=True),
                                  transforms.preprocess_clips(batch.stacked(self.device, indices), self.crop))
        if self.repeat:  # [B, 1, 3, crop, crop] → the clip length
            x = x.expand(-1, self.repeat, -1, -1, -1).contiguous()
        return x

    def encode_async(self, batch: Batch) -> PendingOutput:
        assert self.network is not None, "load() first"
        cuda = self.device.type == "cuda"
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.precision == "bf16-autocast" and cuda
            else contextlib.nullcontext()
        )
        with torch.inference_mode():
            x = self.model_input(batch)
            if self.precision == "bf16":
                x = x.to(torch.bfloat16)
            rows = x.shape[0]
            if self.compile and rows < self.batch_size:
                # A shard's last batch would otherwise cost a second compilation (tens of seconds on
                # ViT-L); clips do not attend to each other, so the zero rows change nothing.
                x = torch.cat([x, x.new_zeros((self.batch_size - rows, *x.shape[1:]))])
            with autocast:
                tokens = self._forward(pixel_values_videos=x).last_hidden_state[:rows]
            return PendingOutput.from_device(self.token_outputs(tokens))

    def token_outputs(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The configured columns from last_hidden_state `[B, T'·H'·W', D]`; large ones in float16."""
        out = {"embedding": tokens.mean(dim=1, dtype=torch.float32)}
        if not self.outputs:
            return out
        grid = tokens.view(tokens.shape[0], *self.geometry.grid, self.geometry.dim)
        if "tokens" in self.outputs:
            out["tokens"] = grid.to(torch.float16)
        if "temporal" in self.outputs:
            out["temporal"] = grid.mean(dim=(2, 3), dtype=torch.float32)
        if "spatial" in self.outputs:
            out["spatial"] = grid.mean(dim=1, dtype=torch.float32).to(torch.float16)
        return out

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16", "bf16-autocast": "bfloat16 autocast", "fp32": "float32"}[self.precision]
