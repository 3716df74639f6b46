"""The dataset card and the Hub upload, against a local stand-in of the Hub (the Hub is unreachable here)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from support.hub_standin import TOKEN, Repo
from support.workflow import REPO, run_script, snakemake

from embedpipe.publish.file_list import write_file_list
from embedpipe.publish.kinds.mimic_iv_echo.columns import ECHO_IDENTIFYING


def listed(folder: Path) -> Path:
    return folder.parent / "dataset.files.json"


@pytest.fixture()
def dataset_folder(demo_run, tmp_path) -> Path:
    """A copy of the demo's dataset folder, with its file list beside it as the parquet rule writes it."""
    folder = tmp_path / "parquet"
    shutil.copytree(demo_run / "results" / "demo" / "parquet", folder)
    files = json.loads((demo_run / "results" / "demo" / "dataset.files.json").read_text())["files"]
    write_file_list(folder, [f["path"] for f in files], listed(folder))
    return folder


def test_card_parses_and_load_dataset_reads_the_folder(demo_run):
    import datasets
    from huggingface_hub import DatasetCard

    folder = demo_run / "results" / "demo" / "parquet"
    card = DatasetCard.load(folder / "README.md")
    assert card.data.pretty_name == "embedpipe demo (synthetic echo videos)"
    assert card.data.license == "cc0-1.0" and card.data.task_categories == ["feature-extraction"]
    assert card.data.size_categories == ["n<1K"]
    assert card.data.configs[0]["data_files"][0]["path"] == "train-*.parquet"
    features = {f["name"]: f for f in card.data.dataset_info["features"]}
    assert features["embedding"] == {"name": "embedding", "list": "float32", "length": 32}
    assert features["subject_id"]["dtype"] == "int64"
    assert card.data.dataset_info["splits"][0]["num_examples"] == 28
    text = card.text
    for needle in ("vjepa2-tiny", "28 rows and 2 errors", "float32", "Run date (UTC): 20", "load_dataset(",
                   "| p11 | train-00001-of-00003.parquet | 10 | 9 | 1 |", "Passed", "effective_rank",
                   "## Identifying columns\n\n`acquisition_datetime`, `dicom_id`, `file_path`, "):
        assert needle in text, needle
    ds = datasets.load_dataset(str(folder), split="train")  # through the card's configs
    assert ds.num_rows == 28 and len(ds[0]["embedding"]) == 32


def test_upload_is_private_by_default_with_card_and_files(hub, dataset_folder, tmp_path):
    receipt = tmp_path / "receipt.json"
    proc = run_script("upload.py", "--file_list", listed(dataset_folder), "--repo_id", "lab/echo-demo",
                      "--receipt", receipt, env=hub.env)
    repo = hub.record.repos["lab/echo-demo"]
    assert repo.private is True
    expected = sorted(p.name for p in dataset_folder.iterdir() if p.is_file())
    assert sorted(repo.files) == expected == ["README.md", *(f"train-{i:05d}-of-00003.parquet" for i in range(3))]
    for name, data in repo.files.items():
        assert data == (dataset_folder / name).read_bytes()
    assert hub.record.tokens == {TOKEN}  # the token was used, from the environment
    assert not hub.record.unknown and hub.record.validated_cards == 1  # the Hub checked the card's YAML
    r = json.loads(receipt.read_text())
    assert r["private"] is True and r["commit"] == repo.commits[-1] and r["dry_run"] is False
    assert [f["path"] for f in r["files"]] == expected
    assert TOKEN not in proc.stdout + proc.stderr + receipt.read_text()
    # a rerun (an interrupted upload resumed) sends no file the repo already holds unchanged
    run_script("upload.py", "--file_list", listed(dataset_folder), "--repo_id", "lab/echo-demo",
               "--receipt", receipt, env=hub.env)
    assert len(repo.commits) == 1 and sorted(repo.files) == expected


