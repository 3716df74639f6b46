"""ECG-JEPA's options → its reader, model and columns, and the provenance of what they make."""

from __future__ import annotations

from typing import Any

import torch

from embedpipe.encoders.ecg import ecg_provenance, ecg_reader_options
from embedpipe.encoders.ecg_jepa.model import EcgJepaModel, EcgJepaReader
from embedpipe.encoders.roles import Encoder


def build(options: dict[str, Any], device: torch.device) -> Encoder:
    fields = ecg_reader_options(options)
    model = EcgJepaModel(options["path"], options["batch_size"], options["precision"], device, options["mode"],
                         fields.pop("lead_index"), options["num_heads"])
    model.device = device
    # The checkpoint's config may set the lead order: the reader gives the model's own.
    reader = EcgJepaReader(lead_index=model.lead_index, **fields, normalisation=options["normalise"],
                           patch=model.geometry["patch"])

    def describe() -> dict[str, Any]:
        prov = ecg_provenance("ecg_jepa", options, reader, model)
        prov["preprocessing"]["crops"] = f"non-overlapping {model.crop}-sample crops from sample 0"
        return prov | {
            "embedding_dim": model.dim,
            "architecture": model.geometry,
            "checkpoint_entry": model.source,
            "pooling": "mean of the patch tokens per crop (`crop_embeddings`), then the mean over crops; "
                       "`register`: the first register token, averaged over crops",
        }

    return Encoder("ecg_jepa", reader, model, model.columns(), describe)
