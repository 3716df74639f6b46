"""The workflow on a real one-node SLURM cluster (tests/slurm/cluster.sh), through profiles/slurm.

Needs root and Debian's slurm packages. CI (.ci/run) installs them and sets EMBEDPIPE_SLURM=required,
so there these tests run or fail loudly; elsewhere they skip and say why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from support.status_watch import StatusWatcher, status_command
from support.workflow import REPO, run_env
from support.workflow import snakemake as snakemake_here

from embedpipe.config.launch import launch_of
from embedpipe.config.slurm import slurm_problems
from embedpipe.store.progress import progress_path, read_progress

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
DEMO = str(REPO / "config" / "demo.yaml")
REQUIRED = os.environ.get("EMBEDPIPE_SLURM") == "required"

pytestmark = pytest.mark.slurm
# The test node's GPU is a stand-in (/dev/null) and the demo embeds on the CPU: the preflight would stop
# a GPU profile with encoder.device cpu, rightly on a real cluster. Here it only warns.
FAKE_GPU = {"EMBEDPIPE_PREFLIGHT": "warn"}


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None):
    return snakemake_here(workdir, *args, check=check, env=FAKE_GPU | (env or {}))


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"EMBEDPIPE_SLURM=required but the SLURM cluster cannot run: {reason}")
    pytest.skip(f"no SLURM cluster: {reason} (CI sets EMBEDPIPE_SLURM=required and runs these)")


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        unavailable("the test cluster needs root")
    if not shutil.which("slurmctld"):
        unavailable("slurm is not installed; run tests/slurm/cluster.sh install")
    start = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True)
    if start.returncode != 0:
        unavailable(f"cluster.sh start failed:\n{start.stdout}\n{start.stderr}")
    yield
    subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True)


def slurm_test_profile(tmp_path: Path) -> Path:
    """profiles/slurm with only what this one-node cluster needs changed: partition, memory, CPUs."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="gpu", slurm_account="embedpipe", mem_mb=500, runtime=30)
    profile["set-resources"]["extract"].update(cpus_per_gpu=1, mem_mb="2000 * attempt", runtime="30 * attempt")
    profile["set-threads"]["extract"] = 1
    profile["set-resources"]["doctor"].update(cpus_per_gpu=1, mem_mb=500, runtime=10)
    profile["embedpipe-slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 2
    out = tmp_path / "profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile))
    return out


def sacct(*fields: str, since_job: int = 0) -> list[dict[str, str]]:
    proc = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-o", ",".join(fields)], capture_output=True,
                          text=True, check=True)
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in proc.stdout.splitlines() if line]
    return [r for r in rows if int(r["JobID"].split("_")[0]) > since_job]


def last_job_id() -> int:
    rows = sacct("JobID")
    return max((int(r["JobID"].split("_")[0]) for r in rows), default=0)


def gpu_jobs(since_job: int) -> list[dict[str, str]]:
    fields = ("JobID", "State", "AllocTRES", "JobName", "Comment")
    return [j for j in sacct(*fields, since_job=since_job) if "gres/gpu=1" in j["AllocTRES"]]


def arrays_of(jobs: list[dict[str, str]]) -> dict[str, list[str]]:
    """Array job id -> its task ids, of the jobs that are array tasks (<jobid>_<task>)."""
    arrays: dict[str, list[str]] = {}
    for job in jobs:
        if "_" in job["JobID"]:
            arrays.setdefault(job["JobID"].split("_")[0], []).append(job["JobID"])
    return arrays


def shards_run_by_task(work: Path) -> dict[str, set[str]]:
    """Each array task's SLURM log, found by its shard's link: the shards its Snakemake ran."""
    links = [p for p in (work / "logs/slurm/rule_extract").glob("p1*/*_*.log") if p.is_symlink()]
    return {f"{p.parent.name}:{p.stem}": set(re.findall(r"--shard=(p1\d)", p.read_text())) for p in links}


def embedding_rows(path: Path) -> list[tuple[str, list[float]]]:
    t = pq.read_table(path)
    return list(zip(t.column("key").to_pylist(), t.column("embedding").to_pylist(), strict=True))


