"""Video decoding with decord: a fixed number of frames spread over the whole clip."""

from __future__ import annotations

import numpy as np


class VideoReadError(RuntimeError):
    """A video that opened but gave no usable frames."""


def frame_indices(num_total: int, num_frames: int) -> np.ndarray:
    """`np.linspace(0, n-1, num_frames)` truncated to int: the EchoJEPA sampling."""
    return np.linspace(0, num_total - 1, num=num_frames, dtype=int)


def read_video_frames(path: str, num_frames: int) -> np.ndarray:
    """Decode `num_frames` frames as uint8 `[T, H, W, 3]`."""
    import decord  # imported here: decord loads FFmpeg, workers pay for it, the parent need not

    reader = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
    total = len(reader)
    if total <= 0:
        raise VideoReadError(f"no frames in {path}")
    frames = reader.get_batch(frame_indices(total, num_frames)).asnumpy()
    if frames.ndim != 4 or frames.shape[0] != num_frames or frames.shape[-1] != 3:
        raise VideoReadError(f"unexpected frame array {frames.shape} from {path}")
    return frames
