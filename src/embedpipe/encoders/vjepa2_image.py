"""V-JEPA 2 on photos: the video encoder with one frame repeated to the clip length (DeepEarth's layout)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import torch

from embedpipe import transforms
from embedpipe.encoders.vjepa2 import ClipBatch, VJEPA2Encoder
from embedpipe.readers.image import read_image


class VJEPA2ImageEncoder(VJEPA2Encoder):
    """`encoder.name: vjepa2` with `encoder.media: image`.

    Workers decode one frame (uint8 on the CUDA fast path, else preprocessed); it is repeated
    `image_frames` times only on the model's device, after the resize, so neither the workers nor
    the host-to-device copy pay for the repetition. 16 frames give 8 temporal tokens (DeepEarth's
    `[4608, 1408]` at vitg-384); 2 frames give one, 8x less compute, and different embeddings: the
    model sees a different clip length.
    """

    OPTIONS = (*VJEPA2Encoder.OPTIONS, "image_frames")

    def __init__(self, image_frames: int = 16, **options: Any) -> None:
        self.image_frames = image_frames
        super().__init__(**options)
        self._check_frames("image_frames", image_frames)

    @property
    def clip_frames(self) -> int:
        return self.image_frames

    @property
    def reduce_to(self) -> int:
        """The reader's `min_side`. The official transform resizes the full image (Pillow's
        `convert('RGB')` of it), so it gets no reduction; the fast one tolerates it for big photos."""
        return 0 if self.transform == "official" else transforms.short_side_for(self.crop)

    def prepare(self, path: str) -> torch.Tensor:
        frame = read_image(path, self.reduce_to)[None]
        if self.preprocess_on_device:
            return torch.from_numpy(frame)
        return transforms.preprocess_on_cpu(frame, self.crop, self.transform)

    def fact_fields(self) -> list[pa.Field]:
        return []  # Pillow raises on a truncated image: it becomes an error row

    def model_input(self, batch: torch.Tensor | ClipBatch) -> torch.Tensor:
        single = super().model_input(batch)  # [B, 1, 3, crop, crop]
        return single.expand(-1, self.image_frames, -1, -1, -1).contiguous()

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["media"] = "image"
        prov["image_frames"] = self.image_frames
        reduction = ("; images over twice the short side reduced first (JPEG draft, else integer box reduce)"
                     if self.reduce_to else "; full size, no reduction")
        prov["preprocessing"] |= {
            "frames": f"the image repeated {self.image_frames} times ({self.grid[0]} temporal tokens)",
            "reader": "Pillow; EXIF orientation applied; alpha composited on white; 16-bit gray scaled" + reduction,
        }
        return prov
