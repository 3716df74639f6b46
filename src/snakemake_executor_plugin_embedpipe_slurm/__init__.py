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
import uuid
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

from .array_tasks import ArrayTask, array_comment, batch_script, chunks, link_task_log, write_task_scripts

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


def untested_versions() -> list[str]:
    return [f"{name} {version(name)} (tested: {tested})" for name, tested in TESTED.items() if version(name) != tested]


def submission_group(job: JobExecutorInterface) -> tuple:
    """Jobs that may share one array: an array has one set of sbatch options (the first job's), so its
    members must ask for the same resources, e.g. not a retry's doubled memory beside a first try's."""
    resources = tuple(sorted((name, str(value)) for name, value in job.resources.items()))
    return job.rule.name, job.threads, resources


class Executor(SlurmExecutor):
    def __post_init__(self, test_mode: bool = False) -> None:
        super().__post_init__(test_mode)
        # check_active_jobs calls the module's function; this executor is the only one in the process
        official.query_job_status_sacct = status_query_by_job_id
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
        params = {
            "run_uuid": self.run_uuid,
            "slurm_logfile": self.slurm_logdir / group_or_rule / "%A_%a.log",
            "comment_str": array_comment(rule, wildcards),
            "account": next(self.get_account_arg(jobs[0])),
            "partition": self.get_partition_arg(jobs[0]),
            "workdir": self.workflow.workdir_init,
        }
        call = get_submit_command(jobs[0], params, settings=self.workflow.executor_settings,
                                  failed_nodes=self._failed_nodes)
        call += set_gres_string(jobs[0])
        task_dir = self.array_task_root() / uuid.uuid4().hex[:12]
        write_task_scripts(task_dir, [
            ArrayTask(index, f"rule_{rule}_wildcards_{wc}" if wc else f"rule_{rule}", self.format_job_exec(job))
            for index, (job, wc) in enumerate(zip(jobs, wildcards, strict=True), start=1)
        ])
        script = batch_script(task_dir)
        for first, last in chunks(len(jobs), self.max_array_size):
            members = jobs[first - 1:last]
            sbatch = f"{call} --array={first}-{last}"
            self.logger.debug(f"sbatch call: {sbatch}")
            proc = subprocess.run(sbatch, shell=True, input=script, text=True, capture_output=True)
            if proc.returncode != 0:
                reason = (proc.stderr or proc.stdout).strip()
                self.logger.error(f"sbatch refused the array of rule {rule} (tasks {first}-{last}): {reason}\n"
                                  f"    sbatch call: {sbatch}")
                for job in members:
                    self._report_job_error_threadsafe(SubmittedJobInfo(job), f"sbatch refused its array: {reason}")
                continue
            slurm_jobid = validate_or_get_slurm_job_id(proc.stdout.strip().split(";")[0], proc.stdout)
            for index, job in enumerate(members, start=first):
                logfile = link_task_log(self.slurm_logdir, group_or_rule, wildcards[index - 1], slurm_jobid, index)
                self._report_job_submission_threadsafe(
                    SubmittedJobInfo(job, external_jobid=f"{slurm_jobid}_{index}", aux={"slurm_logfile": logfile}))
            shown = ", ".join(w or "-" for w in wildcards[first - 1:last])
            self.logger.info(f"Submitted rule {rule} as SLURM job array {slurm_jobid} (tasks {first}-{last}: {shown}); "
                             f"logs in {self.slurm_logdir / group_or_rule}/<wildcards>/{slurm_jobid}_<task>.log")
        cluster = jobs[0].resources.get("cluster") or jobs[0].resources.get("clusters") \
            or jobs[0].resources.get("slurm_cluster")
        if cluster:
            self._submitted_job_clusters.add(cluster)

    def shutdown(self) -> None:
        super().shutdown()
        # the task scripts of this run's arrays: every task has ended (or was cancelled) by now
        shutil.rmtree(self.array_task_root(), ignore_errors=True)
