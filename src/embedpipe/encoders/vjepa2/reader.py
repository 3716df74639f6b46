"""V-JEPA 2's readers: a video's sampled frames, or one photo, preprocessed in the decode workers
(or left uint8 for the GPU to resize: the fast transform on CUDA)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from embedpipe.encoders.roles import Prepared, Reader
from embedpipe.encoders.vjepa2 import transforms
from embedpipe.readers.image import read_image
from embedpipe.readers.video import read_video


@dataclass
class VideoReader(Reader):
    num_frames: int
    crop: int
    transform: str  # official | fast
    preprocess_on_device: bool  # uint8 out (4x less to move than float32), resized on the GPU

    def sample(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 `[T, H, W, 3]` frames → the model's input, or the frames as they are for the GPU."""
        if self.preprocess_on_device:
            return torch.from_numpy(frames)
        return transforms.preprocess_on_cpu(frames, self.crop, self.transform)

    def prepare(self, path: str) -> Prepared:
        clip = read_video(path, self.num_frames)
        facts = {"frames_decoded": clip.frames_decoded, "frames_declared": clip.frames_declared,
                 "truncated": clip.truncated, "frame_rate": clip.frame_rate, "height": clip.height,
                 "width": clip.width, "transfer_syntax": clip.transfer_syntax, "decoder": clip.decoder}
        return Prepared(self.sample(clip.frames), facts)

    def fact_fields(self) -> list[pa.Field]:
        # one schema for MP4 and DICOM rows: a shard may hold both
        return [pa.field("frames_decoded", pa.int32()),  # in the whole file; `num_frames` of them are sampled
                pa.field("frames_declared", pa.int32()),  # the container's; null where it states none
                pa.field("truncated", pa.bool_()),  # decoded shorter than declared; null: unknown
                pa.field("frame_rate", pa.float64()),  # fps; null where the file states none
                pa.field("height", pa.int32()),  # the source's rows and columns, before preprocessing
                pa.field("width", pa.int32()),
                pa.field("transfer_syntax", pa.string()),  # DICOM's transfer syntax name; null otherwise
                pa.field("decoder", pa.string())]  # decord | pyav | pydicom: what decoded the frames


@dataclass
class ImageReader(VideoReader):
    """One frame per photo; the model repeats it to the clip length on its device."""

    exif_orientation: str = "apply"  # encoder.exif_orientation: apply | ignore

    @property
    def reduce_to(self) -> int:
        """The reader's `min_side`. The official transform resizes the full image (Pillow's
        `convert('RGB')` of it), so it gets no reduction; the fast one tolerates it for big photos."""
        return 0 if self.transform == "official" else transforms.short_side_for(self.crop)

    def prepare(self, path: str) -> Prepared:
        return Prepared(self.sample(read_image(path, self.reduce_to, self.exif_orientation == "apply")[None]))

    def fact_fields(self) -> list[pa.Field]:
        return []  # a truncated or corrupt image raises: it becomes an error row
