"""The progress file a real extract job writes (store/progress.py), and what `status` makes of it after
the job finishes, is killed outright, or is stopped by SIGTERM (a preemption)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.status_watch import wait_for_record
from support.workflow import SCRIPTS, run_env, run_script

from embedpipe.discover.scan import scan_files
from embedpipe.extract.progress_report import ProgressReport
from embedpipe.runtime.status import main as status_main
from embedpipe.runtime.status import run_status
from embedpipe.store.progress import FAILED, FINISHED, RUNNING, STALE_AFTER_S, STOPPED, progress_path, read_progress

HANG = "p10/zzzz/hang.mp4"  # a FIFO, last in the manifest: the job waits on it until it is stopped


def extract_argv(tree: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "tiny", "--model_path", str(model), "--input_dir", str(tree), "--shard", "p10",
            "--manifest", str(out / "manifests" / "p10.txt"), "--output", str(out / "embeddings" / "p10.parquet"),
            "--device", "cpu", *extra]


def with_manifest(out: Path, keys: list[str]) -> Path:
    (out / "manifests").mkdir(parents=True)
    (out / "manifests" / "p10.txt").write_text("".join(f"{k}\n" for k in keys))
    return out


@pytest.fixture(scope="module")
def hanging_tree(video_tree, tmp_path_factory) -> tuple[Path, list[str]]:
    """The fixture's videos (one broken) and, after them, a FIFO no decode returns from."""
    root = tmp_path_factory.mktemp("hanging")
    keys = scan_files(video_tree, [".mp4"], subdir="p10")
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video_tree / key, root / key)
    (root / HANG).parent.mkdir(parents=True)
    os.mkfifo(root / HANG)
    return root, [*keys, HANG]


def test_a_finished_shard_leaves_a_finished_record_with_its_stats(video_tree, tiny_model, tmp_path):
    keys = scan_files(video_tree, [".mp4"], subdir="p10")
    out = with_manifest(tmp_path, keys)
    run_script("extract.py", *extract_argv(video_tree, tiny_model, out, "--batch_size", "4", "--num_workers", "1"))
    record = read_progress(progress_path(out, "p10"))
    assert record.state == FINISHED and record.message is None
    assert record.done == record.total == len(keys) == record.embedded_now
    assert record.errors == {"decode:" + record_error_type(out): 1}  # the truncated video
    assert record.rate > 0 and record.seconds.decode > 0 and record.seconds.model > 0 and record.seconds.write > 0
    wall = record.updated - record.started
    assert record.seconds.decode + record.seconds.model + record.seconds.write < wall
    assert record.rate > record.embedded_now / wall  # the start-up (model loading) is not in the rate
    assert record.peak_rss_mb > 100 and record.gpu is None and record.peak_gpu_memory_gib is None
    assert record.device == "cpu" and record.batch_size == 4 and record.host and record.slurm_job is None
    status = run_status(out)
    assert [(s.shard, s.state, s.done, s.total, s.errors) for s in status.shards] == [
        ("p10", "finished", len(keys), len(keys), 1)]

    # Its outputs deleted (Snakemake does so to a job it saw fail): the rerun restores them, and says so.
    (out / "embeddings" / "p10.parquet").unlink()
    run_script("extract.py", *extract_argv(video_tree, tiny_model, out, "--batch_size", "4"))
    again = read_progress(progress_path(out, "p10"))
    assert again.state == FINISHED and again.done == again.total == len(keys) and again.embedded_now == 0
    assert again.started > record.started


def record_error_type(out: Path) -> str:
    import pyarrow.parquet as pq

    return pq.read_table(out / "embeddings" / "p10.errors.parquet").column("error_type")[0].as_py()


def start_hanging_job(tree: Path, keys: list[str], model: Path, out: Path, workers: int) -> subprocess.Popen:
    with_manifest(out, keys)
    argv = extract_argv(tree, model, out, "--batch_size", "1", "--save_every", "1", "--num_workers", str(workers),
                        "--decode_timeout_s", "600")
    return subprocess.Popen([sys.executable, str(SCRIPTS / "extract.py"), *argv], env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=open(out / "job.log", "w"))  # noqa: SIM115


