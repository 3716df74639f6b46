"""The GPU lines of the extract log and `extract.require_gpu`.

This machine has no GPU: the require test is real (the job sees none and must fail at once); the
line tests stand torch.cuda and NVML in with small fakes, so what they check is embedpipe's part —
which board NVML is asked about, what a line says, what happens when NVML is missing or fails.
"""

from __future__ import annotations

import types

import pytest
import torch
from support.workflow import run_script

from embedpipe.extract import gpu_report
from embedpipe.extract.gpu_report import GpuReport
from embedpipe.store.progress import GpuNow


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the job on a machine without a GPU")
def test_require_gpu_fails_the_job_at_once_in_one_line_naming_the_key(tmp_path):
    (tmp_path / "in" / "p10").mkdir(parents=True)
    (tmp_path / "in" / "p10" / "a.mp4").write_bytes(b"never opened")
    out = tmp_path / "out" / "p10.parquet"
    proc = run_script("extract.py", "--model", "tiny", "--model_path", tmp_path / "no-model", "--input_dir",
                      tmp_path / "in", "--shard", "p10", "--output", out, "--require_gpu", check=False,
                      env={"CUDA_VISIBLE_DEVICES": ""})
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and "extract.require_gpu is set, but this job sees no GPU (CUDA_VISIBLE_DEVICES=)" \
        in errors[0]
    assert not out.exists() and not (tmp_path / "out" / "parts").exists()  # nothing started
    without = run_script("extract.py", "--model", "tiny", "--model_path", tmp_path / "no-model", "--input_dir",
                         tmp_path / "in", "--shard", "p10", "--output", out, check=False)
    # off by default: this run fails on its missing model instead
    assert "sees no GPU" not in without.stderr and without.returncode == 1


def test_on_the_cpu_there_is_no_gpu_line():
    report = GpuReport(torch.device("cpu"))
    assert report.start_line() is None and report.usage() == "" and report.peak() == ""


class FakeNvml:
    def __init__(self, fail_reads: bool = False) -> None:
        self.asked: list[str] = []
        self.fail_reads = fail_reads

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.asked.append(uuid)
        return uuid

    def nvmlDeviceGetMemoryInfo(self, handle: str):
        if self.fail_reads:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return types.SimpleNamespace(used=12 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: str):
        return types.SimpleNamespace(gpu=97)


@pytest.fixture
def fake_cuda(monkeypatch):
    props = types.SimpleNamespace(uuid="1234-abcd")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (70 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 40 * 2**30)


def test_lines_name_the_board_by_uuid_and_give_use_utilisation_and_peak(fake_cuda, monkeypatch):
    nvml = FakeNvml()
    monkeypatch.setattr(gpu_report, "_nvml", lambda: nvml)
    report = GpuReport(torch.device("cuda", 1))
    assert nvml.asked == ["GPU-1234-abcd"]  # the visible device's board, not NVML's index 1
    assert report.start_line() == "GPU cuda:1: NVIDIA H100 80GB HBM3, 80.0 GiB total, 70.0 GiB free"
    assert report.usage() == ", GPU mem 12.0/80.0 GiB, util 97%"
    assert report.peak() == ", GPU mem peak 40.0 GiB"


def test_without_nvml_or_when_it_fails_the_line_falls_back_to_torch(fake_cuda, monkeypatch):
    monkeypatch.setattr(gpu_report, "_nvml", lambda: None)
    report = GpuReport(torch.device("cuda", 0))
    assert report.start_line().endswith("(pip install nvidia-ml-py for use and utilisation lines)")
    assert report.usage() == ", GPU mem reserved 3.0 GiB"
    monkeypatch.setattr(gpu_report, "_nvml", lambda: FakeNvml(fail_reads=True))
    assert GpuReport(torch.device("cuda", 0)).usage() == ", GPU mem reserved 3.0 GiB"  # the job goes on


def test_the_progress_file_gets_the_same_figures_as_numbers(fake_cuda, monkeypatch):
    monkeypatch.setattr(gpu_report, "_nvml", lambda: FakeNvml())
    report = GpuReport(torch.device("cuda", 0))
    assert report.now() == GpuNow("NVIDIA H100 80GB HBM3", 12.0, 80.0, 97.0)
    assert report.peak_gib() == 40.0
    monkeypatch.setattr(gpu_report, "_nvml", lambda: FakeNvml(fail_reads=True))
    # NVML failing: torch's view of the board's memory (80 - 70 free), no utilisation
    assert GpuReport(torch.device("cuda", 0)).now() == GpuNow("NVIDIA H100 80GB HBM3", 10.0, 80.0, None)
    cpu = GpuReport(torch.device("cpu"))
    assert cpu.now() is None and cpu.peak_gib() is None
