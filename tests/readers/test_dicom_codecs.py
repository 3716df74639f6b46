"""Every transfer syntax and colour model pydicom's own test files hold, read by embedpipe's DICOM
reader (only the sampled frames decoded, by its own item walk and colour code) against pydicom's
whole-file `pixel_array` (pydicom's decoders and colour conversion: an independent reading).

pydicom ships these files in its wheel (`pydicom/data/test_files`): JPEG Baseline/Extended/Lossless,
JPEG-LS lossless and near-lossless, JPEG 2000 (with and without a colour transform), RLE at 8, 16
and 32 bits, big- and little-endian, implicit and deflated, palette, YBR, 1- to 32-bit grey.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut

from embedpipe.readers.dicom_video import read_dicom_video
from embedpipe.readers.video import frame_indices

FILES = Path(pydicom.__file__).parent / "data" / "test_files"
LOSSY_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")  # decoded by Pillow here, libjpeg there
CASES = [
    "693_J2KI", "CT_small", "ExplVR_BigEnd", "GDCMJ2K_TextGBR", "J2K_pixelrep_mismatch", "JPEG2000",
    "JPEGLSNearLossless_08", "JPEGLSNearLossless_16", "JPGExtended", "MR_small", "MR_small_RLE",
    "MR_small_bigendian", "MR_small_expb", "MR_small_implicit", "MR_small_jp2klossless",
    "MR_small_jpeg_ls_lossless", "MR_small_padded", "SC_jpeg_no_color_transform", "SC_rgb_dcmtk_+eb+cr",
    "SC_rgb_dcmtk_+eb+cy+n1", "SC_rgb_dcmtk_+eb+cy+np", "SC_rgb_dcmtk_+eb+cy+s2", "SC_rgb_gdcm_KY",
    "SC_rgb_jls_lossy_line", "SC_rgb_jls_lossy_sample", "SC_rgb_jpeg", "SC_rgb_jpeg_app14_dcmd",
    "SC_rgb_jpeg_dcmtk", "SC_rgb_jpeg_gdcm", "SC_rgb_jpeg_lossy_gdcm", "SC_rgb_rle", "SC_rgb_rle_16bit",
    "SC_rgb_rle_16bit_2frame", "SC_rgb_rle_2frame", "SC_rgb_rle_32bit_2frame", "SC_rgb_small_odd",
    "SC_rgb_small_odd_big_endian", "SC_rgb_small_odd_jpeg", "SC_ybr_full_422_uncompressed", "examples_jpeg2k",
    "examples_overlay", "examples_palette", "examples_rgb_color", "examples_ybr_color", "image_dfl",
    "liver_1frame", "liver_expb_1frame", "rtdose", "rtdose_expb", "rtdose_rle",
]


def pydicom_rgb(ds: pydicom.Dataset) -> np.ndarray:
    """uint8 [N, H, W, 3] from pydicom's decode: palettes through its LUT (16-bit entries' high
    byte), grey and RGB stored ranges mapped linearly onto 0–255, MONOCHROME1 inverted."""
    pixels = ds.pixel_array  # YBR is converted to RGB by pydicom itself
    if int(ds.get("NumberOfFrames") or 1) == 1:
        pixels = pixels[None]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    values = pixels.astype(np.float64) + (2.0 ** (bits - 1) if signed else 0.0)
    out = np.clip(np.rint(values * 255.0 / (2.0**bits - 1)), 0, 255).astype(np.uint8)
    if out.ndim == 3:
        out = np.repeat(out[..., None], 3, axis=-1)
    return 255 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


@pytest.mark.parametrize("name", CASES)
def test_each_codec_and_colour_model_reads_as_pydicom_decodes_the_whole_file(name):
    path = FILES / f"{name}.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own remarks about these deliberately odd files
        ds = pydicom.dcmread(path)
        want = pydicom_rgb(ds)
    clip = read_dicom_video(str(path), 4)
    n = want.shape[0]
    assert (clip.frames_decoded, clip.height, clip.width) == (n, ds.Rows, ds.Columns)
    assert clip.transfer_syntax == ds.file_meta.TransferSyntaxUID.name
    indices = frame_indices(n, 4) if n > 1 else np.zeros(4, dtype=int)
    assert clip.frames.shape == (4, ds.Rows, ds.Columns, 3) and clip.frames.dtype == np.uint8
    lossy = ds.file_meta.TransferSyntaxUID in LOSSY_JPEG
    diff = np.abs(clip.frames.astype(int) - want[indices].astype(int))
    # Two JPEG decoders agree to a few levels (IDCT and upsampling rounding); every other codec is exact.
    assert diff.max() <= (3 if lossy else 0) and diff.mean() < (0.2 if lossy else 1e-9), (diff.max(), diff.mean())
