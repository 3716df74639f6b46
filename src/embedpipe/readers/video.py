"""Video decoding: a fixed number of frames spread over the whole clip, by decord, else PyAV (see
`video_pyav`: a codec decord lacks, or a frame index that disagrees with what the container presents);
DICOM cines through dicom_video."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embedpipe.readers.dicom_video import read_dicom_video
from embedpipe.readers.sniff import has_dicom_preamble
from embedpipe.readers.video_clip import (  # noqa: F401  (re-exported: the readers' names)
    TRUNCATION_SLACK_FRAMES,
    DecoderMismatch,
    NoDecoderError,
    VideoClip,
    VideoReadError,
    frame_indices,
)
from embedpipe.readers.video_pyav import DecodeFailed, ProbeError, VideoProbe, decode_frames, probe_video
from embedpipe.runtime.error_text import clean_message


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


def _decode_decord(path: str, num_frames: int, probe: VideoProbe) -> VideoClip:
    """decord's frames, when its frame index agrees with what FFmpeg presents; DecoderMismatch when not."""
    import decord  # imported here: decord loads FFmpeg, workers pay for it, the parent need not

    if probe.container == "mpegts":
        raise DecoderMismatch("decord hangs seeking in MPEG-TS")  # until the decode deadline kills it
    try:
        reader = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
        total = len(reader)
        if total <= 0:
            raise VideoReadError("no frames")
        if probe.presented is not None and probe.presented != total:
            raise DecoderMismatch(f"decord counts {total} frames, the container presents {probe.presented}")
        indices = frame_indices(total, num_frames)
        frames = reader.get_batch(indices).asnumpy()
    except (RuntimeError, decord.DECORDError) as exc:
        if isinstance(exc, VideoReadError):
            raise
        message = clean_message(str(exc))
        if "decoder not found" in message:  # decord's FFmpeg (4.1) lacks the codec: AV1, VVC
            raise NoDecoderError(message) from None
        raise VideoReadError(message or "cannot read it") from None
    if frames.ndim != 4 or frames.shape[0] != num_frames or frames.shape[-1] != 3:
        raise VideoReadError(f"unexpected frame array {frames.shape}")
    # Where the container cannot say how many frames it presents, decord fills frames it could not
    # decode with copies of the last one; a count PyAV cannot make either proves nothing.
    if (probe.presented is None and _ends_on_a_repeat(frames, indices)
            and (counted := _count_with_pyav(path)) not in (None, total)):
        raise DecoderMismatch(f"decord counts {total} frames, {counted} decode; it repeats the last")
    fps = float(reader.get_avg_fps())  # from the stream's header: nothing more is decoded
    height, width = frames.shape[1:3]  # decord decodes at the source size
    return VideoClip(frames, total, probe.declared, frame_rate=fps if np.isfinite(fps) and fps > 0 else None,
                     height=int(height), width=int(width), counts_exact=probe.exact, decoder="decord")


def _ends_on_a_repeat(frames: np.ndarray, indices: np.ndarray) -> bool:
    """Whether the last two samples are different frames with the same picture: decord's fill, or a
    still ending (a fade to black, a slide), which a count of the frames that decode tells apart."""
    last = np.flatnonzero(indices != indices[-1])
    return bool(len(last)) and np.array_equal(frames[-1], frames[last[-1]])


def _count_with_pyav(path: str) -> int | None:
    """Frames that decode (none converted); None when PyAV cannot decode the file either."""
    import av

    try:
        return decode_frames(path, np.zeros(0, int))[1]
    except (av.FFmpegError, DecodeFailed):
        return None


def _decode_pyav(path: str, num_frames: int, probe: VideoProbe) -> VideoClip:
    import av

    if not probe.has_decoder:
        raise NoDecoderError(f"PyAV's FFmpeg has no {probe.codec} decoder")
    try:
        # the container's count, else its duration's (rounded: checked against what decodes), else a count
        total = probe.presented or probe.declared or decode_frames(path, np.zeros(0, int))[1]
        if not total:
            raise VideoReadError("no frames")
        kept, decoded = decode_frames(path, frame_indices(total, num_frames))
        if decoded != total:  # fewer (or more) decoded than the header said: sample what there is
            if not decoded:
                raise VideoReadError(f"none of the {total} frames decodes")
            kept, decoded = decode_frames(path, frame_indices(decoded, num_frames))
    except (av.FFmpegError, DecodeFailed) as exc:
        raise VideoReadError(clean_message(str(exc))) from None
    frames = np.stack(kept)
    height, width = frames.shape[1:3]
    return VideoClip(frames, decoded, probe.declared, frame_rate=probe.frame_rate, height=int(height),
                     width=int(width), counts_exact=probe.exact, decoder="pyav")


DECODERS: dict[str, Callable[[str, int, VideoProbe], VideoClip]] = {"decord": _decode_decord, "pyav": _decode_pyav}


def _decode(path: str, num_frames: int, decoders: tuple[str, ...]) -> VideoClip:
    """The first decoder in `decoders` that reads the file; the error names the codec and each reason."""
    try:
        probe = probe_video(path)
    except ProbeError as exc:
        raise VideoReadError(f"cannot open: {exc}") from None
    reasons, lacking = [], []
    for name in decoders:
        try:
            return DECODERS[name](path, num_frames, probe)
        except NoDecoderError:
            lacking.append(name)
        except VideoReadError as exc:
            reasons.append(f"{name}: {exc}")
    if not reasons:
        raise NoDecoderError(f"{probe.codec} video: no decoder available (none in {', '.join(lacking)})")
    raise VideoReadError(f"{probe.codec} video: {'; '.join(reasons)}")


def read_video_frames(path: str, num_frames: int) -> np.ndarray:
    """Decode `num_frames` frames as uint8 `[T, H, W, 3]`."""
    return read_video(path, num_frames).frames


def read_video(path: str, num_frames: int, decoders: tuple[str, ...] = tuple(DECODERS)) -> VideoClip:
    """The frames, which decoder gave them, and whether the file decodes to the length its header
    declares: a cut AVI or MKV decodes without an error and gives frames spread over the part that is left.
    `decoders`: tried in order (decord first: the official transform's numbers come from it)."""
    if _to_dicom_reader(path):
        return read_dicom_video(path, num_frames)
    return _decode(path, num_frames, decoders)
