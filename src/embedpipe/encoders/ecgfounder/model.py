"""ECGFounder's Net1D; rows hold the last-stage map `[T, 1024]` and its mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.ecg import EcgModel
from embedpipe.encoders.ecgfounder.net1d import Net1D
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import OutputSpec


def founder_state(checkpoint: Any, path: str) -> dict[str, torch.Tensor]:
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path}: expected a checkpoint dict with 'state_dict' (ECGFounder's format)")
    return checkpoint["state_dict"]


class EcgFounderModel(EcgModel):
    name = "ecgfounder"

    def __init__(self, path: str, batch_size: int, precision: str, device: torch.device, leads: int,
                 keep_features: bool, mode: str) -> None:
        super().__init__(path, batch_size, precision, device)
        self.leads, self.keep_features, self.mode = leads, keep_features, mode
        # Widths come from the checkpoint (the schema needs them before the model loads).
        self.geometry = Net1D.geometry(founder_state(self.checkpoint(), path))
        self.dim = self.geometry["filter_list"][-1]
        self.downsamplings = 1 + len(self.geometry["filter_list"])

    def columns(self) -> OutputSpec:
        fields = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        if self.keep_features:
            fields.append(pa.field("features", pa.list_(pa.list_(pa.float32(), self.dim))))
        return OutputSpec(fields, self.dim)

    def load(self, device: torch.device) -> None:
        state = founder_state(self.checkpoint(), self.path)
        if self.geometry["in_channels"] != self.leads:
            raise ValueError(f"{self.path} takes {self.geometry['in_channels']} lead(s); encoder.mode "
                             f"{self.mode!r} gives {self.leads}")
        network = Net1D(**self.geometry)
        network.load_state_dict(state, strict=True)
        self.place(network, device)

    def encode_async(self, batch: Batch) -> PendingOutput:
        assert self.network is not None, "load() first"
        groups = list(batch.groups().values())
        with torch.inference_mode():
            # One pass per distinct length (one in the usual case); no padded buffer of the longest
            # record's frames: each group's maps travel on their own and are put back in finish().
            embedding = torch.empty((len(batch), self.dim), device=self.device)
            arrays: dict[str, torch.Tensor] = {}
            for g, indices in enumerate(groups):
                maps = self.network.features(self.stack(batch, indices)).transpose(1, 2).float()
                embedding[torch.tensor(indices, device=self.device)] = maps.mean(1)
                if self.keep_features:
                    arrays[f"features/{g}"] = maps
            arrays["embedding"] = embedding
        n = len(batch)

        def finish(out: dict[str, np.ndarray]) -> dict[str, Any]:
            done = {"embedding": out["embedding"]}
            if self.keep_features:
                features: list[np.ndarray | None] = [None] * n
                for g, indices in enumerate(groups):
                    for row, i in enumerate(indices):
                        features[i] = out[f"features/{g}"][row]
                done["features"] = features
            return done

        return PendingOutput.from_device(arrays, finish)
