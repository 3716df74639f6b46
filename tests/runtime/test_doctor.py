"""`python -m embedpipe doctor`: the report on this (CPU) machine, the token by name only, and the exit
status when a config asks for what the machine lacks. The GPU cases use a stand-in for what torch finds
(no GPU here); everything else is what this machine really has."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.workflow import REPO, run_env, unprivileged

from embedpipe.runtime import doctor, doctor_probes
from embedpipe.runtime.doctor_probes import Found, Gpus

SECRET = "hf_doctorTestValueNeverPrinted0123456789"


def run_doctor(capsys, *args: str) -> tuple[int, str]:
    status = doctor.main(list(args))
    return status, capsys.readouterr().out


def line(report: str, what: str) -> str:
    (found,) = [row for row in report.splitlines() if row[8:].strip().startswith(what + " ")]
    return found


def fake_gpus(monkeypatch, boards: list[str], build: str | None = "13.0") -> None:
    torch = Found("torch", True, f"2.13.0, {'CUDA ' + build + ' build' if build else 'CPU build (no CUDA)'}")
    driver = Found("driver", bool(boards), "NVIDIA 580.1, runs CUDA up to 13.0" if boards else "no driver")
    monkeypatch.setattr(doctor_probes, "gpus", lambda: Gpus(torch, build, boards, driver))


def test_the_report_names_every_part_and_passes_without_a_config(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    status, report = run_doctor(capsys)
    assert status == 0, report
    for what in ("python", "host", "torch", "gpu", "nvidia driver", "decord", "PyAV", "h264", "hevc", "av1", "vp9",
                 "mpeg4", "soundfile", "pydicom", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "pillow",
                 "ffmpeg", "results_dir", "logs_dir", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        assert line(report, what), what
    assert "fail" not in {row.split()[0] for row in report.splitlines()[1:-1]}, report
    import torch

    assert torch.__version__ in line(report, "torch")
    assert "libsndfile 1." in line(report, "soundfile")
    assert report.splitlines()[-1].startswith("doctor: ")


def test_a_token_is_named_never_shown(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text(SECRET)
    status, report = run_doctor(capsys, "--config", str(REPO / "config" / "demo.yaml"),
                                "--results-dir", str(tmp_path), "--logs-dir", str(tmp_path))
    assert SECRET not in report and SECRET[:12] not in report
    assert "set (value not shown)" in line(report, "HF_TOKEN")
    assert "not set" in line(report, "HUGGING_FACE_HUB_TOKEN")
    assert "present (value not shown)" in line(report, "hf auth login")
    assert status == 0, report


def test_a_run_asking_cuda_fails_here_with_one_clear_line(capsys, tmp_path):
    """Real: this machine has no GPU (a CPU torch in CI)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    status, report = run_doctor(capsys, "--config", str(REPO / "config" / "demo.yaml"), "--device", "cuda",
                                "--results-dir", str(tmp_path), "--logs-dir", str(tmp_path))
    assert status == 1
    assert line(report, "encoder.device").startswith("  fail  encoder.device")
    assert "encoder.device cuda but " in line(report, "encoder.device")
    assert "1 fail" in report.splitlines()[-1]


@pytest.mark.parametrize(("device", "boards", "build", "status", "words"), [
    ("cuda", [], None, "fail", "encoder.device cuda but torch is a CPU build (make install-gpu)"),
    ("cuda", [], "13.0", "fail", "encoder.device cuda but no GPU visible"),
    ("cuda:1", ["cuda:0 NVIDIA L40S"], "13.0", "fail", "encoder.device cuda:1 but only 1 GPU(s) visible"),
    ("cuda", ["cuda:0 NVIDIA L40S"], "13.0", "ok", "cuda: runs on cuda:0"),
    ("auto", [], "13.0", "warn", "auto but no GPU visible: the run would embed on the CPU"),
    ("auto", ["cuda:0 NVIDIA L40S"], "13.0", "ok", "auto: runs on cuda:0"),
    ("cpu", ["cuda:0 NVIDIA L40S"], "13.0", "ok", "cpu (the run leaves the 1 visible GPU(s) unused)"),
])
def test_encoder_device_against_the_gpus_found(capsys, monkeypatch, tmp_path, device, boards, build, status, words):
    fake_gpus(monkeypatch, boards, build)
    code, report = run_doctor(capsys, "--device", device, "--media", "video", "--results-dir", str(tmp_path))
    assert words in line(report, "encoder.device"), report
    assert line(report, "encoder.device").split()[0] == status
    assert code == (1 if status == "fail" else 0)


