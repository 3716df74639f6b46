"""Metis's reader: mono 16 kHz samples (decoded and resampled in the workers), shortest files first."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import torch

from embedpipe.encoders.metis.sizes import fbank_frames
from embedpipe.encoders.roles import Prepared, Reader
from embedpipe.readers.audio import TARGET_RATE, AudioReadError, audio_duration, read_audio


class AudioReader(Reader):
    def order(self, keys: list[str], root: Path) -> list[str]:
        # Shortest first: neighbours in a batch need little padding.
        durations = {k: audio_duration(str(root / k)) for k in keys}
        return sorted(keys, key=lambda k: (durations[k], k))

    def prepare(self, path: str) -> Prepared:
        # Workers only decode and resample; filter banks run batched on the model's device.
        clip = read_audio(path, TARGET_RATE)
        if fbank_frames(len(clip.samples)) < 2:
            raise AudioReadError(f"{clip.duration_s:.3f} s of audio is shorter than two 25 ms feature frames")
        facts = {"duration_s": clip.duration_s, "sample_rate": clip.source_rate,
                 "declared_duration_s": clip.declared_duration_s, "truncated": clip.truncated, "decoder": clip.decoder}
        return Prepared(torch.from_numpy(clip.samples), facts)

    def fact_fields(self) -> list[pa.Field]:
        return [
            pa.field("duration_s", pa.float64()),  # decoded
            pa.field("sample_rate", pa.int32()),  # the source's
            pa.field("declared_duration_s", pa.float64()),  # the header's; null where it states none
            pa.field("truncated", pa.bool_()),  # decoded shorter than declared; null: unknown
            pa.field("decoder", pa.string()),  # "soundfile" or "pyav" (what libsndfile cannot decode)
        ]
