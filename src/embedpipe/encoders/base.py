"""The encoder interface every model family implements."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pyarrow as pa
import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Encoder(ABC):
    """load → prepare (in workers) → collate → encode.

    `prepare` must be picklable work on one file; it raises on unreadable input and the caller
    turns that into an error row. `encode` returns, per output column, an array whose first axis
    is the batch.
    """

    name: str
    batch_size: int
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def load(self, device: torch.device) -> None: ...

    @abstractmethod
    def prepare(self, path: str) -> Any: ...

    def collate(self, samples: list[Any]) -> Any:
        return torch.stack([torch.as_tensor(s) for s in samples])

    @abstractmethod
    def encode(self, batch: Any) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def output_fields(self) -> list[pa.Field]: ...

    @abstractmethod
    def provenance(self) -> dict[str, Any]: ...

    def fingerprint(self) -> str:
        """Identifies model + preprocessing: parts written under another fingerprint are not reused."""
        blob = json.dumps(self.provenance(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def compute_dtype(self) -> str:
        return "bfloat16 autocast" if self.device.type == "cuda" else "float32"

    def subset(self, batch: Any, start: int, stop: int) -> Any:
        """Items [start, stop) of a collated batch, for retrying part of a failed batch."""
        return batch[start:stop]
