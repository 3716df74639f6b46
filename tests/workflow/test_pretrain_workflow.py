"""The pretrain rule: discover → pretrain → extract → parquet → validate in one DAG, and its start-up checks."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from support.workflow import REPO, snakemake

from embedpipe.encoders import OptionError, build_encoder, family
from embedpipe.encoders.batch import Batch

DEMO = str(REPO / "config" / "demo_pretrain.yaml")


def test_pretrain_demo_trains_the_encoder_extract_embeds_with(tmp_path):
    snakemake(tmp_path, "--cores", "2", "--configfile", DEMO)
    run = tmp_path / "results" / "demo-pretrain"
    final = run / "pretrain" / "final.pt"
    encoder = build_encoder("ecg_jepa", {"path": str(final), "device": "cpu"})
    encoder.model.ensure_loaded(torch.device("cpu"))
    steps = [int(row["step"]) for row in csv.DictReader((run / "pretrain" / "metrics.csv").open())]
    assert steps == list(range(1, 201))
    assert (run / "pretrain" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    digest = hashlib.sha256(final.read_bytes()).hexdigest()[:16]
    files = sorted((run / "parquet").glob("*.parquet"))
    assert files and sum(pq.read_metadata(f).num_rows for f in files) == 31  # 32 records, one truncated
    for f in files:
        footer = json.loads(pq.read_metadata(f).metadata[b"embedpipe"])
        assert footer["model_id"] == "results/demo-pretrain/pretrain/final.pt"
        assert footer["checkpoint_sha256"] == digest and footer["model"] == "myjepa-tiny"
    row = pq.read_table(files[0]).slice(0, 1).to_pylist()[0]  # embedded by the trained encoder, not another
    sample = encoder.reader.prepare(str(run / "data" / "files" / row["key"])).sample
    again = encoder.model.encode(Batch([sample]))["embedding"][0]
    assert np.allclose(row["embedding"], again, atol=1e-4)
    assert json.loads((run / "validation" / "metrics.json").read_text())["passed"] is True
    # evaluate probed the trained encoder's embeddings against the demo's own labels, joined by key:
    # 32 labelled records, the truncated one without a row
    labels = list(csv.DictReader((run / "data" / "labels.csv").open()))
    assert len(labels) == 32 and {r["fast"] for r in labels} == {"0", "1"}
    assert all((run / "data" / "files" / r["key"]).is_file() for r in labels)
    assert all((float(r["heart_rate_bpm"]) >= 75) == (r["fast"] == "1") for r in labels)
    evaluation = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert evaluation["classes"] == ["fast"] and evaluation["protocol"]["kind"] == "stratified k-fold"
    assert evaluation["join"]["labels_without_row"] == 1 and evaluation["join"]["rows_without_label"] == 0
    assert 0.0 <= evaluation["macro_auroc"]["value"] <= 1.0
    # the validation report holds both steps' sections: their tables and figures
    page = (run / "validation" / "report.html").read_text()
    assert "<h2>Pretraining (MyJEPA)</h2>" in page and "<h2>Evaluation: labels table " in page
    assert page.count("data:image/png;base64,") == 4 + 2  # the four validation plots, the loss, the ROC
    assert f"<td>{evaluation['n_test']}</td>" in page or f" / {evaluation['n_test']}</td>" in page


def real_config(tmp_path: Path, encoder: str = "{name: ecg_jepa, model: mine}",
                pretrain: str = "{enabled: true}") -> str:
    """A real run's config (no demo): input folders only, no model file; pretrain enabled."""
    files = tmp_path / "files"
    for group in ("p1000", "p1001"):
        (files / group).mkdir(parents=True, exist_ok=True)
    config = tmp_path / "pretrain.yaml"
    config.write_text(f"run: mine\ninput_dir: {files}\nextensions: ['.hea']\nshards: {{by: folder}}\n"
                      f"encoder: {encoder}\npretrain: {pretrain}\n")
    return str(config)


def test_pretrain_plans_before_extract_without_a_model_file_on_two_gpus(tmp_path):
    config = real_config(tmp_path, pretrain="{enabled: true, steps: 10, learning_rate: 1e-4, gpus: 2}")
    dry = snakemake(tmp_path, "-np", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", config).stdout
    assert dry.count("rule pretrain:") == 1 and dry.count("rule extract:") == 2
    assert "gpu=2" in dry and "gpu_model=l40s, cpus_per_gpu=9" in dry and "mem_mb=64000" in dry
    assert "OMP_NUM_THREADS=5 torchrun --standalone --nproc_per_node=2 " in dry and '"gpus"' not in dry
    assert "--out=results/mine/pretrain " in dry and "--model=mine" in dry
    assert '"learning_rate": "1e-4"' in dry and '"steps": 10' in dry  # YAML's string 1e-4: pretrain.py reads a number


def test_pretrain_on_a_npy_dump_with_the_explicit_pretrain_path(tmp_path):
    dump = tmp_path / "mimic-ecg.npy"
    np.save(dump, np.zeros((2, 12, 5000), np.float32))
    config = real_config(tmp_path, "{name: ecg_jepa, model: m, path: results/mine/pretrain/final.pt}",
                         f"{{enabled: true, data: 'mimic-iv-ecg={dump}', config: tiny}}")
    dry = snakemake(tmp_path, "-np", "--configfile", config).stdout
    assert f"input: {dump}\n" in dry and f"--data mimic-iv-ecg={dump} " in dry and "--config=tiny" in dry


@pytest.mark.parametrize(("encoder", "named"), [
    ("{name: ecg_jepa, model: m, path: /elsewhere/model.pt}", ("encoder.path", "pretrain.enabled")),
    ("{name: ecgfounder, model: m, path: /x.pth}", ("encoder.name", "pretrain.enabled")),
])
def test_pretrain_with_another_encoder_fails_at_start_up_naming_both_keys(tmp_path, encoder, named):
    proc = snakemake(tmp_path, "-n", "--configfile", real_config(tmp_path, encoder), check=False)
    assert proc.returncode != 0 and "rule pretrain" not in proc.stdout
    assert all(key in proc.stdout + proc.stderr for key in named)


@pytest.mark.parametrize(("block", "named"), [
    ({"enabled": True, "stepz": 10}, "stepz"),
    ({"enabled": True, "learning_rate": "fast"}, "learning_rate"),
    ({"enabled": True, "amp": "float16"}, "amp"),
])
def test_a_bad_pretrain_key_fails_the_config_schema_naming_it(block, named):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text()) | {"run": "r", "input_dir": "x",
                                                                                  "pretrain": block}
    with pytest.raises(WorkflowError, match=named):
        validate(config, str(REPO / "config" / "schema.yaml"))
    good = config | {"pretrain": {"enabled": True, "learning_rate": "1e-3", "steps": 5}}
    validate(good, str(REPO / "config" / "schema.yaml"))
    assert good["pretrain"]["config"] == "ViTS_mimic"  # the schema's default fills a block without one


def test_family_check_skips_the_existence_of_a_made_model_only(tmp_path):
    fam = family("ecg_jepa")
    made = str(tmp_path / "pretrain" / "final.pt")
    assert fam.check(fam.options({"path": made}), made=[made])["path"] == made
    with pytest.raises(OptionError, match="is not a file"):
        fam.check(fam.options({"path": str(tmp_path / "other.pt")}), made=[made])
