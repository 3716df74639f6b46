"""Metis 8-D continuous semantic latents: w2v-bert-2.0 hidden_states[17] → normalise → codec encoder.

Batches are built from a shard sorted by duration, so items of a batch have similar lengths; every
output is trimmed to its own frame count, and batched output equals one-at-a-time output per file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.device import resolve_precision
from embedpipe.encoders.family import OptionError
from embedpipe.encoders.metis.fbank import KaldiFbank
from embedpipe.encoders.metis.repcodec import load_codec, load_stats
from embedpipe.encoders.metis.sizes import LATENT_DIM, stacked_frames
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.pooling import length_mask, masked_mean
from embedpipe.encoders.roles import Model, OutputSpec

W2V_BERT = "facebook/w2v-bert-2.0"
MASKGCT = "amphion/MaskGCT"
CODEC_FILE = "semantic_codec/model.safetensors"

LATENT_COLUMNS = OutputSpec([
    pa.field("latents", pa.list_(pa.list_(pa.float32(), LATENT_DIM))),
    pa.field("embedding", pa.list_(pa.float32(), LATENT_DIM)),
    pa.field("n_frames", pa.int32()),
], LATENT_DIM)


class MetisModel(Model):
    def __init__(self, source: str, revision: str | None, codec_path: str | None, stats_path: str, layer: int,
                 batch_size: int, precision: str, device: torch.device) -> None:
        self.source, self.revision, self.codec_path, self.stats_path = source, revision, codec_path, stats_path
        self.layer, self.batch_size, self.precision_option = layer, batch_size, precision
        self.precision = resolve_precision(precision, device, "metis")
        from transformers import SeamlessM4TFeatureExtractor

        # The model's own extractor settings (window, mel filters) drive the batched features.
        extractor = SeamlessM4TFeatureExtractor.from_pretrained(self.source, revision=revision)
        self.fbank = KaldiFbank.like(extractor)
        self.ssl: torch.nn.Module | None = None

    def codec_file(self) -> str:
        if self.codec_path:
            return self.codec_path
        from huggingface_hub import hf_hub_download

        return hf_hub_download(MASKGCT, CODEC_FILE)

    def load(self, device: torch.device) -> None:
        from transformers import Wav2Vec2BertModel

        self.device = device
        self.precision = resolve_precision(self.precision_option, device, "metis")
        ssl = Wav2Vec2BertModel.from_pretrained(self.source, revision=self.revision)
        if not 1 <= self.layer <= ssl.config.num_hidden_layers:
            raise ValueError(f"encoder.layer: {self.layer} is outside 1..{ssl.config.num_hidden_layers}")
        # Layers after the one read out change nothing in it: 7 of w2v-bert-2.0's 24 are not run.
        ssl.encoder.layers = ssl.encoder.layers[: self.layer]
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.ssl = ssl.to(device, dtype).eval()
        self.fbank = self.fbank.to(device)
        self.codec = load_codec(self.codec_file()).to(device).eval()
        mean, std = load_stats(self.stats_path)
        if mean.shape[0] != ssl.config.hidden_size:
            raise OptionError("encoder.stats_path", f"{self.stats_path}: {mean.shape[0]} statistics for a "
                              f"{ssl.config.hidden_size}-wide model")
        self.mean, self.std = mean.to(device), std.to(device)
        self.latent_dim = self.codec.in_project.bias.shape[0]

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Device tensors in → (latents [B, T_max, 8] zero beyond each length, their per-item mean [B, 8])."""
        hidden = self.ssl(input_features=feats, attention_mask=mask, output_hidden_states=True).hidden_states
        ssl = (hidden[self.layer].float() - self.mean) / self.std
        latents = self.codec(ssl, lengths)
        return latents * length_mask(lengths, latents.shape[1]).unsqueeze(-1), masked_mean(latents, lengths)

    def encode_async(self, batch: Batch) -> PendingOutput:
        assert self.ssl is not None, "load() first"
        cuda = self.device.type == "cuda"
        wave, n_samples = batch.padded(pin=cuda)
        with torch.inference_mode():
            wave, n_samples = wave.to(self.device, non_blocking=True), n_samples.to(self.device, non_blocking=True)
            feats, mask, lengths = self.fbank(wave, n_samples)
            feats = feats.to(self.ssl.dtype)
            latents, pooled = self.forward(feats, mask, lengths)
            pending = {"latents": latents, "embedding": pooled}
        n = [stacked_frames(len(s)) for s in batch.items]

        def finish(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
            return {
                "latents": [arrays["latents"][i, :t] for i, t in enumerate(n)],
                "embedding": arrays["embedding"],
                "n_frames": np.array(n, np.int32),
            }

        return PendingOutput.from_device(pending, finish)

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16 (w2v-bert), float32 (codec)", "fp32": "float32"}[self.precision]
