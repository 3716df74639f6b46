"""ECG encoders: `ecgfounder` (Net1D, 12-lead or lead I) and `ecg_jepa` (MyJEPA's ViT encoder).

Workers read the file (XML or WFDB), bring it to 12 leads at 500 Hz, filter if asked, and normalise
it. Records are never zero-padded for the model: a batch runs one forward pass per distinct length,
so what a row holds equals what the record gives alone (and what the official code gives).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.base import Encoder, resolve_device, resolve_precision
from embedpipe.readers.ecg import LEADS, NAN_FILLS, RESAMPLERS, TARGET_RATE, TARGET_SAMPLES, EcgRecord, read_ecg

MODES = {"12lead": LEADS, "1lead": ("I",)}
FILTERS = ("none", "ecgfounder")
DEFAULT_NOTCH_HZ = 50.0  # ECGFounder's util.filter_bandpass
MEDIAN_WINDOW_S = 0.4  # ECGFounder's baseline-wander median filter: int(0.4 · fs) + 1 samples


@dataclass
class EcgSample:
    signal: np.ndarray  # float32 [leads, n], normalised
    record: EcgRecord  # signal dropped; what the row keeps


@dataclass
class EcgBatch:
    signals: list[torch.Tensor]  # [leads, n] each; lengths may differ
    records: list[EcgRecord]

    def __len__(self) -> int:
        return len(self.records)

    def pin_memory(self) -> EcgBatch:
        return EcgBatch([s.pin_memory() for s in self.signals], self.records)

    def by_length(self) -> dict[int, list[int]]:
        return by_length(self.signals)


def by_length(signals: list[torch.Tensor]) -> dict[int, list[int]]:
    """Indices of `[leads, n]` signals per length n: each group is one forward pass, with no padding."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(signals):
        groups[s.shape[-1]].append(i)
    return groups


def ecgfounder_filter(x: np.ndarray, notch_hz: float) -> np.ndarray:
    """ECGFounder's util.filter_bandpass at 500 Hz, per lead: power-line notch (Q 30), 4th-order
    Butterworth band-pass 0.67–40 Hz (both zero-phase, filtfilt's default padding), then the
    0.4-s median filter's baseline subtracted."""
    from scipy import signal as sp

    padlen = 3 * 9  # filtfilt's default for the 4th-order band-pass (9 coefficients)
    if x.shape[-1] <= padlen:
        raise ValueError(f"{x.shape[-1]} samples are too few for encoder.filter ecgfounder (needs > {padlen})")
    b, a = sp.iirnotch(notch_hz, 30.0, TARGET_RATE)
    y = sp.filtfilt(b, a, x.astype(np.float64), axis=-1)
    b, a = sp.butter(N=4, Wn=[0.67, 40.0], btype="bandpass", fs=TARGET_RATE)
    y = sp.filtfilt(b, a, y, axis=-1)
    window = int(MEDIAN_WINDOW_S * TARGET_RATE) + 1
    window += 1 - window % 2
    baseline = np.stack([sp.medfilt(lead, kernel_size=window) for lead in y])
    return y - baseline


def zscore(signal: np.ndarray) -> np.ndarray:
    """One mean and one std over the whole recording (every lead), eps 1e-8: ECGFounder's z_score_normalization."""
    x = signal.astype(np.float64)
    return (x - x.mean()) / (x.std() + 1e-8)