def test_failed_shard_is_retried_then_rerun_alone_and_the_run_equals_a_local_one(cluster, demo_run, tmp_path):
    work, profile = tmp_path / "work", slurm_test_profile(tmp_path)
    # p11's parts path is a file: the shard job cannot write, on every attempt.
    blocker = work / "results/demo/parts/p11"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    before = last_job_id()
    # a token exported for the upload: the submission leaves it off the compute jobs (workflow/submit/sbatch)
    failed = snakemake(work, "--profile", str(profile), "--configfile", DEMO, check=False,
                       env={"HF_TOKEN": "hf_only_for_the_upload"})
    assert failed.returncode != 0
    # the console names the failed shard once, with its reason and log, though it failed three times
    lines = (failed.stdout + failed.stderr).splitlines()
    failures = [line for line in lines if "embedpipe: extract p11 failed:" in line]
    assert len(failures) == 1 and "(log: logs/demo/extract/p11.log" in failures[0], failures
    for shard in ("p10", "p12"):
        log = (work / "logs" / "demo" / "extract" / f"{shard}.log").read_text()
        assert "no Hugging Face token in this SLURM job's environment" in log, log
    jobs = gpu_jobs(before)
    # the three shards went out as ONE array (<jobid>_1 … _3); p11's two retries as plain jobs
    arrays = arrays_of(jobs)
    assert len(arrays) == 1 and len(next(iter(arrays.values()))) == 3, jobs
    # readable: the profile's name prefix, and the rule and shard in the comment (each task sets its own)
    assert all(j["JobName"].startswith("embedpipe_") for j in jobs), jobs
    assert {j["Comment"] for j in jobs} >= {f"rule_extract_wildcards_{s}" for s in ("p10", "p11", "p12")}, jobs
    attempts = [j for j in jobs if j["State"] == "FAILED"]
    assert len(attempts) == 3, f"expected the first try and 2 retries: {attempts}"
    assert len([j for j in jobs if j["State"] == "COMPLETED"]) == 2, jobs  # one GPU job per shard
    # each array task's Snakemake ran its own shard and no other
    ran = shards_run_by_task(work)
    assert {key.split(":")[0] for key in ran} == {"p10", "p11", "p12"}, ran
    assert all(shards == {key.split(":")[0]} for key, shards in ran.items()), ran
    memory = sorted(int(a["AllocTRES"].split("mem=")[1].split("M")[0]) for a in attempts)
    assert memory[0] < memory[1] < memory[2], f"memory must grow with the attempt: {memory}"
    emb = work / "results/demo/embeddings"
    done = {s: (emb / f"{s}.parquet").stat().st_mtime_ns for s in ("p10", "p12")}
    assert not (emb / "p11.parquet").exists()

    blocker.unlink()
    before_rerun = last_job_id()
    # The documented command (README, "Running on SLURM"): force that shard's output.
    rerun = snakemake(work, "--profile", str(profile), "--configfile", DEMO, "--embedpipe-slurm-efficiency-report",
                      "--forcerun", "results/demo/embeddings/p11.parquet")
    assert "shard=p11" in rerun.stdout + rerun.stderr
    assert "shard=p10" not in rerun.stdout + rerun.stderr and "shard=p12" not in rerun.stdout + rerun.stderr
    assert {s: (emb / f"{s}.parquet").stat().st_mtime_ns for s in ("p10", "p12")} == done
    rerun_jobs = gpu_jobs(before_rerun)  # one shard: one plain job, not an array
    assert [j["Comment"] for j in rerun_jobs] == ["rule_extract_wildcards_p11"] and not arrays_of(rerun_jobs)
    assert (work / "results/demo/validation/metrics.json").exists()  # the rest of the DAG completed
    for shard in ("p10", "p11", "p12"):  # SLURM jobs give what a local run gives
        a = embedding_rows(demo_run / "results/demo/embeddings" / f"{shard}.parquet")
        b = embedding_rows(emb / f"{shard}.parquet")
        assert [k for k, _ in a] == [k for k, _ in b]
        np.testing.assert_allclose([v for _, v in a], [v for _, v in b], atol=1e-5)
    # one SLURM log per extract job, found under its shard: <jobid>_<task>.log for an array task (a link
    # to the file SLURM writes beside the shard folders), <jobid>.log for a plain job (p11's retries, rerun)
    by_shard = sorted((work / "logs" / "slurm" / "rule_extract").glob("p1*/*.log"))
    assert all(p.is_file() for p in by_shard), by_shard  # no dangling link
    assert [p.parent.name for p in by_shard if "_" in p.stem] == ["p10", "p11", "p12"], by_shard
    assert sorted(p.parent.name for p in by_shard if p.stem.isdigit()) == ["p11"] * 3, by_shard
    reports = list(work.glob("efficiency_report*"))
    assert len(reports) == 1, reports
    lines = reports[0].read_text().splitlines()
    assert "MaxRSS" in lines[0] and len(lines) > 1


