"""A PCA of the run's own embeddings (`pca.components`): fitted once on every shard's rows, saved
beside the dataset as `pca.npz`, and applied to each row in the staged step (`embedding_pca`).

The DeepEarth documentation reduces V-JEPA 2's mean features (1,408) to 768 with scikit-learn's
PCA, fitted on one sample; here it is fitted on all of them. Exact, and streamed: the shards are
read in batches into the mean and the D×D scatter matrix (float64), whose eigenvectors are the
components, so memory does not grow with the row count. It equals sklearn.decomposition.PCA (full
SVD) up to each component's sign; the sign is fixed here so that a component's largest loading is
positive, so that a rerun on the same rows gives the same columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedpipe.store.atomic import atomic_path
from embedpipe.store.merge import shard_batches, shard_geometry

COLUMN = "embedding_pca"
NAME = "pca.npz"  # its name in the dataset folder


class PcaError(ValueError):
    """The run's rows cannot give the components asked for: one line naming pca.components."""


@dataclass
class Pca:
    mean: np.ndarray  # [D] float64
    components: np.ndarray  # [k, D] float64, rows orthonormal, by decreasing variance
    explained_variance: np.ndarray  # [k]
    explained_variance_ratio: np.ndarray  # [k], of the total variance
    n_rows: int

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) @ self.components.T).astype(np.float32)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mean=self.mean, components=self.components, explained_variance=self.explained_variance,
                     explained_variance_ratio=self.explained_variance_ratio, n_rows=np.int64(self.n_rows))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Pca:
        with np.load(path) as z:
            return cls(z["mean"], z["components"], z["explained_variance"], z["explained_variance_ratio"],
                       int(z["n_rows"]))


def fit_pca(shard_paths: Sequence[str | os.PathLike], components: int, column: str = "embedding",
            at_most: bool = False) -> Pca:
    """`at_most`: fewer components when the rows allow no more (a trial run's few rows), not an error."""
    paths = [Path(p) for p in shard_paths]
    _, dim = shard_geometry(paths, column)
    if components > dim:
        raise PcaError(f"pca.components: {components}, more than the embedding's {dim} dimensions")
    # Sums of the rows minus a shift (the first rows' mean): pooled features share a mean far larger
    # than their spread, and the scatter of the raw rows would cancel it away in float64.
    n, shift, total, scatter = 0, None, np.zeros(dim), np.zeros((dim, dim))
    for path in paths:
        for _, values in shard_batches(path, column, dim):
            x = values[np.isfinite(values).all(axis=1)].astype(np.float64)  # validate reports the others
            if not len(x):
                continue
            shift = x.mean(axis=0) if shift is None else shift
            x -= shift
            n += len(x)
            total += x.sum(axis=0)
            scatter += x.T @ x
    if at_most:
        components = max(1, min(components, n - 1))
    if n < 2 or components > n - 1:
        raise PcaError(f"pca.components: {components} components need at least {components + 1} rows; "
                       f"the run has {n}")
    centred = total / n
    mean = shift + centred
    covariance = (scatter - n * np.outer(centred, centred)) / (n - 1)
    variances, vectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(variances)[::-1][:components]
    top = vectors[:, order].T
    top *= np.sign(top[np.arange(components), np.abs(top).argmax(axis=1)])[:, None]
    variances = np.clip(variances, 0.0, None)
    kept = variances[order]
    return Pca(mean, top, kept, kept / variances.sum() if variances.sum() > 0 else kept * 0.0, n)
