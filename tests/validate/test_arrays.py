"""Per-row arrays: a NaN or a wrong length in Metis latents, image tokens or ECG feature maps fails validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.arrays import write_ecgfounder_shard, write_image_shard, write_metis_shard
from support.integrity import check, validate
from support.validation import script_args
from support.workflow import run_script

from embedpipe.validate import arrays as arrays_mod

DURATIONS = [2.0, 3.37, 5.0, 7.123, 14.999, 2.5]


def failed(metrics: dict) -> set[str]:
    return {c["name"] for c in metrics["checks"] if not c["passed"]}


def nan_in_latents(row: dict) -> None:
    row["latents"][3, 5] = np.nan  # the embedding stays finite: only the array check can tell


def frames(delta: int, count: bool = True):
    """The latents `delta` frames longer (shorter); n_frames too where `count`."""
    def fault(row: dict) -> None:
        t = len(row["latents"]) + delta
        row["latents"] = np.resize(row["latents"], (t, row["latents"].shape[1]))
        if count:
            row["n_frames"] = t
    return fault


def test_clean_metis_latents_pass_and_every_row_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(arrays_mod, "ARRAY_BYTES", 4096)  # a few rows a batch
    write_metis_shard(tmp_path, "p10", DURATIONS)
    write_metis_shard(tmp_path, "p11", DURATIONS[:3], seed=1)
    m = validate(tmp_path, ["p10", "p11"])
    assert m["passed"], m["checks"]
    assert check(m, "arrays_finite")["detail"] == "no NaN or Inf in latents (9 rows)"
    assert check(m, "array_shapes")["detail"] == (
        "latents [T, 8], T = n_frames = the frames of duration_s at 50 Hz (± 1) in all 9 rows")
    assert m["arrays"]["latents"] == {"shape": "[T, 8], T = n_frames = the frames of duration_s at 50 Hz (± 1)",
                                      "rows": 9, "nonfinite_rows": 0, "wrong_shape_rows": 0, "shards": {}}


def test_a_nan_in_one_metis_latent_row_fails_naming_the_check_and_key(tmp_path, monkeypatch):
    monkeypatch.setattr(arrays_mod, "ARRAY_BYTES", 4096)
    write_metis_shard(tmp_path, "p10", DURATIONS, faults={4: nan_in_latents})
    m = validate(tmp_path, ["p10"])
    assert failed(m) == {"arrays_finite"}  # `finite` (the embedding) passes: it never saw the NaN
    assert check(m, "arrays_finite")["detail"] == (
        "1 rows with NaN or Inf in a per-row array: latents 1 (e.g. ['p10: p10/clip004.wav'])")
    assert m["arrays"]["latents"]["shards"] == {"p10": {"nonfinite_rows": 1, "wrong_shape_rows": 0}}


@pytest.mark.parametrize(("fault", "why"), [
    # 5.0 s: 80,000 samples, 498 filter-bank frames, 249 latent frames
    (frames(+3), "252 along the first axis; duration_s 5.0, n_frames 252"),
    (frames(+2), "251 along the first axis; duration_s 5.0, n_frames 251"),  # past the one frame of rounding
    (frames(-1, count=False), "248 along the first axis, expected 249; duration_s 5.0, n_frames 249"),
])
def test_a_metis_row_whose_length_disagrees_with_its_duration_fails(tmp_path, fault, why):
    write_metis_shard(tmp_path, "p10", DURATIONS, faults={2: fault})
    m = validate(tmp_path, ["p10"])
    assert failed(m) == {"array_shapes"}
    assert check(m, "array_shapes")["detail"] == (
        "1 rows whose array disagrees with the row's own facts: latents 1, expected [T, 8], T = n_frames = the "
        f"frames of duration_s at 50 Hz (± 1) (e.g. ['p10: p10/clip002.wav ({why})'])")


def test_one_frame_of_rounding_passes(tmp_path):
    write_metis_shard(tmp_path, "p10", DURATIONS, faults={2: frames(+1), 3: frames(-1)})
    assert validate(tmp_path, ["p10"])["passed"]


def test_the_validate_script_fails_on_a_bad_latent_row_and_writes_the_failed_check(tmp_path):
    write_metis_shard(tmp_path, "p10", DURATIONS, faults={0: nan_in_latents, 5: frames(+40)})
    proc = run_script("validate.py", *script_args(tmp_path, ["p10"], tmp_path / "validation"),
                      "--min_effective_rank", "0", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL arrays_finite: 1 rows with NaN or Inf" in proc.stderr
    assert "FAIL array_shapes: 1 rows whose array disagrees" in proc.stderr
    metrics = json.loads((tmp_path / "validation" / "failed" / "metrics.json").read_text())
    assert failed(metrics) == {"arrays_finite", "array_shapes"}
    assert not (tmp_path / "validation" / "metrics.json").exists()


def image_tokens(change):
    def fault(row: dict) -> None:
        row["tokens"] = change(row["tokens"])
    return fault


def test_clean_image_tokens_pass(tmp_path):
    write_image_shard(tmp_path, "taxon_1", 5)
    m = validate(tmp_path, ["taxon_1"])
    assert m["passed"], m["checks"]
    assert check(m, "array_shapes")["detail"] == (
        "temporal [2, 16] in all 5 rows; spatial [4, 4, 16] in all 5 rows; "
        "tokens [2, 4, 4, 16] (token_grid × embedding_dim) in all 5 rows")


def nan_token(tokens: np.ndarray) -> np.ndarray:
    tokens[1, 2, 3, 4] = np.inf
    return tokens


def test_a_nan_or_a_wrong_shape_in_the_image_token_sidecars_fails(tmp_path):
    write_image_shard(tmp_path, "taxon_1", 5, faults={1: image_tokens(nan_token),
                                                      3: image_tokens(lambda t: t[:, :3])})
    m = validate(tmp_path, ["taxon_1"])
    assert failed(m) == {"arrays_finite", "array_shapes"}
    assert check(m, "arrays_finite")["detail"] == (
        "1 rows with NaN or Inf in a per-row array: tokens 1 (e.g. ['taxon_1: taxon_1/img_1.jpg'])")
    assert "tokens 1, expected [2, 4, 4, 16] (token_grid × embedding_dim) (e.g. ['taxon_1: taxon_1/img_3.jpg "\
           "([2, 3, 4, 16])'])" in check(m, "array_shapes")["detail"]


def test_a_missing_token_file_fails_its_rows(tmp_path):
    write_image_shard(tmp_path, "taxon_1", 3)
    for f in (tmp_path / "taxon_1.tokens").iterdir():
        f.unlink()
    m = validate(tmp_path, ["taxon_1"])
    assert failed(m) == {"array_shapes"} and m["arrays"]["tokens"]["wrong_shape_rows"] == 3


def test_ecgfounder_feature_maps_against_the_rows_samples(tmp_path):
    samples = [5000, 4999, 2500, 17]
    write_ecgfounder_shard(tmp_path, "clean", samples)
    clean = validate(tmp_path, ["clean"])
    assert clean["passed"], clean["checks"]
    assert check(clean, "array_shapes")["detail"] == "features [T, 16], T = n_samples / 16 rounded up in all 4 rows"

    def short(row: dict) -> None:
        row["features"] = row["features"][:-1]

    def nan(row: dict) -> None:
        row["features"][0, 0] = np.nan

    write_ecgfounder_shard(tmp_path, "bad", samples, faults={1: short, 2: nan})
    m = validate(tmp_path, ["bad"])
    assert failed(m) == {"arrays_finite", "array_shapes"}
    shapes = check(m, "array_shapes")["detail"]
    assert "bad: bad/ecg_1.xml (312 along the first axis, expected 313; n_samples 4999)" in shapes
    assert "bad: bad/ecg_2.xml" in check(m, "arrays_finite")["detail"]


def test_a_run_without_per_row_arrays_says_so(tmp_path):
    from support.integrity import write_shard

    write_shard(tmp_path, "p10", ["a", "b", "c"], [])
    m = validate(tmp_path, ["p10"])
    assert check(m, "arrays_finite") == {"name": "arrays_finite", "passed": True,
                                         "detail": "no per-row arrays in this run's files", "key": None}


def test_walk_finds_each_rows_leaves_whatever_the_nesting(tmp_path: Path):
    import pyarrow as pa

    array = pa.array([[[1.0, 2.0], [3.0, float("nan")]], None, [], [[5.0, 6.0]]],
                     pa.list_(pa.list_(pa.float32(), 2)))
    leaves, bounds, levels = arrays_mod.walk(array.slice(0))
    assert bounds.tolist() == [0, 4, 4, 4, 6] and levels[0][0].tolist() == [2, 0, 0, 1]
    assert arrays_mod.rows_of(np.flatnonzero(~np.isfinite(leaves)), bounds).tolist() == [0]
    leaves, bounds, _ = arrays_mod.walk(array.slice(2))
    assert bounds.tolist() == [0, 0, 2] and leaves.tolist() == [5.0, 6.0]