def test_requeued_extract_task_resumes_from_its_parts(cluster, tmp_path):
    work = tmp_path / "work"
    profile = slurm_test_profile(tmp_path)
    # 40 videos a shard, one per batch and per part: a shard job runs long enough to be requeued. Two
    # shards, so that the one requeued is an array task.
    slow_config = tmp_path / "slow.yaml"
    slow_config.write_text(yaml.safe_dump({
        "demo": {"per_folder": 40}, "encoder": {"batch_size": 1}, "extract": {"num_workers": 0, "save_every": 1},
    }))
    slow = [str(slow_config)]
    run_dir = work / "results/demo"
    with StatusWatcher(run_dir) as watch:  # `status`, as a user on the login node runs it, all along
        proc = subprocess.Popen(
            # Only two shards' outputs are asked for: the requeue is what is tested, not the rest of the DAG.
            [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
             "results/demo/embeddings/p10.parquet", "results/demo/embeddings/p12.parquet",
             "--profile", str(profile), "--configfile", DEMO, *slow],
            env=run_env(FAKE_GPU), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        parts = work / "results/demo/parts/p10"
        deadline = time.monotonic() + 300
        while not (parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 3):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "extract p10 never wrote parts"
            time.sleep(0.05)
        running = [j for j in sacct("JobID", "State", "AllocTRES") if "gres/gpu=1" in j["AllocTRES"]
                   and j["State"] == "RUNNING"]
        assert len(running) == 1 and "_" in running[0]["JobID"], running  # one GPU: p10's task runs alone
        job = running[0]["JobID"]
        subprocess.run(["scontrol", "requeue", job], check=True)
        # SLURM holds a requeued job back for a while (its begin time is pushed ahead); a real cluster
        # waits, the test need not: once the job is pending again, let it start now.
        for _ in range(200):
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
            if "PENDING" in state:
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
                break
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    # status saw p10's array task run on the node, then wait for its requeue, then finish
    assert re.fullmatch(r"\d+_\d+", job) and ("p10", "running", job) in watch.seen, watch.seen
    assert ("p10", "preempted", job) in watch.seen, watch.seen
    record = read_progress(progress_path(run_dir, "p10"))
    assert (record.state, record.slurm_job, record.attempt, record.done, record.total) == ("finished", job, 1, 40, 40)
    assert status_command(run_dir, "--shards-json", '["p10", "p12"]').returncode == 0
    log = (work / "logs/demo/extract/p10.log").read_text()  # the requeued run's log
    resumed = re.search(r"p10: 40 files, (\d+) already in parts, (\d+) to embed", log)
    assert resumed, log
    assert 3 <= int(resumed.group(1)) < 40 and int(resumed.group(1)) + int(resumed.group(2)) == 40
    rows = embedding_rows(work / "results/demo/embeddings/p10.parquet")
    errors = pq.read_table(work / "results/demo/embeddings/p10.errors.parquet").num_rows
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys))
    manifest = (work / "results/demo/manifests/p10.txt").read_text().splitlines()
    assert len(keys) + errors == len(manifest) == 40


