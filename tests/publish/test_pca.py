"""pca.components: the run's PCA against scikit-learn's, and what it refuses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.decomposition import PCA

from embedpipe.publish.pca import Pca, PcaError, fit_pca


def shard(path, rows: np.ndarray, first: int = 0):
    emb = pa.FixedSizeListArray.from_arrays(pa.array(rows.astype(np.float32).reshape(-1)), rows.shape[1])
    pq.write_table(pa.table({"key": [f"k{first + i}" for i in range(len(rows))], "embedding": emb}), path)
    return path


def test_streamed_pca_over_shards_equals_sklearn_up_to_sign(tmp_path):
    rng = np.random.default_rng(0)
    # anisotropic, with a large shared mean (as pooled transformer features have)
    x = (rng.standard_normal((500, 12)) * np.linspace(3, 0.1, 12)) @ np.linalg.qr(rng.standard_normal((12, 12)))[0]
    x = (x + 7.0).astype(np.float32)
    broken = x[:1].copy()
    broken[0, 3] = np.nan  # a non-finite row is left out of the fit (validate reports it)
    paths = [shard(tmp_path / "a.parquet", x[:200]), shard(tmp_path / "b.parquet", np.vstack([x[200:], broken]), 200)]
    pca = fit_pca(paths, 5)
    ref = PCA(n_components=5, svd_solver="full").fit(x.astype(np.float64))
    assert pca.n_rows == 500
    np.testing.assert_allclose(pca.mean, ref.mean_, rtol=1e-6)
    signs = np.sign((pca.components * ref.components_).sum(axis=1))
    np.testing.assert_allclose(pca.components * signs[:, None], ref.components_, atol=1e-6)
    np.testing.assert_allclose(pca.explained_variance, ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(pca.transform(x[:10]) * signs, ref.transform(x[:10]), atol=1e-4)
    # the sign is fixed: each component's largest loading is positive, whatever the rows' order
    assert all(c[np.abs(c).argmax()] > 0 for c in pca.components)
    again = fit_pca([shard(tmp_path / "c.parquet", x[::-1].copy())], 5)
    np.testing.assert_allclose(again.components, pca.components, atol=1e-8)
    pca.save(tmp_path / "pca.npz")
    loaded = Pca.load(tmp_path / "pca.npz")
    assert loaded.n_rows == 500 and np.array_equal(loaded.components, pca.components)


def test_too_many_components_is_one_line_naming_the_key(tmp_path):
    rows = np.random.default_rng(1).standard_normal((4, 6))
    path = shard(tmp_path / "a.parquet", rows)
    with pytest.raises(PcaError, match=r"pca.components: 7, more than the embedding's 6 dimensions"):
        fit_pca([path], 7)
    with pytest.raises(PcaError, match=r"pca.components: 4 components need at least 5 rows; the run has 4"):
        fit_pca([path], 4)


def test_a_mean_far_larger_than_the_spread_loses_no_precision(tmp_path):
    # pooled features: a shared vector of norm ~1e4 and differences of ~1e-3 (float32 keeps ~1e-3 at 1e4)
    rng = np.random.default_rng(2)
    x = (1e4 + rng.standard_normal((400, 6)) * np.array([4e-3, 3e-3, 2e-3, 1e-3, 5e-4, 2e-4])).astype(np.float32)
    pca = fit_pca([shard(tmp_path / "a.parquet", x[:250]), shard(tmp_path / "b.parquet", x[250:], 250)], 6)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)  # two passes: the exact reference
    variances = np.sort(np.linalg.eigvalsh(centred.T @ centred / (len(x) - 1)))[::-1]
    np.testing.assert_allclose(pca.explained_variance, variances, rtol=1e-6)


def test_a_trial_gets_as_many_components_as_its_rows_allow(tmp_path):
    path = shard(tmp_path / "a.parquet", np.random.default_rng(3).standard_normal((5, 8)))
    assert fit_pca([path], 6, at_most=True).components.shape == (4, 8)
