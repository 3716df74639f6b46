"""Metis 8-D continuous semantic latents: w2v-bert-2.0 hidden_states[17] → normalise → codec encoder.

Batches are built from a shard sorted by duration, so items of a batch have similar lengths; every
output is trimmed to its own frame count, and batched output equals one-at-a-time output per file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.base import Encoder, PendingOutput, Prepared, resolve_device, resolve_precision
from embedpipe.encoders.repcodec import load_codec, load_stats
from embedpipe.fbank import KaldiFbank, fbank_frames, stacked_frames
from embedpipe.readers.audio import TARGET_RATE, AudioReadError, audio_duration, read_audio

W2V_BERT = "facebook/w2v-bert-2.0"
MASKGCT = "amphion/MaskGCT"
CODEC_FILE = "semantic_codec/model.safetensors"


@dataclass
class AudioSample:
    """One decoded file (in a worker): 16 kHz mono samples."""

    samples: np.ndarray  # float32 [n]


@dataclass
class AudioBatch:
    items: list[AudioSample]

    def __len__(self) -> int:
        return len(self.items)

    def padded(self, pin: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(waveforms [B, N_max] zero beyond each file, sample counts [B]), pinned for an async copy."""
        n = torch.tensor([len(s.samples) for s in self.items])
        wave = torch.zeros((len(self.items), int(n.max())), pin_memory=pin)
        for i, s in enumerate(self.items):
            wave[i, : len(s.samples)] = torch.from_numpy(s.samples)
        return wave, n.pin_memory() if pin else n


