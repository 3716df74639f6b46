"""DICOM echo cines: the sampled frames against independent decoders (pydicom's whole-file decode and
colour functions, Pillow on the JPEG items), frame timing, offset tables, truncation. Privacy, refusals
and dispatch: test_dicom_privacy.py."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)
from support.dicom_files import cine, write_dicom
from support.workflow import fixtures_dir

from embedpipe.readers import dicom_video
from embedpipe.readers.dicom_video import DicomReadError, read_dicom_video
from embedpipe.readers.video import frame_indices

PALETTE = "dbdicom_us_echo_palette_rle_11f.dcm"
BASELINE = "dicomparser_us_acuson_ybr_jpeg_baseline_8f.dcm"
RGB_SINGLE = "dcmbench_us_esopecho_rgb_single.dcm"
EXTENDED_SINGLE = "pylibjpeg_us_acuson_ybr_jpeg_extended_single.dcm"


def fixture(name: str) -> Path:
    return fixtures_dir("video/dicom") / name


def whole(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def test_palette_rle_cine_is_pydicoms_whole_decode_through_its_colour_lut():
    path = fixture(PALETTE)
    ds = whole(path)
    reference = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)  # 16-bit entries, 8-bit values << 8
    for t in (16, 4):
        clip = read_dicom_video(str(path), t)
        assert clip.frames.dtype == np.uint8 and clip.frames.shape == (t, 430, 600, 3)
        np.testing.assert_array_equal(clip.frames, reference[frame_indices(11, t)])
    assert (clip.frames_decoded, clip.frames_declared, clip.truncated) == (11, 11, False)
    assert (clip.height, clip.width, clip.transfer_syntax) == (430, 600, "RLE Lossless")
    assert clip.frame_rate == pytest.approx(1000 / 62.727272)
    assert (reference[..., 0] != reference[..., 2]).mean() > 0.01  # a colour image, not grey repeated


def test_jpeg_baseline_ybr_agrees_with_pillow_decoding_the_items_itself():
    """Pillow turns each JPEG's YCbCr into RGB in libjpeg; this reader converts pydicom's raw YCbCr
    by PS3.3's equations. Converting twice, or not at all, would be off by tens of levels."""
    path = fixture(BASELINE)
    ds = whole(path)
    items = list(generate_frames(ds.PixelData, number_of_frames=8))
    pillow = np.stack([np.asarray(Image.open(io.BytesIO(item)).convert("RGB")) for item in items])
    ycbcr = []
    for item in items:
        image = Image.open(io.BytesIO(item))
        image.draft("YCbCr", image.size)
        ycbcr.append(np.asarray(image))
    clip = read_dicom_video(str(path), 16)
    picks = frame_indices(8, 16)
    difference = np.abs(clip.frames.astype(int) - pillow[picks])
    assert difference.max() <= 1 and difference.mean() < 0.01, (difference.max(), difference.mean())
    assert np.abs(clip.frames.astype(int) - np.stack(ycbcr)[picks]).mean() > 10  # YCbCr was converted
    by_pydicom = convert_color_space(pixel_array(ds, raw=True, decoding_plugin="pillow"), "YBR_FULL", "RGB")[picks]
    assert np.abs(clip.frames.astype(int) - by_pydicom).max() <= 1
    assert (clip.frames_decoded, clip.frames_declared, clip.truncated) == (8, 8, False)
    vector = [float(v) for v in ds.FrameTimeVector]
    assert clip.frame_rate == pytest.approx(1000 / np.mean(vector))
    assert clip.transfer_syntax == "JPEG Baseline (Process 1)"


@pytest.mark.parametrize("name,tolerance", [(RGB_SINGLE, 0), (EXTENDED_SINGLE, 1)])
def test_a_single_frame_ultrasound_is_its_still_repeated_with_frames_decoded_1(name, tolerance):
    path = fixture(name)
    still = pixel_array(str(path), decoding_plugin="pillow")  # pydicom's RGB (its own YBR_FULL → RGB for the JPEG)
    clip = read_dicom_video(str(path), 16)
    assert clip.frames.shape == (16, *still.shape)
    assert (clip.frames == clip.frames[0]).all()
    assert np.abs(clip.frames[0].astype(int) - still).max() <= tolerance
    assert (clip.frames_decoded, clip.frames_declared, clip.truncated, clip.frame_rate) == (1, 1, False, None)


