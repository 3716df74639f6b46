"""`encoder.transform`: V-JEPA 2's official eval transform (OpenCV on uint8) and the fast float resize."""

from __future__ import annotations

import cv2
import decord
import numpy as np
import pytest
import torch
from PIL import Image
from support.workflow import fixtures_dir

from embedpipe.encoders import build_encoder
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.readers.image import read_image
from embedpipe.readers.video import read_video_frames

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def vjepa2(model, **options):
    return build_encoder("vjepa2", {"model": "tiny", "path": str(model), "device": "cpu"} | options)


def by_hand(frames: np.ndarray, crop: int) -> torch.Tensor:
    """vjepa2's eval transform written out: cv2 short-side resize, CenterCrop, ClipToTensor, Normalize."""
    short = int(crop * 256 / 224)
    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        size = (short, int(short * h / w)) if w < h else (int(short * w / h), short)  # cv2 wants (w, h)
        resized = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        top, left = int(round((size[1] - crop) / 2.0)), int(round((size[0] - crop) / 2.0))
        out.append(resized[top:top + crop, left:left + crop])
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return (x - MEAN) / STD


def test_official_video_path_is_the_eval_transform_exactly(tiny_model):
    path = fixtures_dir("video") / "mmaction2_test.mp4"  # 256x340: crop 64 resizes to 73x96, top offset round(4.5)
    reader = decord.VideoReader(str(path))
    frames = reader.get_batch(np.linspace(0, len(reader) - 1, 16).astype(int)).asnumpy()
    enc = vjepa2(tiny_model, transform="official")
    got = enc.reader.prepare(str(path)).sample
    assert got.shape == (16, 3, 64, 64) and got.is_contiguous()
    torch.testing.assert_close(got, by_hand(frames, 64), rtol=0, atol=0)


def test_official_image_path_reads_the_full_image_without_reduction(tiny_model):
    path = fixtures_dir("image") / "skimage_camera_gray.png"  # 512x512 grey, 7x the 73-pixel short side
    full = np.asarray(Image.open(path).convert("RGB"))
    enc = vjepa2(tiny_model, media="image", transform="official")
    torch.testing.assert_close(enc.reader.prepare(str(path)).sample, by_hand(full[None], 64), rtol=0, atol=0)
    assert "no reduction" in enc.provenance()["preprocessing"]["reader"]
    # the fast transform keeps its pre-reduction of big photos: a 7x box reduce, ceil(512 / 7) = 74
    fast = vjepa2(tiny_model, media="image", transform="fast")
    assert read_image(str(path), fast.reader.reduce_to).shape == (74, 74, 3)


def test_auto_is_official_on_the_cpu_and_fast_on_cuda(tiny_model):
    cpu, cuda = vjepa2(tiny_model), vjepa2(tiny_model, device="cuda")  # neither loads a model
    assert (cpu.reader.transform, cuda.reader.transform) == ("official", "fast")
    assert cpu.provenance()["preprocessing"]["transform"] == "official"
    assert "cv2.resize" in cpu.provenance()["preprocessing"]["resize"]
    # parts made with one transform are not taken for the other's
    assert vjepa2(tiny_model, transform="fast").fingerprint() != cpu.fingerprint()
    assert vjepa2(tiny_model, transform="official").fingerprint() == cpu.fingerprint()


def test_official_on_cuda_leaves_the_resize_to_the_workers(tiny_model, monkeypatch):
    enc = vjepa2(tiny_model, device="cuda", transform="official")
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)  # "load" on CUDA without one
    enc.model.load(torch.device("cuda"))
    assert not enc.reader.preprocess_on_device and not enc.model.preprocess_on_device
    fast = vjepa2(tiny_model, device="cuda")
    fast.model.load(torch.device("cuda"))
    assert fast.reader.preprocess_on_device and fast.model.preprocess_on_device


def test_an_unknown_transform_names_the_config_key(tiny_model):
    with pytest.raises(ValueError, match=r"encoder\.transform: 'opencv' is not one of"):
        vjepa2(tiny_model, transform="opencv")


@pytest.mark.parametrize("name", ["mmaction2_test.mp4", "nasa_13013.mp4"])
def test_fast_stays_within_a_grey_level_of_official(name):
    # Measured at crop 256: 0.769 (mmaction2, 256x340) and 0.770 (nasa, 270x480) grey levels at most;
    # model inputs 0.0134. Float interpolation without uint8 rounding: never a full level.
    frames = read_video_frames(str(fixtures_dir("video") / name), 16)
    official = transforms.resize_crop_official(frames, 256)
    fast = transforms.preprocess_clip(torch.from_numpy(frames), 256)
    fast_grey = ((fast * STD + MEAN) * 255).permute(0, 2, 3, 1).numpy()
    diff = np.abs(fast_grey - official)
    assert diff.max() < 1.0
    assert diff.mean() < 0.3  # not a shift: most pixels agree to well under a level
