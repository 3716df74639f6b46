"""What the launch says about the full run's schedule, read when the DAG is built: how many extract jobs
run at once and one job's time limit. Standard library only (rules/common.smk imports it)."""

from __future__ import annotations

import re
from typing import Any


def first_attempt_minutes(raw: Any) -> int | None:
    """A runtime resource as the profile gives it (minutes: `2880`, or `2880 * attempt`, which retries
    scale), at the first attempt; None when it is not given or not of these forms."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw)
    match = re.fullmatch(r"\s*(\d+)\s*(?:\*\s*attempt|attempt\s*\*)?\s*", str(raw or ""))
    if not match and (match := re.fullmatch(r"\s*attempt\s*\*\s*(\d+)\s*", str(raw or ""))) is None:
        return None
    return int(match.group(1))


def jobs_at_once(executor: str | None, jobs: int | None, cores: int | None, extract_threads: int, shards: int,
                 gpus: int | None) -> tuple[int, str]:
    """(extract jobs at once, where that came from): the fewest of the shards, the launch's jobs (locally,
    cores over an extract job's threads) and the GPUs the user names (plan.gpus)."""
    limits = [(shards, f"{shards} shards")]
    if executor in (None, "local") or not jobs:
        if cores:
            limits.append((max(1, cores // max(extract_threads, 1)),
                           f"locally: {cores} cores over an extract job's {extract_threads} threads"))
    else:
        limits.append((jobs, f"the launch's jobs: {jobs}"))
    if gpus:
        limits.append((gpus, f"plan.gpus: {gpus}"))
    slots, basis = min(limits, key=lambda lb: lb[0])
    return max(slots, 1), basis
