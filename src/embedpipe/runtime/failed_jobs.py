"""What failed, in one line per job: the Snakefile's `onerror:` reads Snakemake's own log for the
failed jobs and each job's `log:` file for its reason.

Snakemake's error block names the rule and its log but says `message: None` and repeats the job's
whole command (700 characters for extract); the reason is in the job's log, often after thousands of
progress lines. `--show-failed-logs` would print those logs whole. Standard library only: the
Snakefile imports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from embedpipe.runtime.error_text import clean_message
from embedpipe.runtime.runinfo import LOG_PREFIX

TAIL_BYTES = 64 * 1024  # a reason is at a log's end; an extract log of a 50,000-file shard is megabytes
MAX_REASON = 300
_ERROR_BLOCK = re.compile(r"^Error in rule (\S+?):?$")
_LOG_LINE = re.compile(r"^\s+log: (.*?)(?: \(check log file\(s\) for error details\))?$")
# setup_logging's format: "2026-01-01 12:00:00,123 ERROR extract: the reason"
_LOGGED = re.compile("^" + LOG_PREFIX + r"(?P<message>.*)$")
_REASON_LEVELS = ("ERROR", "CRITICAL")
# what SLURM writes into a job's own log when it ends the job (time limit, memory, preemption)
_SLURM = re.compile(r"slurmstepd: error: \**\s*(.*?)\s*\**$")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)\b:?(.*)$")


@dataclass(frozen=True)
class FailedJob:
    rule: str
    logs: tuple[str, ...]


def failed_jobs(snakemake_log: str) -> list[FailedJob]:
    """The `Error in rule X:` blocks of Snakemake's log, each job once, in the order they first failed.
    A retried job fails once per attempt, each with its own SLURM log after the rule's: a job is its
    rule and its rule's log, and its last attempt is kept."""
    jobs: dict[tuple[str, tuple[str, ...]], FailedJob] = {}
    rule: str | None = None
    logs: tuple[str, ...] = ()
    for line in [*snakemake_log.splitlines(), ""]:
        if rule is not None and (not line.startswith(" ") or not line.strip()):
            jobs[(rule, logs[:1])] = FailedJob(rule, logs)
            rule, logs = None, ()
        if match := _ERROR_BLOCK.match(line.strip()):
            rule = match.group(1)
        elif rule is not None and (match := _LOG_LINE.match(line)):
            logs = tuple(path.strip() for path in match.group(1).split(", ") if path.strip())
    return list(jobs.values())


def reason_of(log_text: str) -> str | None:
    """A job log's reason in one line: whichever comes last of the last ERROR line the scripts log
    (runinfo.setup_logging's format) and the exception a traceback ends with; else the last line
    (a shell's own message, a kill). None for an empty log."""
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    if not lines:
        return None
    for i in range(len(lines) - 1, -1, -1):
        if (match := _LOGGED.match(lines[i])) and match.group("level") in _REASON_LEVELS:
            return _one_line(match.group("message"))
        if _EXCEPTION.match(lines[i]) and _in_traceback(lines, i):
            return _one_line(lines[i])
    return _one_line(lines[-1])


def _in_traceback(lines: list[str], i: int) -> bool:
    """An exception line ends a traceback: the lines above it, up to `Traceback`, are indented."""
    for line in reversed(lines[:i]):
        if line.startswith("Traceback"):
            return True
        if not line.startswith(" "):
            return False
    return False


def _one_line(text: str) -> str:
    # a progress bar's carriage returns leave its last state in front of the line
    line = clean_message(text.rsplit("\r", 1)[-1])
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def read_tail(path: str, limit: int = TAIL_BYTES) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
        return f.read().decode("utf-8", errors="replace")


def failure_lines(jobs: Iterable[FailedJob], label: Callable[[FailedJob], str]) -> list[str]:
    """`<label> failed: <reason> (log: <path>)` per job; `label` names the job (`extract p11`)."""
    lines = []
    for job in jobs:
        log = job.logs[0] if job.logs else None
        reason = None
        if log is not None:
            try:
                reason = reason_of(read_tail(log))
            except OSError as exc:
                reason = f"its log cannot be read ({exc.strerror})"
        # the executor's own logs (SLURM's) after the rule's: a job SLURM ended says so only there
        if ended := next(filter(None, map(_scheduler_reason, job.logs[1:])), None):
            reason = f"{ended}; {reason}" if reason else ended
        where = f" (log: {log})" if log else " (the rule has no log: see Snakemake's output above)"
        lines.append(f"{label(job)} failed: {reason or 'its log is empty'}{where}")
    return lines


def _scheduler_reason(path: str) -> str | None:
    try:
        lines = read_tail(path).splitlines()
    except OSError:
        return None
    found = [m.group(1) for line in lines if (m := _SLURM.search(line.strip()))]
    return f"SLURM: {_one_line(found[-1])}" if found else None


def wildcards_from(log: str, pattern: str) -> dict[str, str] | None:
    """The wildcards of a rule's log pattern (`logs/demo/extract/{shard}.log`) in one of its logs."""
    parts = re.split(r"\{(\w+)(?:,[^}]*)?\}", pattern)
    seen: set[str] = set()
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        else:  # a wildcard used twice is the same value twice
            regex += f"(?P={part})" if part in seen else f"(?P<{part}>.+)"
            seen.add(part)
    match = re.fullmatch(regex, log)
    return match.groupdict() if match else None
