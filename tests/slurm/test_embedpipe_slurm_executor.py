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


class Resources(dict):
    """A job's resources as the plugin reads them: .get() and attributes."""

    def __getattr__(self, name):
        return self.get(name)


def fake_job(rule: str, wildcard: str, mem_mb: int = 2000, group: bool = False, disk_mb: int = 1000):
    resources = Resources(mem_mb=mem_mb, gpu=1, runtime=30, disk_mb=disk_mb)
    return SimpleNamespace(rule=SimpleNamespace(name=rule), name=rule, wildcards=[wildcard], threads=1,
                           resources=resources, is_group=lambda: group, jobid=wildcard)


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
    # Snakemake's disk_mb follows each shard's input size, and no sbatch option reads it: one array still
    executor.sent.clear()
    executor.run_jobs([fake_job("extract", "p10", disk_mb=1200), fake_job("extract", "p11", disk_mb=1900)])
    assert executor.sent == [("array", ["p10", "p11"])]


def test_a_ready_job_is_never_held_back_for_the_rest_of_its_rule_upstream_473():
    # 2.8.0 held back one ready job while the DAG had more of its rule; the scheduler had already counted
    # it as running, so its slot leaked. Here it goes out alone, now.
    executor = executor_with({"all"})  # while nine more of the rule are pending in the DAG
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


def submitting_executor(tmp_path: Path, max_array_size: int, refuse_call: int = 0):
    """An Executor whose submit_array runs for real against a fake sbatch on PATH (it records each call's
    arguments and script, prints the next job id, and refuses call number `refuse_call`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"""#!/bin/sh
n=$(($(cat {tmp_path}/calls 2>/dev/null || echo 0) + 1)); echo $n > {tmp_path}/calls
echo "$@" > {tmp_path}/args.$n; cat > {tmp_path}/script.$n
[ $n -eq {refuse_call} ] && {{ echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1; }}
echo $((4710 + n))
""")
    (bin_dir / "sbatch").chmod(0o755)
    executor = object.__new__(plugin.Executor)
    executor.events = []
    executor.logger = SimpleNamespace(debug=lambda m: None, info=lambda m: executor.events.append(("info", m)),
                                      warning=lambda m: executor.events.append(("warning", m)),
                                      error=lambda m, **kw: executor.events.append(("error", m)))
    executor.slurm_logdir = tmp_path / "logs" / "slurm"
    executor.run_uuid = "embedpipe_run"
    executor.workflow = SimpleNamespace(executor_settings=plugin.ExecutorSettings(), workdir_init=str(tmp_path))
    executor._failed_nodes, executor._submitted_job_clusters = set(), set()
    executor.max_array_size = max_array_size
    executor.get_account_arg = lambda job: iter(["-A embedpipe"])
    executor.get_partition_arg = lambda job: "-p gpu"
    executor.format_job_exec = lambda job: f"echo {job.wildcards[0]}"
    executor._report_job_submission_threadsafe = lambda info: executor.events.append(
        ("submitted", info.job.wildcards[0], info.external_jobid, info.aux["slurm_logfile"]))
    executor._report_job_error_threadsafe = lambda info, msg: executor.events.append(
        ("failed", info.job.wildcards[0], msg))
    return executor


def test_a_larger_run_goes_out_as_several_arrays_each_numbered_from_one(tmp_path, monkeypatch):
    executor = submitting_executor(tmp_path, max_array_size=2)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    executor.submit_array([fake_job("extract", s) for s in ("p10", "p11", "p12")])
    # MaxArraySize bounds the index: the second array is 1-1, not 3-3
    assert "--array=1-2" in (tmp_path / "args.1").read_text() and "--array=1-1" in (tmp_path / "args.2").read_text()
    rule_logs = tmp_path / "logs/slurm/rule_extract"
    assert [e[:4] for e in executor.events if e[0] == "submitted"] == [
        ("submitted", "p10", "4711_1", rule_logs / "4711_1.log"),
        ("submitted", "p11", "4711_2", rule_logs / "4711_2.log"),
        ("submitted", "p12", "4712_1", rule_logs / "4712_1.log")]
    assert os.readlink(rule_logs / "p12" / "4712_1.log") == "../4712_1.log"
    # the second array's task 1 is p12's command
    task = subprocess.run(["/bin/sh", "-s"], input=(tmp_path / "script.2").read_text(), capture_output=True,
                          text=True, env=os.environ | {"SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "9"})
    assert task.stdout == "p12\n"


def test_a_refused_array_fails_only_its_own_tasks_and_a_missing_link_fails_none(tmp_path, monkeypatch):
    executor = submitting_executor(tmp_path, max_array_size=2, refuse_call=2)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "logs/slurm/rule_extract").mkdir(parents=True)
    (tmp_path / "logs/slurm/rule_extract/p11").write_text("a file where the link's folder goes")
    executor.submit_array([fake_job("extract", s) for s in ("p10", "p11", "p12")])
    outcomes = [(e[0], e[1]) for e in executor.events if e[0] in ("submitted", "failed")]
    assert outcomes == [("submitted", "p10"), ("submitted", "p11"), ("failed", "p12")], executor.events
    assert "QOSMaxSubmitJobPerUserLimit" in [e for e in executor.events if e[0] == "failed"][0][2]
    assert any(e[0] == "warning" and "no log link for 4711_2" in e[1] for e in executor.events), executor.events


def test_task_scripts_of_old_runs_go_after_a_week_and_dangling_log_links_go(tmp_path):
    old, new = tmp_path / "arrays" / "old-run", tmp_path / "arrays" / "new-run"
    old.mkdir(parents=True), new.mkdir()
    os.utime(old, (0, 0))
    plugin.remove_old_task_scripts(tmp_path / "arrays")
    assert not old.exists() and new.exists()
    real = link_task_log(tmp_path / "logs", "rule_extract", "p10", "5", 1)
    link = tmp_path / "logs/rule_extract/p10/5_1.log"
    kept = link_task_log(tmp_path / "logs", "rule_extract", "p11", "5", 2)
    kept.write_text("kept")
    plugin.remove_dangling_links(tmp_path / "logs")
    assert not real.exists() and not link.is_symlink()
    assert (tmp_path / "logs/rule_extract/p11/5_2.log").read_text() == "kept"
