"""The preflight's findings from a launch made by hand: the device against the GPU asked for, upload
without a token, stops turned into warnings, and the run's files (model, disk)."""

from __future__ import annotations

from embedpipe.config.launch import Launch, LaunchProblem
from embedpipe.config.preflight import (
    RunFiles,
    device_problems,
    disk_need_problem,
    hub_token_found,
    model_problem,
    stops_and_warnings,
    upload_problem,
)
from embedpipe.encoders import family
from embedpipe.extract.settings import ExtractOptions

GPU = Launch(executor="local", extract_gpus=1)
SLURM_CPU = Launch(executor="slurm")


def encoder(name="vjepa2", **given):
    return family(name).options(given)


def test_a_gpu_with_device_cpu_stops_naming_encoder_device():
    [problem] = device_problems(GPU, encoder(device="cpu"), ExtractOptions())
    assert problem.stop and problem.key == "encoder.device" and "set-resources: extract: gpu" in problem.reason
    assert device_problems(GPU, encoder(device="auto"), ExtractOptions()) == []
    assert device_problems(Launch(executor="local"), encoder(device="cuda"), ExtractOptions()) == []


def test_slurm_without_a_gpu_stops_for_cuda_and_warns_for_auto():
    [cuda] = device_problems(SLURM_CPU, encoder(device="cuda:0"), ExtractOptions())
    assert cuda.stop and cuda.profile and cuda.key == "set-resources: extract: gpu"
    [required] = device_problems(SLURM_CPU, encoder(), ExtractOptions(require_gpu=True))
    assert required.stop and "extract.require_gpu is true" in required.reason
    [auto] = device_problems(SLURM_CPU, encoder(), ExtractOptions())
    assert not auto.stop and "nodes' CPUs" in auto.reason
    assert device_problems(SLURM_CPU, encoder(device="cpu"), ExtractOptions()) == []


def test_upload_without_a_token_is_a_warning_when_upload_is_asked_for(tmp_path):
    upload = {"repo_id": "me/data"}
    bare = {"HF_HOME": str(tmp_path)}
    asked = Launch(targets=("upload",))
    problem = upload_problem(upload, asked, bare)
    assert problem is not None and not problem.stop and problem.key == "upload.repo_id"
    assert upload_problem(upload, Launch(), bare) is None  # a plain run does not upload
    assert upload_problem(upload | {"dry_run": True}, asked, bare) is None
    assert upload_problem(upload, asked, bare | {"HF_TOKEN": "hf_x"}) is None
    (tmp_path / "token").write_text("hf_x")
    assert hub_token_found(bare)


def test_stops_become_warnings_under_embedpipe_preflight_warn():
    problems = [LaunchProblem("a", "stop"), LaunchProblem("b", "warn", stop=False)]
    assert stops_and_warnings(problems, {}) == (["config key 'a': stop"], ["config key 'b': warn"])
    assert stops_and_warnings(problems, {"EMBEDPIPE_PREFLIGHT": "warn"}) == ([], ["config key 'a': stop",
                                                                                   "config key 'b': warn"])


def test_model_and_disk_from_the_runs_files(tmp_path, tiny_ecg):
    files = RunFiles(str(tmp_path / "results"))
    problem = model_problem(encoder("ecgfounder", path=str(tiny_ecg / "ecg_jepa.pt")), files)
    assert problem is not None and problem.key == "encoder.path" and problem.stop
    demo = RunFiles(str(tmp_path / "results"), demo=True)
    assert model_problem(encoder("ecgfounder", path=str(tiny_ecg / "ecg_jepa.pt")), demo) is None
    manifest = tmp_path / "p10.txt"
    manifest.write_text("a.mp4\n" * 1000)
    files = RunFiles(str(tmp_path), manifests={"p10": str(manifest)}, shard_files={"p10": str(tmp_path / "no")})
    problem = disk_need_problem(encoder(model="vitl"), files, free=lambda path: 1000)
    assert problem is not None and problem.key == "results_dir" and "1,000 rows × 1024 floats × 2 copies" in \
        problem.reason
    assert disk_need_problem(encoder(model="vitl"), files, free=lambda path: 10**9) is None


def test_diagnostic_targets_hear_the_findings_without_being_stopped():
    problems = [LaunchProblem("encoder.device", "cpu, but ...")]
    said = stops_and_warnings(problems, environ={}, targets=("doctor",))
    assert said == ([], ["config key 'encoder.device': cpu, but ..."])
    assert stops_and_warnings(problems, environ={}, targets=("status", "doctor"))[0] == []
    assert stops_and_warnings(problems, environ={}, targets=("doctor", "all"))[0] != []
    assert stops_and_warnings(problems, environ={}, targets=())[0] != []
