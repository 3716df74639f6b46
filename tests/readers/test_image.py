"""Photos through V-JEPA 2: the reader's modes, error rows, batching, and where each patch token lands."""

from __future__ import annotations

import io
import json
import multiprocessing
import re

import cv2
import numpy as np
import pillow_heif
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageOps, TiffImagePlugin, TiffTags
from support.workflow import REPO, fixtures_dir, run_script

from embedpipe.encoders import OptionError, build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.readers.image import read_image
from embedpipe.readers.image_formats import NotAnImage, UnsupportedImageFormat
from embedpipe.readers.jpeg_check import CorruptImageData
from embedpipe.store.sidecar import read_tensor

GOOD = ["pillow_transparent_dice_rgba.png", "skimage_astronaut_rgb.png", "skimage_camera_gray.png",
        "skimage_retina_1411.jpg"]
BROKEN = ["broken/pillow_truncated_jpeg.jpg", "broken/skimage_coffee_TRUNCATED_40000B.png"]
HEIC = ["heic/androidx_sample_still_photo_1080x1920.heic", "heic/pyheif_arrow_iphone8plus.heic"]
# decode without an exception in Pillow; libjpeg (djpeg) warns, as SOURCES.md records
CORRUPT = {"broken/zune_fuzz_small-img_bad_huffman.jpg": "huffman code",
           "broken/androidx_pixel4xl_non-motion-photo-shortened.jpg": "premature end of data segment"}
# a real photo stored rotated, EXIF Orientation 6 (tests/data/README.md)
ROTATED = REPO / "tests" / "data" / "recurser_Portrait_6.jpg"


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


def pillow_rgb(path) -> np.ndarray:
    """Pillow's reading of a photo, turned upright: what the reader must return for a good one."""
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


@pytest.mark.parametrize("name,size", [(HEIC[0], (1080, 1920)), (HEIC[1], (3024, 4032))])
def test_heic_photos_read_as_libheif_decodes_them(name, size):
    path = str(fixtures_dir("image") / name)
    heif = pillow_heif.open_heif(path)  # libheif itself: the iPhone's 48 tiles composed into one picture
    assert heif.size == size
    np.testing.assert_array_equal(read_image(path), np.asarray(heif))


@pytest.mark.parametrize("name", HEIC)
def test_a_cut_heic_is_an_error_not_green_tiles(name, tmp_path):
    # libheif decodes a grid whose last tiles are missing without an error, painting them green
    data = (fixtures_dir("image") / name).read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="^image file is truncated: its 'mdat' box declares"):
        read_image(str(tmp_path / "cut.heic"))


def test_a_fresh_decode_worker_reads_heic(tiny_model):
    """A spawned worker has imported nothing but what unpickling the reader pulls in."""
    enc = image_encoder(tiny_model, transform="fast")
    path = str(fixtures_dir("image") / HEIC[0])
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        prepared = pool.apply(enc.reader.prepare, (path,))
    torch.testing.assert_close(prepared.sample, enc.reader.prepare(path).sample, rtol=0, atol=0)


def _fake_dng() -> bytes:
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[50706], info.tagtype[50706] = b"\x01\x04\x00\x00", TiffTags.BYTE  # DNGVersion 1.4
    return _save(Image.new("RGB", (16, 12)), "TIFF", tiffinfo=info).getvalue()


