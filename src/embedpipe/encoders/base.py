"""The encoder interface every model family implements."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device, encoder: str,
                      allowed: tuple[str, ...] = ("auto", "bf16", "fp32")) -> str:
    """auto: bf16 weights and activations on CUDA (SDPA's flash kernels need 16-bit q/k/v), fp32 on CPU."""
    if precision not in allowed:
        raise ValueError(f"encoder.precision: {precision!r} is not one of {allowed} for {encoder}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


class PendingOutput:
    """An encoder's output that may still be on its way from the GPU.

    `result()` waits for the device-to-host copy (a CUDA event), so the caller can queue the next
    batch first and a writer thread can wait instead of the GPU.
    """

    def __init__(
        self,
        arrays: dict[str, torch.Tensor | np.ndarray],
        event: torch.cuda.Event | None = None,
        finish: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None,
    ) -> None:
        self.arrays, self.event, self.finish = arrays, event, finish

    @classmethod
    def from_device(cls, arrays: dict[str, torch.Tensor],
                    finish: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None) -> PendingOutput:
        """Host copies of the model's outputs (float16 stays float16, anything else becomes float32): on
        CUDA queued into pinned host memory behind an event, so the caller can queue the next batch
        before these arrive."""
        def host_dtype(v: torch.Tensor) -> torch.dtype:
            return torch.float16 if v.dtype == torch.float16 else torch.float32

        if not any(v.is_cuda for v in arrays.values()):
            return cls({k: v.to(host_dtype(v)) for k, v in arrays.items()}, None, finish)
        host = {}
        for k, v in arrays.items():
            host[k] = torch.empty(v.shape, dtype=host_dtype(v), pin_memory=True)
            host[k].copy_(v, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return cls(host, done, finish)

    def result(self) -> dict[str, Any]:
        """Per column, a batch-first array, or a list of per-item arrays (variable-length outputs)."""
        if self.event is not None:
            self.event.synchronize()
        arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in self.arrays.items()}
        return self.finish(arrays) if self.finish else arrays


@dataclass
class Prepared:
    """What `prepare` returns when the row should also record facts about the source file (the
    `fact_fields` columns): these travel beside the batch, not through the model."""

    sample: Any
    facts: dict[str, Any]


class Encoder(ABC):
    """load → prepare (in workers) → collate → encode.

    `prepare` must be picklable work on one file; it raises on unreadable input and the caller
    turns that into an error row. `encode_async` returns, per output column, an array whose first
    axis is the batch, possibly still in flight (PendingOutput).
    """

    name: str
    batch_size: int
    device: torch.device = torch.device("cpu")

    loaded_on: torch.device | None = None

    @abstractmethod
    def load(self, device: torch.device) -> None: ...

    def ensure_loaded(self, device: torch.device) -> None:
        """Load once: a caller that loaded (and warmed up) the model first is not charged twice."""
        if self.loaded_on != device:
            self.load(device)
            self.loaded_on = device

    @abstractmethod
    def prepare(self, path: str) -> Any: ...

    def order(self, keys: list[str], root: Path) -> list[str]:
        """The order to embed a shard's keys in (outputs keep manifest order whatever this is)."""
        return keys

    def collate(self, samples: list[Any]) -> Any:
        return torch.stack([torch.as_tensor(s) for s in samples])

    def concat(self, batches: list[Any]) -> Any:
        """Collated chunks (from the loader) → one model batch."""
        return batches[0] if len(batches) == 1 else torch.cat(batches)

    @abstractmethod
    def encode_async(self, batch: Any) -> PendingOutput: ...

    def encode(self, batch: Any) -> dict[str, np.ndarray]:
        return self.encode_async(batch).result()

    @abstractmethod
    def output_fields(self) -> list[pa.Field]: ...

    @abstractmethod
    def provenance(self) -> dict[str, Any]: ...

    def fact_fields(self) -> list[pa.Field]:
        """Columns `prepare` fills through `Prepared.facts` (part of `output_fields`)."""
        return []

    def sidecar_columns(self) -> tuple[str, ...]:
        """Output columns stored in safetensors beside the Parquet rather than in it (see sidecar.py)."""
        return ()

    def fingerprint(self) -> str:
        """Identifies model + preprocessing: parts written under another fingerprint are not reused."""
        blob = json.dumps(self.provenance(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def compute_dtype(self) -> str:
        return "bfloat16 autocast" if self.device.type == "cuda" else "float32"

    def subset(self, batch: Any, start: int, stop: int) -> Any:
        """Items [start, stop) of a collated batch, for retrying part of a failed batch."""
        return batch[start:stop]
