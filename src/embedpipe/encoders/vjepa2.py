"""V-JEPA 2 video encoder through transformers (VJEPA2Model, predictor skipped)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe import transforms
from embedpipe.encoders.base import Encoder
from embedpipe.presets import VJEPA2_PRESETS
from embedpipe.readers.video import read_video_frames

POOLINGS = ("mean",)
DEFAULT_CUSTOM_BATCH = 8


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
    ) -> None:
        if model not in VJEPA2_PRESETS and not path:
            raise ValueError(
                f"encoder.model: {model!r} is not a preset ({', '.join(VJEPA2_PRESETS)}); give encoder.path"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"encoder.pooling: {pooling!r} is not one of {POOLINGS}")
        self.model_name = model
        self.preset = VJEPA2_PRESETS.get(model)
        self.source = path or self.preset.hub_id
        self.revision = revision
        self.num_frames = num_frames
        self.pooling = pooling
        self.device_name = device
        self.crop, self.dim, self.tubelet = self._read_geometry()
        if num_frames % self.tubelet:
            raise ValueError(f"encoder.num_frames: {num_frames} is not a multiple of tubelet size {self.tubelet}")
        default_batch = self.preset.batch_size if self.preset else DEFAULT_CUSTOM_BATCH
        self.batch_size = batch_size or default_batch
        self.model: torch.nn.Module | None = None
        self.device = torch.device("cpu")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> VJEPA2Encoder:
        keys = ("model", "path", "revision", "num_frames", "batch_size", "pooling", "device")
        return cls(**{k: options[k] for k in keys if k in options})

    def _read_geometry(self) -> tuple[int, int, int]:
        """Crop, width and tubelet from the model's config.json (local) or the preset (hub)."""
        local = Path(self.source)
        if (local / "config.json").is_file():
            from transformers import VJEPA2Config

            cfg = VJEPA2Config.from_pretrained(local)
            return cfg.crop_size, cfg.hidden_size, cfg.tubelet_size
        if self.preset is None:
            raise FileNotFoundError(f"encoder.path: no config.json in {self.source!r}")
        return self.preset.crop, self.preset.dim, 2

    def load(self, device: torch.device) -> None:
        from transformers import VJEPA2Model

        self.device = device
        model = VJEPA2Model.from_pretrained(self.source, revision=self.revision, attn_implementation="sdpa")
        self.model = model.to(device).eval()
        if self.model.config.hidden_size != self.dim:
            raise ValueError(f"model at {self.source} has width {self.model.config.hidden_size}, expected {self.dim}")

    def prepare(self, path: str) -> torch.Tensor:
        frames = torch.from_numpy(read_video_frames(path, self.num_frames))
        return transforms.preprocess_clip(frames, self.crop)

    def encode(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        assert self.model is not None, "load() first"
        batch = batch.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            tokens = self.model(pixel_values_videos=batch, skip_predictor=True).last_hidden_state
            pooled = tokens.float().mean(dim=1)
        return {"embedding": pooled.cpu().numpy().astype(np.float32, copy=False)}

    def output_fields(self) -> list[pa.Field]:
        return [pa.field("embedding", pa.list_(pa.float32(), self.dim))]

    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "model": self.model_name,
            "model_id": self.preset.hub_id if self.preset and self.source == self.preset.hub_id else self.source,
            "revision": self.revision,
            "embedding_dim": self.dim,
            "pooling": f"{self.pooling} over all tokens",
            "preprocessing": transforms.describe(self.crop, self.num_frames),
        }
