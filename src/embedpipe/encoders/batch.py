"""Batch: the one batch type every family uses, from the decode workers to the model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


def group_by_shape(tensors: Sequence[torch.Tensor]) -> dict[tuple[int, ...], list[int]]:
    """Indices of `tensors` per shape: each group is one forward pass with nothing padded."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        groups[tuple(t.shape)].append(i)
    return groups


@dataclass
class Batch:
    """Per-item tensors (their shapes may differ: videos of several sizes, records of several lengths).

    Items stay separate until the model's device: stacked there by shape (`stacked`, `groups`) or
    zero-padded along their first axis (`padded`). Kept separate, a batch is cut (`subset`) and joined
    (`concat`) without copying, and pinned item by item by the loader's pinning thread."""

    items: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        return batches[0] if len(batches) == 1 else cls([t for b in batches for t in b.items])

    def subset(self, start: int, stop: int) -> Batch:
        return Batch(self.items[start:stop])

    def pin_memory(self) -> Batch:
        return Batch([t.pin_memory() for t in self.items])

    def groups(self) -> dict[tuple[int, ...], list[int]]:
        return group_by_shape(self.items)

    def stacked(self, device: torch.device, indices: Iterable[int] | None = None,
                dtype: torch.dtype | None = None) -> torch.Tensor:
        """Items (all of them, or `indices`, of one shape) as one tensor on `device`, in `dtype`.
        Each item is copied into its slot of one buffer there (asynchronously from pinned memory):
        the input is on the device once, not as items and again as their stack."""
        chosen = self.items if indices is None else [self.items[i] for i in indices]
        out = torch.empty((len(chosen), *chosen[0].shape), dtype=chosen[0].dtype, device=device)
        for slot, item in zip(out, chosen, strict=True):
            slot.copy_(item, non_blocking=True)
        return out if dtype is None else out.to(dtype)

    def padded(self, pin: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(items `[B, N_max, ...]`, zero beyond each item's first-axis length; those lengths `[B]`),
        pinned for an asynchronous copy when `pin`."""
        lengths = torch.tensor([t.shape[0] for t in self.items])
        out = torch.zeros((len(self.items), int(lengths.max()), *self.items[0].shape[1:]),
                          dtype=self.items[0].dtype, pin_memory=pin)
        for i, t in enumerate(self.items):
            out[i, : t.shape[0]] = t
        return out, lengths.pin_memory() if pin else lengths
