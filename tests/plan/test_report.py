"""The whole plan from a hand-made GPU trial: GPU rows measured or scaled, the batch that fits, the text."""

from __future__ import annotations

import pytest

from embedpipe.config.gpu_memory import batch_estimate
from embedpipe.encoders import family
from embedpipe.plan.gpu_plan import GIB, HEADROOM
from embedpipe.plan.report import PlanInputs, make_plan, render
from embedpipe.plan.sizes import ROWS, FileBytes
from embedpipe.plan.timings import run_timings
from embedpipe.store.progress import FINISHED, GpuNow, ShardProgress, StageSeconds, progress_path, write_progress


@pytest.fixture
def plan(tmp_path):
    run = tmp_path / "results" / "r-trial4"
    for shard, started in (("a", 1000.0), ("b", 2000.0)):  # 4 files: 1 s decode, 2 s model, 1 s write; 10 s jobs
        write_progress(progress_path(run, shard), ShardProgress(
            shard=shard, state=FINISHED, total=4, done=4, embedded_now=4, started=started, updated=started + 10,
            device="cuda:0", batch_size=4, gpu=GpuNow("NVIDIA L40S"), seconds=StageSeconds(1.0, 2.0, 1.0),
            peak_gpu_memory_gib=20.0, peak_rss_mb=3000.0))
    timings = run_timings(run, tmp_path / "logs" / "r-trial4", ["a", "b"])
    encoder = family("vjepa2").options({"name": "vjepa2", "model": "vitl", "batch_size": 4})
    given = PlanInputs(run="r", limit=4, full_files={"a": 1000, "b": 400}, slots=2, slots_basis="test",
                       job_minutes=60, shard_by="folder", num_shards=2, save_every=10000, batch_size=4,
                       max_error_fraction=0.01, results_dir=str(tmp_path), encoder=encoder)
    files = [FileBytes("embeddings/", ROWS, 5000, 8, 200.0)]
    return make_plan(timings, files, given), encoder


def test_the_trials_gpu_is_measured_and_the_others_scaled(plan):
    plan, _ = plan
    rows = {g["name"]: g for g in plan["gpu_types"]}
    assert rows["L40S"]["measured"] and rows["L40S"]["seconds_per_file"]["value"] == pytest.approx(1.0)
    h100 = rows["H100"]
    assert not h100["measured"]
    # half of a file's second is the model's (2 of 4 stage seconds): scaled by 362.05 / 989.5; the rest is the CPU's
    assert h100["seconds_per_file"]["value"] == pytest.approx(0.5 + 0.5 * 362.05 / 989.5)
    assert h100["gpu_hours"]["value"] < rows["L40S"]["gpu_hours"]["value"]
    assert plan["device_kind"] == "GPU" and plan["trial"]["gpu"] == "NVIDIA L40S"
    assert plan["stage_seconds_per_file"] == {"decode": 0.25, "model": 0.5, "write": 0.25}


def test_the_batch_that_fits_is_the_preflights_estimate_calibrated_by_the_trials_peak(plan):
    plan, encoder = plan
    estimate = batch_estimate(encoder)
    k = 20.0 * GIB / estimate.at(4)
    h200 = next(g for g in plan["gpu_types"] if g["name"] == "H200")
    expected = int((141 * HEADROOM - estimate.weights_gb * k) // (estimate.per_item_gb * k))
    assert h200["batch_fits"] == expected and "calibrated" in h200["batch_basis"]


def test_the_text_names_the_numbers_and_the_suggestions(plan):
    plan, _ = plan
    text = render(plan, "results/r-trial4/plan.json")
    assert text.startswith("# Plan for r (from its trial of 4 files a shard)")
    assert "GPU-hours" in text and "| L40S (measured) |" in text and "`extract.save_every`" in text
    assert "Whole plan: results/r-trial4/plan.json" in text
    assert plan["suggestions"][0]["key"] == "shards.by"  # folder shards: the folders fix them
