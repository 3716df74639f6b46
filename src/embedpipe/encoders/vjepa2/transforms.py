"""Video preprocessing of V-JEPA 2 evaluation: short-side resize, centre crop, ImageNet normalisation.

`encoder.transform` picks how the resize is done (both share the sizes, the crop and the normalisation):
- `official`: facebookresearch/vjepa2's eval transform (`make_transforms(training=False)` → `VideoTransform`):
  OpenCV bilinear on the uint8 frames, in the decode workers. Its numbers are the reference kit's.
- `fast`: a float bilinear resize (`F.interpolate`) that runs batched on the GPU; it differs from
  `official` by up to about one grey level before normalisation (interpolation in float, no uint8 rounding).
- `auto`: `fast` on CUDA, `official` on the CPU, where `fast` saves nothing.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRANSFORMS = ("auto", "official", "fast")


def resolve_transform(transform: str, device: torch.device) -> str:
    """`official` or `fast`: what `encoder.transform` means on `device`."""
    if transform not in TRANSFORMS:
        raise ValueError(f"encoder.transform: {transform!r} is not one of {TRANSFORMS}")
    if transform == "auto":
        return "fast" if device.type == "cuda" else "official"
    return transform


def short_side_for(crop: int) -> int:
    """The resize target of V-JEPA 2's eval transform: int(crop * 256 / 224)."""
    return int(crop * 256 / 224)


def resized_hw(h: int, w: int, short: int) -> tuple[int, int]:
    # Same rounding as V-JEPA 2's get_resize_sizes: the long side is truncated.
    if w < h:
        return int(short * h / w), short
    return short, int(short * w / h)


def crop_offsets(h: int, w: int, crop: int) -> tuple[int, int]:
    """(top, left) of V-JEPA 2's CenterCrop: Python's round, so a half pixel goes to the even side."""
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """0-255 values `[..., 3, H, W]` (uint8 or float) → float32, contiguous, ImageNet-normalised.

    The official arithmetic in its order (ClipToTensor's /255, then Normalize's - mean and / std, all
    float32), so the official path reproduces its input bit for bit. Contiguous: a compiled encoder
    guards on strides, and a batch laid out unlike the warm-up one would be compiled again.
    """
    x = frames.contiguous().float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return x.sub_(mean).div_(std)


def preprocess_clips(frames: torch.Tensor, crop: int) -> torch.Tensor:
    """The fast transform: uint8 `[N, T, H, W, 3]` (clips of one size) → float32 `[N, T, 3, crop, crop]`.

    Bilinear without antialiasing (align_corners=False), as V-JEPA 2's tensor resize path does.
    Runs where `frames` is: in a decode worker on the CPU, or batched on the GPU.
    """
    n, t, h, w, _ = frames.shape
    clip = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float()
    new_h, new_w = resized_hw(h, w, short_side_for(crop))
    if (new_h, new_w) != (h, w):
        clip = F.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = crop_offsets(new_h, new_w, crop)
    return normalise(clip[:, :, top : top + crop, left : left + crop]).reshape(n, t, 3, crop, crop)


def preprocess_clip(frames: torch.Tensor, crop: int) -> torch.Tensor:
    """The fast transform on one clip: uint8 `[T, H, W, 3]` → float32 `[T, 3, crop, crop]`."""
    return preprocess_clips(frames.unsqueeze(0), crop)[0]


def _cv2() -> ModuleType:
    import cv2  # imported on first use: only the official transform needs OpenCV

    # The decode workers are the parallelism (one per CPU); OpenCV's own thread pool in each of
    # them would oversubscribe the job's CPUs for a few small resizes. Results do not depend on it.
    cv2.setNumThreads(1)
    return cv2


def resize_crop_official(frames: np.ndarray, crop: int) -> np.ndarray:
    """The official transform's uint8 stage: `[T, H, W, 3]` → `[T, crop, crop, 3]`.

    vjepa2's Resize (cv2.resize INTER_LINEAR per frame, skipped when the short side already
    matches) and CenterCrop. Exposed so that a check can compare the frames before normalisation.
    """
    t, h, w, _ = frames.shape
    new_h, new_w = resized_hw(h, w, short_side_for(crop))
    top, left = crop_offsets(new_h, new_w, crop)
    out = np.empty((t, crop, crop, 3), dtype=np.uint8)
    cv2 = _cv2() if (new_h, new_w) != (h, w) else None
    for i, frame in enumerate(frames):
        if cv2 is not None:
            frame = cv2.resize(np.ascontiguousarray(frame), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        out[i] = frame[top : top + crop, left : left + crop]
    return out


def preprocess_clip_official(frames: np.ndarray, crop: int) -> torch.Tensor:
    """The official transform: uint8 `[T, H, W, 3]` → float32 `[T, 3, crop, crop]`."""
    return normalise(torch.from_numpy(resize_crop_official(frames, crop)).permute(0, 3, 1, 2))


def preprocess_on_cpu(frames: np.ndarray, crop: int, transform: str) -> torch.Tensor:
    """What a decode worker hands over when the model's device does not resize: `[T, 3, crop, crop]`."""
    if transform == "official":
        return preprocess_clip_official(frames, crop)
    return preprocess_clip(torch.from_numpy(frames), crop)


def describe(crop: int, num_frames: int, transform: str) -> dict[str, Any]:
    """Preprocessing as recorded in the output's provenance (and so in the parts' fingerprint)."""
    short = short_side_for(crop)
    resize = {
        "official": f"short side {short}, cv2.resize INTER_LINEAR on the uint8 frames (vjepa2 eval transform)",
        "fast": f"short side {short}, float bilinear (F.interpolate), align_corners=False, no antialias",
    }[transform]
    return {
        "transform": transform,
        "frames": f"{num_frames} at np.linspace(0, n-1, {num_frames}) (decord)",
        "resize": resize,
        "crop": f"centre {crop}x{crop}",
        "scale": "/255",
        "normalise": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    }
