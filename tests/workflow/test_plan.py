"""The planner's done-when: a trial on the demo data writes a plan, and the full demo run that follows
meets its predictions within the stated ranges, as its card says."""

from __future__ import annotations

import csv
import json
import re

import pytest
from support.workflow import REPO, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def planned_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("planned")
    config = ["--configfile", str(REPO / "config" / "demo.yaml")]
    trial = snakemake(work, "--cores", "2", *config, "--config", "extract={limit: 2}")
    snakemake(work, "--cores", "2", *config)
    return work, trial.stdout + trial.stderr


def test_the_trial_writes_and_prints_its_plan(planned_run):
    work, console = planned_run
    trial = work / "results" / "demo-trial2"
    plan = json.loads((trial / "plan.json").read_text())
    assert "# Plan for demo (from its trial of 2 files a shard)" in console
    assert "Whole plan: results/demo-trial2/plan.json" in console
    assert (trial / "plan.md").read_text().startswith("# Plan for demo")
    assert plan["trial"] | {"sources": None} == plan["trial"] | {
        "limit": 2, "shards": 3, "files": 6, "device": "cpu", "batch_size": 4, "sources": None}
    assert "benchmark" in plan["trial"]["sources"] and "log" in plan["trial"]["sources"]
    assert plan["full"]["files"] == {"p10": 10, "p11": 10, "p12": 10} and plan["full"]["total_files"] == 30
    assert plan["device_kind"] == "CPU" and plan["parallel_jobs"]["jobs"] == 1  # 2 cores, 2 threads a job
    s = plan["per_file_seconds"]
    assert 0 == s["low"] < s["value"] <= s["high"] and "nothing bounds it from below" in s["basis"]
    for e in [plan["device_hours"], plan["wall_seconds"], *plan["disk_bytes"].values()]:
        assert 0 <= e["low"] <= e["value"] <= e["high"], e
    assert set(plan["disk_bytes"]) == {"embeddings/", "staged/", "parquet/", "vjepa2-tiny_embeddings_all.pt",
                                       "vjepa2-tiny_embeddings_all.npy", "vjepa2-tiny_embeddings_all.keys.txt"}
    assert plan["disk"]["fits"] is True and plan["memory"]["peak_rss_mb"] > 0
    assert all("not scaled: the trial ran on the CPU" in g["basis"] for g in plan["gpu_types"])
    assert plan["suggestions"][0]["key"] == "plan.job_minutes"  # no profile: no time limit known


def test_the_full_run_meets_the_plan_and_its_card_says_so(planned_run):
    work, _ = planned_run
    plan = json.loads((work / "results" / "demo-trial2" / "plan.json").read_text())
    card = (work / "results" / "demo" / "parquet" / "README.md").read_text()
    section = card.split("## Plan against actual", 1)[1].split("\n## ", 1)[0]
    assert "`demo-trial2/plan.json`" in section and "8 of 8 fell within the range" in section
    assert re.findall(r"\| (yes|\*\*no\*\*) \|", section) == ["yes"] * 8
    assert "## Disk" in card and "## Loading" in card  # the card's other sections stay

    def within(e, actual):
        return e["low"] * 0.999 <= actual <= e["high"] * 1.001

    # the actuals, measured here independently of the card: the jobs' benchmarks and the folders' files
    walls = []
    for shard in ("p10", "p11", "p12"):
        with (work / "logs" / "demo" / "extract" / f"{shard}.benchmark.tsv").open() as f:
            walls.append(float(next(csv.DictReader(f, delimiter="\t"))["s"]))
    assert within(plan["device_hours"], sum(walls) / 3600)
    out = work / "results" / "demo"
    for folder in ("embeddings", "staged"):
        actual = sum(p.stat().st_size for p in (out / folder).glob("p1[0-2]*.parquet"))
        assert within(plan["disk_bytes"][f"{folder}/"], actual), folder
    for name in ("pt", "npy", "keys.txt"):
        path = out / f"vjepa2-tiny_embeddings_all.{name}"
        assert within(plan["disk_bytes"][path.name], path.stat().st_size), name


def test_on_the_slurm_profile_the_plan_reads_its_jobs_and_extract_runtime(tmp_path):
    """A dry run of a trial with the SLURM profile: the plan job (local: its flags are this launch's) is
    given the profile's extract runtime at the first attempt (`2880 * attempt`) and the jobs at once,
    the fewest of the shards, the profile's jobs and plan.gpus."""
    profile = str(REPO / "profiles" / "slurm")
    proc = snakemake(tmp_path, "-n", "-p", "--profile", profile, "--configfile", str(REPO / "config" / "demo.yaml"),
                     "--config", "extract={limit: 2}", "plan={gpus: 2}", env={"EMBEDPIPE_PREFLIGHT": "warn"})
    assert "--slots=2 --slots_basis='plan.gpus: 2' --job_minutes=2880 --out=results/demo-trial2/plan.json" in (
        proc.stdout + proc.stderr)
