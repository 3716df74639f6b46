"""The planner's arithmetic on a trial with known timings: hand-made progress records, logs and file
sizes in, exact GPU-hours, wall and bytes out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from embedpipe.plan import extrapolate as x
from embedpipe.plan.sizes import ERRORS, ROWS, FileBytes
from embedpipe.plan.timings import run_timings
from embedpipe.store.progress import FINISHED, GpuNow, ShardProgress, StageSeconds, progress_path, write_progress


def progress(run: Path, shard: str, started: float, wall: float, files: int, decode: float, model: float,
             write: float) -> None:
    write_progress(progress_path(run, shard), ShardProgress(
        shard=shard, state=FINISHED, total=files, done=files, embedded_now=files, started=started,
        updated=started + wall, device="cuda:0", batch_size=4, gpu=GpuNow("NVIDIA L40S"),
        seconds=StageSeconds(decode, model, write), peak_gpu_memory_gib=10.0))


@pytest.fixture
def trial(tmp_path):
    """Two shards of 4 files: 4 s of per-file work each (1 s a file), jobs of 10 and 12 s."""
    run, logs = tmp_path / "results" / "r-trial4", tmp_path / "logs" / "r-trial4"
    progress(run, "a", 1000.0, 10.0, 4, 1.0, 2.0, 1.0)
    progress(run, "b", 2000.0, 12.0, 4, 1.0, 3.0, 0.0)
    return run_timings(run, logs, ["a", "b"])


def test_a_trial_with_one_batch_a_shard_bounds_the_seconds_a_file_from_above_only(trial):
    s = x.per_file_seconds(trial)
    assert (s.value, s.low, s.high) == (1.0, 0.0, 1.0)
    assert "nothing bounds it from below" in s.basis
    assert x.fixed_seconds(trial, s.value) == (7.0, 6.0, 8.0)  # 10 − 4 and 12 − 4
    assert x.fixed_range(trial, s) == (7.0, 10.0 * (1 - x.FIXED_SPREAD), 8.0 * (1 + x.FIXED_SPREAD))


def test_gpu_hours_and_wall_at_the_full_counts(trial):
    s = x.per_file_seconds(trial)
    shards = x.shard_seconds(x.fixed_range(trial, s), {"a": 100, "b": 50}, s)
    assert (shards["a"].value, shards["a"].low, shards["a"].high) == (107.0, 7.5, 110.0)
    assert (shards["b"].value, shards["b"].low, shards["b"].high) == (57.0, 7.5, 60.0)
    hours = x.device_hours(shards)
    assert (hours.value, hours.low, hours.high) == pytest.approx((164 / 3600, 15 / 3600, 170 / 3600))
    one, two = x.run_wall(shards, 1), x.run_wall(shards, 2)
    assert (one.value, one.low, one.high) == (164.0, 15.0, 170.0)
    assert (two.value, two.low, two.high) == (107.0, 7.5, 110.0)
    assert hours.holds(120 / 3600) and not hours.holds(171 / 3600)


def test_steady_seconds_from_the_logs_throughput_lines_leave_the_warm_up_out(tmp_path):
    run, logs = tmp_path / "results" / "r-trial12", tmp_path / "logs" / "r-trial12"
    (logs / "extract").mkdir(parents=True)
    # batches of 4: the first ends 5 s into the loop (warm-up), the next two take 2 s each (0.5 s a file)
    (logs / "extract" / "a.log").write_text(
        "2026-01-01 00:00:00,000 INFO extract: shard a: 12 files; vjepa2 vitl on cuda:0, batch 4, 8 decode workers\n"
        "2026-01-01 00:00:00,500 INFO embedpipe.extract.loop: GPU cuda:0: NVIDIA L40S, 44.4 GiB total, 44.0 GiB free\n"
        "2026-01-01 00:00:05,000 INFO embedpipe.extract.loop: a: 4/12 files, 0.8 files/s, 0 decode errors\n"
        "a:  50%|#####| 6/12 [00:06<00:06]2026-01-01 00:00:07,000 INFO embedpipe.extract.loop: a: 8/12 files, "
        "1.1 files/s, 0 decode errors\n"
        "2026-01-01 00:00:09,000 INFO embedpipe.extract.loop: a: 12/12 files, 1.3 files/s, 0 decode errors\n"
        "2026-01-01 00:00:09,000 INFO embedpipe.extract.loop: a: 12/12 files, 1.3 files/s, 0 decode errors, "
        "GPU mem peak 12.3 GiB\n"
        "2026-01-01 00:00:10,000 INFO extract: shard a done: 12 rows\n")
    (timing,) = run_timings(run, logs, ["a"])
    assert timing.source == ("log",) and timing.device == "cuda:0" and timing.batch_size == 4
    assert timing.gpu_name == "NVIDIA L40S" and timing.peak_gpu_gib == 12.3
    assert timing.files == 12 and timing.wall_s == 10.0 and timing.batches_seen == 3
    assert timing.steady_s_per_file == 0.5  # (9 − 5) s over (12 − 4) files
    assert timing.loop_s == pytest.approx(12 / 1.3)
    s = x.per_file_seconds([timing])
    assert (s.value, s.low, s.high) == pytest.approx((0.5, 0.5, 12 / 1.3 / 12))


def test_a_shard_without_timings_is_left_out_and_named(tmp_path, trial):
    from embedpipe.plan.timings import shard_timing

    missing = shard_timing(tmp_path / "results" / "r-trial4", tmp_path / "logs" / "r-trial4", "c")
    assert missing.source == () and missing.wall_s is None
    assert x.per_file_seconds([*trial, missing]).value == 1.0
    with pytest.raises(ValueError, match="no shard of the trial has timings"):
        x.per_file_seconds([missing])


def test_bytes_a_folder_at_the_full_rows():
    files = [FileBytes("embeddings/", ROWS, 1000, 4, 100.0), FileBytes("embeddings/", ERRORS, 300, 0, None),
             FileBytes("keys.txt", ROWS, 80, 4, 20.0)]
    rows = x.full_rows(trial_files=4, trial_errors=0, full_files=150, max_error_fraction=0.1)
    assert (rows.rows.value, rows.rows.low, rows.rows.high) == (150, 135, 150)
    assert (rows.errors.value, rows.errors.low, rows.errors.high) == (0, 0, 15)
    disk = x.folder_bytes(files, rows, trial_rows=4, trial_errors=0)
    emb = disk["embeddings/"]
    # fixed 600 + 300; 100 bytes a row; error rows (none in the trial) at the folder's 100 bytes a row
    assert (emb.value, emb.low, emb.high) == (15900.0, 14400.0, 17400.0)
    keys = disk["keys.txt"]
    assert (keys.value, keys.low, keys.high) == (3000.0, 2700.0, 3000.0)


def test_the_schedule_runs_longest_first_on_free_slots():
    # 5 and 4 start; 3 goes where 4 ends (7), 3 where 5 ends (8), the last 3 where 7 ends: 10, as the
    # scheduler runs jobs (not the best packing, 9, which it does not look for)
    assert x.schedule([5, 4, 3, 3, 3], 2) == 10.0
    assert x.schedule([10, 1, 1], 5) == 10.0 and x.schedule([], 3) == 0.0


def test_suggestions_fit_shards_and_parts_to_a_job_time_limit():
    s = x.Estimate(1.0, 0.5, 2.0, "")
    shards = {"a": x.Estimate(100, 50, 7200, ""), "b": x.Estimate(50, 20, 300, "")}
    hashed = x.suggestions(shards, s, fixed_high=60, job_minutes=60, by="hash", num_shards=2, save_every=10000,
                           batch=32, total_files=3600)
    assert hashed[0].key == "shards.num_shards" and hashed[0].value == math.ceil(3600 * 2 / (3240 - 60))
    # a part at least every 6 minutes at 2 s a file: 180 files, a multiple of the batch
    assert (hashed[1].key, hashed[1].value) == ("extract.save_every", 160)
    folders = x.suggestions(shards, s, fixed_high=60, job_minutes=60, by="folder", num_shards=2, save_every=64,
                            batch=32, total_files=3600)
    assert folders[0].key == "shards.by" and "3 jobs of 60" in folders[0].why
    assert folders[1].value == 64 and "within a tenth of a job" in folders[1].why
    assert x.suggestions(shards, s, 60, None, "hash", 2, 64, 32, 3600)[0].key == "plan.job_minutes"
