"""The launch's jobs at once and one job's time limit, as the plan reads them."""

from __future__ import annotations

from embedpipe.plan.launch import first_attempt_minutes, jobs_at_once


def test_a_runtime_is_its_first_attempts_minutes():
    assert first_attempt_minutes(2880) == 2880
    assert first_attempt_minutes("2880") == 2880
    assert first_attempt_minutes("2880 * attempt") == 2880
    assert first_attempt_minutes("attempt * 60") == 60
    assert first_attempt_minutes(None) is None and first_attempt_minutes("2h") is None


def test_jobs_at_once_is_the_fewest_of_shards_jobs_and_gpus():
    assert jobs_at_once("embedpipe-slurm", 100, None, 9, 10, None) == (10, "10 shards")
    assert jobs_at_once("embedpipe-slurm", 4, None, 9, 10, None) == (4, "the launch's jobs: 4")
    assert jobs_at_once("embedpipe-slurm", 100, None, 9, 10, 3) == (3, "plan.gpus: 3")
    slots, basis = jobs_at_once("local", None, 2, 2, 3, None)
    assert slots == 1 and "2 cores over an extract job's 2 threads" in basis
    assert jobs_at_once(None, None, None, 2, 3, None) == (3, "3 shards")
