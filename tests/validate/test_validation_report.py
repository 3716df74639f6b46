"""Streaming validation statistics, thresholds and the HTML/PNG report."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.small_shards import write_shard
from support.validation import script_args
from support.workflow import run_script

from embedpipe.extract.writer import ShardWriter
from embedpipe.validate import checks as validate_mod
from embedpipe.validate.checks import ValidationConfig, validate_dataset
from embedpipe.validate.stats import EmbeddingStats, effective_rank


def run(tmp_path, shards, **config):
    return validate_dataset(
        shards, {s: tmp_path / f"{s}.txt" for s in shards}, {s: tmp_path / f"{s}.parquet" for s in shards},
        {s: tmp_path / f"{s}.errors.parquet" for s in shards}, ValidationConfig(**config),
    )


def failed(result):
    return {c["name"] for c in result.metrics["checks"] if not c["passed"]}




def test_streamed_statistics_equal_the_whole_matrix(tmp_path, monkeypatch):
    monkeypatch.setattr(validate_mod, "BATCH_ROWS", 7)  # many batches per shard
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 4)) * [3, 1, 0.5, 0.1] + 100  # a large offset: sums must stay well conditioned
    b = rng.normal(size=(25, 4)) + 100
    write_shard(tmp_path, "p10", [f"a{i}" for i in range(40)], a)
    write_shard(tmp_path, "p11", [f"b{i}" for i in range(25)], b)
    result = run(tmp_path, ["p10", "p11"], sample_size=10, pca_components=4)
    full = np.vstack([a, b]).astype(np.float32).astype(np.float64)
    emb = result.metrics["embedding"]
    np.testing.assert_allclose(emb["per_dimension"]["mean"], full.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(emb["per_dimension"]["std"], full.std(axis=0, ddof=1), rtol=1e-4)
    eig = np.sort(np.linalg.eigvalsh(np.cov(full.T)))[::-1]
    np.testing.assert_allclose(emb["pca"]["explained_variance_ratio"], eig / eig.sum(), atol=1e-5)
    assert emb["pca"]["effective_rank"] == pytest.approx(effective_rank(eig), rel=1e-4)
    norms = np.linalg.norm(full, axis=1)
    assert emb["norm"]["mean"] == pytest.approx(norms.mean(), rel=1e-6)
    assert result.metrics["shards"][1]["norm"]["n"] == 25
    assert emb["cosine"]["sample_rows"] == 10 and emb["cosine"]["sampled"] is True
    assert "uniform sample of 10 rows" in emb["sampling"]
    sample, shard_of = result.stats.sample
    assert sample.shape == (10, 4) and set(shard_of) <= {"p10", "p11"}
    # every row points the same way (offset 100 ≫ spread): raw cosine calls that collapse, rank does not
    assert failed(result) == {"not_collapsed"} and emb["cosine"]["mean"] > 0.99


def test_reservoir_is_uniform_over_rows():
    counts = np.zeros(100)
    for seed in range(300):
        stats = EmbeddingStats(dim=1, sample_size=10, seed=seed)
        for lo in range(0, 100, 13):
            idx = np.arange(lo, min(lo + 13, 100))
            stats.add("s", [str(i) for i in idx], idx[:, None].astype(np.float32))
        counts[stats.sample[0][:, 0].astype(int)] += 1
    # each row is kept with probability 10/100: 30 of 300 runs; the first and last rows alike
    assert counts.sum() == 3000
    assert abs(counts[:50].mean() - 30) < 4 and abs(counts[50:].mean() - 30) < 4


def test_collapsed_embeddings_trip_cosine_rank_and_duplicate_checks(tmp_path):
    same = np.tile([0.3, -1.0, 2.0, 0.5], (24, 1))  # past the 20 rows the spread checks need
    write_shard(tmp_path, "p10", [f"k{i}" for i in range(24)], same)
    result = run(tmp_path, ["p10"])
    assert failed(result) == {"not_collapsed", "effective_rank", "unique_embeddings"}
    emb = result.metrics["embedding"]
    assert emb["cosine"]["mean"] == pytest.approx(1.0)
    assert emb["pca"]["effective_rank"] == 0.0 and emb["duplicate_embeddings"] == 23
    # the console's line: each failure's value and the config key of its threshold
    assert result.failures() == (
        "23 rows identical to an earlier row under another key (max 0), e.g. [('k0', 'k1'), ('k0', 'k10')]"
        " (validate.max_duplicate_embeddings); mean cosine of random pairs 1.0000 > 0.99 (validate.max_mean_cosine);"
        " effective rank 0.0000 < 2.0 (validate.min_effective_rank)")


def test_a_few_rows_are_too_few_to_judge_their_spread(tmp_path):
    # 6 rows in one direction plus a little noise (a trial of a low-rank model): collapsed by both
    # measures, but 6 rows' spread is the sample's
    rng = np.random.default_rng(4)
    values = np.outer(rng.normal(size=6), [1.0, 0.5, 0.2, 0.1]) + 5 + rng.normal(scale=1e-3, size=(6, 4))
    write_shard(tmp_path, "p10", [f"k{i}" for i in range(6)], values)
    result = run(tmp_path, ["p10"])
    assert failed(result) == set()
    checks = {c["name"]: c["detail"] for c in result.metrics["checks"]}
    assert checks["not_collapsed"] == "too few rows to judge (n = 6 < 20)"
    assert checks["effective_rank"] == "too few rows to judge (n = 6 < 20): 10 rows per unit of the rank judged"
    # the rank needed scales with the threshold judged: 40 rows for 4.0
    result = run(tmp_path, ["p10"], min_effective_rank=4.0)
    assert "(n = 6 < 40)" in next(c["detail"] for c in result.metrics["checks"] if c["name"] == "effective_rank")
    # the statistics are still measured and reported
    assert result.metrics["embedding"]["pca"]["effective_rank"] < 2.0


def test_nan_rows_fail_and_stay_out_of_the_statistics(tmp_path):
    rng = np.random.default_rng(2)
    values = rng.normal(size=(10, 4))
    values[3, 1] = np.nan
    values[7, 0] = np.inf
    write_shard(tmp_path, "p10", [f"k{i}" for i in range(10)], values)
    result = run(tmp_path, ["p10"])
    assert failed(result) == {"finite"}
    assert result.metrics["shards"][0]["nonfinite_rows"] == 2
    assert result.metrics["embedding"]["finite_rows"] == 8
    assert all(np.isfinite(result.metrics["embedding"]["per_dimension"]["std"]))


def test_report_script_writes_plots_and_html_or_fails_into_failed_folder(tmp_path):
    rng = np.random.default_rng(3)
    write_shard(tmp_path, "p10", [f"a{i}" for i in range(30)], rng.normal(size=(30, 4)), errors=["bad"])
    write_shard(tmp_path, "p11", [f"b{i}" for i in range(20)], rng.normal(size=(20, 4)))
    out = tmp_path / "validation"
    ok = run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out), "--max_error_fraction", "0.1",
                    "--title", "unit test")
    assert "validation passed" in ok.stderr
    names = {"metrics.json", "report.html", "norms.png", "pca_spectrum.png", "pca_scatter.png", "cosine.png"}
    assert {p.name for p in out.iterdir()} == names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "PASSED" in page and "unit test" in page
    assert "effective_rank" in page and "p11" in page
    assert json.loads((out / "metrics.json").read_text())["totals"]["rows"] == 50

    bad = run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out), "--max_error_fraction", "0",
                     check=False)
    assert bad.returncode == 1
    assert "FAIL error_fraction" in bad.stderr
    # the log's last line (what the Snakefile's onerror prints): the value and the threshold's key
    assert bad.stderr.strip().splitlines()[-1].endswith(
        "1 check failed: 1/51 error rows = 0.0196 > 0.0 (validate.max_error_fraction); report in "
        f"{out / 'failed' / 'report.html'}")
    assert (out / "failed" / "report.html").exists() and "FAILED" in (out / "failed" / "report.html").read_text()
    assert not json.loads((out / "failed" / "metrics.json").read_text())["passed"]


def test_width_other_than_the_models_fails_the_dimension_check(tmp_path):
    write_shard(tmp_path, "p10", ["a", "b", "c", "d"], np.eye(4))
    assert pq.read_table(tmp_path / "p10.parquet").num_rows == 4
    result = run(tmp_path, ["p10"], expected_dim=8)
    assert failed(result) == {"dimension"}


def test_the_reports_cosine_histogram_is_the_sample_metrics_json_reports(tmp_path):
    rng = np.random.default_rng(1)
    write_shard(tmp_path, "p10", [f"k{i}" for i in range(40)], rng.normal(size=(40, 4)))
    result = run(tmp_path, ["p10"])
    cosine = result.metrics["embedding"]["cosine"]
    drawn = result.stats.random_pair_cosines(cosine["pairs"])  # what plot_cosine draws
    assert float(drawn.mean()) == cosine["mean"] and float(drawn.std()) == cosine["std"]


def test_error_rows_are_listed_by_type_in_metrics_and_report(tmp_path):
    """Count first, most frequent type first, then each file's key, shard, stage and message."""
    rng = np.random.default_rng(5)
    write_shard(tmp_path, "p10", [f"a{i}" for i in range(30)], rng.normal(size=(30, 4)), errors=["bad1", "bad2"])
    w = ShardWriter(tmp_path / "parts" / "p11", [pa.field("embedding", pa.list_(pa.float32(), 4))], "fp")
    w.add_rows([f"b{i}" for i in range(20)], {"embedding": rng.normal(size=(20, 4)).astype(np.float32)})
    w.add_error("hung.mp4", "decode", "DecodeTimeout", "timed out after 300 s")
    manifest = sorted([f"b{i}" for i in range(20)] + ["hung.mp4"])
    (tmp_path / "p11.txt").write_text("".join(f"{k}\n" for k in manifest))
    w.finalize(manifest, tmp_path / "p11.parquet", tmp_path / "p11.errors.parquet", {"embedding_dim": 4})
    out = tmp_path / "validation"
    run_script("validate.py", *script_args(tmp_path, ["p10", "p11"], out), "--max_error_fraction", "0.2")
    groups = json.loads((out / "metrics.json").read_text())["errors_by_type"]
    assert [(g["error_type"], g["count"]) for g in groups] == [("RuntimeError", 2), ("DecodeTimeout", 1)]
    assert groups[1]["rows"] == [{"key": "hung.mp4", "shard": "p11", "stage": "decode",
                                  "message": "timed out after 300 s"}]
    page = (out / "report.html").read_text()
    section = page[page.index("Error rows by type"):]
    assert section.index("RuntimeError: 2 file(s)") < section.index("DecodeTimeout: 1 file(s)")
    assert "<td>hung.mp4</td><td>p11</td><td>decode</td><td>timed out after 300 s</td>" in section
    assert "<td>bad1</td><td>p10</td><td>decode</td><td>unreadable</td>" in section


def test_duplicate_rows_are_named_first_and_later_in_the_order_they_came():
    a, b, c = (np.full(4, v, np.float32) for v in (1.0, 2.0, 3.0))
    stats = EmbeddingStats(4)
    stats.add("s1", ["k0", "k1", "k2"], np.stack([a, b, a]))
    stats.add("s2", ["k3", "k4", "k5", "k3"], np.stack([c, b, a, c]))  # k3 twice: a duplicate key, not a pair
    asked = []
    stats.find_duplicates(lambda: asked.append(1) or iter(["k0", "k1", "k2", "k3", "k4", "k5", "k3"]))
    assert stats.duplicate_pairs == [("k0", "k2"), ("k1", "k4"), ("k0", "k5")] and asked == [1]
    unique = EmbeddingStats(4)
    unique.add("s1", ["k0", "k1"], np.stack([a, b]))
    unique.find_duplicates(lambda: asked.append(2) or iter([]))
    assert unique.duplicate_pairs == [] and asked == [1]  # no repeat: the keys are not read again
