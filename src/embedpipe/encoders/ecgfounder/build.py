"""ECGFounder's options → its reader, model and columns, and the provenance of what they make."""

from __future__ import annotations

from typing import Any

import torch

from embedpipe.encoders.ecg import EcgReader, ecg_provenance, ecg_reader_options
from embedpipe.encoders.ecgfounder.model import EcgFounderModel
from embedpipe.encoders.roles import Encoder


def build(options: dict[str, Any], device: torch.device) -> Encoder:
    reader = EcgReader(**ecg_reader_options(options))
    model = EcgFounderModel(options["path"], options["batch_size"], options["precision"], device,
                            len(reader.lead_index), options["keep_features"], options["mode"])
    model.device = device

    def describe() -> dict[str, Any]:
        return ecg_provenance("ecgfounder", options, reader, model) | {
            "embedding_dim": model.dim,
            "architecture": {k: list(v) if isinstance(v, tuple) else v for k, v in model.geometry.items()},
            "pooling": "mean of the last stage's frames (Net1D's deep_features); `features` holds those frames "
                       f"(one per {2 ** model.downsamplings} input samples)",
        }

    return Encoder("ecgfounder", reader, model, model.columns(), describe)
