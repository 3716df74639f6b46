"""What every video decoder returns: the clip, the sampling and the errors. Its own module so that the
container decoders (`video`) and the DICOM reader (`dicom_video`) share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedpipe.readers.declared import is_truncated

TRUNCATION_SLACK_FRAMES = 2  # duration-based declared counts round; a cut file loses far more


class VideoReadError(RuntimeError):
    """A video that opened but gave no usable frames."""


class NoDecoderError(VideoReadError):
    """No decoder of the chain decodes the video's codec."""


class DecoderMismatch(VideoReadError):
    """decord's frames cannot be trusted for this file: the next decoder reads it."""


@dataclass
class VideoClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    frames_decoded: int  # frames the decoder found in the whole file
    frames_declared: int | None  # frames the container's header declares (None: it does not say)
    frame_rate: float | None = None  # frames per second; None: the file does not say
    height: int | None = None  # the source's frame size, before any preprocessing
    width: int | None = None
    transfer_syntax: str | None = None  # DICOM only: the transfer syntax's name
    counts_exact: bool = False  # a frame count (DICOM, MP4, AVI), not a rounded duration: any shortfall is a cut
    decoder: str = "decord"  # decord | pyav | pydicom: what produced the frames

    @property
    def truncated(self) -> bool | None:
        if self.counts_exact and self.frames_declared is not None:
            return self.frames_decoded < self.frames_declared
        return is_truncated(self.frames_declared, self.frames_decoded, TRUNCATION_SLACK_FRAMES)


def frame_indices(num_total: int, num_frames: int) -> np.ndarray:
    """`np.linspace(0, n-1, num_frames)` truncated to int: the EchoJEPA sampling."""
    return np.linspace(0, num_total - 1, num=num_frames, dtype=int)
