"""`ecgfounder`: ECGFounder's Net1D; rows hold the last-stage map `[T, 1024]` and its mean.

Defaults as the ECGFounder script: the whole record, per-record z-score, no filter (`length: 10s`,
`resample: every_second` and `filter: ecgfounder` are its other ways)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.base import PendingOutput
from embedpipe.encoders.ecg import EcgBatch, EcgEncoder
from embedpipe.encoders.net1d import Net1D


class EcgFounderEncoder(EcgEncoder):
    name = "ecgfounder"
    EXTRA_OPTIONS = ("keep_features",)

    def __init__(self, keep_features: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.keep_features = keep_features
        # Widths come from the checkpoint (the schema needs them before the model loads).
        self.geometry = Net1D.geometry(self._state())
        self.dim = self.geometry["filter_list"][-1]
        self.downsamplings = 1 + len(self.geometry["filter_list"])

    def _state(self) -> dict[str, torch.Tensor]:
        checkpoint = self._checkpoint()
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ValueError(f"{self.path}: expected a checkpoint dict with 'state_dict' (ECGFounder's format)")
        return checkpoint["state_dict"]

    def load(self, device: torch.device) -> None:
        state = self._state()
        leads = self.geometry["in_channels"]
        if leads != len(self.lead_index):
            raise ValueError(f"{self.path} takes {leads} lead(s); encoder.mode {self.mode!r} gives "
                             f"{len(self.lead_index)}")
        model = Net1D(**self.geometry)
        model.load_state_dict(state, strict=True)
        self._place(model, device)

    def encode_async(self, batch: EcgBatch) -> PendingOutput:
        assert self.model is not None, "load() first"
        groups = list(batch.by_length().values())
        with torch.inference_mode():
            # One pass per distinct length (one in the usual case); no padded buffer of the longest
            # record's frames: each group's maps travel on their own and are put back in finish().
            embedding = torch.empty((len(batch), self.dim), device=self.device)
            arrays: dict[str, torch.Tensor] = {}
            for g, indices in enumerate(groups):
                maps = self.model.features(self._stack([batch.signals[i] for i in indices])).transpose(1, 2).float()
                embedding[torch.tensor(indices, device=self.device)] = maps.mean(1)
                if self.keep_features:
                    arrays[f"features/{g}"] = maps
            arrays["embedding"] = embedding
        records = batch.records

        def finish(out: dict[str, np.ndarray]) -> dict[str, Any]:
            done = {"embedding": out["embedding"], **self._record_columns(records)}
            if self.keep_features:
                features: list[np.ndarray | None] = [None] * len(records)
                for g, indices in enumerate(groups):
                    for row, i in enumerate(indices):
                        features[i] = out[f"features/{g}"][row]
                done["features"] = features
            return done

        return PendingOutput.from_device(arrays, finish)

    def output_fields(self) -> list[pa.Field]:
        fields = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        if self.keep_features:
            fields.append(pa.field("features", pa.list_(pa.list_(pa.float32(), self.dim))))
        return fields + self._record_fields()

    def provenance(self) -> dict[str, Any]:
        return super().provenance() | {
            "embedding_dim": self.dim,
            "architecture": {k: list(v) if isinstance(v, tuple) else v for k, v in self.geometry.items()},
            "pooling": "mean of the last stage's frames (Net1D's deep_features); `features` holds those frames "
                       f"(one per {2 ** self.downsamplings} input samples)",
        }
