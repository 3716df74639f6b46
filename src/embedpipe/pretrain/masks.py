"""ECG-JEPA-style block masking over the patch sequence of a record.

Per batch, one context keep ratio r ~ U[min_keep, max_keep] (ECG-JEPA draws it per batch, so every
record keeps K = ceil(r · n) patches and the index tensors stack); per record, the n − K target
patches form blocks of at least `min_block` consecutive patches (except when fewer than that are to
be masked) at random places, and the context is the rest. Context and target indices are sorted and
together are every patch exactly once.

The blocks are laid out in one pass: their sizes are drawn first, then the K context patches are
split at random into the gaps before, between and after them (inner gaps at least one patch, so
that blocks stay apart and keep their drawn sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BlockMasks:
    num_patches: int
    min_keep: float = 0.15
    max_keep: float = 0.25
    min_block: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.min_keep <= self.max_keep < 1:
            raise ValueError(f"keep ratios must satisfy 0 < min <= max < 1, not {self.min_keep}, {self.max_keep}")
        if self.num_patches < 2 or self.min_block < 1:
            raise ValueError(f"block masking needs >= 2 patches and min_block >= 1 "
                             f"({self.num_patches}, {self.min_block})")

    def num_keep(self, ratio: float) -> int:
        # At least one context and one target patch, whatever the ratio on a short sequence.
        return min(max(math.ceil(ratio * self.num_patches), 1), self.num_patches - 1)

    def __call__(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(context `[B, K]`, target `[B, n − K]`): sorted patch indices, int64."""
        keep = self.num_keep(float(rng.uniform(self.min_keep, self.max_keep)))
        masks = np.stack([self.sample(keep, rng) for _ in range(batch_size)])
        order = np.argsort(~masks, axis=1, kind="stable")  # context (True) first, each part in index order
        return torch.from_numpy(order[:, :keep].copy()), torch.from_numpy(order[:, keep:].copy())

    def sample(self, keep: int, rng: np.random.Generator) -> np.ndarray:
        """One record's mask `[n]`: True for context patches."""
        n = self.num_patches
        sizes = self.block_sizes(n - keep, rng)
        while len(sizes) - 1 > keep:  # too few context patches to keep every block apart: merge two
            sizes = [sizes[0] + sizes[1], *sizes[2:]]
        gaps = self.gaps(keep, len(sizes), rng)
        mask = np.ones(n, dtype=bool)
        start = 0
        for gap, size in zip(gaps[:-1], sizes, strict=True):
            start += gap
            mask[start:start + size] = False
            start += size
        return mask

    def block_sizes(self, masked: int, rng: np.random.Generator) -> list[int]:
        """Sizes >= min_block summing to `masked`, in random order; each drawn uniformly from what
        still leaves room for another block, the remainder taken whole when it does not."""
        sizes, left = [], masked
        while left > 0:
            if left < 2 * self.min_block:
                sizes.append(left)
                break
            size = int(rng.integers(self.min_block, left - self.min_block + 1))
            sizes.append(size)
            left -= size
        rng.shuffle(sizes)
        return sizes

    @staticmethod
    def gaps(keep: int, blocks: int, rng: np.random.Generator) -> list[int]:
        """`blocks + 1` gap lengths summing to `keep`: the outer two >= 0, the inner ones >= 1 (a
        uniformly random composition, by stars and bars)."""
        inner = blocks - 1
        free = keep - inner  # patches left once each inner gap has its one
        cuts = np.sort(rng.choice(free + blocks, size=blocks, replace=False))
        parts = np.diff(np.concatenate([[-1], cuts, [free + blocks]])) - 1
        parts[1:-1] += 1
        return [int(p) for p in parts]
