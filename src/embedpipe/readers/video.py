"""Video decoding with decord (DICOM cines through dicom_video): a fixed number of frames spread over the whole clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedpipe.readers.declared import is_truncated, video_declared_frames
from embedpipe.readers.sniff import has_dicom_preamble

TRUNCATION_SLACK_FRAMES = 2  # duration-based declared counts round; a cut file loses far more


class VideoReadError(RuntimeError):
    """A video that opened but gave no usable frames."""


@dataclass
class VideoClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    frames_decoded: int  # frames the decoder found in the whole file
    frames_declared: int | None  # frames the container's header declares (None: it does not say)
    frame_rate: float | None = None  # frames per second; None: the file does not say
    height: int | None = None  # the source's frame size, before any preprocessing
    width: int | None = None
    transfer_syntax: str | None = None  # DICOM only: the transfer syntax's name
    counts_exact: bool = False  # DICOM counts frames, not a duration that rounds: any shortfall is a cut

    @property
    def truncated(self) -> bool | None:
        if self.counts_exact and self.frames_declared is not None:
            return self.frames_decoded < self.frames_declared
        return is_truncated(self.frames_declared, self.frames_decoded, TRUNCATION_SLACK_FRAMES)


def frame_indices(num_total: int, num_frames: int) -> np.ndarray:
    """`np.linspace(0, n-1, num_frames)` truncated to int: the EchoJEPA sampling."""
    return np.linspace(0, num_total - 1, num=num_frames, dtype=int)


def is_dicom(path: str) -> bool:
    """The DICOM preamble ("DICM" at byte 128) whatever the name (MIMIC-IV-Echo and PACS exports often
    name files by UID alone): the test the ECG reader makes too, see `sniff`."""
    return has_dicom_preamble(path)


def _to_dicom_reader(path: str) -> bool:
    """Whether the DICOM reader takes the file; a `.dcm` name without the preamble is refused here, as
    the ECG reader refuses it, rather than handed to FFmpeg to fail on in its own words."""
    if is_dicom(path):
        return True
    if path.lower().endswith(".dcm"):
        raise VideoReadError(f"{path}: named .dcm but without the DICOM preamble (\"DICM\" at byte 128): "
                             "cut short, or not a DICOM Part 10 file")
    return False


def _decode(path: str, num_frames: int) -> tuple[np.ndarray, int, float | None]:
    import decord  # imported here: decord loads FFmpeg, workers pay for it, the parent need not

    try:
        reader = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
    except (RuntimeError, decord.DECORDError):
        raise VideoReadError(f"cannot open {path}: {_open_failure(path)}") from None
    total = len(reader)
    if total <= 0:
        raise VideoReadError(f"no frames in {path}")
    frames = reader.get_batch(frame_indices(total, num_frames)).asnumpy()
    if frames.ndim != 4 or frames.shape[0] != num_frames or frames.shape[-1] != 3:
        raise VideoReadError(f"unexpected frame array {frames.shape} from {path}")
    fps = float(reader.get_avg_fps())  # from the stream's header: nothing more is decoded
    return frames, total, fps if np.isfinite(fps) and fps > 0 else None


def _open_failure(path: str) -> str:
    """Why FFmpeg cannot open a file: decord's exception says only "Error reading <path>..." and
    prints the reason to stderr, out of the error row's reach. PyAV opens it again to ask."""
    import av

    try:
        with av.open(path, metadata_errors="replace") as container:
            return "no video stream" if not container.streams.video else "decord cannot read it"
    except av.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        unclear = "Invalid data found when processing input"  # FFmpeg's word for both
        return "not a video FFmpeg reads, or cut short" if reason == unclear else reason
    except OSError as exc:
        return exc.strerror or str(exc)


def read_video_frames(path: str, num_frames: int) -> np.ndarray:
    """Decode `num_frames` frames as uint8 `[T, H, W, 3]`."""
    if _to_dicom_reader(path):
        return read_video(path, num_frames).frames
    return _decode(path, num_frames)[0]


def read_video(path: str, num_frames: int) -> VideoClip:
    """The frames, and whether the file decodes to the length its header declares: a cut AVI or
    MKV decodes without an error and gives frames spread over the part that is left."""
    if _to_dicom_reader(path):
        from embedpipe.readers.dicom_video import read_dicom_video  # imported here: it imports this module

        return read_dicom_video(path, num_frames)
    frames, total, fps = _decode(path, num_frames)
    height, width = frames.shape[1:3]  # decord decodes at the source size
    return VideoClip(frames, total, video_declared_frames(path), frame_rate=fps, height=int(height), width=int(width))
