"""`snakemake doctor`: the doctor's report as a job of the run (logs/<run>/doctor.txt, printed too), failing
when the run's config asks for what the machine lacks, and submitted by the SLURM profile with the GPU
resources extract gets. The SLURM job itself runs on the CI cluster (tests/workflow/test_slurm.py)."""

from __future__ import annotations

import re

import pytest
from support.workflow import REPO, snakemake

DEMO = str(REPO / "config" / "demo.yaml")
SECRET = "hf_ruleTestValueNeverPrinted0123456789"


def test_snakemake_doctor_prints_and_keeps_the_report_and_makes_nothing_else(tmp_path):
    proc = snakemake(tmp_path, "doctor", "--cores", "1", "--configfile", DEMO, env={"HF_TOKEN": SECRET})
    kept = (tmp_path / "logs" / "demo" / "doctor.txt").read_text()
    assert kept.startswith("embedpipe doctor: what a job finds here [device cpu, video media, DICOM]"), kept
    assert kept in proc.stdout + proc.stderr  # printed as written
    assert re.search(r"ok +results_dir", kept) and re.search(r"ok +encoder\.device +cpu", kept), kept
    assert SECRET not in proc.stdout + proc.stderr + kept
    assert "set (value not shown)" in kept
    assert not (tmp_path / "results").exists()  # a report only: no demo data, no run folder


def test_snakemake_doctor_fails_when_the_run_asks_cuda_and_none_is_here(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    proc = snakemake(tmp_path, "doctor", "--cores", "1", "--configfile", DEMO, "--config", "encoder={device: cuda}",
                     check=False)
    kept = (tmp_path / "logs" / "demo" / "doctor.txt").read_text()
    assert proc.returncode != 0
    assert re.search(r"fail +encoder\.device +encoder\.device cuda but ", kept), kept


def test_the_slurm_profile_submits_doctor_to_the_gpu_extract_gets(tmp_path):
    proc = snakemake(tmp_path, "doctor", "-n", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", DEMO)
    (resources,) = re.findall(r"rule doctor:.*?resources: ([^\n]+)", proc.stdout, re.S)
    assert "gpu=1" in resources and "gpu_model=l40s" in resources, resources
    # the demo's device cpu on a GPU profile would stop a run; the doctor, which shows why, only hears it
    assert "embedpipe preflight: config key 'encoder.device': cpu" in proc.stdout + proc.stderr
