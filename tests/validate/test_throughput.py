"""The extract jobs' stats in the validation report: a table when the progress files are there, nothing
new to fail when they are not, and a warning naming a shard that finished short of its total."""

from __future__ import annotations

import json

import numpy as np
from support.small_shards import write_shard
from support.validation import script_args
from support.workflow import run_script

from embedpipe.store.progress import FINISHED, GpuNow, ShardProgress, StageSeconds, progress_path, write_progress
from embedpipe.validate.throughput import shard_throughput, throughput_section


def finished(shard: str, done: int, total: int) -> ShardProgress:
    return ShardProgress(shard=shard, state=FINISHED, total=total, done=done, embedded_now=done, rate=12.5,
                         errors={"decode:InvalidData": 1}, started=1000.0, updated=1080.0, host="gpu-node-07",
                         slurm_job="4711_0", device="cuda", batch_size=32, gpu=GpuNow("NVIDIA L40S", 20.1, 44.5, 97),
                         seconds=StageSeconds(decode=10.0, model=60.0, write=5.0), peak_rss_mb=2048.0,
                         peak_gpu_memory_gib=18.25)


def test_a_row_per_recorded_shard_and_a_warning_for_a_short_finish(tmp_path, caplog):
    write_progress(progress_path(tmp_path, "p10"), finished("p10", 31, 31))
    write_progress(progress_path(tmp_path, "p11"), finished("p11", 19, 21))
    got = shard_throughput(tmp_path, ["p10", "p11", "p12"])  # p12: no record (an older run's shard)
    assert [r["shard"] for r in got["shards"]] == ["p10", "p11"]
    assert got["warnings"] == ["p11: its extract job finished with 19 of 21 files done"]
    assert "p11: its extract job finished with 19 of 21" in caplog.text
    row = got["shards"][0]
    assert row["seconds"] == {"wall": 80.0, "decode": 10.0, "model": 60.0, "write": 5.0}
    assert (row["rate"], row["errors"], row["gpu"], row["peak_gpu_memory_gib"], row["slurm_job"]) == (
        12.5, 1, "NVIDIA L40S", 18.25, "4711_0")
    page = throughput_section(got)
    assert "<h2>Extract throughput</h2>" in page and "NVIDIA L40S" in page and "4711_0" in page
    assert "warning:</strong> p11: its extract job finished with 19 of 21" in page
    assert throughput_section(shard_throughput(tmp_path, ["p12"])) == ""


def test_the_validate_script_reports_them_and_passes_without_them(tmp_path):
    rng = np.random.default_rng(3)
    write_shard(tmp_path, "p10", [f"a{i}" for i in range(30)], rng.normal(size=(30, 4)), errors=["bad"])
    out = tmp_path / "validation"
    run_script("validate.py", *script_args(tmp_path, ["p10"], out), "--max_error_fraction", "0.1",
               "--run_dir", str(tmp_path))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["passed"] and metrics["throughput"] == {"shards": [], "warnings": []}
    assert "Extract throughput" not in (out / "report.html").read_text()

    write_progress(progress_path(tmp_path, "p10"), finished("p10", 30, 31))
    proc = run_script("validate.py", *script_args(tmp_path, ["p10"], out), "--max_error_fraction", "0.1",
                      "--run_dir", str(tmp_path))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["passed"] and metrics["throughput"]["shards"][0]["done"] == 30
    assert "p10: its extract job finished with 30 of 31 files done" in proc.stderr
    assert "Extract throughput" in (out / "report.html").read_text()
