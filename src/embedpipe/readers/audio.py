"""Audio decoding: any container and rate → 16 kHz mono float32, as librosa.load(sr=16000) gives."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import numpy as np

from embedpipe.readers.declared import audio_declared_frames, is_truncated

TARGET_RATE = 16000


class AudioReadError(RuntimeError):
    """A file that opened but held no usable samples."""


@dataclass
class AudioClip:
    samples: np.ndarray  # float32 [n] at TARGET_RATE, mono
    source_rate: int
    source_channels: int
    source_frames: int  # decoded
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


def _decode_soundfile(path: str) -> tuple[np.ndarray, int, int | None]:
    import soundfile  # libsndfile ≥ 1.1: wav, flac, ogg/vorbis/opus, aiff, mp3

    with soundfile.SoundFile(path) as fh:
        declared = audio_declared_frames(path, fh.format, fh.frames)
        data = fh.read(dtype="float32", always_2d=True)
        return data, int(fh.samplerate), declared


def _decode_pyav(path: str) -> tuple[np.ndarray, int, int | None]:
    """Containers libsndfile does not read (m4a/aac, webm, video files with an audio track)."""
    import av

    with av.open(path, metadata_errors="replace") as container:  # a non-UTF-8 title is no reason to fail
        if not container.streams.audio:
            raise AudioReadError(f"no audio stream in {path}")
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray() for f in container.decode(stream)]
        rate = stream.rate
        declared = round(float(stream.duration * stream.time_base) * rate) if stream.duration else None
    if not chunks:
        return np.zeros((0, 1), np.float32), int(rate), declared
    # planar formats give [channels, n], packed ones [1, n * channels]
    channels = stream.channels or 1
    data = np.concatenate([c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks], axis=1)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.T.astype(np.float32), int(rate), declared


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
    import soundfile
    import soxr

    try:
        data, rate, declared = _decode_soundfile(path)
    except soundfile.LibsndfileError as exc:
        if "unknown format" not in str(exc).lower() and "format not recognised" not in str(exc).lower():
            raise  # a known format that is damaged: say so, do not hide it behind a second decoder
        data, rate, declared = _decode_pyav(path)
    if data.shape[0] == 0:
        raise AudioReadError(f"no audio samples in {path}")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioReadError(f"non-finite samples in {path}")
    if rate != target_rate:
        mono = fix_length(soxr.resample(mono, rate, target_rate, quality="HQ").astype(np.float32, copy=False),
                          resampled_length(mono.shape[0], rate, target_rate))
    return AudioClip(np.ascontiguousarray(mono), rate, data.shape[1], data.shape[0], declared)


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
