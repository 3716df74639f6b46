"""Photos through V-JEPA 2: the reader's modes, error rows, batching, and where each patch token lands."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.readers.image import read_image
from embedpipe.sidecar import read_tensor
from tests.conftest import fixtures_dir, run_script

GOOD = ["pillow_transparent_dice_rgba.png", "skimage_astronaut_rgb.png", "skimage_camera_gray.png",
        "skimage_retina_1411.jpg"]
BROKEN = ["broken/pillow_truncated_jpeg.jpg", "broken/skimage_coffee_TRUNCATED_40000B.png"]


def image_encoder(model, **options):
    return build_encoder("vjepa2", {"media": "image", "model": "tiny", "path": str(model), "device": "cpu",
                                    "batch_size": 4} | options)


def test_real_images_decode_to_rgb_with_alpha_on_white_and_gray_replicated():
    root = fixtures_dir("image")
    for name in GOOD:
        rgb = read_image(str(root / name))
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, name
    dice = read_image(str(root / "pillow_transparent_dice_rgba.png"))
    alpha = np.asarray(Image.open(root / "pillow_transparent_dice_rgba.png"))[:, :, 3]
    assert (dice[alpha == 0] == 255).all()  # fully transparent → white, not black
    gray = read_image(str(root / "skimage_camera_gray.png"))
    assert (gray[:, :, 0] == gray[:, :, 1]).all() and (gray[:, :, 1] == gray[:, :, 2]).all()
    big = read_image(str(root / "skimage_retina_1411.jpg"), min_side=438)
    assert 438 <= min(big.shape[:2]) <= -(-1411 // 2)  # JPEG draft: decoded at half scale, not below 438


@pytest.mark.parametrize("name", BROKEN)
def test_truncated_images_raise(name):
    with pytest.raises(OSError, match="truncated"):
        read_image(str(fixtures_dir("image") / name))


def _save(img: Image.Image, fmt: str, **kw) -> io.BytesIO:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return buf


def test_modes_orientation_and_large_images(tmp_path):
    rgb = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    (tmp_path / "rot.jpg").write_bytes(_save(rgb, "JPEG", exif=exif).getvalue())
    assert read_image(str(tmp_path / "rot.jpg")).shape == (40, 20, 3)

    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 1
    (tmp_path / "pal.png").write_bytes(_save(pal, "PNG", transparency=1).getvalue())
    assert (read_image(str(tmp_path / "pal.png")) == 255).all()

    (tmp_path / "cmyk.jpg").write_bytes(_save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG").getvalue())
    red = read_image(str(tmp_path / "cmyk.jpg")).astype(int)
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 60

    deep = Image.fromarray(np.full((6, 6), 65535, np.uint16))
    deep.save(tmp_path / "deep.png")
    assert (read_image(str(tmp_path / "deep.png")) == 255).all()
    deep = Image.fromarray(np.full((6, 6), 32896, np.uint16))  # mid-gray in 16 bits, not white
    deep.save(tmp_path / "mid.png")
    assert (read_image(str(tmp_path / "mid.png")) == 128).all()

    Image.new("LA", (10, 10), (0, 0)).save(tmp_path / "la.png")
    assert (read_image(str(tmp_path / "la.png")) == 255).all()

    Image.new("RGB", (3000, 1000), (1, 2, 3)).save(tmp_path / "wide.png")
    small = read_image(str(tmp_path / "wide.png"), min_side=300)
    assert small.shape == (334, 1000, 3) and (small == [1, 2, 3]).all()


def test_image_rows_batched_equal_single_and_the_device_path(tiny_model):
    root = fixtures_dir("image")
    # fast: the transform the device split runs (CPU's default, official, resizes with OpenCV instead)
    enc = image_encoder(tiny_model, outputs=["mean", "tokens", "temporal", "spatial"], transform="fast")
    enc.model.ensure_loaded(torch.device("cpu"))
    samples = [enc.reader.prepare(str(root / n)).sample for n in GOOD]
    assert samples[0].shape == (1, 3, 64, 64)  # one frame crosses to the model, not 16
    batched = enc.model.encode(Batch(samples))
    for i, s in enumerate(samples):
        single = enc.model.encode(Batch([s]))
        for col in ("embedding", "temporal"):
            np.testing.assert_allclose(batched[col][i], single[col][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched["tokens"][i].astype(np.float32),
                                   single["tokens"][0].astype(np.float32), rtol=1e-2, atol=1e-3)
    assert batched["tokens"].shape == (4, 8, 4, 4, 32) and batched["tokens"].dtype == np.float16
    assert batched["spatial"].shape == (4, 4, 4, 32) and batched["spatial"].dtype == np.float16
    assert batched["temporal"].shape == (4, 8, 32) and batched["temporal"].dtype == np.float32
    tokens = batched["tokens"].astype(np.float32)
    np.testing.assert_allclose(tokens.mean(axis=(1, 2, 3)), batched["embedding"], atol=1e-3)
    np.testing.assert_allclose(tokens.mean(axis=(2, 3)), batched["temporal"], atol=1e-3)

    # The GPU path's split (uint8 frames from the workers, resize on the device) gives the same input.
    enc.reader.preprocess_on_device = enc.model.preprocess_on_device = True
    raw = [enc.reader.prepare(str(root / n)).sample for n in GOOD]
    assert raw[0].dtype == torch.uint8
    on_device = enc.model.model_input(Batch(raw))
    enc.reader.preprocess_on_device = enc.model.preprocess_on_device = False
    torch.testing.assert_close(on_device, enc.model.model_input(Batch(samples)), rtol=0, atol=0)
    assert on_device.shape == (4, 16, 3, 64, 64)


def test_token_grid_puts_each_patch_where_the_model_computed_it(tmp_path):
    # Without transformer layers, token (t, i, j) sees only its own tubelet-patch of pixels: changing
    # that patch must change exactly grid[t, i, j].
    from embedpipe_demo.video import make_tiny_vjepa2

    model = make_tiny_vjepa2(tmp_path / "flat", layers=0)
    enc = build_encoder("vjepa2", {"model": "tiny", "path": str(model), "device": "cpu", "num_frames": 8,
                                   "outputs": ["tokens"]})
    enc.model.ensure_loaded(torch.device("cpu"))
    x = torch.randn(1, 8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    base = enc.model.encode(Batch(list(x)))["tokens"][0]
    assert base.shape == (4, 4, 4, 32)
    for t, i, j in [(0, 0, 0), (1, 2, 3), (3, 3, 0), (2, 0, 1)]:
        y = x.clone()
        y[0, 2 * t: 2 * t + 2, :, 16 * i: 16 * i + 16, 16 * j: 16 * j + 16] += 1.0
        changed = np.argwhere(np.abs(enc.model.encode(Batch(list(y)))["tokens"][0] - base).max(axis=-1) > 1e-3)
        assert changed.tolist() == [[t, i, j]]
        # ... and the flat layout DeepEarth's [4608, 1408] uses is the same tensor, t-major
        flat = enc.model.network.encoder(pixel_values_videos=y).last_hidden_state[0]
        stored = enc.model.encode(Batch(list(y)))["tokens"][0][t, i, j]
        assert torch.allclose(flat[t * 16 + i * 4 + j].half().float(), torch.from_numpy(stored).float(), atol=1e-2)


def test_image_frames_two_is_one_temporal_token_and_a_different_embedding(tiny_model):
    path = str(fixtures_dir("image") / "skimage_astronaut_rgb.png")
    outs = {}
    for frames in (16, 2):
        enc = image_encoder(tiny_model, image_frames=frames, outputs=["temporal"])
        enc.model.ensure_loaded(torch.device("cpu"))
        outs[frames] = enc.model.encode(Batch([enc.reader.prepare(path).sample]))
        assert enc.provenance()["image_frames"] == frames
        outs[f"fp{frames}"] = enc.fingerprint()
    assert outs["fp2"] != outs["fp16"]
    assert outs[2]["temporal"].shape == (1, 1, 32) and outs[16]["temporal"].shape == (1, 8, 32)
    # Identical copies of a frame differ only in their RoPE time positions: the tiny random model moves
    # little (~1e-5); real checkpoints more. Not the same embedding either way, and never mixed: the
    # frame count is part of the fingerprint.
    assert np.abs(outs[2]["embedding"] - outs[16]["embedding"]).max() > 1e-6
    with pytest.raises(ValueError, match="image_frames"):
        image_encoder(tiny_model, image_frames=3)
    with pytest.raises(ValueError, match="encoder.outputs"):
        image_encoder(tiny_model, outputs=["patches"])


def test_extract_script_writes_image_rows_and_error_rows(tiny_model, tmp_path):
    root = fixtures_dir("image")
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("\n".join(sorted(GOOD + BROKEN)) + "\n")
    out = tmp_path / "emb" / "s.parquet"
    options = {"media": "image", "path": str(tiny_model), "device": "cpu", "outputs": ["mean", "tokens"],
               "batch_size": 2}
    run_script("extract.py", "--encoder", "vjepa2", "--model", "tiny", "--encoder_options", json.dumps(options),
               "--input_dir", root, "--shard", "s", "--manifest", manifest, "--output", out, "--num_workers", "0",
               "--save_every", "2")
    rows = pq.read_table(out)
    assert rows.column("key").to_pylist() == sorted(GOOD)
    # Tokens live in safetensors beside the rows, one file per part (--save_every 2: several).
    assert "tokens" not in rows.column_names
    files = rows.column("tokens_file").to_pylist()
    assert len(set(files)) > 1 and all(f.startswith("s.tokens/part-") for f in files)
    for key, rel in zip(sorted(GOOD), files, strict=True):
        tokens = read_tensor(out, rel, key)
        assert tokens.shape == (8, 4, 4, 32) and tokens.dtype == np.float16
        np.testing.assert_allclose(tokens.astype(np.float32).mean(axis=(0, 1, 2)),
                                   rows.column("embedding")[sorted(GOOD).index(key)].as_py(), atol=2e-3)
    assert not (tmp_path / "emb" / "parts").exists()  # parts (and their sidecars) removed once assembled
    errors = pq.read_table(tmp_path / "emb" / "s.errors.parquet").to_pylist()
    assert [e["key"] for e in errors] == sorted(BROKEN)
    assert all("truncated" in e["message"] for e in errors)
