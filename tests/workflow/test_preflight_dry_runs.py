"""The preflight in dry runs (`snakemake -n`): what would break a real submission stops the DAG build
with one line naming the key, before any job; a misspelt top-level key is one line, not the schema."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from support.workflow import REPO, snakemake

DEMO = str(REPO / "config" / "demo.yaml")


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_a_gpu_for_extract_with_device_cpu_stops_the_dry_run(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", DEMO, "--set-resources", "extract:gpu=1", check=False)
    assert proc.returncode != 0
    assert "config key 'encoder.device': cpu, but the launch gives every extract job 1 GPU(s)" in output(proc)
    assert "Job stats" not in output(proc)  # no plan printed
    # EMBEDPIPE_PREFLIGHT=warn: the same line as a warning, and the plan
    proc = snakemake(tmp_path, "-n", "--configfile", DEMO, "--set-resources", "extract:gpu=1",
                     env={"EMBEDPIPE_PREFLIGHT": "warn"})
    assert "embedpipe preflight: config key 'encoder.device'" in output(proc) and "Job stats" in output(proc)


def test_a_top_level_typo_is_one_line_with_the_closest_key(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", DEMO, "--config", "encodr=1", check=False)
    assert proc.returncode != 0
    assert "config key 'encodr': unknown; did you mean 'encoder'?" in output(proc)
    assert "Failed validating" not in output(proc) and len(output(proc).splitlines()) < 10


def family_config(tmp_path: Path, base: str, **encoder) -> str:
    """A demo config of `base` over a folder of its own (no demo rules), its encoder changed."""
    config = yaml.safe_load((REPO / "config" / base).read_text())
    (tmp_path / "in" / "p10").mkdir(parents=True)
    config.update(input_dir=str(tmp_path / "in"), shards={"by": "folder", "folders": []}, metadata={"kind": "none"})
    config["demo"]["enabled"] = False
    config["encoder"].update(encoder)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return str(tmp_path / "config.yaml")


def test_an_ecg_jepa_checkpoint_given_to_ecgfounder_stops_the_dry_run(tmp_path, tiny_ecg):
    config = family_config(tmp_path, "demo_ecg.yaml", path=str(tiny_ecg / "ecg_jepa.pt"))
    proc = snakemake(tmp_path, "-n", "--configfile", config, check=False)
    assert proc.returncode != 0
    assert "config key 'encoder.path':" in output(proc)
    assert "is ecg_jepa's checkpoint, not ecgfounder's" in output(proc)


def test_a_vjepa2_folder_given_to_metis_stops_the_dry_run(tmp_path, tiny_model):
    stats = tmp_path / "stats.pt"
    stats.write_bytes(b"")
    config = family_config(tmp_path, "demo_audio.yaml", path=str(tiny_model), codec_path=None, stats_path=str(stats))
    proc = snakemake(tmp_path, "-n", "--configfile", config, check=False)
    assert proc.returncode != 0
    assert "config key 'encoder.path':" in output(proc) and "model_type 'vjepa2'" in output(proc)


def test_the_slurm_profile_with_a_cpu_config_and_no_account_or_partition(tmp_path):
    """The issue's first try: `--profile profiles/slurm -n` with a CPU config printed a clean plan. With
    a cluster that requires both (fake sacctmgr, scontrol and sinfo on PATH), every problem is named."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("scontrol", 'echo "AccountingStorageEnforce = associations"'),
                       ("sacctmgr", 'case "$*" in *assoc*) echo lab_a;; esac'), ("sinfo", "echo gpu")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    profile = str(REPO / "profiles" / "slurm")
    proc = snakemake(tmp_path, "-n", "--profile", profile, "--configfile", DEMO, check=False, env=env)
    assert proc.returncode != 0 and "config key 'encoder.device': cpu" in output(proc)
    proc = snakemake(tmp_path, "-n", "--profile", profile, "--configfile", DEMO,
                     env=env | {"EMBEDPIPE_PREFLIGHT": "warn"})
    lines = [line for line in output(proc).splitlines() if line.startswith("embedpipe preflight:")]
    assert [line.split("key ")[1].split(":")[0] for line in lines] == [
        "'encoder.device'", "'default-resources", "'default-resources"], lines
    assert "(yours: lab_a)" in lines[1] and "(partitions: gpu)" in lines[2]
