"""The roles an encoder family is made of, in the spirit of clip-retrieval's reader → mapper → writer:

- a `Reader` turns one file into a sample and facts about the file, in the decode workers;
- a `Batch` (batch.py) carries the samples to the model;
- a `Model` holds the network: nothing touches a device before `load(device)`;
- an `OutputSpec` says which columns a row has, which go to sidecar files, and the embedding width.

An `Encoder` is one family's configured roles and the provenance of what they make.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.pending import PendingOutput
from embedpipe.store.footer import fingerprint_of


@dataclass
class Prepared:
    """One decoded file: the model's input and the facts its row records (the reader's `fact_fields`)."""

    sample: torch.Tensor
    facts: dict[str, Any] = field(default_factory=dict)


class Reader(ABC):
    """File → Prepared, in a decode worker: picklable, and never touching the model or a device.
    Raises on unreadable input; the caller turns that into an error row."""

    @abstractmethod
    def prepare(self, path: str) -> Prepared: ...

    def order(self, keys: list[str], root: Path) -> list[str]:
        """The order to embed a shard's keys in (outputs keep manifest order whatever this is)."""
        return keys

    def fact_fields(self) -> list[pa.Field]:
        """Columns filled from `Prepared.facts`."""
        return []


class Model(ABC):
    """The network. Built without touching a device; `load(device)` puts it there."""

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
    def encode_async(self, batch: Batch) -> PendingOutput:
        """Per output column, an array whose first axis is the batch, possibly still in flight."""

    def encode(self, batch: Batch) -> dict[str, np.ndarray]:
        return self.encode_async(batch).result()

    def compute_dtype(self) -> str:
        return "float32"


@dataclass
class OutputSpec:
    """What a row holds: the model's `columns` (then the reader's facts), which of them are stored
    in safetensors beside the Parquet (`sidecar`), and the `embedding` column's width."""

    columns: list[pa.Field]
    width: int
    sidecar: tuple[str, ...] = ()


@dataclass
class Encoder:
    """One family's configured roles. `describe` gives the provenance: the model and preprocessing
    that made the rows (read when the shard is written, after the model has loaded)."""

    name: str
    reader: Reader
    model: Model
    output: OutputSpec
    describe: Callable[[], dict[str, Any]]
    # The configuration's settings (made_with.made_with): set by the extract job, part of the provenance.
    made_with: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.model.batch_size

    def output_fields(self) -> list[pa.Field]:
        return self.output.columns + self.reader.fact_fields()

    def provenance(self) -> dict[str, Any]:
        return self.describe() | ({"made_with": self.made_with} if self.made_with else {})

    def fingerprint(self) -> str:
        """Identifies model + preprocessing: parts written under another fingerprint are not reused. A
        local model is its content (made_with's digest), not where it lies: moved, it is the same."""
        provenance = self.provenance()
        if "encoder.path content" in self.made_with:
            provenance.pop("model_id", None)
        return fingerprint_of(provenance)
