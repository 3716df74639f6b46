"""Video decoding with decord: a fixed number of frames spread over the whole clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedpipe.readers.declared import is_truncated, video_declared_frames

TRUNCATION_SLACK_FRAMES = 2  # duration-based declared counts round; a cut file loses far more


class VideoReadError(RuntimeError):
    """A video that opened but gave no usable frames."""


@dataclass
class VideoClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    frames_decoded: int  # frames the decoder found in the whole file
    frames_declared: int | None  # frames the container's header declares (None: it does not say)

    @property
    def truncated(self) -> bool | None:
        return is_truncated(self.frames_declared, self.frames_decoded, TRUNCATION_SLACK_FRAMES)


def frame_indices(num_total: int, num_frames: int) -> np.ndarray:
    """`np.linspace(0, n-1, num_frames)` truncated to int: the EchoJEPA sampling."""
    return np.linspace(0, num_total - 1, num=num_frames, dtype=int)


def _decode(path: str, num_frames: int) -> tuple[np.ndarray, int]:
    import decord  # imported here: decord loads FFmpeg, workers pay for it, the parent need not

    reader = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
    total = len(reader)
    if total <= 0:
        raise VideoReadError(f"no frames in {path}")
    frames = reader.get_batch(frame_indices(total, num_frames)).asnumpy()
    if frames.ndim != 4 or frames.shape[0] != num_frames or frames.shape[-1] != 3:
        raise VideoReadError(f"unexpected frame array {frames.shape} from {path}")
    return frames, total


def read_video_frames(path: str, num_frames: int) -> np.ndarray:
    """Decode `num_frames` frames as uint8 `[T, H, W, 3]`."""
    return _decode(path, num_frames)[0]


def read_video(path: str, num_frames: int) -> VideoClip:
    """The frames, and whether the file decodes to the length its header declares: a cut AVI or
    MKV decodes without an error and gives frames spread over the part that is left."""
    frames, total = _decode(path, num_frames)
    return VideoClip(frames, total, video_declared_frames(path))