# Each format's first bytes, from its specification (nothing decodable follows them); a DNG is a
# TIFF whose first directory has a DNGVersion tag, which Pillow would read as an ordinary TIFF.
SIGNATURES = [
    ("JPEG XL image", b"\xff\x0a\xfa\x7f\x01\x90\x08\x00"),  # bare codestream
    ("JPEG XL image", b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00\x00\x00\x14ftypjxl \x00\x00\x00\x00jxl "),
    ("Canon CR3 (camera RAW) image", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom"),
    ("Fujifilm RAF (camera RAW) image", b"FUJIFILMCCD-RAW 0201FF383501"),
    ("OpenEXR image", b"v/1\x01\x02\x00\x00\x00"),
    ("SVG (vector) image", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'),
    ("DNG (camera RAW) image", None),
]


@pytest.mark.parametrize("kind,head", SIGNATURES)
def test_an_unsupported_image_format_is_named(kind, head, tmp_path):
    path = tmp_path / "photo.img"
    path.write_bytes(head or _fake_dng())
    with pytest.raises(UnsupportedImageFormat) as raised:
        read_image(str(path))
    assert str(raised.value) == f"{kind}: no decoder available"


@pytest.mark.parametrize("source,kind", [("video/nasa_13013.mp4", "ISO media file (brand 'isom'"),
                                         ("audio/sr_english_speech_44k1_mono.wav", "RIFF file"),
                                         ("video/dicom/dcmbench_us_esopecho_rgb_single.dcm", "DICOM file"),
                                         (b"", "the file is empty"),
                                         (b"name,label\n", "no known image format starts with the bytes 6e 61")])
def test_a_file_that_is_no_image_says_so(source, kind, tmp_path):
    path = tmp_path / "photo.jpg"
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        path = fixtures_dir("") / source
    with pytest.raises(NotAnImage) as raised:
        read_image(str(path))
    assert str(raised.value).startswith(f"not an image: {kind}") and str(path.parent) not in str(raised.value)


def test_jpegs_whose_scans_libjpeg_fills_in_raise_and_whole_ones_read_as_pillow_reads_them(tmp_path):
    root = fixtures_dir("image")
    for name, warning in CORRUPT.items():
        with pytest.raises(CorruptImageData, match=re.compile(warning, re.IGNORECASE)):
            read_image(str(root / name))
    retina = (root / "skimage_retina_1411.jpg").read_bytes()
    photo = Image.open(io.BytesIO(retina))
    progressive = _save(photo, "JPEG", quality=90, progressive=True).getvalue()
    cmyk = _save(photo.convert("CMYK"), "JPEG", quality=90).getvalue()  # Adobe APP14, inverted CMYK
    path = tmp_path / "photo.jpg"
    for data in (retina, progressive, cmyk):  # cut short and closed with EOI, as the Pixel photo was
        path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
        with pytest.raises(CorruptImageData, match="premature end of data segment"):
            read_image(str(path), min_side=438)  # the draft decode is checked as well
    app0_end = 4 + int.from_bytes(retina[4:6], "big")
    jfif = retina.index(b"JFIF\x00") + 5
    whole = {"baseline": retina, "progressive": progressive, "CMYK": cmyk,
             "MPO": _save(photo, "MPO", save_all=True, append_images=[photo.rotate(90)]).getvalue(),
             # quirks libjpeg warns about in pictures it decodes whole
             "padding before EOI": retina[:-2] + b"\x00" * 40 + retina[-2:],
             "JFIF 2.01": retina[:jfif] + b"\x02\x01" + retina[jfif + 2:],
             "junk between segments": retina[:app0_end] + b"\x00\x00\x00" + retina[app0_end:]}
    for name, data in whole.items():
        path.write_bytes(data)
        np.testing.assert_array_equal(read_image(str(path)), pillow_rgb(path), err_msg=name)
        assert min(read_image(str(path), min_side=438).shape[:2]) >= 438, name


def test_exif_orientation_applied_or_ignored_as_opencv_reads_the_photo(tiny_model):
    path = str(ROTATED)
    upright = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)  # OpenCV applies EXIF orientation
    stored = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)
    assert upright.shape == (1800, 1200, 3) and stored.shape == (1200, 1800, 3)
    np.testing.assert_array_equal(read_image(path), upright)
    np.testing.assert_array_equal(read_image(path, exif_orientation=False), stored)
    fingerprints = set()
    for option, frame in (("apply", upright), ("ignore", stored)):
        enc = image_encoder(tiny_model, transform="official", exif_orientation=option)
        expected = transforms.preprocess_on_cpu(frame[None], enc.reader.crop, "official")
        torch.testing.assert_close(enc.reader.prepare(path).sample, expected, rtol=0, atol=0)
        assert enc.provenance()["preprocessing"]["exif_orientation"] == option
        fingerprints.add(enc.fingerprint())
    assert len(fingerprints) == 2  # parts written under one are never mixed with the other's
    assert image_encoder(tiny_model).provenance()["preprocessing"]["exif_orientation"] == "apply"  # the default
    with pytest.raises(OptionError, match="encoder.exif_orientation"):
        image_encoder(tiny_model, exif_orientation="sideways")


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
    whole, failing = sorted(GOOD + HEIC), sorted(BROKEN + list(CORRUPT))
    manifest.write_text("\n".join(sorted(whole + failing)) + "\n")
    out = tmp_path / "emb" / "s.parquet"
    options = {"media": "image", "path": str(tiny_model), "device": "cpu", "outputs": ["mean", "tokens"],
               "batch_size": 2}
    run_script("extract.py", "--encoder", "vjepa2", "--model", "tiny", "--encoder_options", json.dumps(options),
               "--input_dir", root, "--shard", "s", "--manifest", manifest, "--output", out, "--num_workers", "0",
               "--save_every", "2")
    rows = pq.read_table(out)
    assert rows.column("key").to_pylist() == whole  # the HEIC photos too: the script registers their reader
    # Tokens live in safetensors beside the rows, one file per part (--save_every 2: several).
    assert "tokens" not in rows.column_names
    files = rows.column("tokens_file").to_pylist()
    assert len(set(files)) > 1 and all(f.startswith("s.tokens/part-") for f in files)
    for key, rel in zip(whole, files, strict=True):
        tokens = read_tensor(out, rel, key)
        assert tokens.shape == (8, 4, 4, 32) and tokens.dtype == np.float16
        np.testing.assert_allclose(tokens.astype(np.float32).mean(axis=(0, 1, 2)),
                                   rows.column("embedding")[whole.index(key)].as_py(), atol=2e-3)
    assert not (tmp_path / "emb" / "parts").exists()  # parts (and their sidecars) removed once assembled
    errors = pq.read_table(tmp_path / "emb" / "s.errors.parquet").to_pylist()
    assert [e["key"] for e in errors] == failing
    for e in errors:
        if e["key"] in CORRUPT:
            assert e["error_type"] == "CorruptImageData" and re.search(CORRUPT[e["key"]], e["message"], re.I), e
        else:
            assert "truncated" in e["message"], e
        assert str(root) not in e["message"]
