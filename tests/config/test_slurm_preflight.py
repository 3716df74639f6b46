"""A SLURM launch without account or partition, asked of fake `scontrol`, `sacctmgr` and `sinfo` on PATH
(shell scripts written here): the real cluster's test calls the same `slurm_problems`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from embedpipe.config.launch import Launch
from embedpipe.config.slurm import slurm_problems

SLURM = Launch(executor="slurm", extract_gpus=1, gpu_model="l40s")


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A cluster that enforces associations, where the user has two accounts and no default, and no
    partition is the default."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "scontrol", 'echo "AccountingStorageEnforce = associations,limits"')
    fake(bin_dir, "sacctmgr", 'case "$*" in *DefaultAccount*) echo "";; *assoc*) printf "lab_b\\nlab_a\\n";; esac')
    fake(bin_dir, "sinfo", 'printf "gpu\\ncpu\\n"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_unset_account_stops_and_unset_partition_warns_naming_the_profile_keys(cluster):
    problems = slurm_problems(SLURM, user="alice")
    assert [p.key for p in problems] == ["default-resources: slurm_account", "default-resources: slurm_partition"]
    # a site may route jobs without a partition (job_submit): only the account is sure to be refused
    assert [p.stop for p in problems] == [True, False] and all(p.profile for p in problems)
    assert "yours: lab_a, lab_b" in problems[0].reason and "partitions: cpu, gpu" in problems[1].reason
    assert problems[0].line().startswith("profile key 'default-resources: slurm_account': unset")


def test_given_or_defaulted_they_pass(cluster):
    assert slurm_problems(Launch(executor="embedpipe-slurm", slurm_account="lab_a", slurm_partition="gpu")) == []
    assert slurm_problems(Launch(executor="slurm", slurm_account="lab_a", partition_config=True)) == []
    fake(cluster, "sacctmgr", 'case "$*" in *DefaultAccount*) echo "lab_a";; esac')
    fake(cluster, "sinfo", 'printf "gpu*\\ncpu\\n"')
    assert slurm_problems(SLURM, user="alice") == []


def test_sbatch_environment_variables_count_as_given(cluster, monkeypatch):
    monkeypatch.setenv("SBATCH_ACCOUNT", "lab_a")
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    assert slurm_problems(SLURM, user="alice") == []
    monkeypatch.delenv("SBATCH_PARTITION")
    monkeypatch.setenv("SNAKEMAKE_SLURM_PARTITIONS", "partitions.yaml")  # the plugin picks per job
    assert slurm_problems(SLURM, user="alice") == []


def test_an_account_is_not_required_without_enforcement(cluster):
    fake(cluster, "scontrol", 'echo "AccountingStorageEnforce = none"')
    assert [p.key for p in slurm_problems(SLURM, user="alice")] == ["default-resources: slurm_partition"]


def test_missing_or_failing_commands_cannot_tell(cluster, monkeypatch):
    for name in ("scontrol", "sinfo"):
        fake(cluster, name, "exit 1")
    assert slurm_problems(SLURM, user="alice") == []
    monkeypatch.setenv("PATH", str(cluster / "empty"))
    assert slurm_problems(SLURM, user="alice") == []


def test_not_slurm_asks_nothing():
    def run(*args, **kwargs):
        raise AssertionError("no command for a local launch")

    assert slurm_problems(Launch(executor="local"), run=run) == []