def test_sixteen_bit_and_eight_bit_palettes_and_a_first_mapped_value(tmp_path):
    indices = cine(5, top=255).astype(np.uint8)
    rng = np.random.default_rng(1)
    lut16 = rng.integers(0, 65536, size=(3, 200), dtype=np.uint16)
    lut8 = rng.integers(0, 256, size=(3, 256), dtype=np.uint8)
    for name, lut, descriptor in (("p16", lut16, [200, 30, 16]), ("p8", lut8, [256, 0, 8])):
        extra = {}
        for channel, colour in enumerate(("Red", "Green", "Blue")):
            extra[f"{colour}PaletteColorLookupTableDescriptor"] = descriptor
            extra[f"{colour}PaletteColorLookupTableData"] = lut[channel].tobytes()
        path = write_dicom(tmp_path / f"{name}.dcm", indices, "PALETTE COLOR", extra=extra)
        ds = whole(path)
        reference = apply_color_lut(ds.pixel_array, ds)
        reference = (reference >> 8).astype(np.uint8) if descriptor[2] == 16 else reference
        clip = read_dicom_video(str(path), 5)
        np.testing.assert_array_equal(clip.frames, reference)


def test_a_segmented_16_bit_palette_scales_every_frame_alike_however_dark(tmp_path):
    """Frame 0 maps only to entries under 256: 16-bit entries still, so scaled like the bright frame 1."""
    lut = np.where(np.arange(256) < 100, np.arange(256), np.arange(256) << 8).astype("<u2")
    segment = np.concatenate([[0, 256], lut]).astype("<u2").tobytes()  # one discrete segment (C.7.9.2.1)
    extra = {}
    for colour in ("Red", "Green", "Blue"):
        extra[f"{colour}PaletteColorLookupTableDescriptor"] = [256, 0, 16]
        extra[f"Segmented{colour}PaletteColorLookupTableData"] = segment
    indices = np.stack([np.arange(24 * 32).reshape(24, 32) % 100, 100 + np.arange(24 * 32).reshape(24, 32) % 156])
    path = write_dicom(tmp_path / "segmented.dcm", indices.astype(np.uint8), "PALETTE COLOR", extra=extra)
    reference = (apply_color_lut(whole(path).pixel_array, whole(path)) >> 8).astype(np.uint8)
    clip = read_dicom_video(str(path), 2)
    np.testing.assert_array_equal(clip.frames, reference)
    assert clip.frames[0].max() == 0 and clip.frames[1].max() == 255


def test_monochrome1_is_inverted_grey_and_12_bits_scale_to_8(tmp_path):
    stored = cine(3, top=4095)
    expected = 255 - np.rint(stored.astype(float) * 255 / 4095).astype(np.uint8)
    for syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless):
        path = write_dicom(tmp_path / f"m1-{syntax}.dcm", stored, "MONOCHROME1", bits_stored=12, syntax=syntax)
        clip = read_dicom_video(str(path), 3)
        assert clip.frames.shape == (3, 24, 32, 3) and clip.transfer_syntax == pydicom.uid.UID(syntax).name
        for channel in range(3):
            np.testing.assert_array_equal(clip.frames[..., channel], expected)
    grey = write_dicom(tmp_path / "m2.dcm", cine(2).astype(np.uint8), "MONOCHROME2")
    np.testing.assert_array_equal(read_dicom_video(str(grey), 2).frames[..., 1], cine(2))


