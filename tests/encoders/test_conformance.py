"""embedpipe against the official code: every case of ../shared/conformance/MANIFEST.json.

Each case is a checkpoint in its release's own format, a real input file, and the arrays the
official implementation computed from them end to end. Here the same file goes through embedpipe
as an extract job runs it — `build_encoder` on the checkpoint, the reader's `prepare` on the file, a
`Batch`, the model's `encode` — and every array is compared within the kit's suggested tolerance. Nothing expected
here was computed by embedpipe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support.workflow import CONFORMANCE, FIXTURES, conformance_dir, run_script

from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.readers.image import read_image
from embedpipe.readers.video import frame_indices, read_video_frames

CPU = torch.device("cpu")


def _cases() -> list[Any]:
    manifest = CONFORMANCE / "MANIFEST.json"
    if not manifest.is_file():  # collected anyway, so that the test itself can skip or fail
        return [pytest.param(None, None, id="kit-absent")]
    encoders = json.loads(manifest.read_text())["encoders"]
    return [pytest.param(name, case_id, id=f"{name}/{case_id}") for name, kit in encoders.items()
            for case_id in kit["cases"]]


def _kit(name: str) -> dict[str, Any]:
    return json.loads((conformance_dir() / "MANIFEST.json").read_text())["encoders"][name]


def _input(case: dict[str, Any]) -> str:
    """Kit inputs are written `fixtures/...`, relative to the folder holding conformance/ and fixtures/."""
    return str(FIXTURES.parent / case["input"])


def _close(name: str, got: Any, want: np.ndarray, tolerance: dict[str, Any]) -> None:
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, official {want.shape}"
    np.testing.assert_allclose(got, want, atol=tolerance.get("atol", 0), rtol=tolerance.get("rtol", 0),
                               err_msg=f"{name} differs from the official output")


def _encode_one(encoder, path: str) -> tuple[Any, dict[str, Any]]:
    encoder.model.ensure_loaded(CPU)
    prepared = encoder.reader.prepare(path)
    return prepared, encoder.model.encode(Batch([prepared.sample]))


def check_ecgfounder(case: dict[str, Any], kit: Path, tol: dict[str, Any]) -> None:
    # The ECGFounder script: the whole record, one z-score, no filter; 1000 Hz halved by keeping
    # every second sample (resample_unequal), which embedpipe offers as `resample: every_second`.
    encoder = build_encoder("ecgfounder", {"model": "conformance", "path": str(kit / case["checkpoint"]),
                                           "mode": case["mode"], "length": "full", "resample": "every_second",
                                           "device": "cpu", "precision": "fp32"})
    want = np.load(kit / case["expected"])
    prepared, out = _encode_one(encoder, _input(case))
    _close("input", prepared.sample, want["input"], tol["input"])
    _close("features", out["features"][0], want["features"], tol["features"])
    _close("embedding", out["embedding"][0], want["embedding"], tol["embedding"])
    assert prepared.facts["n_samples"] == case["model_samples"]


def check_metis(case: dict[str, Any], kit: Path, tol: dict[str, Any]) -> None:
    root = kit / "metis"
    encoder = build_encoder("metis", {"model": "conformance", "path": str(root / "w2v-bert-2.0"),
                                      "codec_path": str(root / "semantic_codec" / "model.safetensors"),
                                      "stats_path": str(root / "wav2vec2bert_stats.pt"),
                                      "device": "cpu", "precision": "fp32"})
    want = np.load(kit / case["expected"])
    prepared, out = _encode_one(encoder, _input(case))
    wave = prepared.sample.numpy()
    _close("waveform_16k", wave, want["waveform_16k"], tol["waveform_16k"])
    # The filter banks run batched on the model's device, not in SeamlessM4TFeatureExtractor: compare them too.
    feats, mask, lengths = encoder.model.fbank(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    t = int(lengths[0])
    _close("input_features", feats[0, :t], want["input_features"], tol["input_features"])
    assert mask[0, :t].tolist() == want["attention_mask"].tolist()
    _close("latents", out["latents"][0], want["latents"], tol["latents"])
    _close("embedding", out["embedding"][0], want["embedding"], tol["embedding"])
    assert out["n_frames"][0] == case["T"]


def check_ecg_jepa(case: dict[str, Any], kit: Path, tol: dict[str, Any]) -> None:
    want = np.load(kit / case["expected"])
    # Both of the release's files: pretrain.py's checkpoint and the minified one finetune.py is given.
    checkpoints = [kit / c["file"] for c in _kit("ecg_jepa")["model"]["checkpoints"].values()]
    assert kit / case["checkpoint"] in checkpoints
    for checkpoint in checkpoints:
        # defaults only: the official preprocessing and the head count from the checkpoint's config
        encoder = build_encoder("ecg_jepa", {"model": "conformance", "path": str(checkpoint), "device": "cpu",
                                             "precision": "fp32"})
        prepared, out = _encode_one(encoder, _input(case))
        _close("preprocessed", prepared.sample, want["preprocessed"], tol["preprocessed"])
        windows = torch.stack(encoder.model.windows(prepared.sample))
        _close("input", windows, want["input"], tol["input"])
        with torch.inference_mode():
            registers, tokens = encoder.model.network(windows)
        _close("tokens", tokens, want["tokens"], tol["tokens"])
        _close("register", registers[:, 0], want["register"], tol["register"])
        assert out["n_crops"][0] == case["n_crops"]
        _close("crop_embeddings", out["crop_embeddings"][0], want["embedding"], tol["embedding"])
        _close("embedding (mean over crops)", out["embedding"][0], want["embedding"].mean(0), tol["embedding"])
        _close("register (mean over crops)", out["register"][0], want["register"].mean(0), tol["register"])


def check_vjepa2(case: dict[str, Any], kit: Path, tol: dict[str, Any]) -> None:
    # The official eval transform (`transform: official`: uint8 OpenCV resize in the workers); photos
    # as DeepEarth lays them out, one frame repeated to the clip length.
    source = _input(case)
    image = Path(case["input"]).parts[1] == "image"
    want = dict(np.load(kit / case["expected"]))
    options = {"model": "conformance", "path": str(kit / "vjepa2" / "model"), "device": "cpu", "precision": "fp32",
               "transform": "official", "outputs": ["mean", "tokens", "temporal"]}
    encoder = build_encoder("vjepa2", options | ({"media": "image"} if image else {}))
    assert encoder.model.geometry.grid == tuple(case["token_grid"])
    encoder.model.ensure_loaded(CPU)
    prepared = encoder.reader.prepare(source)
    sample = prepared.sample
    if image:
        frames = read_image(source, encoder.reader.reduce_to)[None]
    else:
        assert frame_indices(prepared.facts["frames_decoded"], encoder.reader.num_frames).tolist() == \
            want["frame_indices"].tolist()
        frames = read_video_frames(source, encoder.reader.num_frames)
        _close("decoded_frame_means", frames.mean(axis=(1, 2, 3)), want["decoded_frame_means"],
               tol["decoded_frame_means"])
    _close("clip_uint8", transforms.resize_crop_official(frames, encoder.model.crop), want["clip_uint8"],
           {"atol": tol["clip_uint8"]["max_abs_grey_levels"]})
    official_input = transforms.normalise(torch.from_numpy(want["clip_uint8"]).permute(0, 3, 1, 2))
    _close("model input", sample, official_input.numpy(), tol["model_input_derived_from_clip_uint8"])

    seen: list[torch.Tensor] = []  # encode() pools the float32 tokens and stores float16: catch them on the way
    token_outputs = encoder.model.token_outputs
    encoder.model.token_outputs = lambda tokens: (seen.append(tokens.float().clone()), token_outputs(tokens))[1]
    out = encoder.model.encode(Batch([sample]))
    _close("tokens", seen[0][0], want["tokens"], tol["tokens"])
    # the stored column: float16 rounding (half a unit in the 11th bit) on top of the tolerance
    stored = out["tokens"][0].astype(np.float32).reshape(want["tokens"].shape)
    assert (np.abs(stored - want["tokens"]) - 2.0**-11 * np.abs(want["tokens"])).max() <= tol["tokens"]["atol"]
    _close("embedding", out["embedding"][0], want["embedding"], tol["embedding"])
    _close("temporal", out["temporal"][0], want["temporal"], tol["temporal"])


CHECKS = {"ecgfounder": check_ecgfounder, "metis": check_metis, "ecg_jepa": check_ecg_jepa, "vjepa2": check_vjepa2}


@pytest.mark.parametrize(("encoder", "case_id"), _cases())
def test_matches_the_official_code(encoder: str | None, case_id: str | None) -> None:
    kit = conformance_dir()
    assert encoder is not None, f"{kit / 'MANIFEST.json'} is missing"
    spec = _kit(encoder)
    torch.manual_seed(0)
    CHECKS[encoder](spec["cases"][case_id], kit, spec["suggested_tolerance"])


def test_the_extract_job_writes_the_official_numbers(tmp_path: Path) -> None:
    """The same numbers through the job itself: extract.py on a shard holding the kit's inputs, Parquet rows out."""
    kit = conformance_dir()
    spec = _kit("ecg_jepa")
    shard = tmp_path / "in" / "kit"
    shard.mkdir(parents=True)
    wanted = {}
    for case in spec["cases"].values():
        source = Path(_input(case))
        for companion in source.parent.glob(f"{source.stem}.*"):  # a WFDB header needs its .dat
            (shard / companion.name).symlink_to(companion)
        wanted[source.name] = np.load(kit / case["expected"])
    out = tmp_path / "out" / "kit.parquet"
    options = {"path": str(kit / "ecg_jepa" / "chkpt_10000.pt"), "batch_size": 2, "precision": "fp32"}
    run_script("extract.py", "--encoder", "ecg_jepa", "--model", "conformance", "--encoder_options",
               json.dumps(options), "--input_dir", tmp_path / "in", "--shard", "kit", "--extensions", ".xml", ".hea",
               "--output", out, "--device", "cpu", "--num_workers", "1")
    rows = {r["key"].split("/")[-1]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(rows) == sorted(wanted)
    for name, want in wanted.items():
        _close(f"{name} embedding", rows[name]["embedding"], want["embedding"].mean(0), spec["suggested_tolerance"]
               ["embedding"])
        _close(f"{name} crop_embeddings", rows[name]["crop_embeddings"], want["embedding"],
               spec["suggested_tolerance"]["embedding"])


def test_ci_fails_instead_of_skipping_when_the_kit_is_missing(monkeypatch, tmp_path: Path) -> None:
    from support import workflow

    monkeypatch.setattr(workflow, "CONFORMANCE", tmp_path / "absent")
    monkeypatch.setattr(workflow, "FIXTURES_REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="EMBEDPIPE_FIXTURES=required"):
        workflow.conformance_dir()
    monkeypatch.setattr(workflow, "FIXTURES_REQUIRED", False)
    with pytest.raises(pytest.skip.Exception, match="absent"):
        workflow.conformance_dir()