def test_a_job_killed_mid_shard_reads_running_then_stale(hanging_tree, tiny_model, tmp_path):
    tree, keys = hanging_tree
    job = start_hanging_job(tree, keys, tiny_model, tmp_path, workers=0)
    try:
        # Every file before the FIFO done: the job now waits on it, its heartbeat still writing.
        record = wait_for_record(progress_path(tmp_path, "p10"), lambda r: r.done >= len(keys) - 1, job)
        beat = wait_for_record(progress_path(tmp_path, "p10"), lambda r: r.updated > record.updated, job)
        assert beat.state == RUNNING and beat.done == len(keys) - 1 and beat.total == len(keys)
        assert beat.seconds.decode > 0 and sum(beat.errors.values()) == 1  # the truncated video
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(60)
    last = read_progress(progress_path(tmp_path, "p10"))
    assert last.state == RUNNING  # nothing more was written
    (shard,) = run_status(tmp_path, now=last.updated + 1).shards
    assert (shard.state, shard.done, shard.total) == ("running", len(keys) - 1, len(keys))
    assert shard.eta_s is not None and shard.host == last.host
    (shard,) = run_status(tmp_path, now=last.updated + STALE_AFTER_S + 1).shards
    assert shard.state == "stale" and "may have died" in shard.note
    (shard,) = run_status(tmp_path, now=last.updated + 2, stale_after_s=1).shards  # the threshold is a parameter
    assert shard.state == "stale"


def test_a_job_stopped_by_sigterm_reads_preempted(hanging_tree, tiny_model, tmp_path):
    tree, keys = hanging_tree
    job = start_hanging_job(tree, keys, tiny_model, tmp_path, workers=1)
    try:
        wait_for_record(progress_path(tmp_path, "p10"), lambda r: r.done >= len(keys) - 1, job)
        job.send_signal(signal.SIGTERM)
        assert job.wait(120) == 128 + signal.SIGTERM, (tmp_path / "job.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
    record = read_progress(progress_path(tmp_path, "p10"))
    assert record.state == STOPPED and "signal 15" in record.message
    assert record.done == len(keys) - 1 and sum(record.errors.values()) == 1
    (shard,) = run_status(tmp_path).shards
    assert shard.state == "preempted" and "requeue" in shard.note
    assert run_status(tmp_path).eta_s() is not None  # its files counted at the rate it had


def test_a_failure_is_one_line_and_an_unwritable_folder_does_not_stop_the_job(tmp_path, caplog):
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the progress folder would be")
    report = ProgressReport(blocked / "progress" / "p10.json", "p10", interval_s=0.05)
    report.begin(10)
    report.resumed(3, 1, Counter({"decode:InvalidData": 2}))
    report.processed = 4
    report.end(FAILED, "ModelFailure: the model failed\n  on all 4 files")
    assert caplog.text.count("cannot write the progress file") == 1  # once, however often it tried

    report = ProgressReport(tmp_path / "progress" / "p10.json", "p10", interval_s=0.05)
    report.begin(10)
    report.resumed(3, 1, Counter({"decode:InvalidData": 2}))
    report.processed = 4
    report.end(FAILED, "ModelFailure: the model failed\n  on all 4 files")
    record = read_progress(tmp_path / "progress" / "p10.json")
    assert (record.state, record.done, record.total, record.reused) == (FAILED, 7, 10, 1)
    assert record.message == "ModelFailure: the model failed on all 4 files"
    assert record.errors == {"decode:InvalidData": 2}


def test_a_failed_job_says_why_in_one_line_and_status_exits_1(video_tree, tmp_path):
    out = with_manifest(tmp_path, scan_files(video_tree, [".mp4"], subdir="p10"))
    proc = run_script("extract.py", *extract_argv(video_tree, tmp_path / "no-model", out), check=False)
    assert proc.returncode == 1
    record = read_progress(progress_path(out, "p10"))
    assert record.state == FAILED and record.message and "\n" not in record.message
    (error,) = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert record.message in " ".join(error.split())  # the reason the job's log gives
    (shard,) = run_status(out).shards
    assert shard.state == "failed" and shard.note == record.message
    assert status_main([str(out)]) == 1


def test_an_attempt_after_an_unfinished_record_counts_one_more():
    from embedpipe.extract.progress_report import attempt_after
    from embedpipe.store.progress import FINISHED, STOPPED, ShardProgress

    assert attempt_after(None) == 0
    assert attempt_after(ShardProgress("p10", STOPPED, 40, 12, attempt=0)) == 1  # requeued after preemption
    assert attempt_after(ShardProgress("p10", "running", 40, 12, attempt=1)) == 2  # killed, retried
    assert attempt_after(ShardProgress("p10", FINISHED, 40, 40, attempt=2)) == 0  # a new run of a finished shard