def test_native_ybr_full_and_422_match_pydicoms_conversion(tmp_path):
    rgb = cine(2, shape=(8, 12, 3)).astype(np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    full = write_dicom(tmp_path / "full.dcm", ybr, "YBR_FULL")
    # 4:2:2 native layout: Y Y Cb Cr for each pair of pixels along a row (PS3.3 C.7.6.3.1.2)
    pairs = ybr.reshape(2, 8, 6, 2, 3).astype(int)
    packed = np.concatenate([pairs[..., 0, 0:1], pairs[..., 1, 0:1], pairs[..., :, 1:].mean(3).round()],
                            axis=-1).astype(np.uint8)
    half = write_dicom(tmp_path / "422.dcm", ybr, "YBR_FULL_422", encoded=packed.tobytes())
    for path in (full, half):
        reference = whole(path).pixel_array  # pydicom upsamples 4:2:2 and converts to RGB
        got = read_dicom_video(str(path), 2).frames
        assert np.abs(got.astype(int) - reference).max() <= 1, path.name
    assert np.abs(read_dicom_video(str(full), 2).frames.astype(int) - rgb).max() <= 2  # and RGB comes back


def test_the_partial_range_inverse_undoes_the_standards_forward_equations():
    from embedpipe.readers.dicom_color import ybr_to_rgb

    rgb = cine(1, shape=(16, 16, 3))[0].astype(float)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    partial = np.stack([0.2568 * r + 0.5041 * g + 0.0979 * b + 16, -0.1482 * r - 0.2910 * g + 0.4392 * b + 128,
                        0.4392 * r - 0.3678 * g - 0.0714 * b + 128], axis=-1)  # PS3.3 C.7.6.3.1.2
    back = ybr_to_rgb(np.rint(partial).astype(np.uint8), "YBR_PARTIAL_422")
    assert np.abs(back.astype(int) - rgb).max() <= 2


def test_jpeg_2000_with_a_colour_transform_comes_back_rgb_losslessly(tmp_path):
    rgb = cine(3, shape=(64, 80, 3)).astype(np.uint8)
    path = write_dicom(tmp_path / "rgb.dcm", rgb, "RGB")
    ds = whole(path)
    ds.PhotometricInterpretation = "YBR_RCT"  # RGB samples, that pydicom then encodes with the reversible transform
    ds.compress(JPEG2000Lossless)
    ds.save_as(path, enforce_file_format=True)
    assert whole(path).PhotometricInterpretation == "YBR_RCT"
    np.testing.assert_array_equal(read_dicom_video(str(path), 3).frames, rgb)


def jpeg_items(frames: np.ndarray) -> list[bytes]:
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "JPEG", quality=95, subsampling=1)  # 4:2:2, as US scanners write
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize("layout", ["one item a frame", "3 items a frame, offset table", "3 items a frame, no table",
                                    "extended offset table"])
def test_jpeg_frames_are_found_in_every_item_layout_and_after_a_cut(layout, tmp_path):
    rgb = cine(6, shape=(32, 48, 3)).astype(np.uint8)
    items = jpeg_items(rgb)
    extra = {}
    if layout == "extended offset table":
        encoded, extra["ExtendedOffsetTable"], extra["ExtendedOffsetTableLengths"] = encapsulate_extended(items)
    else:
        fragments = 1 if layout == "one item a frame" else 3
        encoded = encapsulate(items, fragments_per_frame=fragments, has_bot=layout != "3 items a frame, no table")
    path = write_dicom(tmp_path / "jpeg.dcm", rgb, "YBR_FULL_422", syntax=JPEGBaseline8Bit, extra=extra,
                       encoded=encoded)
    pillow = np.stack([np.asarray(Image.open(io.BytesIO(item)).convert("RGB")) for item in items])
    clip = read_dicom_video(str(path), 6)
    assert clip.frames_decoded == 6 and clip.truncated is False
    assert np.abs(clip.frames.astype(int) - pillow).max() <= 2
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - len(items[-1]) - len(items[-2]) // 2])  # inside frame 4: frames 0-3 left
    clip = read_dicom_video(str(cut), 8)
    assert (clip.frames_decoded, clip.frames_declared, clip.truncated) == (4, 6, True)
    assert np.abs(clip.frames.astype(int) - pillow[frame_indices(4, 8)]).max() <= 2


@pytest.mark.parametrize("table", ["zeros", "not increasing", "inside an item", "past the end", "6 bytes",
                                   "extended, 12 bytes"])
def test_an_offset_table_that_cannot_be_right_is_ignored_and_frames_found_by_their_markers(table, tmp_path):
    rgb = cine(6, shape=(32, 48, 3)).astype(np.uint8)
    items = jpeg_items(rgb)
    with_table = encapsulate(items, fragments_per_frame=3, has_bot=True)
    offsets = list(struct.unpack("<6L", with_table[8:32]))
    bad = {"zeros": [0] * 6, "not increasing": [0, *offsets[2:0:-1], *offsets[3:]],
           "inside an item": [*offsets[:3], offsets[3] + 2, *offsets[4:]], "past the end": [*offsets, 10**7]}
    raw = b"\0" * 6 if table == "6 bytes" else b"" if table.startswith("extended") else struct.pack(
        f"<{len(bad[table])}L", *bad[table])
    encoded = b"\xfe\xff\x00\xe0" + struct.pack("<L", len(raw)) + raw + with_table[32:]
    extra = {"ExtendedOffsetTable": b"\0" * 12, "ExtendedOffsetTableLengths": b"\0" * 12} if raw == b"" else {}
    path = write_dicom(tmp_path / "bot.dcm", rgb, "YBR_FULL_422", syntax=JPEGBaseline8Bit, encoded=encoded,
                       extra=extra)
    pillow = np.stack([np.asarray(Image.open(io.BytesIO(item)).convert("RGB")) for item in items])
    clip = read_dicom_video(str(path), 6)
    assert (clip.frames_decoded, clip.truncated) == (6, False)
    assert np.abs(clip.frames.astype(int) - pillow).max() <= 2


