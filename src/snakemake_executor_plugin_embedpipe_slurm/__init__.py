"""embedpipe's SLURM executor: snakemake-executor-plugin-slurm with job arrays that work.

`executor: embedpipe-slurm` in profiles/slurm. Everything is the official plugin's (its settings too, spelled
`--embedpipe-slurm-<setting>`), except two methods that carry fixes for open upstream issues
(UPSTREAM.md has the notes to propose them):

- run_array_jobs: each array task runs its own job's Snakemake command, picked by SLURM_ARRAY_TASK_ID
  (#447: in 2.8.0 every task's outer Snakemake is the first job's, so it checks, and on failure deletes,
  the first shard's outputs); a task's log is also linked under its shard, and its comment names it.
- run_jobs: every job it is handed is submitted at once, as one array per rule and resources (#473: 2.8.0
  holds back a rule's jobs while fewer are ready than the DAG has, but the scheduler already counted them
  as running, so their -j slots leak until it selects nothing).
- the sacct status query lists jobs by JobID, not JobIdRaw: an array task's raw id is a number of its own
  and 2.8.0 looked `<array>_<task>` up as `<array>`, the raw id of one task (the last), so every task of
  an array took that task's state (found on the test cluster: finished shards reported failed).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import snakemake_executor_plugin_slurm as official
from snakemake_executor_plugin_slurm import Executor as SlurmExecutor
from snakemake_executor_plugin_slurm import ExecutorSettings as SlurmExecutorSettings
from snakemake_executor_plugin_slurm import common_settings  # noqa: F401  (the registry reads it here)
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import get_job_wildcards, set_gres_string
from snakemake_executor_plugin_slurm.validation import validate_or_get_slurm_job_id, validate_slurm_extra
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from .array_tasks import (
    ArrayTask,
    array_comment,
    batch_script,
    chunks,
    link_task_log,
    task_log,
    write_task_scripts,
)

# The versions whose run_jobs/run_array_jobs these replace, and that tests/workflow/test_slurm.py ran.
TESTED = {"snakemake-executor-plugin-slurm": "2.8.0", "snakemake-executor-plugin-slurm-jobstep": "0.6.1"}


@dataclass
class ExecutorSettings(SlurmExecutorSettings):
    """The official plugin's settings, unchanged."""


OFFICIAL_STATUS_QUERY = official.query_job_status_sacct
RAW_IDS, TASK_IDS = "--format=JobIdRaw,State", "--format=JobID,State"


def status_query_by_job_id(run_id: str) -> str:
    """The official sacct status query, listing array tasks as <array>_<task> (a pending rest of an array
    shows as <array>_[2-9] and matches no task: it stays active, as it is)."""
    command = OFFICIAL_STATUS_QUERY(run_id)
    if RAW_IDS not in command:  # another plugin version: refuse rather than read states from wrong rows
        raise WorkflowError(f"embedpipe-slurm: the SLURM plugin's status query changed ({command!r}); "
                            f"update {__name__} for it")
    return command.replace(RAW_IDS, TASK_IDS)


TASK_SCRIPTS_KEPT_S = 7 * 86400


def remove_old_task_scripts(root: Path, now: float | None = None) -> None:
    """Task scripts of runs that ended without removing theirs, after a week (no task waits that long)."""
    now = time.time() if now is None else now
    for run in root.glob("*") if root.is_dir() else ():
        if now - run.stat().st_mtime > TASK_SCRIPTS_KEPT_S:
            shutil.rmtree(run, ignore_errors=True)


def remove_dangling_links(logdir: Path) -> None:
    """The per-shard links to array task logs the plugin deleted (keep-successful-logs off)."""
    for link in logdir.glob("*/*/*.log") if logdir.is_dir() else ():
        if link.is_symlink() and not link.exists():
            link.unlink(missing_ok=True)


def untested_versions() -> list[str]:
    return [f"{name} {version(name)} (tested: {tested})" for name, tested in TESTED.items() if version(name) != tested]