class MetisEncoder(Encoder):
    name = "metis"

    def __init__(
        self,
        model: str = "metis",
        path: str | None = None,
        revision: str | None = None,
        codec_path: str | None = None,
        stats_path: str | None = None,
        layer: int = 17,
        batch_size: int = 0,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        if not stats_path:
            raise ValueError("encoder.stats_path: metis needs the codec's wav2vec2bert_stats.pt (mean/var)")
        if not Path(stats_path).is_file():
            raise FileNotFoundError(f"encoder.stats_path: {stats_path!r} is not a file")
        self.model_name = model
        self.source = path or W2V_BERT
        self.revision = revision
        self.codec_path = codec_path
        self.stats_path = stats_path
        self.layer = layer
        self.batch_size = batch_size or 64
        self.device_name = device
        self.precision_option = precision
        self.precision = resolve_precision(precision, resolve_device(device), self.name)
        from transformers import SeamlessM4TFeatureExtractor

        # The model's own extractor settings (window, mel filters) drive the batched features.
        extractor = SeamlessM4TFeatureExtractor.from_pretrained(self.source, revision=revision)
        self.fbank = KaldiFbank.like(extractor)
        self.ssl: torch.nn.Module | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> MetisEncoder:
        keys = ("model", "path", "revision", "codec_path", "stats_path", "layer", "batch_size", "device", "precision")
        return cls(**{k: options[k] for k in keys if k in options and options[k] is not None})

    def _codec_file(self) -> str:
        if self.codec_path:
            return self.codec_path
        from huggingface_hub import hf_hub_download

        return hf_hub_download(MASKGCT, CODEC_FILE)

    def load(self, device: torch.device) -> None:
        from transformers import Wav2Vec2BertModel

        self.device = device
        self.precision = resolve_precision(self.precision_option, device, self.name)
        ssl = Wav2Vec2BertModel.from_pretrained(self.source, revision=self.revision)
        if not 1 <= self.layer <= ssl.config.num_hidden_layers:
            raise ValueError(f"encoder.layer: {self.layer} is outside 1..{ssl.config.num_hidden_layers}")
        # Layers after the one read out change nothing in it: 7 of w2v-bert-2.0's 24 are not run.
        ssl.encoder.layers = ssl.encoder.layers[: self.layer]
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.ssl = ssl.to(device, dtype).eval()
        self.fbank = self.fbank.to(device)
        self.codec = load_codec(self._codec_file()).to(device).eval()
        mean, std = load_stats(self.stats_path)
        if mean.shape[0] != ssl.config.hidden_size:
            raise ValueError(f"{self.stats_path}: {mean.shape[0]} statistics for a {ssl.config.hidden_size}-wide model")
        self.mean, self.std = mean.to(device), std.to(device)
        self.latent_dim = self.codec.in_project.bias.shape[0]

    def order(self, keys: list[str], root: Path) -> list[str]:
        # Shortest first: neighbours in a batch need little padding.
        durations = {k: audio_duration(str(root / k)) for k in keys}
        return sorted(keys, key=lambda k: (durations[k], k))

    def prepare(self, path: str) -> Prepared:
        # Workers only decode and resample; filter banks run batched on the model's device.
        clip = read_audio(path, TARGET_RATE)
        if fbank_frames(len(clip.samples)) < 2:
            raise AudioReadError(f"{clip.duration_s:.3f} s of audio is shorter than two 25 ms feature frames")
        facts = {"duration_s": clip.duration_s, "sample_rate": clip.source_rate,
                 "declared_duration_s": clip.declared_duration_s, "truncated": clip.truncated}
        return Prepared(AudioSample(clip.samples), facts)

    def collate(self, samples: list[AudioSample]) -> AudioBatch:
        return AudioBatch(samples)

    def concat(self, batches: list[AudioBatch]) -> AudioBatch:
        return AudioBatch([s for b in batches for s in b.items])

    def subset(self, batch: AudioBatch, start: int, stop: int) -> AudioBatch:
        return AudioBatch(batch.items[start:stop])

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Device tensors in → (latents [B, T_max, 8] zero beyond each length, their per-item mean [B, 8])."""
        hidden = self.ssl(input_features=feats, attention_mask=mask, output_hidden_states=True).hidden_states
        ssl = (hidden[self.layer].float() - self.mean) / self.std
        latents = self.codec(ssl, lengths)
        steps = torch.arange(latents.shape[1], device=latents.device)
        inside = (steps[None, :] < lengths[:, None]).unsqueeze(-1)
        return latents * inside, (latents * inside).sum(1) / lengths[:, None]

    def encode_async(self, batch: AudioBatch) -> PendingOutput:
        assert self.ssl is not None, "load() first"
        cuda = self.device.type == "cuda"
        wave, n_samples = batch.padded(pin=cuda)
        with torch.inference_mode():
            wave, n_samples = wave.to(self.device, non_blocking=True), n_samples.to(self.device, non_blocking=True)
            feats, mask, lengths = self.fbank(wave, n_samples)
            feats = feats.to(self.ssl.dtype)
            latents, pooled = self.forward(feats, mask, lengths)
            pending = {"latents": latents, "embedding": pooled}
        n = [stacked_frames(len(s.samples)) for s in batch.items]

        def finish(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
            return {
                "latents": [arrays["latents"][i, :t] for i, t in enumerate(n)],
                "embedding": arrays["embedding"],
                "n_frames": np.array(n, np.int32),
            }

        return PendingOutput.from_device(pending, finish)

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16 (w2v-bert), float32 (codec)", "fp32": "float32"}[self.precision]

    def output_fields(self) -> list[pa.Field]:
        return [
            pa.field("latents", pa.list_(pa.list_(pa.float32(), 8))),
            pa.field("embedding", pa.list_(pa.float32(), 8)),
            pa.field("n_frames", pa.int32()),
            *self.fact_fields(),
        ]

    def fact_fields(self) -> list[pa.Field]:
        return [
            pa.field("duration_s", pa.float64()),  # decoded
            pa.field("sample_rate", pa.int32()),  # the source's
            pa.field("declared_duration_s", pa.float64()),  # the header's; null where it states none
            pa.field("truncated", pa.bool_()),  # decoded shorter than declared; null: unknown
        ]

    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "model": self.model_name,
            "model_id": self.source,
            "revision": self.revision,
            "codec": self.codec_path or f"{MASKGCT}/{CODEC_FILE}",
            "stats_sha256": hashlib.sha256(Path(self.stats_path).read_bytes()).hexdigest()[:16],
            "ssl_layer": self.layer,
            "embedding_dim": 8,
            "latent_rate_hz": 50,
            "pooling": "mean of `latents` over the file's frames; `latents` holds every 20 ms frame, "
                       "trimmed to the file's own length",
            "precision": self.precision,
            "preprocessing": {
                "audio": f"mono (channel mean), resampled to {TARGET_RATE} Hz with soxr HQ, "
                         "cut or zero-padded to ceil(n · rate ratio) samples as librosa.load",
                "features": "SeamlessM4TFeatureExtractor's computation, batched on the model's device: "
                            "80-bin Kaldi fbank, per-utterance normalisation, pairs stacked (160-d, 50 Hz), "
                            f"an odd last pair completed with padding_value {self.fbank.padding_value}",
                "normalise": "(hidden - mean) / sqrt(var), the codec's statistics",
            },
        }