def test_only_the_sampled_items_are_decoded(tmp_path):
    """Frame 1's RLE item is garbage: a whole-file decode fails, sampling 4 of 16 never touches it."""
    frames = cine(16).astype(np.uint8)
    path = write_dicom(tmp_path / "rle.dcm", frames, "MONOCHROME2", syntax=RLELossless)
    ds = whole(path)
    items = list(generate_frames(ds.PixelData, number_of_frames=16))
    items[1] = b"\xff" * len(items[1])  # an RLE header claiming 2^32 - 1 segments
    ds.PixelData = encapsulate(items)
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(Exception):  # noqa: B017 - whichever plugin pydicom picks, it must fail
        pixel_array(str(path))
    assert list(frame_indices(16, 4)) == [0, 5, 10, 15]
    np.testing.assert_array_equal(read_dicom_video(str(path), 4).frames[..., 0], frames[[0, 5, 10, 15]])
    with pytest.raises(DicomReadError, match="RLE Lossless frame did not decode"):
        read_dicom_video(str(path), 16)  # and sampling frame 1 does decode it


def test_only_the_sampled_native_frames_are_read(tmp_path, monkeypatch):
    frames = cine(16).astype(np.uint8)
    path = write_dicom(tmp_path / "native.dcm", frames, "MONOCHROME2")
    frame_bytes = 24 * 32
    pixels_at = path.stat().st_size - 16 * frame_bytes
    reads: list[tuple[int, int]] = []

    class Spy(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            at = self.tell()
            data = super().read(size)
            reads.append((at, at + len(data)))
            return data

    monkeypatch.setattr(dicom_video, "open", lambda p, mode: Spy(p, "r"), raising=False)
    clip = read_dicom_video(str(path), 4)
    np.testing.assert_array_equal(clip.frames[..., 2], frames[[0, 5, 10, 15]])

    def touched(k: int) -> bool:
        lo, hi = pixels_at + k * frame_bytes, pixels_at + (k + 1) * frame_bytes
        return any(a < hi and b > lo for a, b in reads)

    assert [k for k in range(16) if touched(k)] == [0, 5, 10, 15]


def test_a_cut_cine_is_flagged_truncated_and_spread_over_what_is_left(tmp_path):
    path = fixture(PALETTE)
    reference = (apply_color_lut(whole(path).pixel_array, whole(path)) >> 8).astype(np.uint8)
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    clip = read_dicom_video(str(cut), 16)
    assert clip.truncated is True and 1 <= clip.frames_decoded < 11 and clip.frames_declared == 11
    np.testing.assert_array_equal(clip.frames, reference[frame_indices(clip.frames_decoded, 16)])
    single = fixture(RGB_SINGLE).read_bytes()
    cut.write_bytes(single[: len(single) - 100])
    with pytest.raises(DicomReadError, match="no whole frame"):
        read_dicom_video(str(cut), 16)


def test_frame_rate_from_frame_time_cine_rate_display_rate_or_the_time_vector(tmp_path):
    frames = cine(4).astype(np.uint8)
    cases = [({"FrameTime": "40"}, 25.0), ({"CineRate": 30, "RecommendedDisplayFrameRate": 50}, 30.0),
             ({"RecommendedDisplayFrameRate": 50}, 50.0), ({"FrameTimeVector": ["0", "20", "40", "60"]}, 25.0),
             ({"FrameTime": "0", "CineRate": 24}, 24.0), ({}, None),
             ({"FrameTimeVector": ["0", "30", "0", "30"]}, 50.0)]  # only the leading 0 is no increment
    for k, (extra, fps) in enumerate(cases):
        clip = read_dicom_video(str(write_dicom(tmp_path / f"{k}.dcm", frames, "MONOCHROME2", extra=extra)), 4)
        assert clip.frame_rate == (pytest.approx(fps) if fps else None), extra