def test_two_models_share_one_repo_each_in_its_folder_and_config(hub, dataset_folder, tmp_path):
    import datasets

    # model B: the same demo with one shard fewer, so the two configs read different rows
    other = tmp_path / "b" / "parquet"
    shutil.copytree(dataset_folder, other)
    (other / "train-00002-of-00003.parquet").unlink()
    write_file_list(other, ["README.md", "train-00000-of-00003.parquet", "train-00001-of-00003.parquet"],
                    listed(other))
    hub.record.repos["lab/echo"] = Repo(private=True, files={"notes.md": b"the lab's own notes"})

    def push(folder: Path, path: str, config: str, check: bool = True):
        return run_script("upload.py", "--file_list", listed(folder), "--repo_id", "lab/echo", "--path_in_repo", path,
                          "--config_name", config, "--receipt", tmp_path / f"{config}.json", env=hub.env, check=check)

    push(dataset_folder, "jepa-l-embeddings", "vitl")
    repo = hub.record.repos["lab/echo"]
    first = {f: d for f, d in repo.files.items() if f.startswith("jepa-l-embeddings/")}
    assert sorted(first) == [f"jepa-l-embeddings/{n}" for n in ("README.md", *(f"train-{i:05d}-of-00003.parquet"
                                                                              for i in range(3)))]
    push(other, "jepa-h-embeddings", "vith")
    assert {f: d for f, d in repo.files.items() if f.startswith("jepa-l-embeddings/")} == first  # untouched
    assert repo.files["notes.md"] == b"the lab's own notes"
    header = yaml.safe_load(repo.files["README.md"].decode().split("---\n")[1])
    assert [(c["config_name"], c["data_files"][0]["path"]) for c in header["configs"]] == [
        ("vitl", "jepa-l-embeddings/train-*.parquet"), ("vith", "jepa-h-embeddings/train-*.parquet")]
    assert header["license"] and "`jepa-h-embeddings/`" in repo.files["README.md"].decode()
    mirror = tmp_path / "mirror"  # the repo as a clone of it holds it
    for name, data in repo.files.items():
        (mirror / name).parent.mkdir(parents=True, exist_ok=True)
        (mirror / name).write_bytes(data)
    rows = {c: datasets.load_dataset(str(mirror), c, split="train").num_rows for c in ("vitl", "vith")}
    per_file = [pq.read_metadata(dataset_folder / f"train-{i:05d}-of-00003.parquet").num_rows for i in range(3)]
    assert rows == {"vitl": sum(per_file), "vith": sum(per_file[:2])}
    # a name that reads another folder is refused, and nothing is sent
    commits = len(repo.commits)
    clash = push(other, "jepa-g-embeddings", "vitl", check=False)
    assert clash.returncode == 2 and "upload.config_name: the repository's config 'vitl' reads" in clash.stderr
    assert len(repo.commits) == commits and not any(f.startswith("jepa-g-embeddings/") for f in repo.files)
    # an upload to the repository's root would delete both folders: refused, naming the key
    root = run_script("upload.py", "--file_list", listed(other), "--repo_id", "lab/echo", "--receipt",
                      tmp_path / "root.json", env=hub.env, check=False)
    assert root.returncode == 2 and "configs vitl, vith" in root.stderr and "upload.path_in_repo" in root.stderr
    assert len(repo.commits) == commits
    # a rerun of model B with a file fewer removes it from B's folder only
    (other / "train-00001-of-00003.parquet").unlink()
    write_file_list(other, ["README.md", "train-00000-of-00003.parquet"], listed(other))
    push(other, "jepa-h-embeddings", "vith")
    assert sorted(f for f in repo.files if f.startswith("jepa-h-embeddings/")) == [
        "jepa-h-embeddings/README.md", "jepa-h-embeddings/train-00000-of-00003.parquet"]
    assert {f: d for f, d in repo.files.items() if f.startswith("jepa-l-embeddings/")} == first


def test_upload_refuses_public_credentialed_data_before_contacting_the_hub(hub, dataset_folder, tmp_path):
    proc = run_script("upload.py", "--file_list", listed(dataset_folder), "--repo_id", "lab/mimic", "--public",
                      "--credentialed", "--receipt", tmp_path / "r.json", env=hub.env, check=False)
    assert proc.returncode == 2
    assert "upload refused" in proc.stderr and "credentialed" in proc.stderr
    assert hub.record.requests == [] and not (tmp_path / "r.json").exists()


