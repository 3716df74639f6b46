"""Audio decoding: any container and rate → 16 kHz mono float32, as librosa.load(sr=16000) gives."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import numpy as np

from embedpipe.readers.declared import audio_declared_frames, is_truncated
from embedpipe.readers.limits import MAX_AUDIO_SECONDS, DecodedTooLarge, check_decoded, check_duration

TARGET_RATE = 16000
READ_BLOCK_FRAMES = 1 << 20


class AudioReadError(RuntimeError):
    """A file that opened but held no usable samples."""


@dataclass
class AudioClip:
    samples: np.ndarray  # float32 [n] at TARGET_RATE, mono
    source_rate: int
    source_channels: int
    source_frames: int  # decoded
    decoder: str  # "soundfile" or "pyav": which one produced the samples
    declared_frames: int | None = None  # what the header says (None: it does not say)

    @property
    def duration_s(self) -> float:
        return self.source_frames / self.source_rate

    @property
    def declared_duration_s(self) -> float | None:
        return None if self.declared_frames is None else self.declared_frames / self.source_rate

    @property
    def truncated(self) -> bool | None:
        """Decoded shorter than the header declares (by over 1% and 50 ms)."""
        return is_truncated(self.declared_frames, self.source_frames, self.source_rate // 20)


@dataclass
class Decoded:
    data: np.ndarray  # float32 [n, channels]
    rate: int
    declared: int | None  # frames the header states
    decoder: str


def decode_soundfile(path: str) -> Decoded:
    import soundfile  # libsndfile ≥ 1.1: wav, flac, ogg/vorbis/opus, aiff, mp3

    with soundfile.SoundFile(path) as fh:
        declared = audio_declared_frames(path, fh.format, fh.samplerate, fh.frames)
        # Block by block until one comes back empty: soundfile reads "to the end" only where libsndfile
        # can seek (not in GSM 6.10 or G.72x), and a header's frame count is no size to allocate up front.
        blocks: list[np.ndarray] = []
        frames = 0
        while len(block := fh.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)):
            blocks.append(block)
            frames += len(block)
            check_clip(frames, int(fh.samplerate), fh.channels)
        data = np.concatenate(blocks) if blocks else np.zeros((0, fh.channels), np.float32)
        return Decoded(data, int(fh.samplerate), declared, "soundfile")


def decode_pyav(path: str) -> Decoded:
    """What libsndfile does not decode: m4a and raw AAC, webm, FLAC in Ogg, BW64, video files' audio tracks."""
    import av

    with av.open(path, metadata_errors="replace") as container:  # a non-UTF-8 title is no reason to fail
        if not container.streams.audio:
            raise AudioReadError("no audio stream")
        stream = container.streams.audio[0]
        rate, chunks, frames = int(stream.rate), [], 0
        for frame in container.decode(stream):
            chunks.append(frame.to_ndarray())
            frames += frame.samples
            check_clip(frames, rate, stream.channels or 1)
        known = stream.duration and stream.time_base
        stated = round(float(stream.duration * stream.time_base) * rate) if known else None
        declared = audio_declared_frames(path, container.format.name, rate, stated)
    if not chunks:
        return Decoded(np.zeros((0, 1), np.float32), rate, declared, "pyav")
    # planar formats give [channels, n], packed ones [1, n * channels]
    channels = stream.channels or 1
    data = np.concatenate([c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks], axis=1)
    if np.issubdtype(data.dtype, np.unsignedinteger):  # FFmpeg's only unsigned format, u8, centres on 128
        data = data.astype(np.float32) / 128 - 1
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return Decoded(data.T.astype(np.float32), rate, declared, "pyav")


def _reason(exc: Exception) -> str:
    """A decoder's reason, without the path it was given (the error row names the file)."""
    import av
    import soundfile

    if isinstance(exc, soundfile.LibsndfileError):
        text = exc.error_string.removeprefix("Error : ")
    elif isinstance(exc, av.FFmpegError):
        text = exc.strerror or str(exc)
    else:
        text = str(exc) or type(exc).__name__
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def decode_audio(path: str) -> Decoded:
    """libsndfile, else PyAV. libsndfile also fails on files it recognises but cannot decode (FLAC in
    Ogg: "unknown error in flac decoder"), which FFmpeg may read whole; a file that fails in both is
    an error naming both reasons, never the part one of them got through."""
    try:
        return decode_soundfile(path)
    except (MemoryError, DecodedTooLarge):  # PyAV would decode the same samples
        raise
    except Exception as soundfile_error:
        try:
            return decode_pyav(path)
        except Exception as pyav_error:
            raise AudioReadError(f"soundfile: {_reason(soundfile_error)}; PyAV: {_reason(pyav_error)}") from pyav_error


def check_clip(frames: int, rate: int, channels: int) -> None:
    """Refuse a clip over the limits before its next allocation. Checked block by block as it decodes, not
    from the header alone (a count can lie or be absent), so before the 16-kHz copy: a 40-KB WAV
    declaring 1 Hz is 1.3 GB resampled."""
    if rate > 0:
        check_duration(frames / rate, MAX_AUDIO_SECONDS, f"{frames} frames at {rate} Hz")
        out = resampled_length(frames, rate, TARGET_RATE)
        check_decoded(4 * (frames * channels + out), f"{frames} frames × {channels} channels at {rate} Hz, "
                      f"{out} at 16 kHz")


def resampled_length(n: int, rate: int, target_rate: int) -> int:
    """librosa.resample's output length: ceil(n · target / rate), in its float arithmetic. soxr alone
    gives one sample fewer at some rates (121052 samples at 44.1 kHz: 43919 instead of 43920)."""
    return int(np.ceil(n * (float(target_rate) / rate)))


def fix_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut to `n` samples or zero-pad at the end, as librosa.util.fix_length."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.shape[0], x.dtype)])


def read_audio(path: str, target_rate: int = TARGET_RATE) -> AudioClip:
    """Decode, average the channels (librosa's to_mono), resample with soxr HQ (librosa's default)."""
    import soxr

    decoded = decode_audio(path)
    data, rate = decoded.data, decoded.rate
    if data.shape[0] == 0:
        raise AudioReadError("no audio samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioReadError("non-finite samples")
    if rate != target_rate:
        mono = fix_length(soxr.resample(mono, rate, target_rate, quality="HQ").astype(np.float32, copy=False),
                          resampled_length(mono.shape[0], rate, target_rate))
    return AudioClip(np.ascontiguousarray(mono), rate, data.shape[1], data.shape[0], decoded.decoder,
                     decoded.declared)


def audio_duration(path: str) -> float:
    """Seconds from the header alone (0.0 when unreadable): used to sort a shard into length buckets.
    Only regular files are opened: this runs in the job's own process, outside the decode deadline,
    and a FIFO or device would block it (the decode workers time such a file out instead)."""
    import soundfile

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return 0.0
        info = soundfile.info(path)
        return info.frames / info.samplerate if info.samplerate else 0.0
    except Exception:
        return 0.0
