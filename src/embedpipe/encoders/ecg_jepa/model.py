"""`ecg_jepa`: the ViT encoder of an ECG-JEPA / MyJEPA checkpoint.

As ECG-JEPA's own code (kweimann/ECG-JEPA, pretrain.py's PreprocessECG and finetune.py's
EvalTransformECG): NaNs interpolated, FFT resampling to 500 Hz, the pretraining dataset's per-lead
mean/std (MIMIC-IV-ECG), clipped to ±5, then non-overlapping crops of the config's channel_size
(10 s) from sample 0. A row holds each crop's token mean (`crop_embeddings`) and their mean
(`embedding`, which is what finetune.py's crop-averaged linear head sees).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch, group_by_shape
from embedpipe.encoders.ecg import EcgModel, EcgReader, zscore
from embedpipe.encoders.ecg_jepa.vit import EcgViT, read_checkpoint
from embedpipe.encoders.pending import PendingOutput
from embedpipe.encoders.roles import OutputSpec, Prepared
from embedpipe.readers.ecg import LEADS, TARGET_RATE, TARGET_SAMPLES, canonical_lead

# data/datasets/mimic_iv_ecg.py of ECG-JEPA: per-lead statistics of MIMIC-IV-ECG in mV, used as
# float16 as pretrain.py builds them (the float16 rounding is part of the official numbers).
MIMIC_IV_ECG_STATS = {
    "I": (0.023, 0.155), "II": (0.015, 0.158), "III": (-0.007, 0.166), "aVR": (-0.019, 0.133),
    "aVF": (0.004, 0.143), "aVL": (0.014, 0.141), "V1": (-0.018, 0.207), "V2": (-0.004, 0.282),
    "V3": (0.002, 0.284), "V4": (0.017, 0.253), "V5": (0.022, 0.222), "V6": (0.022, 0.197),
}
CLIP = 5.0


@dataclass
class EcgJepaReader(EcgReader):
    normalisation: str = "mimic_iv_ecg"  # or record
    patch: int = 25  # a record shorter than one patch cannot be embedded

    def normalise(self, signal: np.ndarray) -> np.ndarray:
        if self.normalisation == "record":
            return zscore(signal)
        names = [LEADS[i] for i in self.lead_index]
        mean = np.array([MIMIC_IV_ECG_STATS[n][0] for n in names], np.float16).astype(np.float32)[:, None]
        std = np.array([MIMIC_IV_ECG_STATS[n][1] for n in names], np.float16).astype(np.float32)[:, None]
        return np.clip((signal.astype(np.float32) - mean) / std, -CLIP, CLIP)

    def prepare(self, path: str) -> Prepared:
        prepared = super().prepare(path)
        if prepared.sample.shape[-1] < self.patch:
            raise ValueError(f"{prepared.sample.shape[-1]} samples: shorter than one {self.patch}-sample patch")
        return prepared

    def describe(self) -> dict[str, str]:
        return super().describe() | {"normalise": (
            "per-record z-score" if self.normalisation == "record"
            else f"MIMIC-IV-ECG per-lead mean/std (ECG-JEPA's, float16), clipped to ±{CLIP}")}


class EcgJepaModel(EcgModel):
    name = "ecg_jepa"

    def __init__(self, path: str, batch_size: int, precision: str, device: torch.device, mode: str,
                 lead_index: list[int], num_heads: int | None) -> None:
        super().__init__(path, batch_size, precision, device)
        self.mode, self.lead_index = mode, lead_index
        checkpoint = read_checkpoint(self.checkpoint(), path)
        # The width is needed for the output schema before the model loads: read it off the checkpoint.
        self.geometry = EcgViT.geometry(checkpoint.state)
        self.dim = self.geometry["dim"]
        self.crop = TARGET_SAMPLES
        self.source = checkpoint.source
        self._apply_config(checkpoint.config, num_heads)

    def _apply_config(self, config: dict[str, Any] | None, num_heads: int | None) -> None:
        """Head count, crop length and lead order from the checkpoint's config; a config value that
        contradicts the tensors or the options is an error, never a guess."""
        where = f"{self.path}: config"
        if config is None or config.get("num_heads") is None:
            if num_heads is None:
                raise ValueError(f"encoder.num_heads: {self.path} holds no config with num_heads; "
                                 "give encoder.num_heads")
            self.geometry["heads"] = num_heads
            if config is None:
                return
        elif num_heads is not None and num_heads != config["num_heads"]:
            raise ValueError(f"encoder.num_heads: {num_heads} contradicts {where} num_heads {config['num_heads']}")
        else:
            self.geometry["heads"] = int(config["num_heads"])
        for key, geometry_key in (("dim", "dim"), ("depth", "depth"), ("patch_size", "patch"),
                                  ("num_registers", "registers"), ("bias", "bias"), ("qkv_bias", "qkv_bias")):
            if key in config and config[key] != self.geometry[geometry_key]:
                raise ValueError(f"{where} {key} {config[key]} but the tensors say {self.geometry[geometry_key]}")
        if "mlp_ratio" in config and int(self.geometry["dim"] * config["mlp_ratio"]) != self.geometry["mlp_hidden"]:
            raise ValueError(f"{where} mlp_ratio {config['mlp_ratio']} but the tensors' MLP is "
                             f"{self.geometry['mlp_hidden']} wide")
        if config.get("sampling_frequency", TARGET_RATE) != TARGET_RATE:
            raise ValueError(f"{where} sampling_frequency {config['sampling_frequency']}: embedpipe reads ECGs at "
                             f"{TARGET_RATE} Hz")
        self.crop = int(config.get("channel_size", TARGET_SAMPLES))
        if "norm_eps" in config:
            self.geometry["eps"] = float(config["norm_eps"])
        channels = config.get("channels")
        if channels:
            leads = [canonical_lead(c) for c in channels]
            if None in leads or len(leads) != self.geometry["leads"]:
                raise ValueError(f"{where} channels {channels} are not {self.geometry['leads']} standard ECG leads")
            if self.mode == "1lead" and leads != ["I"]:
                raise ValueError(f"encoder.mode: 1lead, but {where} channels are {channels}")
            self.lead_index = [LEADS.index(lead) for lead in leads]  # the model's own lead order

    def columns(self) -> OutputSpec:
        fields = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        if self.geometry["registers"]:
            fields.append(pa.field("register", pa.list_(pa.float32(), self.dim)))
        fields += [pa.field("crop_embeddings", pa.list_(pa.list_(pa.float32(), self.dim))),
                   pa.field("n_crops", pa.int32())]  # 0: shorter than one crop, embedded at its own length
        return OutputSpec(fields, self.dim)

    def load(self, device: torch.device) -> None:
        state = read_checkpoint(self.checkpoint(), self.path).state
        if self.geometry["leads"] != len(self.lead_index):
            raise ValueError(f"{self.path} takes {self.geometry['leads']} lead(s); encoder.mode {self.mode!r} "
                             f"gives {len(self.lead_index)}")
        network = EcgViT(length=self.crop, **self.geometry)
        network.load_state_dict(state, strict=True)
        self.place(network, device)

    def windows(self, signal: torch.Tensor) -> list[torch.Tensor]:
        """EvalTransformECG's crops: non-overlapping `crop`-sample windows from sample 0 (the rest
        dropped). A record shorter than one crop is one window of its own length (whole patches)."""
        n = signal.shape[-1]
        if n >= self.crop:
            k = n // self.crop
            return list(signal[:, : k * self.crop].reshape(signal.shape[0], k, self.crop).transpose(0, 1).unbind(0))
        return [signal[:, : n // self.geometry["patch"] * self.geometry["patch"]]]

    def encode_async(self, batch: Batch) -> PendingOutput:
        assert self.network is not None, "load() first"
        windows, owner = [], []
        for i, signal in enumerate(batch.items):
            crops = self.windows(signal.to(self.device, non_blocking=True))
            windows += crops
            owner += [i] * len(crops)
        crops_batch = Batch(windows)
        with torch.inference_mode():
            crop_means = torch.empty((len(windows), self.dim), device=self.device)
            crop_registers = torch.empty((len(windows), self.dim), device=self.device)
            for indices in group_by_shape(windows).values():  # one pass per window length: all crops are one length
                registers, tokens = self.network(self.stack(crops_batch, indices))
                index = torch.tensor(indices, device=self.device)
                crop_means[index] = tokens.float().mean(1)
                if registers.shape[1]:
                    crop_registers[index] = registers[:, 0].float()
            owners = torch.tensor(owner, device=self.device)
            counts = torch.bincount(owners, minlength=len(batch)).float()[:, None]

            def mean_per_record(per_window: torch.Tensor) -> torch.Tensor:
                total = torch.zeros((len(batch), self.dim), device=self.device)
                return total.index_add_(0, owners, per_window) / counts

            arrays = {"embedding": mean_per_record(crop_means), "crop_embeddings": crop_means}
            if self.geometry["registers"]:
                arrays["register"] = mean_per_record(crop_registers)
        n_crops = [s.shape[-1] // self.crop for s in batch.items]
        bounds = np.cumsum([0, *np.bincount(owner, minlength=len(batch))])

        def finish(out: dict[str, np.ndarray]) -> dict[str, Any]:
            crops = out.pop("crop_embeddings")
            return {**out, "crop_embeddings": [crops[bounds[i]:bounds[i + 1]] for i in range(len(batch))],
                    "n_crops": np.array(n_crops, np.int32)}

        return PendingOutput.from_device(arrays, finish)