def test_upload_refuses_an_existing_public_repo_when_config_says_private(hub, dataset_folder, tmp_path):
    hub.record.repos["lab/already-public"] = Repo(private=False)
    proc = run_script("upload.py", "--file_list", listed(dataset_folder), "--repo_id", "lab/already-public",
                      "--receipt", tmp_path / "r.json", env=hub.env, check=False)
    assert proc.returncode == 2 and "exists and is public" in proc.stderr
    assert hub.record.repos["lab/already-public"].files == {}


def test_public_upload_when_asked_and_dry_run_sends_nothing(hub, dataset_folder, tmp_path):
    file_list = listed(dataset_folder)
    acknowledged = [f"--acknowledge={c}" for c in ECHO_IDENTIFYING]  # the demo is MIMIC-IV-Echo-shaped
    dry = run_script("upload.py", "--file_list", file_list, "--repo_id", "lab/open", "--public", *acknowledged,
                     "--dry-run", "--receipt", tmp_path / "plan.json", env=hub.env)
    assert hub.record.requests == []
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["dry_run"] is True and plan["private"] is False and len(plan["files"]) == 4
    assert "would push README.md" in dry.stderr
    run_script("upload.py", "--file_list", file_list, "--repo_id", "lab/open", "--public", *acknowledged,
               "--receipt", tmp_path / "r.json", env=hub.env)
    assert hub.record.repos["lab/open"].private is False


def test_upload_without_a_token_says_how_to_get_one(hub, dataset_folder, tmp_path):
    env = {**hub.env, "HF_TOKEN": ""}
    proc = run_script("upload.py", "--file_list", listed(dataset_folder), "--repo_id", "lab/x", "--receipt",
                      tmp_path / "r.json", env=env, check=False)
    assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr and "hf auth login" in proc.stderr


def upload_config(tmp_path: Path, **upload) -> str:
    extra = tmp_path / "upload.yaml"
    extra.write_text(json.dumps({"upload": {"repo_id": "lab/embedpipe-demo", **upload}}))
    return str(extra)


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """The demo run's folder copied (mtimes kept): a run with another repo_id must not change the shared one."""
    copy = tmp_path / "work"
    shutil.copytree(demo_run, copy, symlinks=True)
    return copy


def test_snakemake_upload_pushes_the_validated_demo(hub, demo_copy, tmp_path):
    demo_run, demo = demo_copy, str(REPO / "config" / "demo.yaml")
    dry = snakemake(demo_run, "-n", "--configfile", demo)
    assert not re.search(r"^(local)?rule upload:", dry.stdout, re.M)  # never part of `all`
    snakemake(demo_run, "upload", "--cores", "1", "--configfile", demo, upload_config(tmp_path), env=hub.env)
    repo = hub.record.repos["lab/embedpipe-demo"]
    assert repo.private is True and "README.md" in repo.files and len(repo.files) == 4
    receipt = demo_run / "results" / "demo" / "upload" / "receipt.json"
    assert json.loads(receipt.read_text())["repo_id"] == "lab/embedpipe-demo"
    logs = [p.read_text(errors="replace") for p in (demo_run / "logs").rglob("*.log")]
    logs += [p.read_text(errors="replace") for p in (demo_run / ".snakemake" / "log").glob("*.log")]
    assert logs and not any(TOKEN in text for text in logs)


def test_snakemake_refuses_public_credentialed_config_before_any_job(demo_run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"dataset": {"credentialed": True}, "upload": {"public": True}}))
    proc = snakemake(demo_run, "upload", "-n", "--configfile", str(REPO / "config" / "demo.yaml"), str(bad),
                     check=False)
    assert proc.returncode != 0 and "upload.public" in proc.stdout + proc.stderr


def test_snakemake_report_zip_holds_the_validation_report(demo_run, tmp_path):
    import zipfile

    out = tmp_path / "report.zip"
    snakemake(demo_run, "--configfile", str(REPO / "config" / "demo.yaml"), "--report", str(out))
    names = {Path(n).name for n in zipfile.ZipFile(out).namelist()}
    assert {"report.html", "metrics.json", "norms.png", "pca_spectrum.png", "pca_scatter.png", "cosine.png"} <= names
