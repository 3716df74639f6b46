"""DICOM ECG waveforms (12-lead, General, Ambulatory ECG; Hemodynamic Waveform Storage with ECG channels)
→ leads by name in mV at the source rate.

The multiplex data is decoded here rather than by pydicom's `waveform_array`: that one scales every channel
(pressure too) with a default sensitivity of 1 when it is absent, keeps padding values as samples, and
converts the whole group (a 24-h Ambulatory ECG: 8 GB as float64) where a 10-s cut needs 10 s.

Privacy: the header is read through `dicom_header` with `ALLOWED_FIELDS` only (the waveform groups keep
their items whole), so no name, ID or date is decoded, and every failure is a one-line EcgReadError
that quotes no header value outside them.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from embedpipe.readers import dicom_header
from embedpipe.readers.ecg_leads import CUT_MARGIN_S, MAX_SECONDS, WHOLE_HINT, EcgReadError, canonical_lead, mv_per_unit
from embedpipe.readers.limits import check_duration

if TYPE_CHECKING:
    from pydicom import Dataset

WAVEFORM_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG",
    "1.2.840.10008.5.1.4.1.1.9.1.3": "Ambulatory ECG",
    "1.2.840.10008.5.1.4.1.1.9.2.1": "Hemodynamic Waveform Storage",
}
SUPPORTED_DICOM = "12-lead ECG, General ECG, Ambulatory ECG and Hemodynamic Waveform Storage"
# The only top-level fields read besides the file meta (its transfer syntax gives the byte order). Each
# Waveform Sequence item (a multiplex group) holds its rate, channel definitions and samples.
ALLOWED_FIELDS = ("SOPClassUID", "WaveformSequence")
# (WaveformSampleInterpretation, WaveformBitsAllocated) → numpy kind; byte order comes from the transfer syntax.
_SAMPLE_TYPES = {("SB", 8): "i1", ("UB", 8): "u1", ("SS", 16): "i2", ("US", 16): "u2", ("SL", 32): "i4",
                 ("UL", 32): "u4"}


def channel_lead(channel: Dataset) -> str | None:
    """The standard lead a channel records, from its source code's meaning ("Lead I (Einthoven)", "Lead aVR")
    or its label; None for other channels (pressure, respiration) and for inverted leads ("Lead -aVR")."""
    sources = channel.get("ChannelSourceSequence") or []
    names = [sources[0].get("CodeMeaning", "")] if sources else []
    names.append(channel.get("ChannelLabel", "") or "")
    for name in names:
        name = re.sub(r"\(.*?\)", "", str(name)).strip()
        name = re.sub(r"^lead\s*", "", name, flags=re.IGNORECASE)
        if name and not name.startswith("-") and canonical_lead(name):
            return canonical_lead(name)
    return None


def _scale_mv(channel: Dataset, where: str) -> tuple[float, float]:
    """(mV per sample unit, baseline in mV)."""
    if channel.get("ChannelSensitivity") is None:
        raise EcgReadError(f"{where}: no ChannelSensitivity, so its samples have no voltage")
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    unit = str(units[0].get("CodeValue", "")) if units else ""
    to_mv = mv_per_unit(unit)  # UCUM codes in ChannelSensitivityUnitsSequence
    if to_mv is None:
        raise EcgReadError(f"{where}: sensitivity unit {dicom_header.shown(unit)} is not a voltage (uV, mV, V)")
    correction = float(channel.get("ChannelSensitivityCorrectionFactor", 1.0) or 1.0)
    baseline = float(channel.get("ChannelBaseline", 0.0) or 0.0)
    return float(channel.ChannelSensitivity) * correction * to_mv, baseline * to_mv


def _samples(group: Dataset, little_endian: bool, where: str, keep: int) -> np.ndarray:
    """The group's first `keep` raw samples of each channel as float64 [channels, samples], padding values
    as NaN; only those are converted."""
    interpretation, bits = str(group.WaveformSampleInterpretation), int(group.WaveformBitsAllocated)
    kind = _SAMPLE_TYPES.get((interpretation, bits))
    if kind is None:
        raise EcgReadError(f"{where}: {bits}-bit {dicom_header.shown(interpretation)} samples; embedpipe reads "
                           f"{', '.join(f'{b}-bit {i}' for i, b in _SAMPLE_TYPES)}")
    dtype = np.dtype(kind).newbyteorder("<" if little_endian else ">")
    channels, samples = int(group.NumberOfWaveformChannels), int(group.NumberOfWaveformSamples)
    if channels != len(group.get("ChannelDefinitionSequence") or []):
        raise EcgReadError(f"{where}: {len(group.get('ChannelDefinitionSequence') or [])} channel definitions "
                           f"for {channels} channels")
    data = group.get("WaveformData")
    if data is None:
        raise EcgReadError(f"{where}: no WaveformData: the file is cut short")
    data = bytes(data)
    if len(data) < channels * samples * dtype.itemsize:  # an 8-bit group may carry one padding byte more
        raise EcgReadError(f"{where}: WaveformData holds {len(data) // dtype.itemsize} samples where "
                           f"{channels} channels × {samples} need {channels * samples}: the file is cut short")
    kept = max(0, min(samples, keep))
    raw = np.frombuffer(data, dtype=dtype, count=channels * kept).reshape(kept, channels).T
    values = raw.astype(np.float64)
    padding = group.get("WaveformPaddingValue")
    if padding is not None and len(bytes(padding)) >= dtype.itemsize:
        values[raw == np.frombuffer(bytes(padding), dtype=dtype, count=1)[0]] = np.nan
    return values


def _duration_s(group: Dataset) -> float:
    try:
        rate = float(group.get("SamplingFrequency") or 0)
        return int(group.get("NumberOfWaveformSamples") or 0) / rate if rate > 0 else 0.0
    except (TypeError, ValueError):
        return 0.0


def _ecg_group(ds: Dataset, path: str) -> tuple[Dataset, dict[int, str]]:
    """The multiplex group to read, and its ECG channels' indices and lead names. Of the groups with ECG
    leads, an ORIGINAL one comes before a DERIVED one (a 12-lead file's median beats are DERIVED, and
    may come first), then the longest, then the first."""
    found = []
    for order, group in enumerate(ds.get("WaveformSequence") or []):
        names = {i: lead for i, channel in enumerate(group.get("ChannelDefinitionSequence") or [])
                 if (lead := channel_lead(channel))}
        if names:
            original = str(group.get("WaveformOriginality") or "").upper() == "ORIGINAL"
            found.append(((original, _duration_s(group), -order), group, names))
    if not found:
        raise EcgReadError(f"{path}: no waveform multiplex group has an ECG lead channel")
    _, group, names = max(found, key=lambda candidate: candidate[0])
    return group, names


def read_dicom_ecg(path: str, seconds: float | None = None,
                   max_seconds: float = MAX_SECONDS) -> tuple[dict[str, np.ndarray], float]:
    """Leads by name in mV at the source rate: the first `seconds` (plus CUT_MARGIN_S, as `ecg.read_wfdb`),
    or the whole record (`seconds` None), refused when longer than `max_seconds`."""
    with dicom_header.reading(lambda message: EcgReadError(f"{path}: {message}"), EcgReadError):
        return _read(path, seconds, max_seconds)


def _read(path: str, seconds: float | None, max_seconds: float) -> tuple[dict[str, np.ndarray], float]:
    # Waveforms come before (7FE0,0010): an image given by mistake is refused without reading its frames.
    ds = dicom_header.read_header(path, ALLOWED_FIELDS, lambda message: EcgReadError(f"{path}: {message}"))
    sop = dicom_header.sop_class(ds)
    if sop is None:
        raise EcgReadError(f"{path}: DICOM without a known SOP class: cut short, or not an ECG waveform; "
                           f"embedpipe reads {SUPPORTED_DICOM}")
    if sop[0] not in WAVEFORM_SOP_CLASSES:
        raise EcgReadError(f"{path}: DICOM {sop[1]} is not an ECG waveform; embedpipe reads {SUPPORTED_DICOM}")
    if "WaveformSequence" not in ds:
        raise EcgReadError(f"{path}: DICOM {sop[1]} without a Waveform Sequence: the file is cut short")
    group, names = _ecg_group(ds, path)
    rate = float(group.get("SamplingFrequency") or 0)
    if not (math.isfinite(rate) and rate > 0):
        raise EcgReadError(f"{path}: the waveform group has no sampling frequency")
    samples = int(group.NumberOfWaveformSamples)
    if not seconds:
        check_duration(samples / rate, max_seconds, path, WHOLE_HINT, EcgReadError)
    keep = math.ceil(rate * (seconds + CUT_MARGIN_S)) if seconds else samples
    values = _samples(group, ds.original_encoding[1] is not False, f"{path}: waveform group", keep)
    channels = group.ChannelDefinitionSequence
    leads: dict[str, np.ndarray] = {}
    for i, lead in names.items():
        if lead not in leads:  # a lead recorded twice keeps its first channel
            per_unit, baseline = _scale_mv(channels[i], f"{path}: channel {i + 1} ({lead})")
            leads[lead] = values[i] * per_unit + baseline
    return leads, rate
