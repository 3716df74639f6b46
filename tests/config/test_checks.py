"""The config's cross-key checks, called as the library function they are (no Snakemake)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from embedpipe.config.checks import Where, check_config, shard_spec

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture
def config(tmp_path):
    """config.yaml's defaults over a small input folder of two shard folders, a run of its own."""
    for shard in ("p10", "p11"):
        (tmp_path / "in" / shard).mkdir(parents=True)
    base = copy.deepcopy(DEFAULTS) | {"run": "t", "input_dir": str(tmp_path / "in")}
    base["encoder"] = {"name": "ecgfounder", "model": "m", "path": str(_model(tmp_path))}
    return base


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x02")
    return path


def where(tmp_path: Path, **kw) -> Where:
    return Where(demo=False, run_dir=str(tmp_path / "results" / "t"), log_dir=str(tmp_path / "logs" / "t"), **kw)


def test_a_sound_config_has_no_problem(config, tmp_path):
    assert check_config(config, where(tmp_path)) == []
    assert shard_spec(config, demo=False).shard_ids() == ["p10", "p11"]


def test_folders_past_max_shards_are_grouped_when_the_dag_is_built(config, tmp_path):
    for i in range(12, 40):
        (tmp_path / "in" / f"p{i}").mkdir()
    config["shards"]["max_shards"] = 4
    spec = shard_spec(config, demo=False)
    assert len(spec.folders) == 30 and spec.grouped
    assert spec.shard_ids() == sorted({spec.group_of(f"p{i}") for i in range(10, 40)})
    assert set(spec.shard_ids()) <= {"folders-000", "folders-001", "folders-002", "folders-003"}
    config["shards"]["max_shards"] = 30
    assert shard_spec(config, demo=False).shard_ids() == [f"p{i}" for i in range(10, 40)]


@pytest.mark.parametrize(("change", "key", "says"), [
    (lambda c: c["extract"].update(limit=5) or c["pretrain"].update(enabled=True, config="tiny"),
     "extract.limit", "a trial run does not pretrain"),
    (lambda c: c["extract"].update(require_gpu=True) or c["encoder"].update(device="cpu"),
     "extract.require_gpu", "true, but encoder.device is cpu"),
    (lambda c: c["metadata"].update(kind="mimic_iv_eco"), "metadata.kind", "unknown kind 'mimic_iv_eco'; known:"),
    (lambda c: c["metadata"].update(kind="mimic_iv_echo", record_list="r.csv"), "metadata.study_list",
     "required when metadata.kind is mimic_iv_echo"),
    (lambda c: c["upload"].update(public=True) or c["dataset"].update(credentialed=True), "upload.public",
     "true is refused for a dataset with dataset.credentialed: true"),
    (lambda c: c["upload"].update(public=True), "upload.public", "does not name: key"),
    (lambda c: c["metadata"].update(identifying_patterns=["("]), "metadata.identifying_patterns", ""),
    (lambda c: c["hf_dataset"].update(path="ds"), "shards.by", "must be hash when hf_dataset.path"),
    (lambda c: c["shards"].update(folders=["p10", "p99"]), "shards.folders", "['p99'] not found under input_dir"),
    (lambda c: c["extract"].update(save_every=0), "extract.save_every", "0 must be more than 0"),
    (lambda c: c["encoder"].update(path="/nowhere/model.pth"), "encoder.path", "is not a file"),
])
def test_each_problem_is_named_by_its_key(config, tmp_path, change, key, says):
    change(config)
    [(found, reason)] = check_config(config, where(tmp_path))
    assert found == key and says in reason


def test_a_results_dir_that_is_a_file_is_named(config, tmp_path):
    (tmp_path / "results").write_text("not a folder")
    [(key, reason)] = check_config(config, where(tmp_path))
    assert key == "results_dir" and "is a file, not a folder" in reason


def test_shard_folders_no_command_line_can_carry_are_named(config, tmp_path):
    (tmp_path / "in" / "a{b}").mkdir()
    [(key, reason)] = check_config(config, where(tmp_path))
    assert key == "shards.folders" and "['a{b}']" in reason


def test_crossing_max_shards_over_shards_on_disk_stops_naming_the_key(config, tmp_path):
    for i in range(12, 40):
        (tmp_path / "in" / f"p{i}").mkdir()
    shards = tmp_path / "results" / "t" / "embeddings"
    shards.mkdir(parents=True)
    (shards / "p10.parquet").touch()  # made one shard per folder
    config["shards"]["max_shards"] = 4
    [(key, reason)] = check_config(config, where(tmp_path))
    assert key == "shards.max_shards" and "holds this run's shards one per folder (e.g. p10)" in reason
    assert "Set shards.max_shards: 30" in reason
    config["shards"]["max_shards"] = 30
    assert check_config(config, where(tmp_path)) == []
    (shards / "p10.parquet").unlink()
    (shards / "folders-001.parquet").touch()  # made grouped, now within the limit
    [(key, reason)] = check_config(config, where(tmp_path))
    assert key == "shards.max_shards" and "as groups of folders (e.g. folders-001)" in reason
