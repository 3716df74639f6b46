"""Metis's options → its reader, model and columns, and the provenance of what they make."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from embedpipe.encoders.metis.model import CODEC_FILE, LATENT_COLUMNS, MASKGCT, W2V_BERT, MetisModel
from embedpipe.encoders.metis.reader import AudioReader
from embedpipe.encoders.metis.sizes import LATENT_DIM
from embedpipe.encoders.roles import Encoder
from embedpipe.readers.audio import TARGET_RATE


def build(options: dict[str, Any], device: torch.device) -> Encoder:
    model = MetisModel(options["path"] or W2V_BERT, options["revision"], options["codec_path"],
                       options["stats_path"], options["layer"], options["batch_size"], options["precision"],
                       device)
    model.device = device

    def describe() -> dict[str, Any]:
        return {
            "encoder": "metis",
            "model": options["model"],
            "model_id": model.source,
            "revision": model.revision,
            "codec": model.codec_path or f"{MASKGCT}/{CODEC_FILE}",
            "stats_sha256": hashlib.sha256(Path(model.stats_path).read_bytes()).hexdigest()[:16],
            "ssl_layer": model.layer,
            "embedding_dim": LATENT_DIM,
            "latent_rate_hz": 50,
            "pooling": "mean of `latents` over the file's frames; `latents` holds every 20 ms frame, "
                       "trimmed to the file's own length",
            "precision": model.precision,
            "preprocessing": {
                "audio": f"mono (channel mean), resampled to {TARGET_RATE} Hz with soxr HQ, "
                         "cut or zero-padded to ceil(n · rate ratio) samples as librosa.load",
                "features": "SeamlessM4TFeatureExtractor's computation, batched on the model's device: "
                            "80-bin Kaldi fbank, per-utterance normalisation, pairs stacked (160-d, 50 Hz), "
                            f"an odd last pair completed with padding_value {model.fbank.padding_value}",
                "normalise": "(hidden - mean) / sqrt(var), the codec's statistics",
            },
        }

    return Encoder("metis", AudioReader(), model, LATENT_COLUMNS, describe)
