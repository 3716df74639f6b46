"""The pieces of an array submission that are plain text and paths: torch- and Snakemake-free, so tests
read them directly.

Each array task runs its own job's Snakemake command. The official plugin (2.8.0) starts every task from
the first job's command and picks the task's real command inside it, so every task's outer Snakemake
checks, and on failure deletes, the first job's outputs (upstream issue #447). Here the batch script only
`exec`s the task's own script, chosen by SLURM_ARRAY_TASK_ID; each task script is one job's command.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ArrayTask:
    """One array member: its index in the array, the job's readable name and its Snakemake command."""

    index: int
    comment: str  # rule_<rule>_wildcards_<wildcards>, as a single job's --comment
    command: str  # the job's own `python -m snakemake --target-jobs ... --executor slurm-jobstep` line


def batch_script(task_dir: Path) -> str:
    """The array's batch script: the same for every task; SLURM sets SLURM_ARRAY_TASK_ID."""
    scripts = shlex.quote(str(task_dir))
    return "\n".join([
        "#!/bin/sh",
        "# embedpipe-slurm: each array task runs its own job's command (not the first task's)",
        f'task={scripts}/"$SLURM_ARRAY_TASK_ID".sh',
        'if [ ! -f "$task" ]; then echo "embedpipe-slurm: no command for array task $SLURM_ARRAY_TASK_ID ($task)" >&2; '
        "exit 1; fi",
        'exec /bin/sh "$task"',
        "",
    ])


def task_script(task: ArrayTask) -> str:
    """One task's script. The comment update makes `squeue`/`sacct` show the task's own rule and shard
    (an array has one --comment at submission); a cluster that refuses it loses only that."""
    comment = shlex.quote(task.comment)
    return "\n".join([
        "#!/bin/sh",
        f"# array task {task.index}: {task.comment}",
        f'scontrol update JobId="$SLURM_JOB_ID" Comment={comment} >/dev/null 2>&1 || true',
        f"exec {task.command}",
        "",
    ])


def write_task_scripts(task_dir: Path, tasks: Sequence[ArrayTask]) -> None:
    """Every task's script, written before the array is submitted (the tasks read them from the shared
    filesystem, as they read the workflow itself)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        path = task_dir / f"{task.index}.sh"
        tmp = path.with_suffix(".sh.tmp")
        tmp.write_text(task_script(task))
        tmp.replace(path)


def array_comment(rule: str, wildcards: Sequence[str]) -> str:
    """The array's comment at submission, before each running task sets its own: the rule and the range."""
    named = [w for w in wildcards if w]
    if not named:
        return f"rule_{rule}"
    if len(named) == 1:
        return f"rule_{rule}_wildcards_{named[0]}"
    return f"rule_{rule}_wildcards_{named[0]}..{named[-1]}"


def chunks(count: int, limit: int) -> list[tuple[int, int]]:
    """Array index ranges (first, last), 1-based, of at most `limit` tasks each."""
    limit = max(1, limit)
    return [(first, min(first + limit - 1, count)) for first in range(1, count + 1, limit)]


def task_log(logdir: Path, group_or_rule: str, jobid: str, index: int | str) -> Path:
    """The file SLURM writes for an array task: <logdir>/<rule>/<jobid>_<index>.log (an array has one
    --output pattern, so SLURM's own messages, a time limit or an out-of-memory kill, land there). With
    jobid "%A" and index "%a" it is that pattern."""
    return logdir / group_or_rule / f"{jobid}_{index}.log"


def link_task_log(logdir: Path, group_or_rule: str, wildcards: str, jobid: str, index: int) -> Path:
    """Make the shard's link to the task's log, <logdir>/<rule>/<wildcards>/<jobid>_<index>.log (dangling
    until the task starts); the real file's path."""
    real = task_log(logdir, group_or_rule, jobid, index)
    if wildcards:
        link = real.parent / wildcards / real.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path("..") / real.name)
    return real
