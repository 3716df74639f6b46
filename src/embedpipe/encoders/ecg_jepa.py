"""`ecg_jepa`: the ViT encoder of an ECG-JEPA / MyJEPA checkpoint; mean of the patch tokens + the register."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.base import PendingOutput
from embedpipe.encoders.ecg import EcgBatch, EcgEncoder
from embedpipe.encoders.ecg_vit import EcgViT, encoder_state
from embedpipe.readers.ecg import TARGET_SAMPLES


class EcgJepaEncoder(EcgEncoder):
    name = "ecg_jepa"
    EXTRA_OPTIONS = ("num_heads",)

    def __init__(self, num_heads: int = 6, **options: Any) -> None:
        super().__init__(**options)
        self.num_heads = num_heads
        # The width is needed for the output schema before the model loads: read it off the checkpoint.
        self.geometry = EcgViT.geometry(encoder_state(self._checkpoint()), num_heads)
        self.dim = self.geometry["dim"]

    def load(self, device: torch.device) -> None:
        state = encoder_state(self._checkpoint())
        if self.geometry["leads"] != len(self.lead_index):
            raise ValueError(f"{self.path} takes {self.geometry['leads']} lead(s); encoder.mode {self.mode!r} "
                             f"gives {len(self.lead_index)}")
        model = EcgViT(length=TARGET_SAMPLES, **self.geometry)
        model.load_state_dict(state, strict=True)
        self._place(model, device)

    def encode_async(self, batch: EcgBatch) -> PendingOutput:
        assert self.model is not None, "load() first"
        patch = self.geometry["patch"]
        with torch.inference_mode():
            registers, tokens = self.model(self._input(batch))
            n_tokens = torch.tensor([-(-r.n_samples // patch) for r in batch.records])
            inside = (torch.arange(tokens.shape[1])[None, :] < n_tokens[:, None]).to(tokens.device).unsqueeze(-1)
            pooled = (tokens.float() * inside).sum(1) / inside.sum(1)
            arrays = {"embedding": pooled}
            if registers.shape[1]:
                arrays["register"] = registers[:, 0].float()
        records = batch.records

        def finish(out: dict[str, np.ndarray]) -> dict[str, Any]:
            return {**out, **self._record_columns(records)}

        return PendingOutput.from_device(arrays, finish)

    def output_fields(self) -> list[pa.Field]:
        fields = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        if self.geometry["registers"]:
            fields.append(pa.field("register", pa.list_(pa.float32(), self.dim)))
        return fields + self._record_fields()

    def provenance(self) -> dict[str, Any]:
        return super().provenance() | {
            "embedding_dim": self.dim,
            "architecture": self.geometry,
            "pooling": "mean of the patch tokens that cover the recording's true length (25 samples each); "
                       "`register`: the first register token",
        }
