"""V-JEPA 2 video encoder through transformers (VJEPA2Model, predictor skipped)."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from embedpipe import transforms
from embedpipe.encoders.base import Encoder, PendingOutput, Prepared, resolve_device, resolve_precision
from embedpipe.presets import VJEPA2_PRESETS
from embedpipe.readers.video import read_video

POOLINGS = ("mean",)
# Columns beside `embedding` (the mean of all tokens, always written): the patch tokens on their
# grid, their mean per temporal position, and their mean over time per spatial position.
TOKEN_OUTPUTS = ("mean", "tokens", "temporal", "spatial")
PRECISIONS = ("auto", "bf16", "bf16-autocast", "fp32")
DEFAULT_CUSTOM_BATCH = 8


@dataclass
class ClipBatch:
    """Decoded uint8 clips `[T, H, W, 3]` (sizes may differ) that the fast transform resizes on the GPU."""

    clips: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.clips)

    def pin_memory(self) -> ClipBatch:
        return ClipBatch([c.pin_memory() for c in self.clips])

    def to_model_input(self, device: torch.device, crop: int) -> torch.Tensor:
        """Copy to the device and preprocess there, one batched resize per distinct clip size."""
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, clip in enumerate(self.clips):
            by_size[tuple(clip.shape)].append(i)
        if len(by_size) == 1:  # the common case: one size, no scatter
            return transforms.preprocess_clips(self._stack_on(device, range(len(self.clips))), crop)
        out = torch.empty((len(self.clips), self.clips[0].shape[0], 3, crop, crop), device=device)
        for indices in by_size.values():
            # The index goes through pinned memory: a pageable copy would block this thread until the
            # GPU finished the previous batch, and the next batch could not be queued behind it.
            index = torch.tensor(indices)
            index = index.pin_memory() if device.type == "cuda" else index
            out.index_copy_(0, index.to(device, non_blocking=True),
                            transforms.preprocess_clips(self._stack_on(device, indices), crop))
        return out

    def _stack_on(self, device: torch.device, indices: Iterable[int]) -> torch.Tensor:
        return torch.stack([self.clips[i].to(device, non_blocking=True) for i in indices])


class VJEPA2Encoder(Encoder):
    name = "vjepa2"

    def __init__(
        self,
        model: str = "vitl",
        path: str | None = None,
        revision: str | None = None,
        num_frames: int = 16,
        batch_size: int = 0,
        pooling: str = "mean",
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        outputs: Iterable[str] = ("mean",),
        transform: str = "auto",
    ) -> None:
        if model not in VJEPA2_PRESETS and not path:
            raise ValueError(
                f"encoder.model: {model!r} is not a preset ({', '.join(VJEPA2_PRESETS)}); give encoder.path"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"encoder.pooling: {pooling!r} is not one of {POOLINGS}")
        unknown = sorted(set(outputs) - set(TOKEN_OUTPUTS))
        if unknown:
            raise ValueError(f"encoder.outputs: {unknown} not among {TOKEN_OUTPUTS}")
        self.outputs = tuple(o for o in TOKEN_OUTPUTS if o in outputs and o != "mean")
        self.model_name = model
        self.preset = VJEPA2_PRESETS.get(model)
        self.source = path or self.preset.hub_id
        self.revision = revision
        self.num_frames = num_frames
        self.pooling = pooling
        self.device_name = device
        self.precision = resolve_precision(precision, resolve_device(device), self.name, PRECISIONS)
        # Resolved here, not in load(): it is part of the provenance, which the writer reads first.
        self.transform = transforms.resolve_transform(transform, resolve_device(device))
        self.compile = compile
        self.preprocess_on_device = False  # set by load(): the fast transform on CUDA, workers only decode
        self.crop, self.dim, self.tubelet, self.patch = self._read_geometry()
        self._check_frames("num_frames", num_frames)
        default_batch = self.preset.batch_size if self.preset else DEFAULT_CUSTOM_BATCH
        self.batch_size = batch_size or default_batch
        self.model: torch.nn.Module | None = None
        self.device = torch.device("cpu")

    OPTIONS = ("model", "path", "revision", "num_frames", "batch_size", "pooling", "device", "precision", "compile",
               "outputs", "transform")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> VJEPA2Encoder:
        return cls(**{k: options[k] for k in cls.OPTIONS if k in options})

    def _check_frames(self, key: str, frames: int) -> None:
        if frames < self.tubelet or frames % self.tubelet:
            raise ValueError(f"encoder.{key}: {frames} is not a positive multiple of tubelet size {self.tubelet}")

    @property
    def clip_frames(self) -> int:
        """Frames the model sees per item."""
        return self.num_frames

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W'): last_hidden_state's tokens are these, flattened t-major."""
        side = self.crop // self.patch
        return self.clip_frames // self.tubelet, side, side

    def _read_geometry(self) -> tuple[int, int, int, int]:
        """Crop, width, tubelet and patch size from the model's config.json (local) or the preset (hub)."""
        local = Path(self.source)
        if (local / "config.json").is_file():
            from transformers import VJEPA2Config

            cfg = VJEPA2Config.from_pretrained(local)
            return cfg.crop_size, cfg.hidden_size, cfg.tubelet_size, cfg.patch_size
        if self.preset is None:
            raise FileNotFoundError(f"encoder.path: no config.json in {self.source!r}")
        return self.preset.crop, self.preset.dim, 2, 16

    def load(self, device: torch.device) -> None:
        from transformers import VJEPA2Model

        self.device = device
        model = VJEPA2Model.from_pretrained(self.source, revision=self.revision, attn_implementation="sdpa")
        if model.config.hidden_size != self.dim:
            raise ValueError(f"model at {self.source} has width {model.config.hidden_size}, expected {self.dim}")
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)
        self.model = model.to(device).eval()
        # The encoder alone: with skip_predictor the full model returns exactly its output.
        # dynamic=False: one static graph for the batch size; short batches are padded up to it
        self._forward = torch.compile(self.model.encoder, dynamic=False) if self.compile else self.model.encoder
        # The official transform resizes with OpenCV on uint8 frames, which only the workers do.
        self.preprocess_on_device = device.type == "cuda" and self.transform == "fast"

    def prepare(self, path: str) -> Prepared:
        clip = read_video(path, self.num_frames)
        facts = {"frames_decoded": clip.frames_decoded, "frames_declared": clip.frames_declared,
                 "truncated": clip.truncated}
        if self.preprocess_on_device:
            # uint8; 4x less to move than float32, resized on the GPU
            return Prepared(torch.from_numpy(clip.frames), facts)
        return Prepared(transforms.preprocess_on_cpu(clip.frames, self.crop, self.transform), facts)

    def fact_fields(self) -> list[pa.Field]:
        return [pa.field("frames_decoded", pa.int32()),  # in the whole file; `num_frames` of them are sampled
                pa.field("frames_declared", pa.int32()),  # the container's; null where it states none
                pa.field("truncated", pa.bool_())]  # decoded shorter than declared; null: unknown

    def collate(self, samples: list[torch.Tensor]) -> torch.Tensor | ClipBatch:
        return ClipBatch(samples) if self.preprocess_on_device else torch.stack(samples)

    def concat(self, batches: list[torch.Tensor | ClipBatch]) -> torch.Tensor | ClipBatch:
        if isinstance(batches[0], ClipBatch):
            return ClipBatch([c for b in batches for c in b.clips])
        return super().concat(batches)

    def subset(self, batch: torch.Tensor | ClipBatch, start: int, stop: int) -> torch.Tensor | ClipBatch:
        return ClipBatch(batch.clips[start:stop]) if isinstance(batch, ClipBatch) else batch[start:stop]

    def model_input(self, batch: torch.Tensor | ClipBatch) -> torch.Tensor:
        if isinstance(batch, ClipBatch):
            return batch.to_model_input(self.device, self.crop)
        return batch.to(self.device, non_blocking=True)

    def encode_async(self, batch: torch.Tensor | ClipBatch) -> PendingOutput:
        assert self.model is not None, "load() first"
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
        grid = tokens.view(tokens.shape[0], *self.grid, self.dim)
        if "tokens" in self.outputs:
            out["tokens"] = grid.to(torch.float16)
        if "temporal" in self.outputs:
            out["temporal"] = grid.mean(dim=(2, 3), dtype=torch.float32)
        if "spatial" in self.outputs:
            out["spatial"] = grid.mean(dim=1, dtype=torch.float32).to(torch.float16)
        return out

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16", "bf16-autocast": "bfloat16 autocast", "fp32": "float32"}[self.precision]

    def sidecar_columns(self) -> tuple[str, ...]:
        return ("tokens",) if "tokens" in self.outputs else ()

    def output_fields(self) -> list[pa.Field]:
        t, h, w = self.grid
        shapes = {"tokens": ((t, h, w), pa.float16()), "temporal": ((t,), pa.float32()),
                  "spatial": ((h, w), pa.float16())}
        fields = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        for name in self.outputs:
            shape, dtype = shapes[name]
            typ = pa.list_(dtype, self.dim)
            for size in reversed(shape):
                typ = pa.list_(typ, size)
            fields.append(pa.field(name, typ))
        return fields + self.fact_fields()

    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "model": self.model_name,
            "model_id": self.preset.hub_id if self.preset and self.source == self.preset.hub_id else self.source,
            "revision": self.revision,
            "embedding_dim": self.dim,
            "pooling": f"{self.pooling} over all tokens",
            "precision": self.precision,
            "preprocessing": transforms.describe(self.crop, self.num_frames, self.transform),
        } | self._outputs_provenance()

    def _outputs_provenance(self) -> dict[str, Any]:
        if not self.outputs:
            return {}
        t, h, w = self.grid
        return {"outputs": list(self.outputs), "token_grid": [t, h, w],
                "token_order": "last_hidden_state[t*H'*W' + i*W' + j] is grid[t, i, j]"}
