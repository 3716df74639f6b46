"""Photos as uint8 RGB arrays, whatever format, mode, orientation or size they were stored in."""

from __future__ import annotations

import io

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from embedpipe.readers.image_formats import NO_DECODER, UnsupportedImageFormat, camera_raw, heif_cut_short, unreadable
from embedpipe.readers.jpeg_check import check_jpeg_data, variant

# HEIC/HEIF (every iPhone photo) through libheif. Registered on import, so in every process that
# reads photos: the decode workers import this module with the reader they run. libheif composes
# grid images and applies the file's rotation and mirroring (HEIF's own, mandatory ones); thumbnails,
# depth maps and auxiliary images are never read.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
pillow_heif.options.DECODE_THREADS = 1  # a decode worker is one thread: the workers are the parallelism

# Modes that carry transparency: composited on white, as a photo viewer shows them.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_JPEGS = ("JPEG", "MPO")  # MPO: a camera's multi-picture JPEG, whose first picture is the photo


def read_image(path: str, min_side: int = 0, exif_orientation: bool = True) -> np.ndarray:
    """`[H, W, 3]` uint8.

    `exif_orientation`: turn the photo upright as its EXIF Orientation says (a viewer's, and
    OpenCV's `imread`, convention); False keeps the stored pixel grid, as Pillow's `convert('RGB')`
    (V-JEPA 2's official transform) reads it. HEIF's rotation is part of its decoding either way.

    `min_side`: the smallest short side the caller needs (the resize target). A larger image is
    reduced on the way in, never below it: JPEGs decode at 1/2, 1/4 or 1/8 scale (draft mode, a
    fraction of the decode time), other formats are box-reduced by an integer factor, so a
    40-megapixel photo never goes through the resize at full size. 0: the full image.

    Raises, and the caller records an error row: Pillow's OSError for truncated and damaged files,
    CorruptImageData for a JPEG whose scan data libjpeg had to fill in, UnsupportedImageFormat
    naming a format without a decoder (JPEG XL, camera RAW, ...), NotAnImage for any other file.
    """
    with open(path, "rb") as f:
        data = f.read()  # once: Pillow decodes it, the JPEG check walks it, a failure is named from it
    with open_image(data) as img:
        if min_side and img.format == "JPEG":
            # draft keeps both sides >= the request; a rotated (EXIF) image swaps them, which the
            # square request makes irrelevant.
            img.draft("RGB", (min_side, min_side))
        decode(img, data)
        img = to_rgb(ImageOps.exif_transpose(img) if exif_orientation else img)
        if min_side and (factor := min(img.size) // min_side) >= 2:
            img = img.reduce(factor)  # after the mode conversion: reduce has no palette or 16-bit modes
        return np.array(img, dtype=np.uint8)  # writable: torch.from_numpy shares it


def open_image(data: bytes) -> Image.Image:
    """The image in `data`, opened, not decoded; or the error that says why it cannot be the photo."""
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise unreadable(data) from None
    refusal: OSError | None = None
    if img.format == "TIFF" and (raw := camera_raw(data)):
        refusal = UnsupportedImageFormat(f"{raw}: {NO_DECODER}")  # Pillow would read its preview
    elif img.format in ("HEIF", "AVIF") and (cut := heif_cut_short(data)):
        refusal = OSError(f"image file is truncated: {cut}")
    if refusal is not None:
        img.close()
        raise refusal
    return img


def decode(img: Image.Image, data: bytes) -> None:
    """Decode `img` (opened from `data`); raise where its pixels are not all the file's."""
    try:
        img.load()
    except OSError:
        if img.format in _JPEGS and (kind := variant(data)):
            raise UnsupportedImageFormat(f"{kind} image: {NO_DECODER}") from None  # arithmetic, 12-bit, ...
        raise
    except (ValueError, RuntimeError) as exc:
        if img.format == "HEIF":  # libheif's reason, as an OSError like Pillow's for damaged files
            raise OSError(f"damaged HEIF image (libheif: {exc})") from None
        raise
    if img.format in _JPEGS:
        check_jpeg_data(data)


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        # 16-bit and 32-bit grayscale: Pillow's convert would clip everything above 255 to white.
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    # L, 1, P, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, LAB, HSV: Pillow's conversions
    return img.convert("RGB")
