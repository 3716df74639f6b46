"""The image demo's data: a DeepEarth-shaped taxon tree of procedurally drawn specimen photos.

`taxon_<id>/gbif_<gbif_id>_taxon_<id>_<species>_img_<n>.<ext>`, in the sizes and storage modes
photo collections really hold (large JPEGs, EXIF-rotated phone photos, grayscale scans, RGBA and
palette PNGs, CMYK JPEGs), plus one truncated JPEG that must become an error row.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SPECIES = {2650927: "nephrolepis_exaltata", 2651707: "quercus_virginiana", 5284517: "helianthus_annuus"}
# (width, height, storage) cycled over each taxon's images
VARIANTS = [(640, 480, "jpeg"), (480, 640, "jpeg-exif-rotated"), (2400, 1800, "jpeg"), (300, 300, "png-gray"),
            (512, 384, "png-rgba"), (400, 300, "png-palette"), (800, 600, "jpeg-cmyk"), (1000, 750, "jpeg")]


def draw_specimen(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A leaf-and-petal drawing on a graded background: structure at several scales, not noise."""
    top, bottom = rng.integers(40, 220, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    bg = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    cx, cy, scale = width / 2, height / 2, min(width, height)
    for _ in range(int(rng.integers(5, 12))):  # petals round the centre
        angle = rng.uniform(0, 2 * np.pi)
        r = scale * rng.uniform(0.1, 0.35)
        x, y = cx + r * np.cos(angle), cy + r * np.sin(angle)
        w = scale * rng.uniform(0.05, 0.15)
        draw.ellipse((x - w, y - w / 2, x + w, y + w / 2), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    for _ in range(int(rng.integers(2, 6))):  # leaves: polygons
        pts = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(5)]
        draw.polygon(pts, fill=(int(rng.integers(0, 80)), int(rng.integers(100, 200)), int(rng.integers(0, 80))))
    return img.filter(ImageFilter.GaussianBlur(radius=scale / 400))


def encode_variant(img: Image.Image, storage: str) -> tuple[bytes, str]:
    """Image bytes and extension for one storage variant."""
    buf = io.BytesIO()
    if storage == "jpeg":
        img.save(buf, "JPEG", quality=90)
    elif storage == "jpeg-exif-rotated":  # stored landscape, shown portrait (orientation 6)
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=90, exif=exif)
    elif storage == "jpeg-cmyk":
        img.convert("CMYK").save(buf, "JPEG", quality=90)
    elif storage == "png-gray":
        img.convert("L").save(buf, "PNG")
    elif storage == "png-rgba":
        rgba = img.convert("RGBA")
        alpha = Image.new("L", img.size, 0)
        ImageDraw.Draw(alpha).ellipse((img.width * 0.1, img.height * 0.1, img.width * 0.9, img.height * 0.9), fill=255)
        rgba.putalpha(alpha)
        rgba.save(buf, "PNG")
    elif storage == "png-palette":
        img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buf, "PNG")
    else:
        raise ValueError(f"unknown storage {storage!r}")
    return buf.getvalue(), ".jpg" if storage.startswith("jpeg") else ".png"


def make_image_demo(out_dir: Path, folders: list[str], per_taxon: int, seed: int = 0) -> dict[str, int]:
    """Write `taxon_<id>/` folders; returns the number of files per folder (the corrupt one included)."""
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    taxa = {int(f.removeprefix("taxon_")): SPECIES.get(int(f.removeprefix("taxon_")), f"species_{i}")
            for i, f in enumerate(folders)}
    for t, (taxon, species) in enumerate(taxa.items()):
        folder = out_dir / f"taxon_{taxon}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_taxon):
            width, height, storage = VARIANTS[(n + t) % len(VARIANTS)]
            data, ext = encode_variant(draw_specimen(rng, width, height), storage)
            gbif = 1_291_162_000 + 97 * t + n // 2  # two photos per occurrence, as GBIF records often have
            (folder / f"gbif_{gbif}_taxon_{taxon}_{species}_img_{n % 2 + 1}{ext}").write_bytes(data)
        counts[folder.name] = per_taxon
    # Cut off mid-scan: Pillow stops with "image file is truncated".
    whole, _ = encode_variant(draw_specimen(rng, 640, 480), "jpeg")
    first = next(iter(taxa.items()))
    (out_dir / f"taxon_{first[0]}" / f"gbif_1291169999_taxon_{first[0]}_{first[1]}_img_1.jpg").write_bytes(
        whole[: len(whole) // 2])
    counts[f"taxon_{first[0]}"] += 1
    return counts
