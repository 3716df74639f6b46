"""`embedpipe.embed(paths, encoder=..., **options)`: files in, arrays out, for a notebook.

The same reader and model as the workflow's extract job (the family's `Reader.prepare`, its
`Model.encode` on a `Batch`, the same per-file error handling and timeout), without the shard,
the parts and the Parquet: one image, video, clip or ECG at a time, or a few hundred.

    import embedpipe
    out = embedpipe.embed(["a.mp4", "b.mp4"], encoder="vjepa2", model="vitl")
    out.embedding          # float32 [2, 1024], rows in the order of out.keys
    out.errors             # {path: (error_type, message)} for the files that could not be read
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import DECODE_TIMEOUT_S
from embedpipe.runtime.decode_guard import read_within


@dataclass
class Embedded:
    keys: list[str]  # the files embedded, in the order given (failed ones left out)
    outputs: dict[str, np.ndarray]  # per output column, first axis = keys
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # path → (error type, message)

    @property
    def embedding(self) -> np.ndarray:
        """float32 [len(keys), D]; [0, 0] when no file could be read (see `errors`)."""
        return self.outputs.get("embedding", np.zeros((0, 0), np.float32))


def embed(paths: str | os.PathLike | Iterable[str | os.PathLike], encoder: str | Encoder = "vjepa2",
          batch_size: int | None = None, timeout_s: float | None = DECODE_TIMEOUT_S, **options: Any) -> Embedded:
    """Embed `paths` with the family `encoder` configured by `options` (the config's encoder keys:
    model, path, device, ...), or with an Encoder already built (`build_encoder`, loaded once and
    reused across calls). A file that cannot be read is in `errors`, not raised."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    enc = encoder if isinstance(encoder, Encoder) else build_encoder(encoder, options)
    model = enc.model
    model.ensure_loaded(model.device)
    size = batch_size or model.batch_size
    keys: list[str] = []
    parts: dict[str, list[np.ndarray]] = {}
    errors: dict[str, tuple[str, str]] = {}
    for start in range(0, len(paths), size):
        chunk, samples = [], []
        for path in paths[start:start + size]:
            prepared, error = read_within(lambda p=path: enc.reader.prepare(p), timeout_s)
            if prepared is None:
                errors[path] = error
            else:
                chunk.append(path)
                samples.append(prepared.sample)
        if not samples:
            continue
        with torch.inference_mode():
            out = model.encode(Batch(samples))
        keys += chunk
        for name, values in out.items():
            parts.setdefault(name, []).append(np.asarray(values))
    outputs = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    return Embedded(keys, outputs, errors)
