"""What both ECG families share: the reader (XML, DICOM or WFDB → 12 leads at 500 Hz, filtered if asked,
normalised), the model's placement and batching, and the provenance of the preprocessing.

Records are never zero-padded for the model: a batch runs one forward pass per distinct length, so
what a row holds equals what the record gives alone (and what the official code gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.device import resolve_precision
from embedpipe.encoders.roles import Model, Prepared, Reader
from embedpipe.readers.ecg import LEADS, TARGET_RATE, TARGET_SAMPLES, read_ecg
from embedpipe.store.made_with import file_digest

MODES = {"12lead": LEADS, "1lead": ("I",)}
DEFAULT_NOTCH_HZ = 50.0  # ECGFounder's util.filter_bandpass
MEDIAN_WINDOW_S = 0.4  # ECGFounder's baseline-wander median filter: int(0.4 · fs) + 1 samples


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


@dataclass
class EcgReader(Reader):
    """A record's leads `lead_index` (in that order), in mV at 500 Hz, filtered and normalised."""

    lead_index: list[int]
    length: str  # full | 10s
    resample: str
    nan: str
    filter: str  # none | ecgfounder
    notch_hz: float
    mode: str

    @property
    def seconds(self) -> float | None:
        return TARGET_SAMPLES / TARGET_RATE if self.length == "10s" else None

    def normalise(self, signal: np.ndarray) -> np.ndarray:
        """[leads, n] mV → the model's input scale; ECGFounder's per-record z-score unless a family says otherwise."""
        return zscore(signal)

    def prepare(self, path: str) -> Prepared:
        record = read_ecg(path, self.seconds, self.resample, self.nan)
        if not any(LEADS[i] in record.leads_found for i in self.lead_index):
            raise ValueError(f"none of the leads {MODES[self.mode]} is in the file (found {record.leads_found})")
        signal = record.signal[self.lead_index]
        if self.filter == "ecgfounder":
            signal = ecgfounder_filter(signal, self.notch_hz)
        signal = np.ascontiguousarray(self.normalise(signal), dtype=np.float32)
        facts = {"n_samples": record.n_samples, "source_rate": float(record.source_rate),
                 "leads_found": list(record.leads_found), "nan_samples": record.nan_samples,
                 "leads_derived": list(record.leads_derived), "source_format": record.source_format}
        return Prepared(torch.from_numpy(signal), facts)

    def fact_fields(self) -> list[pa.Field]:
        return [pa.field("n_samples", pa.int32()), pa.field("source_rate", pa.float64()),
                pa.field("leads_found", pa.list_(pa.string())), pa.field("nan_samples", pa.int32()),
                pa.field("leads_derived", pa.list_(pa.string())), pa.field("source_format", pa.string())]

    def describe(self) -> dict[str, str]:
        return {
            "leads": " ".join(LEADS[i] for i in self.lead_index) + ", by name",
            "resample": f"{TARGET_RATE} Hz ({self.resample})",
            "length": "the whole record" if self.length == "full" else "its first 10 s",
            "padding": "none: one forward pass per distinct length",
            "nan": f"{self.nan}, counted in nan_samples",
            "filter": self.filter if self.filter == "none" else f"ECGFounder's chain, notch {self.notch_hz} Hz",
            "normalise": "z-score over the whole recording (one mean, one std), eps 1e-8",
        }


def ecg_reader_options(options: dict[str, Any]) -> dict[str, Any]:
    """The EcgReader fields the family's options give (a family may change `lead_index` later)."""
    return {"lead_index": [LEADS.index(lead) for lead in MODES[options["mode"]]], "length": options["length"],
            "resample": options["resample"], "nan": options["nan"], "filter": options["filter"],
            "notch_hz": float(options["notch_hz"] or DEFAULT_NOTCH_HZ), "mode": options["mode"]}


class EcgModel(Model):
    """A checkpoint file's network, placed on the device in the configured precision."""

    name: str

    def __init__(self, path: str, batch_size: int, precision: str, device: torch.device) -> None:
        self.path, self.batch_size, self.precision_option = path, batch_size, precision
        self.precision = resolve_precision(precision, device, self.name)
        self.network: torch.nn.Module | None = None

    def checkpoint(self) -> Any:
        return read_checkpoint_file(self.path)

    def place(self, network: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.precision = resolve_precision(self.precision_option, device, self.name)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.network = network.to(device, dtype).eval()

    def stack(self, batch: Batch, indices: list[int]) -> torch.Tensor:
        """Signals of one length → `[g, leads, n]` on the model's device, in its dtype."""
        return batch.stacked(self.device, indices, torch.bfloat16 if self.precision == "bf16" else torch.float32)

    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16", "fp32": "float32"}[self.precision]


def read_checkpoint_file(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that is more than tensors and plain containers
        raise ValueError(f"{path}: cannot be read as a weights-only checkpoint ({exc})") from exc


def ecg_provenance(name: str, options: dict[str, Any], reader: EcgReader, model: EcgModel) -> dict[str, Any]:
    return {
        "encoder": name,
        "model": options["model"],
        "model_id": model.path,
        "checkpoint_sha256": file_digest(Path(model.path))[:16],
        "mode": reader.mode,
        "precision": model.precision,
        "preprocessing": reader.describe(),
    }