# The resources the official plugin turns into sbatch options (get_submit_command, set_gres_string).
# Others (Snakemake's disk_mb, from the inputs' size; tmpdir) differ from shard to shard and reach no
# sbatch option: grouping by them would break a run's array into single jobs.
SBATCH_RESOURCES = ("cluster", "clusters", "constraint", "cpus_per_gpu", "cpus_per_task", "gpu", "gpu_model", "gres",
                    "mem_mb", "mem_mb_per_cpu", "mpi", "nodes", "qos", "runtime", "slurm_account", "slurm_cluster",
                    "slurm_extra", "slurm_partition", "tasks", "tasks_per_gpu", "tasks_per_node")


def submission_group(job: JobExecutorInterface) -> tuple:
    """Jobs that may share one array: an array has one set of sbatch options (the first job's), so its
    members must ask for the same ones, e.g. not a retry's doubled memory beside a first try's."""
    resources = tuple((name, str(job.resources.get(name))) for name in SBATCH_RESOURCES)
    return job.rule.name, job.threads, resources


class Executor(SlurmExecutor):
    def __post_init__(self, test_mode: bool = False) -> None:
        super().__post_init__(test_mode)
        # check_active_jobs calls the module's function; this executor is the only one in the process.
        # Asked once now: a plugin whose query changed stops the run before anything is submitted.
        status_query_by_job_id(self.run_uuid)
        official.query_job_status_sacct = status_query_by_job_id
        remove_old_task_scripts(self.array_task_root().parent)
        if untested := untested_versions():
            self.logger.warning("embedpipe-slurm replaces array submission of the official SLURM plugin; it was "
                                f"tested with other versions than these: {', '.join(untested)}")

    def array_task_root(self) -> Path:
        return Path(self.workflow.workdir_init) / ".snakemake" / "slurm_arrays" / self.run_uuid

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        self.remember_event_loop()
        arrays: dict[tuple, list[JobExecutorInterface]] = {}
        for job in jobs:
            if job.is_group() or not ({"all", job.rule.name} & self.array_jobs):
                self._submit_job(job)
            else:
                arrays.setdefault(submission_group(job), []).append(job)
        for members in arrays.values():
            if len(members) == 1:
                self._submit_job(members[0])
            else:
                self._submit_array_jobs(members)

    def remember_event_loop(self) -> None:
        """What the official run_jobs does first: submissions report back to the loop that called it."""
        import asyncio

        if self._main_event_loop is None:
            try:
                self._main_event_loop = asyncio.get_running_loop()
            except RuntimeError:
                self._main_event_loop = None

    def run_array_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        try:
            self.submit_array(jobs)
        except Exception as exc:  # a thread of the submission pool: every member must hear of it
            self.logger.error(f"array submission of rule {jobs[0].rule.name} failed: {exc}", exc_info=True)
            for job in jobs:
                self._report_job_error_threadsafe(SubmittedJobInfo(job), f"array submission failed: {exc}")

    def submit_array(self, jobs: list[JobExecutorInterface]) -> None:
        rule = jobs[0].name
        group_or_rule = f"rule_{rule}"
        wildcards = [get_job_wildcards(job) for job in jobs]
        for job in jobs:
            validate_slurm_extra(job)
        (self.slurm_logdir / group_or_rule).mkdir(parents=True, exist_ok=True)
        cluster = jobs[0].resources.get("cluster") or jobs[0].resources.get("clusters") \
            or jobs[0].resources.get("slurm_cluster")
        if cluster:
            self._submitted_job_clusters.add(cluster)
        reported: set[int] = set()  # members SLURM has: a later failure must not report them failed too
        try:
            # Each array numbers its tasks from 1: SLURM's MaxArraySize bounds the index, not the count,
            # so a second array of --array=1001-2000 would be refused.
            for first, last in chunks(len(jobs), self.max_array_size):
                members = list(range(first - 1, last))
                self.submit_chunk(rule, [jobs[i] for i in members], [wildcards[i] for i in members],
                                  lambda n, i0=first - 1: reported.add(i0 + n))
        except Exception as exc:
            self.logger.error(f"array submission of rule {rule} failed: {exc}", exc_info=True)
            for index, job in enumerate(jobs):
                if index not in reported:
                    self._report_job_error_threadsafe(SubmittedJobInfo(job), f"array submission failed: {exc}")

    def submit_chunk(self, rule: str, jobs: list[JobExecutorInterface], wildcards: list[str],
                     reported: Callable[[int], None]) -> None:
        """One `sbatch --array=1-<len(jobs)>`; `reported(i)` once member i is SLURM's."""
        group_or_rule = f"rule_{rule}"
        params = {
            "run_uuid": self.run_uuid,
            "slurm_logfile": task_log(self.slurm_logdir, group_or_rule, "%A", "%a"),
            "comment_str": array_comment(rule, wildcards),
            "account": next(self.get_account_arg(jobs[0])),
            "partition": self.get_partition_arg(jobs[0]),
            "workdir": self.workflow.workdir_init,
        }
        call = get_submit_command(jobs[0], params, settings=self.workflow.executor_settings,
                                  failed_nodes=self._failed_nodes)
        sbatch = f"{call}{set_gres_string(jobs[0])} --array=1-{len(jobs)}"
        task_dir = self.array_task_root() / uuid.uuid4().hex[:12]
        write_task_scripts(task_dir, [
            ArrayTask(index, f"rule_{rule}_wildcards_{wc}" if wc else f"rule_{rule}", self.format_job_exec(job))
            for index, (job, wc) in enumerate(zip(jobs, wildcards, strict=True), start=1)
        ])
        self.logger.debug(f"sbatch call: {sbatch}")
        proc = subprocess.run(sbatch, shell=True, input=batch_script(task_dir), text=True, capture_output=True)
        if proc.returncode != 0:
            reason = (proc.stderr or proc.stdout).strip()
            self.logger.error(f"sbatch refused the array of rule {rule} ({len(jobs)} tasks): {reason}\n"
                              f"    sbatch call: {sbatch}")
            for n, job in enumerate(jobs):
                reported(n)
                self._report_job_error_threadsafe(SubmittedJobInfo(job), f"sbatch refused its array: {reason}")
            return
        slurm_jobid = validate_or_get_slurm_job_id(proc.stdout.strip().split(";")[0], proc.stdout)
        for index, (job, wc) in enumerate(zip(jobs, wildcards, strict=True), start=1):
            logfile = task_log(self.slurm_logdir, group_or_rule, slurm_jobid, index)
            reported(index - 1)
            self._report_job_submission_threadsafe(
                SubmittedJobInfo(job, external_jobid=f"{slurm_jobid}_{index}", aux={"slurm_logfile": logfile}))
            try:  # a convenience: a filesystem without links loses only the link
                link_task_log(self.slurm_logdir, group_or_rule, wc, slurm_jobid, index)
            except OSError as exc:
                self.logger.warning(f"no log link for {slurm_jobid}_{index} under {group_or_rule}/{wc}: {exc}")
        shown = ", ".join(w or "-" for w in wildcards)
        self.logger.info(f"Submitted rule {rule} as SLURM job array {slurm_jobid} (tasks 1-{len(jobs)}: {shown}); "
                         f"logs in {self.slurm_logdir / group_or_rule}/<wildcards>/{slurm_jobid}_<task>.log")

    def shutdown(self) -> None:
        super().shutdown()
        # This run's task scripts, once no task of it can start again (a requeued or pending task reads
        # its script; after an executor error Snakemake shuts down without cancelling them): otherwise
        # they go with a later run's clean-up of old ones.
        if not self.active_jobs:
            shutil.rmtree(self.array_task_root(), ignore_errors=True)
        if not self.workflow.executor_settings.keep_successful_logs:
            remove_dangling_links(self.slurm_logdir)
