"""PendingOutput: a model's output that may still be on its way from the GPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class PendingOutput:
    """`result()` waits for the device-to-host copy (a CUDA event), so the caller can queue the next
    batch first and a writer thread can wait instead of the GPU."""

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
