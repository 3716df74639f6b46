"""One machine, several GPUs: slot claims with fake devices (no GPU needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from support.workflow import REPO, planned_settings, run_env, run_script, snakemake

from embedpipe.extract import gpu_slots
from embedpipe.extract.gpu_slots import claim_gpu, parse_slots, try_claim, wants_slot

HOLDER = """
import os, sys, time
from pathlib import Path
from embedpipe.extract.gpu_slots import claim_gpu
slot = claim_gpu(sys.argv[1].split(","), Path(sys.argv[2]), timeout_s=60, poll_s=0.05)
start = time.time()
print("claimed", slot.device, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[3]))
print("done", slot.device, start, time.time(), flush=True)
"""


def holder(slots: str, lock_dir, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, slots, str(lock_dir), str(hold_s)],
                            env=run_env({"PYTHONPATH": str(REPO / "src")}), stdout=subprocess.PIPE, text=True)


def test_slot_specs():
    assert parse_slots("0,1,2,3") == ["0", "1", "2", "3"]
    assert parse_slots("0, 0,1,1") == ["0", "0", "1", "1"]  # two jobs per GPU on purpose
    with pytest.raises(ValueError, match="extract.gpu_slots"):
        parse_slots("gpu0")


def test_auto_claims_only_where_no_device_was_chosen(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpu_slots, "visible_gpus", lambda: ["0", "1"])
    assert wants_slot("auto", "auto") and wants_slot("auto", "cuda") and wants_slot("0,1", "auto")
    assert not wants_slot("auto", "cpu") and not wants_slot("auto", "cuda:1") and not wants_slot("none", "auto")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # SLURM (or the user) chose already
    assert not wants_slot("auto", "auto")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(gpu_slots, "visible_gpus", lambda: [])  # a laptop, CI: nothing to claim
    assert not wants_slot("auto", "auto")
    with pytest.raises(RuntimeError, match="no GPU"):
        parse_slots("auto")


def test_concurrent_jobs_never_share_a_slot_and_each_sees_only_its_gpu(tmp_path):
    jobs = [holder("0,1,2", tmp_path, 0.6) for _ in range(7)]  # 7 jobs started at once on 3 GPUs
    lines = [line.split() for job in jobs for line in job.communicate(timeout=60)[0].splitlines()]
    assert all(job.returncode == 0 for job in jobs)
    claimed = [ln for ln in lines if ln[0] == "claimed"]
    assert len(claimed) == 7 and all(device == visible for _, device, visible in claimed)
    spans: dict[str, list[tuple[float, float]]] = {}
    for _, device, start, end in (ln for ln in lines if ln[0] == "done"):
        spans.setdefault(device, []).append((float(start), float(end)))
    assert set(spans) == {"0", "1", "2"}
    for device_spans in spans.values():
        device_spans.sort()
        for (_, end), (start, _) in zip(device_spans, device_spans[1:], strict=False):
            assert start >= end, "two jobs held one GPU at the same time"


def test_a_killed_job_releases_its_gpu(tmp_path):
    job = holder("0", tmp_path, 120)
    assert job.stdout.readline().split()[0] == "claimed"
    assert try_claim(["0"], tmp_path) is None  # booked while it runs
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=10)
    slot = try_claim(["0"], tmp_path)  # the kernel dropped the lock with the process
    assert slot is not None and slot.device == "0"
    slot.release()


def test_waiting_job_times_out_naming_the_slots(tmp_path):
    job = holder("7", tmp_path, 30)
    assert job.stdout.readline().startswith("claimed")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"\['7'\]"):
        claim_gpu(["7"], tmp_path, timeout_s=0.5, poll_s=0.1)
    assert time.monotonic() - start < 5
    job.kill()
    job.wait()


def test_extract_job_claims_a_slot_and_logs_its_gpu(tiny_model, video_tree, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = run_script("extract.py", "--model", "tiny", "--model_path", tiny_model, "--input_dir", video_tree,
                      "--shard", "p10", "--limit", "2", "--output", tmp_path / "out" / "p10.parquet",
                      "--num_workers", "0", "--gpu_slots", "4,5", "--gpu_lock_dir", tmp_path / "locks",
                      env=env)
    assert "runs on GPU 4 (slot 0)" in proc.stderr
    assert (tmp_path / "out" / "p10.parquet").is_file()


def test_workstation_profile_plans_one_gpu_per_extract_job(tmp_path):
    data = tmp_path / "in"
    for shard in ("a", "b", "c"):
        (data / shard).mkdir(parents=True)
    proc = snakemake(tmp_path, "-np", "--profile", str(REPO / "profiles" / "workstation"), "--configfile",
                     str(REPO / "config" / "examples" / "deepearth_images.yaml"), "--config", f"input_dir={data}",
                     "--resources", "gpu=2")
    assert [job["gpu_slots"] for job in planned_settings(proc.stdout, "extract.py")] == ["auto"] * 3
    assert "gpu=1" in proc.stdout


CUDA_PROBE = """
import json, runpy, sys
import torch
import embedpipe.extract.gpu_slots as slots
events = []
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "get_device_name",
             "set_device", "get_device_properties", "mem_get_info", "is_initialized"):
    def probe(*a, _real=getattr(torch.cuda, name), _name=name, **k):
        events.append(_name)
        return _real(*a, **k)
    setattr(torch.cuda, name, probe)
