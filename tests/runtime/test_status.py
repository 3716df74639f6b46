"""`python -m embedpipe status`: shard states, the ETA arithmetic and the table, from hand-made records;
and the command itself, on a run folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.status_watch import status_command
from support.workflow import run_env

from embedpipe.runtime.status import main, render, run_status
from embedpipe.store.progress import FAILED, FINISHED, RUNNING, STOPPED, ShardProgress, progress_path, write_progress

NOW = 1_800_000_000.0


def make_run(root: Path, totals: dict[str, int], records: dict[str, ShardProgress] = (),
             finished: tuple[str, ...] = ()) -> Path:
    """A run folder as the jobs leave it: manifests, shard files of the finished, progress records."""
    (root / "manifests").mkdir(parents=True)
    (root / "embeddings").mkdir()
    for shard, n in totals.items():
        (root / "manifests" / f"{shard}.txt").write_text("".join(f"{shard}/f{i}.mp4\n" for i in range(n)))
    (root / "manifests" / "exclusions.json").write_text("{}")  # not a shard
    for shard in finished:
        (root / "embeddings" / f"{shard}.parquet").write_bytes(b"PAR1")
    for shard, record in dict(records).items():
        write_progress(progress_path(root, shard), record)
    return root


def record(shard: str, state: str, done: int, total: int, rate: float = 0.0, age_s: float = 3.0,
           **more) -> ShardProgress:
    return ShardProgress(shard=shard, state=state, total=total, done=done, rate=rate, updated=NOW - age_s,
                         started=NOW - 3600, host="gpu-node-07", pid=4242, slurm_job=f"4711_{shard[-1]}", **more)


@pytest.fixture
def mixed_run(tmp_path) -> Path:
    return make_run(tmp_path / "run", {"p10": 100, "p11": 200, "p12": 300, "p13": 400, "p14": 50, "p15": 60},
                    {"p10": record("p10", FINISHED, 100, 100, rate=2.0, age_s=4000),
                     "p11": record("p11", RUNNING, 50, 200, rate=1.0, errors={"decode:InvalidData": 2,
                                                                               "decode:DecodeTimeout": 1}),
                     "p12": record("p12", RUNNING, 60, 300, rate=3.0, age_s=7 * 60),
                     "p14": record("p14", FAILED, 10, 50, rate=1.0,
                                   message="ModelFailure: the model failed on all 4 files of a batch"),
                     "p15": record("p15", STOPPED, 30, 60, rate=1.5, message="stopped by signal 15")},
                    finished=("p10",))


def test_every_state_from_the_files(mixed_run):
    status = run_status(mixed_run, now=NOW)
    got = {s.shard: (s.state, s.done, s.total, s.errors) for s in status.shards}
    assert got == {"p10": ("finished", 100, 100, 0), "p11": ("running", 50, 200, 3), "p12": ("stale", 60, 300, 0),
                   "p13": ("pending", 0, 400, 0), "p14": ("failed", 10, 50, 0), "p15": ("preempted", 30, 60, 0)}
    by = {s.shard: s for s in status.shards}
    assert by["p11"].eta_s == pytest.approx(150 / 1.0) and by["p12"].eta_s is None
    assert by["p12"].note == "no update for 7 min: the job may have died (check squeue / its log)"
    assert by["p14"].note.startswith("ModelFailure: the model failed")
    assert by["p11"].job == "4711_1" and by["p11"].host == "gpu-node-07"
    assert status.failed and not status.over


def test_the_run_eta_is_the_planners_arithmetic(mixed_run):
    # running: p11 (150 left at 1/s); to run: p12 stale (240 left), p13 pending (400), p15 preempted (30);
    # mean of the measured rates (2, 1, 3, 1, 1.5) = 1.7, one shard running; p14 failed: not counted.
    assert run_status(mixed_run, now=NOW).eta_s() == pytest.approx(150 / 1.0 + (240 + 400 + 30) / (1.7 * 1))


def test_two_running_shards_share_the_pending_work(tmp_path):
    run = make_run(tmp_path, {"a": 100, "b": 100, "c": 400},
                   {"a": record("a", RUNNING, 40, 100, rate=2.0), "b": record("b", RUNNING, 80, 100, rate=4.0)})
    assert run_status(run, now=NOW).eta_s() == pytest.approx((60 + 20) / 6.0 + 400 / (3.0 * 2))


def test_no_rate_yet_no_eta(tmp_path):
    run = make_run(tmp_path, {"a": 10, "b": 10}, {"a": record("a", RUNNING, 0, 10)})
    status = run_status(run, now=NOW)
    assert status.eta_s() is None and "run ETA -" in render(status)


def test_the_table(mixed_run):
    text = render(run_status(mixed_run, now=NOW))
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("shard"))
    assert lines[head].split() == ["shard", "state", "done/total", "rate", "ETA", "errors", "updated", "host", "job"]
    rows = {line.split()[0]: line for line in lines[head + 1: head + 7]}
    assert rows["p11"].split() == ["p11", "running", "50/200", "1.00/s", "2", "min", "3", "3", "s", "ago",
                                   "gpu-node-07", "4711_1"]
    assert rows["p13"].split() == ["p13", "pending", "0/400", "-", "-", "0", "-", "-", "-"]
    assert "  p12: stale: no update for 7 min" in text
    assert "  p14: failed: ModelFailure: the model failed on all 4 files of a batch" in text
    assert "  p15: preempted: stopped by signal 15; waiting for its requeue" in text
    assert lines[-1] == ("files 250/1110 (22.5%); shards: 1 running, 1 pending, 1 preempted, 1 stale, 1 failed, "
                         "1 finished; run ETA 9 min (failed shards not counted)")
    # columns line up: each row's state starts where the header's does
    assert len({line.index(line.split()[1]) for line in lines[head: head + 7]}) == 1


def test_a_finished_record_without_its_shard_file_is_pending_again(tmp_path):
    run = make_run(tmp_path, {"a": 5}, {"a": record("a", FINISHED, 5, 5, rate=1.0)})
    (shard,) = run_status(run, now=NOW).shards
    assert shard.state == "pending" and "outputs are gone" in shard.note


def test_a_fresh_running_record_beside_a_shard_file_is_a_rerun(tmp_path):
    run = make_run(tmp_path, {"a": 5}, {"a": record("a", RUNNING, 2, 5, rate=1.0)}, finished=("a",))
    assert run_status(run, now=NOW).shards[0].state == "running"
    assert run_status(run, now=NOW + 3600).shards[0].state == "finished"  # a kill after the file was written


def test_the_exit_status_and_the_shard_list(mixed_run, tmp_path, capsys):
    assert main([str(mixed_run)]) == 1  # p14 failed
    assert "p14" in capsys.readouterr().out
    assert main([str(mixed_run), "--shards-json", json.dumps(["p10", "p11"])]) == 0
    out = capsys.readouterr().out
    assert "p11" in out and "p14" not in out
    assert main([str(tmp_path / "absent")]) == 2
    assert main([str(make_run(tmp_path / "empty", {}))]) == 0
    assert "no manifest" in capsys.readouterr().out


def test_watch_stops_once_every_shard_is_over(tmp_path, capsys):
    run = make_run(tmp_path, {"a": 5}, {"a": record("a", FINISHED, 5, 5, rate=1.0)}, finished=("a",))
    assert main([str(run), "--watch", "0.01"]) == 0
    assert capsys.readouterr().out.startswith("\033[H\033[2J")


def test_python_m_embedpipe_status(mixed_run):
    proc = status_command(mixed_run, env=run_env())
    assert proc.returncode == 1, proc.stderr
    assert "p11    running" in proc.stdout and "run ETA" in proc.stdout
    listed = status_command(mixed_run.parent, "--help", env=run_env())
    assert listed.returncode == 0 and "--watch" in listed.stdout


def test_a_job_without_a_rate_yet_runs_at_the_mean(tmp_path):
    run = make_run(tmp_path, {"a": 100, "b": 100, "c": 50},
                   {"a": record("a", FINISHED, 100, 100, rate=4.0), "b": record("b", RUNNING, 0, 100)},
                   finished=("a",))
    assert run_status(run, now=NOW).eta_s() == pytest.approx(100 / 4.0 + 50 / 4.0)


def test_the_watcher_sees_each_state_a_shard_goes_through(tmp_path):
    from support.status_watch import StatusWatcher

    run = make_run(tmp_path, {"a": 5})
    with StatusWatcher(run, every_s=0.01) as watch:
        for state in (RUNNING, STOPPED, RUNNING):
            write_progress(progress_path(run, "a"), record("a", state, 2, 5, rate=1.0, age_s=NOW - time.time()))
            deadline = time.monotonic() + 10
            while (watch.last is None or watch.last.shards[0].state != {STOPPED: "preempted"}.get(state, state)):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        write_progress(progress_path(run, "a"), record("a", FINISHED, 5, 5, rate=1.0))
        (run / "embeddings" / "a.parquet").write_bytes(b"PAR1")
    assert {("a", "pending", ""), ("a", "running", "4711_a"), ("a", "preempted", "4711_a")} <= watch.seen
    assert watch.last.shards[0].state == "finished"
