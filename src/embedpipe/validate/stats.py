"""Streaming statistics of an embedding matrix that never needs the whole matrix in memory.

Exact over every finite row: counts, norms (one float per row), per-dimension mean/std, the
covariance (D×D, so the PCA spectrum and effective rank are exact) and exact-duplicate detection
(a 128-bit digest per row, kept with an 8-byte hash of its key: 24 bytes a row, no key held; the
keys of repeated rows are named on a second pass over the keys, only when a row repeats).
Sampled: a uniform reservoir of `sample_size` rows, for the cosine
similarity of random pairs and the 2-D PCA scatter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedpipe.store.key_hashes import key_hashes
from embedpipe.validate.settings import ValidationConfig


@dataclass
class EmbeddingStats:
    dim: int
    sample_size: int = ValidationConfig.sample_size
    seed: int = 0
    count: int = 0
    norms: dict[str, list[np.ndarray]] = field(default_factory=dict)
    duplicate_pairs: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._cosines: np.ndarray | None = None
        self._shift: np.ndarray | None = None  # first batch's mean: keeps the sums well conditioned
        self._sum = np.zeros(self.dim, np.float64)
        self._cross = np.zeros((self.dim, self.dim), np.float64)
        self._digests: list[np.ndarray] = []  # per batch, [n, 2] uint64: each row's 128-bit digest
        self._key_hashes: list[np.ndarray] = []
        self._sample = np.zeros((min(self.sample_size, 1 << 20), self.dim), np.float32)
        self._sample_shard: list[str] = []
        self._seen_for_sample = 0

    def add(self, shard: str, keys: list[str], values: np.ndarray) -> None:
        """Add finite rows only; the caller counts and reports the non-finite ones."""
        self._cosines = None  # new rows: pairs drawn earlier are no longer a sample of them
        values = np.ascontiguousarray(values, dtype=np.float32)
        if not len(values):
            return
        self.norms.setdefault(shard, []).append(np.linalg.norm(values, axis=1).astype(np.float32))
        if self._shift is None:
            self._shift = values.astype(np.float64).mean(axis=0)
        centred = values - self._shift.astype(np.float32)
        self._sum += centred.sum(axis=0, dtype=np.float64)
        self._cross += (centred.T @ centred).astype(np.float64)
        self.count += len(values)
        digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in values)
        self._digests.append(np.frombuffer(digests, "<u8").reshape(-1, 2))
        self._key_hashes.append(key_hashes(keys))
        self._reservoir(shard, values)

    def find_duplicates(self, keys: Callable[[], Iterable[str]]) -> None:
        """`duplicate_pairs`: (the first key, a later key) for each row whose values an earlier row
        holds, in the order the later rows came. `keys` gives every key again (called only when some
        row repeats) to name them."""
        if not self._digests:
            return
        digests = np.concatenate(self._digests)
        order = np.lexsort((digests[:, 1], digests[:, 0]))  # stable: a group keeps the rows' order
        same = (digests[order][1:] == digests[order][:-1]).all(axis=1)
        if not same.any():
            return
        starts = np.r_[True, ~same]
        group_first = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
        later = np.flatnonzero(~starts)
        hashes = np.concatenate(self._key_hashes)
        # a key repeated with its own values is the duplicate-key check's, not a pair of two rows
        pairs = sorted((row, first) for row, first in zip(order[later].tolist(), group_first[later].tolist(),
                                                            strict=True) if hashes[row] != hashes[first])
        if not pairs:
            return
        wanted = {int(hashes[i]) for pair in pairs for i in pair}
        names: dict[int, str] = {}
        for key in keys():
            if (h := hash(key)) in wanted:
                names.setdefault(h, key)
        self.duplicate_pairs = [(names[int(hashes[first])], names[int(hashes[row])]) for row, first in pairs]

    def _reservoir(self, shard: str, values: np.ndarray) -> None:
        # Algorithm R: every row seen so far has the same chance of being in the sample.
        cap = len(self._sample)
        for row in values:
            n = self._seen_for_sample
            self._seen_for_sample += 1
            if n < cap:
                self._sample[n] = row
                self._sample_shard.append(shard)
            elif (j := int(self._rng.integers(0, n + 1))) < cap:
                self._sample[j] = row
                self._sample_shard[j] = shard

    @property
    def sample(self) -> tuple[np.ndarray, list[str]]:
        n = min(self._seen_for_sample, len(self._sample))
        return self._sample[:n], self._sample_shard[:n]

    def shard_norms(self, shard: str) -> np.ndarray:
        parts = self.norms.get(shard, [])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def mean(self) -> np.ndarray:
        if not self.count:
            return np.zeros(self.dim)
        return self._shift + self._sum / self.count

    def covariance(self) -> np.ndarray:
        if self.count < 2:
            return np.zeros((self.dim, self.dim))
        m = self._sum / self.count
        return (self._cross - self.count * np.outer(m, m)) / (self.count - 1)

    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending, clipped at 0) and eigenvectors (columns) of the covariance."""
        values, vectors = np.linalg.eigh(self.covariance())
        order = np.argsort(values)[::-1]
        return np.clip(values[order], 0, None), vectors[:, order]

    def random_pair_cosines(self, pairs: int = ValidationConfig.cosine_pairs) -> np.ndarray:
        """Drawn once: metrics.json's figure and the report's histogram are the same pairs."""
        if self._cosines is not None and len(self._cosines) == pairs:
            return self._cosines
        sample, _ = self.sample
        if len(sample) < 2:
            return np.zeros(0, np.float32)
        a = self._rng.integers(0, len(sample), pairs)
        b = self._rng.integers(0, len(sample) - 1, pairs)
        b = b + (b >= a)  # never a row with itself
        x, y = sample[a].astype(np.float64), sample[b].astype(np.float64)
        denom = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = (x * y).sum(axis=1) / denom
        self._cosines = np.where(denom > 0, cos, 0.0).astype(np.float32)
        return self._cosines


def effective_rank(eigenvalues: np.ndarray) -> float:
    """exp(entropy) of the normalised variance spectrum (Roy & Vetterli); 0 for no variance."""
    total = float(eigenvalues.sum())
    if total <= 0:
        return 0.0
    p = eigenvalues[eigenvalues > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def summarise(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"n": 0}
    q = np.percentile(values, [1, 50, 99])
    return {
        "n": int(len(values)), "mean": float(values.mean()), "std": float(values.std()),
        "min": float(values.min()), "p01": float(q[0]), "median": float(q[1]), "p99": float(q[2]),
        "max": float(values.max()),
    }
