"""Real-world videos from ../shared/fixtures: each becomes a row or an error row, never a crash."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
from conftest import fixtures_dir, run_script


def test_real_and_broken_videos_become_rows_or_error_rows(tiny_model, tmp_path):
    src = fixtures_dir("video")
    tree = tmp_path / "in" / "real"
    tree.mkdir(parents=True)
    # Copy into one shard folder so the script sees one shard; the fixtures themselves stay put.
    for p in [*src.glob("*.*"), *src.glob("broken/*.*")]:
        shutil.copy(p, tree / p.name)
    out = tmp_path / "out"
    run_script("extract.py", "--model", "vjepa2-tiny", "--model_path", tiny_model, "--input_dir", tmp_path / "in",
               "--shard", "real", "--extensions", ".mp4", ".mkv", ".avi", "--output", out / "real.parquet",
               "--device", "cpu", "--num_workers", "2", "--batch_size", "2")
    rows = pq.read_table(out / "real.parquet")
    errors = pq.read_table(out / "real.errors.parquet").to_pylist()
    assert sorted(rows.column("key").to_pylist()) == sorted(
        f"real/{n}" for n in ["flipping_a_pancake.mkv", "mmaction2_test.avi", "mmaction2_test.mp4", "nasa_13013.mp4"]
    )
    assert sorted(e["key"] for e in errors) == ["real/decord_corrupted.mp4", "real/nasa_13013_TRUNCATED_300000B.mp4"]
    assert all(e["stage"] == "decode" and e["message"] for e in errors)
    values = np.array(rows.column("embedding").to_pylist())
    assert values.shape == (4, 32) and np.isfinite(values).all()
    assert np.linalg.matrix_rank(values) == 4  # different videos, different embeddings
