from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support.workflow import SCRIPTS, run_env, run_script

from embedpipe.discover.scan import scan_files


def extract_args(tree: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", "vjepa2-tiny", "--model_path", str(model), "--input_dir", str(tree), "--shard", "p10",
        "--output", str(out / "embeddings" / "p10.parquet"), "--device", "cpu", *extra,
    ]


def rows(path: Path) -> list[tuple[str, tuple[float, ...]]]:
    t = pq.read_table(path)
    return list(zip(t.column("key").to_pylist(), map(tuple, t.column("embedding").to_pylist()), strict=True))


@pytest.fixture(scope="module")
def reference_run(video_tree, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run_script("extract.py", *extract_args(video_tree, tiny_model, out, "--batch_size", "4", "--num_workers", "2"))
    return out / "embeddings"


def test_one_video_equals_an_independent_computation(video_tree, tiny_model, reference_run):
    """Frames decoded directly, transformed here, passed straight through VJEPA2Model.

    On the CPU the job runs V-JEPA 2's official eval transform (`transform: auto`): OpenCV bilinear on uint8."""
    import cv2
    import decord
    from transformers import VJEPA2Model

    key = scan_files(video_tree, [".mp4"])[0]
    reader = decord.VideoReader(str(video_tree / key))
    idx = np.linspace(0, len(reader) - 1, 16).astype(int)
    frames = reader.get_batch(idx).asnumpy()
    crop = 64
    short = int(crop * 256 / 224)
    h, w = frames.shape[1:3]
    size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    resized = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_LINEAR) for f in frames])
    clip = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255.0
    top, left = round((size[0] - crop) / 2), round((size[1] - crop) / 2)
    clip = clip[:, :, top : top + crop, left : left + crop]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    clip = (clip - mean) / std
    model = VJEPA2Model.from_pretrained(tiny_model).eval()
    with torch.inference_mode():
        expected = model(pixel_values_videos=clip[None], skip_predictor=True).last_hidden_state.mean(1)[0]
    got = dict(rows(reference_run / "p10.parquet"))[key]
    np.testing.assert_allclose(np.array(got), expected.numpy(), atol=1e-5, rtol=0)


def test_corrupt_video_becomes_an_error_row_and_counts_reconcile(video_tree, reference_run):
    keys = scan_files(video_tree, [".mp4"], subdir="p10")
    embedded = [k for k, _ in rows(reference_run / "p10.parquet")]
    errors = pq.read_table(reference_run / "p10.errors.parquet").to_pylist()
    assert [e["key"] for e in errors] == ["p10/p10999999/s1/broken.mp4"]
    assert errors[0]["stage"] == "decode" and errors[0]["error_type"] and errors[0]["message"]
    assert len(embedded) + len(errors) == len(keys)
    assert embedded == [k for k in keys if k != errors[0]["key"]]  # manifest order


def test_batched_equals_one_at_a_time(video_tree, tiny_model, reference_run, tmp_path):
    run_script("extract.py", *extract_args(video_tree, tiny_model, tmp_path, "--batch_size", "1",
                                           "--num_workers", "0"))
    single = dict(rows(tmp_path / "embeddings" / "p10.parquet"))
    for key, emb in rows(reference_run / "p10.parquet"):
        np.testing.assert_allclose(emb, single[key], atol=1e-5)


def test_by_hand_limit_scans_the_shard_folder(video_tree, tiny_model, tmp_path):
    run_script("extract.py", *extract_args(video_tree, tiny_model, tmp_path, "--limit", "3", "--num_workers", "0"))
    got = [k for k, _ in rows(tmp_path / "embeddings" / "p10.parquet")]
    assert got == scan_files(video_tree, [".mp4"], subdir="p10")[:3]
    assert "--batch_size" in run_script("extract.py", "--help").stdout


TORCH_WATCH = """
import os, runpy, sys
seen = []
class TorchWatch:  # records the environment at the moment torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, TorchWatch())
sys.argv = ["extract.py", "--help"]
try:
    runpy.run_path(SCRIPT, run_name="__main__")
except SystemExit:
    pass
print(seen)
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_script_makes_waiting_model_threads_sleep_before_torch_loads(given, expected):
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads: the script sets it first, keeping a user's value."""
    env = {k: v for k, v in run_env().items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    probe = TORCH_WATCH.replace("SCRIPT", repr(str(SCRIPTS / "extract.py")))
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == repr([expected])  # after the --help text


def test_the_job_log_names_each_failed_file_once(tiny_model, tmp_path):
    tree = tmp_path / "in"
    (tree / "p10").mkdir(parents=True)
    (tree / "p10" / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    (tree / "p10" / "empty.mp4").write_bytes(b"")
    proc = run_script("extract.py", *extract_args(tree, tiny_model, tmp_path, "--num_workers", "0"))
    for name in ("p10/garbage.mp4", "p10/empty.mp4"):
        named = [line for line in proc.stderr.splitlines() if f"{name}: decode failed: " in line]
        assert len(named) == 1, proc.stderr[-2000:]
    assert pq.read_table(tmp_path / "embeddings" / "p10.errors.parquet").num_rows == 2


@pytest.mark.parametrize("workers", ["0", "1"])
def test_what_a_native_decoder_prints_is_logged_under_the_files_key(tiny_model, tmp_path, workers):
    """FFmpeg writes "[h264 @ 0x…] Invalid NAL unit size" to the process's stderr, naming no file."""
    from support.workflow import fixtures_dir

    tree = tmp_path / "in"
    (tree / "p10").mkdir(parents=True)
    (tree / "p10" / "corrupted.mp4").write_bytes((fixtures_dir("video/broken") / "decord_corrupted.mp4").read_bytes())
    (tree / "p10" / "whole.mp4").write_bytes((fixtures_dir("video") / "mmaction2_test.mp4").read_bytes())
    proc = run_script("extract.py", *extract_args(tree, tiny_model, tmp_path, "--num_workers", workers))
    said = [line for line in proc.stderr.splitlines() if "decoder said:" in line]
    assert said and all("p10/corrupted.mp4: decoder said: " in line for line in said), proc.stderr[-3000:]
    assert any("Invalid NAL unit size" in line for line in said)
    loose = [line for line in proc.stderr.splitlines() if line.startswith("[h264 @ ")]
    assert not loose, loose
