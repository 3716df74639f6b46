"""The full run's card section: the newest trial's plan against the run's own timings and bytes."""

from __future__ import annotations

import json
import os

from embedpipe.plan.against_actual import busy_wall, newest_trial_plan, plan_section
from embedpipe.plan.timings import ShardTiming


def est(value, low, high):
    return {"value": value, "low": low, "high": high, "basis": ""}


def test_the_wall_counts_time_with_an_extract_job_running():
    jobs = [ShardTiming("a", start=0, end=10), ShardTiming("b", start=5, end=12), ShardTiming("c", start=20, end=25)]
    assert busy_wall(jobs) == 17  # 0–12 and 20–25: the gap between is no job's
    assert busy_wall([ShardTiming("a")]) is None


def test_the_newest_trial_plan_beside_the_run_is_the_one(tmp_path):
    run = tmp_path / "demo"
    for name, mtime in (("demo-trial2", 100), ("demo-trial50", 200), ("demo-other-trial3", 300)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "plan.json").write_text("{}")
        os.utime(tmp_path / name / "plan.json", (mtime, mtime))
    assert newest_trial_plan(run) == tmp_path / "demo-trial50" / "plan.json"
    assert newest_trial_plan(tmp_path / "none") is None


def test_the_section_says_which_actuals_fell_within_the_range(tmp_path):
    path = tmp_path / "demo-trial2" / "plan.json"
    path.parent.mkdir()
    path.write_text(json.dumps({
        "trial": {"limit": 2}, "device_kind": "GPU", "device_hours": est(2.0, 1.0, 3.0),
        "wall_seconds": est(3600, 1800, 4000), "disk_bytes": {"embeddings/": est(1e9, 0.9e9, 1.1e9),
                                                              "staged/": est(1e9, 0.9e9, 1.1e9)}}))
    jobs = [ShardTiming("a", wall_s=3600, start=0, end=3600), ShardTiming("b", wall_s=3600, start=0, end=3600)]
    text = plan_section(path, jobs, {"embeddings/": 1_000_000_000, "staged/": 2_000_000_000})
    assert text.startswith("## Plan against actual") and "`demo-trial2/plan.json`" in text
    assert "| GPU-hours | 2 | 1 – 3 | 2 | yes |" in text
    assert "| wall of the extract jobs | 60.0 min | 30.0 min – 66.7 min | 60.0 min | yes |" in text
    assert "| `staged/` bytes | 1 GB | 900 MB – 1.1 GB | 2 GB | **no** |" in text
    assert "3 of 4 fell within the range" in text
    assert plan_section(None, jobs, {}) == ""


def test_a_plan_the_card_cannot_read_is_left_out_not_a_failed_parquet_step(tmp_path, caplog):
    broken = tmp_path / "plan.json"
    broken.write_text('{"version": 0, "device_kind"')  # cut short
    assert plan_section(broken, [ShardTiming("p10", files=3, wall_s=10.0)], {}) == ""
    broken.write_text(json.dumps({"version": 99}))  # another version's keys
    assert plan_section(broken, [ShardTiming("p10", files=3, wall_s=10.0)], {}) == ""
    assert "the card leaves out" in caplog.text