real_claim = slots.claim_gpu
def claim(*a, **k):
    events.append("claim")
    return real_claim(*a, **k)
slots.claim_gpu = claim
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    open(EVENTS, "w").write(json.dumps(events))
"""


def test_the_gpu_slot_is_claimed_before_anything_asks_torch_cuda(tiny_model, video_tree, tmp_path):
    """CUDA reads CUDA_VISIBLE_DEVICES once, at its first use: a claim after that would put every job
    of a multi-GPU workstation on GPU 0. torch.cuda is instrumented in the job's own process."""
    events = tmp_path / "events.json"
    probe = CUDA_PROBE.replace("EVENTS", repr(str(events)))
    env = {k: v for k, v in run_env({"PYTHONPATH": str(REPO / "src")}).items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(REPO / "workflow" / "scripts" / "extract.py"), "--model=tiny",
         f"--model_path={tiny_model}", f"--input_dir={video_tree}", "--shard=p10", "--limit=2",
         f"--output={tmp_path / 'out' / 'p10.parquet'}", "--num_workers=0", "--gpu_slots=3",
         f"--gpu_lock_dir={tmp_path / 'locks'}", "--device=auto"],
        env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(events.read_text())
    assert seen[0] == "claim" and "is_available" in seen, seen  # CUDA asked, and only after the claim
    assert "runs on GPU 3 (slot 0)" in proc.stderr


def test_a_job_stopped_while_waiting_for_a_gpu_slot_exits_at_once(tiny_model, video_tree, tmp_path):
    busy = holder("7", tmp_path / "locks", 120)
    try:
        assert busy.stdout.readline().startswith("claimed 7")
        env = {k: v for k, v in run_env({"PYTHONPATH": str(REPO / "src")}).items() if k != "CUDA_VISIBLE_DEVICES"}
        job = subprocess.Popen(
            [sys.executable, str(REPO / "workflow" / "scripts" / "extract.py"), "--model=tiny",
             f"--model_path={tiny_model}", f"--input_dir={video_tree}", "--shard=p10", "--limit=1",
             f"--output={tmp_path / 'out' / 'p10.parquet'}", "--num_workers=0", "--gpu_slots=7",
             f"--gpu_lock_dir={tmp_path / 'locks'}"], env=env, stderr=subprocess.PIPE, text=True)
        guard = threading.Timer(60, job.kill)  # a job that never says it waits must not hang the test
        guard.start()
        for line in job.stderr:
            if "waiting for one" in line:
                break
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=10) == 143
        assert "stopped by signal 15 while waiting for a GPU slot" in job.stderr.read()
        assert not (tmp_path / "out").exists()
        guard.cancel()
    finally:
        busy.kill()


def test_decode_workers_follow_the_threads_the_workflow_gave_the_job(tmp_path, tiny_model, video_tree):
    """--set-threads (workstation profile) decides a job's CPUs; before, every job started all cores − 1."""
    data = tmp_path / "in"
    for shard in ("a", "b"):
        (data / shard).mkdir(parents=True)
    dry = snakemake(tmp_path, "-np", "--profile", str(REPO / "profiles" / "workstation"), "--configfile",
                    str(REPO / "config" / "examples" / "deepearth_images.yaml"), "--config", f"input_dir={data}",
                    "--cores", "8", "--set-threads", "extract=5").stdout
    assert [(job["flags"]["--threads"], job["num_workers"]) for job in planned_settings(dry, "extract.py")] == \
        [("5", "auto")] * 2
    proc = run_script("extract.py", "--model", "tiny", "--model_path", tiny_model, "--input_dir", video_tree,
                      "--shard", "p10", "--limit", "1", "--output", tmp_path / "out" / "p10.parquet",
                      "--gpu_slots", "none", "--threads", "3")
    assert ", 2 decode workers" in proc.stderr