def test_require_gpu_without_one_fails(capsys, monkeypatch, tmp_path):
    fake_gpus(monkeypatch, [], "13.0")
    code, report = run_doctor(capsys, "--device", "auto", "--require-gpu", "--results-dir", str(tmp_path))
    assert code == 1 and "extract.require_gpu but no GPU visible" in line(report, "encoder.device")


def test_a_decoder_the_media_needs_fails_and_one_it_does_not_warns(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(doctor_probes, "decord", lambda: Found("decord", False, "not importable (ImportError)"))
    code, report = run_doctor(capsys, "--media", "video", "--device", "cpu", "--results-dir", str(tmp_path))
    assert code == 1 and line(report, "decord").split()[0] == "fail"
    code, report = run_doctor(capsys, "--media", "audio", "--device", "cpu", "--results-dir", str(tmp_path))
    assert code == 0 and line(report, "decord").split()[0] == "warn"


def test_media_and_dicom_come_from_the_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("encoder: {name: metis}\nresults_dir: r\nlogs_dir: l\n")
    assert doctor.needs_of([str(config)]).media == "audio"
    needs = doctor.needs_of([str(REPO / "config" / "demo.yaml")])
    assert (needs.media, needs.dicom, needs.device, needs.upload) == ("video", True, "cpu", True)
    assert needs.dirs == {"results_dir": "results", "logs_dir": "logs"}
    assert doctor.needs_of([str(REPO / "config" / "demo_ecg.yaml")]).media == "ecg"
    assert doctor.needs_of([], {"encoder": {"name": "vjepa2", "media": "image"}}).media == "image"
    assert not doctor.needs_of([]).configured


def test_folders_a_job_cannot_write_fail(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, report = run_doctor(capsys, "--results-dir", str(blocker / "results"), "--logs-dir", str(tmp_path / "new"))
    assert code == 1
    assert line(report, "results_dir").split()[0] == "fail" and "is not a folder" in line(report, "results_dir")
    assert line(report, "logs_dir").split()[0] == "ok" and "the run makes it" in line(report, "logs_dir")
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == [blocker]  # nothing left behind
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with unprivileged():
        code, report = run_doctor(capsys, "--results-dir", str(locked))
    assert code == 1 and "not writable" in line(report, "results_dir")


def test_python_m_embedpipe_doctor_runs_as_a_command(tmp_path):
    env = run_env({"HF_TOKEN": SECRET, "PYTHONPATH": str(REPO / "src")})
    proc = subprocess.run([sys.executable, "-m", "embedpipe", "doctor", "--config", str(REPO / "config" / "demo.yaml"),
                           "--results-dir", str(tmp_path), "--logs-dir", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("embedpipe doctor: ") and "doctor: " in proc.stdout.splitlines()[-1]
    assert SECRET not in proc.stdout + proc.stderr
    usage = subprocess.run([sys.executable, "-m", "embedpipe"], env=env, capture_output=True, text=True)
    assert usage.returncode == 0 and "doctor" in usage.stdout
    unknown = subprocess.run([sys.executable, "-m", "embedpipe", "nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2


@pytest.mark.parametrize(("driver_cuda", "fits"), [("12.2", False), ("13.0", True), ("13.1", True)])
def test_the_driver_line_says_when_torch_is_built_for_a_newer_cuda(monkeypatch, driver_cuda, fits):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor_probes, "_nvml_driver", lambda: ("535.54.03", driver_cuda))
    found = doctor_probes.gpus()
    assert "CUDA 13.0 build" in found.torch.text and "CUDA available: no" in found.torch.text
    assert found.driver.ok is fits
    assert found.driver.text.startswith(f"NVIDIA 535.54.03, runs CUDA up to {driver_cuda}")
    hint = "older than torch's CUDA 13.0 build (install a cu12x torch for this driver: "
    assert (hint in found.driver.text) is not fits
