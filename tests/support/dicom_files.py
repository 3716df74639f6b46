"""Synthetic DICOM files for the DICOM tests: US cines and ECG waveforms, each with a patient, study and
institution (the canaries) that no fact or message may ever carry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
ECG_12_LEAD = "1.2.840.10008.5.1.4.1.1.9.1.1"
CANARIES = ("Canary^Privacy", "CANARY-ID-4711", "19991231", "Canary General Hospital")


def _with_canaries(ds: Dataset) -> None:
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName = CANARIES
    ds.StudyDate = CANARIES[2]


def write_dicom(path: Path, pixels: np.ndarray, photometric: str, *, syntax: str = ExplicitVRLittleEndian,
                bits_stored: int = 8, extra: dict | None = None, encoded: bytes | None = None) -> Path:
    """A US multi-frame file with a patient, study and institution to leak; `pixels` [N, H, W(, 3)]."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = US_MULTIFRAME, ds.file_meta.MediaStorageSOPInstanceUID, "US"
    _with_canaries(ds)
    ds.NumberOfFrames, ds.Rows, ds.Columns = pixels.shape[:3]
    ds.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    if syntax == RLELossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # pydicom compresses native data only
        ds.PixelData = pixels.astype(f"<u{ds.BitsAllocated // 8}").tobytes()
        ds.compress(RLELossless, encoding_plugin="pydicom")
    else:
        ds.PixelData = encoded if encoded is not None else pixels.astype(f"<u{ds.BitsAllocated // 8}").tobytes()
    if encoded is not None:
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def cine(frames: int = 16, shape: tuple[int, ...] = (24, 32), top: int = 255, seed: int = 0) -> np.ndarray:
    """Frames that differ from each other: a per-frame offset over random texture."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, top + 1, size=(1, *shape))
    return ((base + np.arange(frames).reshape(-1, *[1] * len(shape)) * 37) % (top + 1)).astype(np.uint16)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def write_waveform_dicom(path: Path, sop_class: str, groups: list[tuple[float, str, int, list[tuple]]],
                         padding: int | None = None, originality: list[str] | None = None) -> Path:
    """Explicit VR little-endian waveform file, with the canaries. groups: (rate, interpretation, bits,
    channels); a channel is (source meaning, unit, raw samples, sensitivity, correction, baseline).
    `originality`: each group's WaveformOriginality (all ORIGINAL if None)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.Modality = meta, sop_class, "ECG"
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    _with_canaries(ds)
    items = []
    for k, (rate, interpretation, bits, channels) in enumerate(groups):
        group = Dataset()
        group.WaveformOriginality = originality[k] if originality else "ORIGINAL"
        group.SamplingFrequency = rate
        group.NumberOfWaveformChannels, group.NumberOfWaveformSamples = len(channels), len(channels[0][2])
        group.WaveformBitsAllocated, group.WaveformSampleInterpretation = bits, interpretation
        definitions = []
        for meaning, unit, _, sensitivity, correction, baseline in channels:
            ch = Dataset()
            ch.ChannelSourceSequence = Sequence([_code("x", "MDC", meaning)])
            ch.ChannelSensitivity, ch.ChannelSensitivityCorrectionFactor = sensitivity, correction
            ch.ChannelSensitivityUnitsSequence = Sequence([_code(unit, "UCUM", unit)])
            ch.ChannelBaseline, ch.WaveformBitsStored = baseline, bits
            definitions.append(ch)
        group.ChannelDefinitionSequence = Sequence(definitions)
        dtype = {("SS", 16): "<i2", ("US", 16): "<u2", ("SB", 8): "i1", ("UB", 8): "u1"}[(interpretation, bits)]
        data = np.stack([np.asarray(c[2]) for c in channels], axis=1).astype(dtype).tobytes()
        if padding is not None:
            group.WaveformPaddingValue = np.array([padding], dtype).tobytes()
        group.WaveformData = data + b"\0" * (len(data) % 2)
        items.append(group)
    ds.WaveformSequence = Sequence(items)
    ds.save_as(path, enforce_file_format=True)
    return path


def leads_12(samples: int, step: int = 1) -> list[tuple]:
    """Twelve channels of distinct ramps in µV, for write_waveform_dicom."""
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    return [(f"Lead {name}", "uV", (np.arange(samples) * step + 10 * k) % 2000 - 1000, 1.0, 1.0, 0)
            for k, name in enumerate(names)]


class ParseSpy:
    """pydicom.dcmread watched: the datasets it returned, to check what a reader parsed."""

    def __init__(self, monkeypatch) -> None:
        self.parsed: list[Dataset] = []
        real: Callable = pydicom.dcmread

        def spy(*args, **kwargs):
            ds = real(*args, **kwargs)
            self.parsed.append(ds)
            return ds

        monkeypatch.setattr(pydicom, "dcmread", spy)

    def keywords(self) -> set[str]:
        """Every top-level keyword parsed (the file meta apart), by tag: nothing is converted, so a damaged
        element that pydicom would convert lazily counts too."""
        return {pydicom.datadict.keyword_for_tag(tag) or str(tag) for ds in self.parsed
                for tag in ds.keys()}  # noqa: SIM118 - iterating a Dataset converts its elements


def flipped(data: bytes, region: int, rng: np.random.Generator, flips: int = 3) -> bytes:
    """`data` with `flips` random bytes in its first `region` bytes replaced by random values."""
    out = bytearray(data)
    for at in rng.integers(0, region, size=flips):
        out[at] = int(rng.integers(0, 256))
    return bytes(out)