class EcgEncoder(Encoder):
    """What both ECG models share: the reader, preprocessing, batching and the per-recording columns."""

    # Each family's defaults for the preprocessing options: what its official code does (README).
    DEFAULTS: dict[str, Any] = {"length": "full", "resample": "polyphase", "nan": "zero"}
    LENGTHS = ("full", "10s")

    def __init__(self, model: str, path: str, mode: str = "12lead", batch_size: int = 0, device: str = "auto",
                 precision: str = "auto", length: str | None = None, resample: str | None = None,
                 nan: str | None = None, filter: str = "none", notch_hz: float | None = None) -> None:
        if not path:
            raise ValueError(f"encoder.path: {self.name} needs a checkpoint file")
        if not Path(path).is_file():
            raise FileNotFoundError(f"encoder.path: {path!r} is not a file")
        self.length = length or self.DEFAULTS["length"]
        self.resample = resample or self.DEFAULTS["resample"]
        self.nan = nan or self.DEFAULTS["nan"]
        for key, value, allowed in (("mode", mode, tuple(MODES)), ("length", self.length, self.LENGTHS),
                                    ("resample", self.resample, RESAMPLERS), ("nan", self.nan, NAN_FILLS),
                                    ("filter", filter, FILTERS)):
            if value not in allowed:
                raise ValueError(f"encoder.{key}: {value!r} is not one of {list(allowed)}")
        self.model_name, self.path, self.mode = model, path, mode
        self.lead_index = [LEADS.index(lead) for lead in MODES[mode]]
        self.batch_size = batch_size or 256
        self.precision_option = precision
        self.precision = resolve_precision(precision, resolve_device(device), self.name)
        if notch_hz is not None and filter == "none":
            raise ValueError("encoder.notch_hz: only filter ecgfounder has a notch; set encoder.filter: ecgfounder")
        self.filter, self.notch_hz = filter, float(notch_hz or DEFAULT_NOTCH_HZ)
        self.model: torch.nn.Module | None = None

    # the config keys every ECG encoder takes; a subclass adds its own in EXTRA_OPTIONS
    OPTIONS = ("model", "path", "mode", "batch_size", "device", "precision", "length", "resample", "nan", "filter",
               "notch_hz")
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

    @property
    def seconds(self) -> float | None:
        return TARGET_SAMPLES / TARGET_RATE if self.length == "10s" else None

    def normalise(self, signal: np.ndarray) -> np.ndarray:
        """[leads, n] mV → the model's input scale; ECGFounder's per-record z-score unless a family says otherwise."""
        return zscore(signal)

    def prepare(self, path: str) -> EcgSample:
        record = read_ecg(path, self.seconds, self.resample, self.nan)
        if not any(LEADS[i] in record.leads_found for i in self.lead_index):
            raise ValueError(f"none of the leads {MODES[self.mode]} is in the file (found {record.leads_found})")
        signal = record.signal[self.lead_index]
        if self.filter == "ecgfounder":
            signal = ecgfounder_filter(signal, self.notch_hz)
        signal = np.ascontiguousarray(self.normalise(signal), dtype=np.float32)
        record.signal = np.empty((0,), np.float32)  # the workers hand back only what the row keeps
        return EcgSample(signal, record)

    def collate(self, samples: list[EcgSample]) -> EcgBatch:
        return EcgBatch([torch.from_numpy(s.signal) for s in samples], [s.record for s in samples])

    def concat(self, batches: list[EcgBatch]) -> EcgBatch:
        if len(batches) == 1:
            return batches[0]
        return EcgBatch([s for b in batches for s in b.signals], [r for b in batches for r in b.records])

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

    def _stack(self, signals: list[torch.Tensor]) -> torch.Tensor:
        """Signals of one length → `[g, leads, n]` on the model's device, in its dtype."""
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        return torch.stack([s.to(self.device, non_blocking=True) for s in signals]).to(dtype)

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
                "leads": " ".join(LEADS[i] for i in self.lead_index) + ", by name",
                "resample": f"{TARGET_RATE} Hz ({self.resample})",
                "length": "the whole record" if self.length == "full" else "its first 10 s",
                "padding": "none: one forward pass per distinct length",
                "nan": f"{self.nan}, counted in nan_samples",
                "filter": self.filter if self.filter == "none" else f"ECGFounder's chain, notch {self.notch_hz} Hz",
                "normalise": "z-score over the whole recording (one mean, one std), eps 1e-8",
            },
        }


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
