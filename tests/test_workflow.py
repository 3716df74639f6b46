"""The workflow itself, through Snakemake: the demo end to end, dry runs, config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, snakemake

ECHO_COLUMNS = [
    "subject_id", "study_id", "dicom_id", "file_path", "acquisition_datetime", "study_datetime",
    "note_id", "note_seq", "note_charttime", "embedding",
]


def test_demo_end_to_end_loads_with_datasets(demo_run):
    import datasets

    out = demo_run / "results" / "demo"
    metrics = json.loads((out / "validation" / "metrics.json").read_text())
    assert metrics["passed"] is True
    assert metrics["totals"] == {"files": 30, "rows": 28, "errors": 2, "error_fraction": round(2 / 30, 6)}
    files = sorted(p.name for p in (out / "parquet").glob("*.parquet"))
    assert files == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert sorted(p.name for p in (out / "parquet").iterdir()) == ["README.md", *files]
    ds = datasets.load_dataset("parquet", data_dir=str(out / "parquet"), split="train")
    assert ds.num_rows == 28
    assert ds.column_names == ECHO_COLUMNS
    row = ds[0]
    assert len(row["embedding"]) == 32 and row["file_path"].startswith("p10/")
    assert row["dicom_id"] == Path(row["file_path"]).stem
    notes = ds["note_id"]
    assert any(n is None for n in notes) and any(n is not None for n in notes)  # per-study nulls survive
    meta = json.loads(pq.read_schema(out / "parquet" / files[0]).metadata[b"embedpipe"])
    assert meta["model"] == "vjepa2-tiny" and meta["embedding_dim"] == 32
    assert meta["preprocessing"]["crop"] == "centre 64x64" and meta["compute_dtype"] == "float32"
    assert "torch" in meta["packages"] and "embedpipe" in meta["packages"]


def test_merge_all_matches_the_shards(demo_run):
    out = demo_run / "results" / "demo"
    merged = torch.load(out / "vjepa2-tiny_embeddings_all.pt")
    matrix = np.load(out / "vjepa2-tiny_embeddings_all.npy", mmap_mode="r")
    keys = (out / "vjepa2-tiny_embeddings_all.keys.txt").read_text().splitlines()
    assert len(merged) == len(keys) == matrix.shape[0] == 28
    for shard in ("p10", "p11", "p12"):
        t = pq.read_table(out / "embeddings" / f"{shard}.parquet")
        for key, emb in zip(t.column("key").to_pylist(), t.column("embedding").to_pylist(), strict=True):
            np.testing.assert_array_equal(merged[key].numpy(), np.array(emb, dtype=np.float32))
            np.testing.assert_array_equal(matrix[keys.index(key)], np.array(emb, dtype=np.float32))


def test_second_run_and_unchanged_rescan_do_nothing(demo_run):
    again = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr
    snakemake(demo_run, "--cores", "1", "--configfile", str(REPO / "config" / "demo.yaml"),
              "--forcerun", "discover", "--until", "discover")
    after = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"))
    assert "Nothing to be done" in after.stdout + after.stderr


def test_rerun_of_one_shard_touches_only_that_shard(demo_run):
    dry = snakemake(demo_run, "-n", "--configfile", str(REPO / "config" / "demo.yaml"),
                    "--forcerun", "results/demo/embeddings/p11.parquet")
    text = dry.stdout
    assert "wildcards: shard=p11" in text and "shard=p10" not in text and "shard=p12" not in text


def mimic_input(tmp_path: Path) -> Path:
    data = tmp_path / "mimic-iv-echo-mp4"
    for i in range(10, 20):
        (data / f"p{i}").mkdir(parents=True, exist_ok=True)
    for name in ("echo-record-list.csv", "echo-study-list.csv"):
        (tmp_path / name).write_text("subject_id,study_id\n")
    return data


def example_args(tmp_path: Path) -> list[str]:
    data = mimic_input(tmp_path)
    return [
        "--configfile", str(REPO / "config" / "examples" / "mimic_iv_echo.yaml"), "--config",
        f"input_dir={data}",
        f"metadata={{'kind': 'mimic_iv_echo', 'record_list': '{tmp_path}/echo-record-list.csv', "
        f"'study_list': '{tmp_path}/echo-study-list.csv'}}",
    ]


def test_real_config_dry_run_has_every_shard_and_no_demo_job(tmp_path):
    dry = snakemake(tmp_path, "-n", *example_args(tmp_path))
    text = dry.stdout
    assert "demo" not in text.lower()
    for i in range(10, 20):
        assert f"wildcards: shard=p{i}" in text
    assert "train-00009-of-00010" in text and "vitl_embeddings_all.pt" in text
    dag = snakemake(tmp_path, "--dag", *example_args(tmp_path)).stdout
    assert dag.lstrip().startswith("digraph") and dag.count("extract") >= 10


def test_folders_listed_at_dag_time_when_not_configured(tmp_path):
    dry = snakemake(tmp_path, "-n", *example_args(tmp_path), "shards={'by': 'folder', 'folders': []}")
    assert "wildcards: shard=p19" in dry.stdout


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("extract:\n  num_worker: 4\n", "num_worker"),
        ("extract:\n  save_every: ten\n", "save_every"),
        ("encoder:\n  name: vjepa2\n  model: vitl\n  poolng: mean\n", "poolng"),
        ("shards:\n  by: rows\n", "rows"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, text, named):
    args = example_args(tmp_path)
    # One --configfile with both files: a second --configfile flag would replace the first.
    proc = snakemake(tmp_path, "-n", *args[:2], str(write_config(tmp_path, text)), *args[2:], check=False)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr
    assert "rule extract" not in proc.stdout


def test_missing_input_dir_is_named(tmp_path):
    args = example_args(tmp_path)
    proc = snakemake(tmp_path, "-n", *args[:3], f"input_dir={tmp_path}/nope", check=False)
    assert proc.returncode != 0 and "input_dir" in proc.stdout + proc.stderr


def test_workflow_passes_snakemake_lint(tmp_path):
    for args in (["--configfile", str(REPO / "config" / "demo.yaml")], example_args(tmp_path)):
        proc = snakemake(tmp_path, "--lint", *args)
        assert "Congratulations" in proc.stdout + proc.stderr


def test_slurm_profile_dry_run_plans_one_gpu_job_per_shard_without_a_cluster(tmp_path):
    dry = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), *example_args(tmp_path)).stdout
    assert dry.count("rule extract:") == 10
    assert dry.count("mem_mb=250000, mem=250 GB") == 10 and dry.count("runtime=2880, gpu=1, gpu_model=l40s, "
                                                                    "cpus_per_gpu=16") == 10
    assert dry.count("mem_mb=4000, mem=4 GB") >= 13  # discover, 10 parquet, merge_all, validate: small CPU jobs


def test_hash_shards_are_known_at_dag_time(tmp_path):
    args = example_args(tmp_path)
    hashed = write_config(tmp_path, "shards:\n  by: hash\n  num_shards: 4\n")
    dry = snakemake(tmp_path, "-n", *args[:2], str(hashed), *args[2:]).stdout
    assert [f"wildcards: shard=shard-00{i}" in dry for i in range(5)] == [True] * 4 + [False]
    assert "train-00003-of-00004" in dry
