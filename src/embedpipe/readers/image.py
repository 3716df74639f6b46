"""Photos as uint8 RGB arrays, whatever mode, orientation or size they were stored in."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Modes that carry transparency: composited on white, as a photo viewer shows them.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str, min_side: int = 0) -> np.ndarray:
    """`[H, W, 3]` uint8, EXIF orientation applied.

    `min_side`: the smallest short side the caller needs (the resize target). A larger image is
    reduced on the way in, never below it: JPEGs decode at 1/2, 1/4 or 1/8 scale (draft mode, a
    fraction of the decode time), other formats are box-reduced by an integer factor, so a
    40-megapixel photo never goes through the resize at full size. 0: the full image, as V-JEPA 2's
    official transform reads it (Pillow's `convert('RGB')`). Truncated and corrupt files
    raise (Pillow's OSError / UnidentifiedImageError): the caller records them as error rows.
    """
    with Image.open(path) as img:
        if min_side and img.format == "JPEG":
            # draft keeps both sides >= the request; a rotated (EXIF) image swaps them, which the
            # square request makes irrelevant.
            img.draft("RGB", (min_side, min_side))
        img.load()
        img = to_rgb(ImageOps.exif_transpose(img))
        if min_side and (factor := min(img.size) // min_side) >= 2:
            img = img.reduce(factor)  # after the mode conversion: reduce has no palette or 16-bit modes
        return np.array(img, dtype=np.uint8)  # writable: torch.from_numpy shares it


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
