"""The embedpipe-slurm executor's own parts, without a cluster: the array scripts, the submission groups
(upstream #473), the status query (array tasks by JobID) and the pinned plugin versions. The cluster tests
(tests/workflow/test_slurm.py) run it for real."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.workflow import REPO

import snakemake_executor_plugin_embedpipe_slurm as plugin
from snakemake_executor_plugin_embedpipe_slurm.array_tasks import (
    ArrayTask,
    array_comment,
    batch_script,
    chunks,
    link_task_log,
    write_task_scripts,
)


def run_task(tmp_path: Path, task_id: str) -> subprocess.CompletedProcess:
    """The batch script as SLURM runs it for one task, with a scontrol that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.args\n')
    (bin_dir / "scontrol").chmod(0o755)
    batch = tmp_path / "batch.sh"
    batch.write_text(batch_script(tmp_path / "tasks"))
    env = os.environ | {"SLURM_ARRAY_TASK_ID": task_id, "SLURM_JOB_ID": f"10{task_id}",
                        "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["/bin/sh", str(batch)], env=env, capture_output=True, text=True, cwd=tmp_path)


def test_each_array_task_runs_its_own_command_and_names_itself(tmp_path):
    out = tmp_path / "ran"
    write_task_scripts(tmp_path / "tasks", [
        ArrayTask(i, f"rule_extract_wildcards_p1{i}", f"echo shard p1{i} >> {out}") for i in (1, 2, 3)
    ])
    assert run_task(tmp_path, "2").returncode == 0
    assert out.read_text() == "shard p12\n"
    assert (tmp_path / "scontrol.args").read_text() == "update JobId=102 Comment=rule_extract_wildcards_p12\n"
    missing = run_task(tmp_path, "7")
    assert missing.returncode == 1 and "no command for array task 7" in missing.stderr
    assert out.read_text() == "shard p12\n"


def test_a_command_with_quotes_and_spaces_runs_as_written(tmp_path):
    out = tmp_path / "out dir"
    out.mkdir()
    command = f"printf '%s\\n' \"a b\" 'c;d' > '{out}/args'"
    write_task_scripts(tmp_path / "tasks", [ArrayTask(1, "rule_x_wildcards_it's", command)])
    assert run_task(tmp_path, "1").returncode == 0
    assert (out / "args").read_text() == "a b\nc;d\n"
    assert (tmp_path / "scontrol.args").read_text() == "update JobId=101 Comment=rule_x_wildcards_it's\n"


def test_array_limits_comments_and_log_links(tmp_path):
    assert chunks(5, 2) == [(1, 2), (3, 4), (5, 5)]
    assert chunks(3, 1000) == [(1, 3)]
    assert array_comment("extract", ["p10", "p11", "p12"]) == "rule_extract_wildcards_p10..p12"
    assert array_comment("extract", ["p10"]) == "rule_extract_wildcards_p10"
    assert array_comment("merge", ["", ""]) == "rule_merge"
    real = link_task_log(tmp_path, "rule_extract", "p11", "123", 2)
    assert real == tmp_path / "rule_extract" / "123_2.log"
    link = tmp_path / "rule_extract" / "p11" / "123_2.log"
    assert link.is_symlink() and not link.exists()  # until the task starts
    real.write_text("task output\n")
    assert link.read_text() == "task output\n"


def fake_job(rule: str, wildcard: str, mem_mb: int = 2000, group: bool = False):
    resources = {"mem_mb": mem_mb, "gpu": 1, "runtime": 30}
    return SimpleNamespace(rule=SimpleNamespace(name=rule), name=rule, wildcards=[wildcard], threads=1,
                           resources=resources, is_group=lambda: group)


def executor_with(array_rules: set[str]):
    """An Executor as run_jobs sees it: the array setting, and submissions recorded instead of sent."""
    executor = object.__new__(plugin.Executor)
    executor.array_jobs = array_rules
    executor._main_event_loop = None
    executor.sent = []
    executor._submit_job = lambda job: executor.sent.append(("job", job.wildcards[0]))
    executor._submit_array_jobs = lambda jobs: executor.sent.append(("array", [j.wildcards[0] for j in jobs]))
    return executor


def test_every_ready_job_is_submitted_at_once_one_array_per_rule_and_resources():
    executor = executor_with({"extract"})
    executor.run_jobs([fake_job("extract", s) for s in ("p10", "p11", "p12")] + [fake_job("merge", "")])
    assert executor.sent == [("job", ""), ("array", ["p10", "p11", "p12"])]
    # A retry asks for more memory: it cannot share the first tries' array
    executor.sent.clear()
    executor.run_jobs([fake_job("extract", "p10"), fake_job("extract", "p11", mem_mb=4000), fake_job("extract", "p12")])
    assert executor.sent == [("array", ["p10", "p12"]), ("job", "p11")]


def test_a_ready_job_is_never_held_back_for_the_rest_of_its_rule_upstream_473():
    # 2.8.0 held back one ready job while the DAG had more of its rule; the scheduler had already counted
    # it as running, so its slot leaked. Here it goes out alone, now.
    executor = executor_with({"all"})
    executor.workflow = SimpleNamespace(dag=SimpleNamespace(ready_jobs=lambda: [fake_job("extract", f"p{i}")
                                                                                  for i in range(9)]))
    executor.run_jobs([fake_job("extract", "p10")])
    assert executor.sent == [("job", "p10")]
    executor.sent.clear()
    executor.run_jobs([fake_job("extract", "p10"), fake_job("extract", "p11")])
    assert executor.sent == [("array", ["p10", "p11"])]


def test_the_status_query_lists_array_tasks_by_job_id(monkeypatch):
    query = plugin.status_query_by_job_id("embedpipe_1234")
    assert "--format=JobID,State" in query and "JobIdRaw" not in query and "--name embedpipe_1234" in query
    monkeypatch.setattr(plugin, "OFFICIAL_STATUS_QUERY", lambda run_id: "sacct --format=JobIdRaw,JobName,State")
    with pytest.raises(Exception, match="status query changed"):
        plugin.status_query_by_job_id("x")


def test_the_official_plugin_versions_are_the_tested_ones_and_pinned():
    assert plugin.untested_versions() == []
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, tested in plugin.TESTED.items():
        assert f"{name}=={tested}" in [p.split("#")[0].strip() for p in pins], (name, pins)


def test_the_profile_uses_this_executor_and_spells_its_settings_with_its_prefix():
    import yaml

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "embedpipe-slurm"
    assert profile["embedpipe-slurm-array-jobs"] == "extract"
    # a key of the official plugin would be read by it, not by this executor: silently ignored
    assert not [key for key in profile if key.startswith("slurm-")], profile
