"""Video preprocessing of V-JEPA 2 evaluation: short-side resize, centre crop, ImageNet normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def short_side_for(crop: int) -> int:
    """The resize target of V-JEPA 2's eval transform: int(crop * 256 / 224)."""
    return int(crop * 256 / 224)


def resized_hw(h: int, w: int, short: int) -> tuple[int, int]:
    # Same rounding as V-JEPA 2's get_resize_sizes: the long side is truncated.
    if w < h:
        return int(short * h / w), short
    return short, int(short * w / h)


def preprocess_clips(frames: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 `[N, T, H, W, 3]` (clips of one size) → float32 `[N, T, 3, crop, crop]`, normalised.

    Bilinear without antialiasing (align_corners=False), as V-JEPA 2's tensor resize path does.
    Runs where `frames` is: in a decode worker on the CPU, or batched on the GPU (the fast path).
    """
    n, t, h, w, _ = frames.shape
    clip = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float()
    new_h, new_w = resized_hw(h, w, short_side_for(crop))
    if (new_h, new_w) != (h, w):
        clip = F.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    clip = clip[:, :, top : top + crop, left : left + crop]
    # /255 and the ImageNet normalisation folded into one multiply-add
    scale = torch.tensor([1 / (255.0 * s) for s in IMAGENET_STD], device=clip.device).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
                         device=clip.device).view(1, 3, 1, 1)
    # contiguous: the permute above leaves channels-last strides, and a compiled encoder guards on
    # strides (a batch laid out unlike the warm-up one would be compiled again)
    return torch.addcmul(shift, clip, scale).reshape(n, t, 3, crop, crop).contiguous()


def preprocess_clip(frames: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` → float32 `[T, 3, crop, crop]`, normalised (one clip)."""
    return preprocess_clips(frames.unsqueeze(0), crop)[0]


def describe(crop: int, num_frames: int) -> dict:
    """Preprocessing as recorded in the output's provenance."""
    return {
        "frames": f"{num_frames} at np.linspace(0, n-1, {num_frames}) (decord)",
        "resize": f"short side {short_side_for(crop)}, bilinear, align_corners=False, no antialias",
        "crop": f"centre {crop}x{crop}",
        "scale": "/255",
        "normalise": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    }
