"""ECG encoders: `ecgfounder` (Net1D, 12-lead or lead I) and `ecg_jepa` (MyJEPA's ViT encoder).

Workers read the file (XML or WFDB), bring it to 12 leads × 5,000 samples at 500 Hz, filter if
asked, and z-score it; the model sees fixed-size batches. Outputs are trimmed to each recording's
true length, so no batch or crop padding reaches a saved row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.base import Encoder, resolve_device, resolve_precision
from embedpipe.readers.ecg import LEADS, TARGET_RATE, TARGET_SAMPLES, EcgRecord, read_ecg

MODES = {"12lead": LEADS, "1lead": ("I",)}
BASELINES = ("none", "median")


@dataclass
class EcgSample:
    signal: np.ndarray  # float32 [leads, 5000], z-scored over the true length, zero beyond it
    record: EcgRecord  # signal dropped; what the row keeps


@dataclass
class EcgBatch:
    signals: torch.Tensor  # [B, leads, 5000]
    records: list[EcgRecord]

    def __len__(self) -> int:
        return len(self.records)

    def pin_memory(self) -> EcgBatch:
        return EcgBatch(self.signals.pin_memory(), self.records)


def clean(signal: np.ndarray, n: int, bandpass: bool, notch_hz: float | None, baseline: str) -> np.ndarray:
    """Optional filtering of the true length, at 500 Hz (zero-phase, so no delay)."""
    from scipy import signal as sp

    x = signal[:, :n].astype(np.float64)
    if baseline == "median":  # the classic two-pass median: 200 ms (QRS) then 600 ms (T wave) windows
        trend = sp.medfilt(sp.medfilt(x, (1, 101)), (1, 301)) if n >= 301 else np.median(x, 1, keepdims=True)
        x = x - trend
    if bandpass and n > 27:  # filtfilt needs more samples than its padding
        b, a = sp.butter(2, [0.67, 40.0], btype="bandpass", fs=TARGET_RATE)
        x = sp.filtfilt(b, a, x, axis=1, padlen=min(3 * max(len(a), len(b)), n - 1))
    if notch_hz and n > 9:
        b, a = sp.iirnotch(notch_hz, 30.0, fs=TARGET_RATE)
        x = sp.filtfilt(b, a, x, axis=1, padlen=min(9, n - 1))
    out = np.zeros_like(signal)
    out[:, :n] = x
    return out


def zscore(signal: np.ndarray, n: int) -> np.ndarray:
    """One mean and one std over the whole recording (every lead, the true length), eps 1e-8."""
    part = signal[:, :n].astype(np.float64)
    out = np.zeros_like(signal)
    out[:, :n] = (part - part.mean()) / (part.std() + 1e-8)
    return out


class EcgEncoder(Encoder):
    """What both ECG models share: the reader, preprocessing, batching and the per-recording columns."""

    def __init__(self, model: str, path: str, mode: str = "12lead", batch_size: int = 0, device: str = "auto",
                 precision: str = "auto", bandpass: bool = False, notch_hz: float | None = None,
                 baseline: str = "none") -> None:
        if not path:
            raise ValueError(f"encoder.path: {self.name} needs a checkpoint file")
        if not Path(path).is_file():
            raise FileNotFoundError(f"encoder.path: {path!r} is not a file")
        if mode not in MODES:
            raise ValueError(f"encoder.mode: {mode!r} is not one of {sorted(MODES)}")
        if baseline not in BASELINES:
            raise ValueError(f"encoder.baseline: {baseline!r} is not one of {BASELINES}")
        self.model_name, self.path, self.mode = model, path, mode
        self.lead_index = [LEADS.index(lead) for lead in MODES[mode]]
        self.batch_size = batch_size or 256
        self.precision_option = precision
        self.precision = resolve_precision(precision, resolve_device(device), self.name)
        self.bandpass, self.notch_hz, self.baseline = bandpass, notch_hz, baseline
        self.model: torch.nn.Module | None = None

    # the config keys every ECG encoder takes; a subclass adds its own in EXTRA_OPTIONS
    OPTIONS = ("model", "path", "mode", "batch_size", "device", "precision", "bandpass", "notch_hz", "baseline")
    EXTRA_OPTIONS: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> EcgEncoder:
        keys = cls.OPTIONS + cls.EXTRA_OPTIONS
        return cls(**{k: options[k] for k in keys if k in options and options[k] is not None})

    def _checkpoint(self) -> Any:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle that is more than tensors and plain containers
            raise ValueError(f"{self.path}: cannot be read as a weights-only checkpoint ({exc})") from exc

    def _place(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.precision = resolve_precision(self.precision_option, device, self.name)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.model = model.to(device, dtype).eval()

    def prepare(self, path: str) -> EcgSample:
        record = read_ecg(path)
        if not any(LEADS[i] in record.leads_found for i in self.lead_index):
            raise ValueError(f"none of the leads {MODES[self.mode]} is in the file (found {record.leads_found})")
        signal = record.signal[self.lead_index]
        if self.bandpass or self.notch_hz or self.baseline != "none":
            signal = clean(signal, record.n_samples, self.bandpass, self.notch_hz, self.baseline)
        signal = zscore(signal, record.n_samples).astype(np.float32)
        record.signal = np.empty((0,), np.float32)  # the workers hand back only what the row keeps
        return EcgSample(signal, record)

    def collate(self, samples: list[EcgSample]) -> EcgBatch:
        return EcgBatch(torch.from_numpy(np.stack([s.signal for s in samples])), [s.record for s in samples])

    def concat(self, batches: list[EcgBatch]) -> EcgBatch:
        if len(batches) == 1:
            return batches[0]
        return EcgBatch(torch.cat([b.signals for b in batches]), [r for b in batches for r in b.records])

    def subset(self, batch: EcgBatch, start: int, stop: int) -> EcgBatch:
        return EcgBatch(batch.signals[start:stop], batch.records[start:stop])

    def _record_columns(self, records: list[EcgRecord]) -> dict[str, Any]:
        return {
            "n_samples": np.array([r.n_samples for r in records], np.int32),
            "source_rate": np.array([r.source_rate for r in records], np.float64),
            "leads_found": [list(r.leads_found) for r in records],
            "nan_samples": np.array([r.nan_samples for r in records], np.int32),
        }

    def _record_fields(self) -> list[pa.Field]:
        return [pa.field("n_samples", pa.int32()), pa.field("source_rate", pa.float64()),
                pa.field("leads_found", pa.list_(pa.string())), pa.field("nan_samples", pa.int32())]

    def _input(self, batch: EcgBatch) -> torch.Tensor:
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        return batch.signals.to(self.device, non_blocking=True).to(dtype)

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16", "fp32": "float32"}[self.precision]

    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "model": self.model_name,
            "model_id": self.path,
            "checkpoint_sha256": _file_digest(self.path),
            "mode": self.mode,
            "precision": self.precision,
            "preprocessing": {
                "leads": list(MODES[self.mode]) if self.mode != "12lead" else "I II III aVR aVL aVF V1-V6, by name",
                "resample": f"{TARGET_RATE} Hz (polyphase)",
                "length": f"first {TARGET_SAMPLES} samples (10 s), shorter ones zero-padded; true length kept",
                "nan": "set to 0, counted in nan_samples",
                "filters": {"bandpass_0.67_40_hz": self.bandpass, "notch_hz": self.notch_hz,
                            "baseline": self.baseline},
                "normalise": "z-score over the whole recording (one mean, one std), eps 1e-8",
            },
        }


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