def test_array_limit_splits_the_shards_and_a_failing_task_fails_only_its_own_shard(cluster, tmp_path):
    work, profile = tmp_path / "work", slurm_test_profile(tmp_path)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    config |= {"embedpipe-slurm-array-limit": 2, "retries": 0, "latency-wait": 5}
    (profile / "config.yaml").write_text(yaml.safe_dump(config))
    # p11 cannot write its parts; p10 and p12 can. (With the official plugin 2.8.0, upstream #447, every
    # task's Snakemake was the first task's: it ran that shard and, failing, deleted its outputs.)
    blocker = work / "results/demo/parts/p11"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    before = last_job_id()
    targets = [f"results/demo/embeddings/{s}.parquet" for s in ("p10", "p11", "p12")]
    run = snakemake(work, *targets, "--profile", str(profile), "--configfile", DEMO, check=False)
    assert run.returncode != 0
    jobs = gpu_jobs(before)
    arrays = arrays_of(jobs)  # three tasks, at most two an array: two arrays
    assert len(jobs) == 3 and sorted(len(tasks) for tasks in arrays.values()) == [1, 2], jobs
    assert sorted(j["State"] for j in jobs) == ["COMPLETED", "COMPLETED", "FAILED"], jobs
    ran = shards_run_by_task(work)
    # each task ran its own shard, once
    assert sorted(key.split(":")[0] for key in ran) == ["p10", "p11", "p12"], ran
    assert all(shards == {key.split(":")[0]} for key, shards in ran.items()), ran
    written = [(work / f"results/demo/embeddings/{s}.parquet").is_file() for s in ("p10", "p11", "p12")]
    assert written == [True, False, True], (written, run.stderr[-3000:])
    assert "Submitted rule extract as SLURM job array" in run.stdout + run.stderr


def test_the_preflight_asks_the_cluster_whether_an_account_is_required(cluster, tmp_path):
    """The cluster enforces associations (tests/slurm/cluster.sh); root has a default account, a user
    that sacctmgr does not know has none. A profile without slurm_account plans for the first and stops,
    naming the key, for the second: before any job is submitted, in a dry run."""
    launch = launch_of("embedpipe-slurm", {"gpu": 1}, {}, dryrun=True)
    assert slurm_problems(launch, user="root") == []
    [problem] = slurm_problems(launch, user="embedpipe-newcomer")
    assert problem.key == "default-resources: slurm_account" and "lists none for embedpipe-newcomer" in problem.reason
    profile = slurm_test_profile(tmp_path)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    del config["default-resources"]["slurm_account"], config["default-resources"]["slurm_partition"]
    (profile / "config.yaml").write_text(yaml.safe_dump(config))
    args = ("-n", "--profile", str(profile), "--configfile", DEMO)
    planned = snakemake(tmp_path / "work", *args)  # root: the default account and the default partition
    assert "slurm_account" not in planned.stdout + planned.stderr
    refused = snakemake(tmp_path / "work", *args, check=False, env={"USER": "embedpipe-newcomer",
                                                                     "EMBEDPIPE_PREFLIGHT": ""})
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "profile key 'default-resources: slurm_account': unset" in out, out[-3000:]
    assert "Job stats" not in out  # no plan


def test_doctor_runs_as_a_slurm_job_on_the_node_an_extract_job_gets(cluster, tmp_path):
    work, profile = tmp_path / "work", slurm_test_profile(tmp_path)
    before = last_job_id()
    run = snakemake(work, "doctor", "--profile", str(profile), "--configfile", DEMO,
                    env={"HF_TOKEN": "hf_never_on_a_node"})
    [job] = [j for j in sacct("JobID", "State", "AllocTRES", "Comment", since_job=before)]
    assert job["Comment"] == "rule_doctor" and "gres/gpu=1" in job["AllocTRES"] and job["State"] == "COMPLETED", job
    report = (work / "logs/demo/doctor.txt").read_text()
    assert f"SLURM job {job['JobID']}" in report and "partition gpu" in report, report
    assert "torch" in report and "PyAV" in report and "doctor:" in report.splitlines()[-1]
    # the submission leaves the Hub token off compute jobs (workflow/submit/sbatch): the node has none
    assert re.search(r"HF_TOKEN +not set", report) and "hf_never_on_a_node" not in report + run.stdout + run.stderr
