"""ECG readers: Philips SierraECG XML and WFDB records → 12 standard leads at 500 Hz.

Leads are picked by name, never by position (MIMIC-IV-ECG stores aVF before aVL); a lead the file
does not have is zeros and is missing from `leads_found`. Signals are in millivolts. A record is
kept whole or cut to its first 10 s; it is never padded (padding would reach the model's values).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from embedpipe.readers import wfdb_signal

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
TARGET_RATE = 500
TARGET_SAMPLES = 5000  # 10 s
# polyphase: scipy's resample_poly (the default); fft: scipy.signal.resample to int(n · 500 / rate),
# as ECG-JEPA's PreprocessECG; every_second: ECGFounder's resample_unequal (a 1000 Hz source keeps
# every second sample; other rates fall back to polyphase, where that function's output is not a resampling).
RESAMPLERS = ("polyphase", "fft", "every_second")
# zero: NaN samples set to 0 (ECGFounder's np.nan_to_num); interpolate: linear between the valid
# neighbours of the same lead (ECG-JEPA's interpolate_NaNs_). Either way they are counted.
NAN_FILLS = ("zero", "interpolate")
# Source seconds read past a 10-s cut, so that the resampler's edge sees real signal after the cut
# (polyphase's filter spans a few dozen source samples). FFT resampling depends on the whole record:
# with it, a record is resampled whole and cut after.
CUT_MARGIN_S = 0.5
MAX_SECONDS = 3600.0  # a whole record longer than this (a 24-h Holter: 4 GB as float64) is refused
_CANONICAL = {name.upper(): name for name in LEADS}
# Modified limb leads of Holter/monitoring records (MIT-BIH's MLII) stand in for the limb lead.
_ALIASES = {"MLI": "I", "MLII": "II", "MLIII": "III", "D1": "I", "D2": "II", "D3": "III"}


class EcgReadError(RuntimeError):
    """A file that parsed but holds no usable ECG."""


@dataclass
class EcgRecord:
    signal: np.ndarray  # float32 [12, n_samples], mV at 500 Hz, zero in missing leads
    n_samples: int  # length at 500 Hz: the whole record, or at most 5000 when cut to 10 s
    source_rate: float
    leads_found: list[str]
    nan_samples: int  # NaN samples, set to 0 or interpolated


def canonical_lead(name: str) -> str | None:
    key = re.sub(r"[\s_-]", "", name).upper()
    return _CANONICAL.get(_ALIASES.get(key, key))


def _sierra_resolution_uv(path: str) -> float:
    """µV per LSB: sierraecg does not return it. 1.04 has it on <parsedwaveforms resolution=...>,
    1.03 in <signalcharacteristics><signalresolution>."""
    from defusedxml import ElementTree

    root = ElementTree.parse(path).getroot()
    local = {el.tag.rsplit("}", 1)[-1]: el for el in root.iter()}
    waveforms = local.get("parsedwaveforms")
    if waveforms is not None and waveforms.get("resolution"):
        return float(waveforms.get("resolution"))
    for tag in ("signalresolution", "resolution"):
        if tag in local and (local[tag].text or "").strip():
            return float(local[tag].text)
    raise EcgReadError(f"no amplitude resolution in {path}")


def read_sierra(path: str) -> tuple[dict[str, np.ndarray], float]:
    import sierraecg

    ecg = sierraecg.read_file(path)
    if not ecg.leads:
        raise EcgReadError(f"no leads in {path}")
    scale = _sierra_resolution_uv(path) / 1000.0
    leads = {lead.label: np.asarray(lead.samples, dtype=np.float64) * scale for lead in ecg.leads}
    return leads, float(ecg.leads[0].sampling_freq)


def read_wfdb(path: str, seconds: float | None = TARGET_SAMPLES / TARGET_RATE,
              max_seconds: float = MAX_SECONDS) -> tuple[dict[str, np.ndarray], float]:
    """Signals by name, in mV, at the source rate: the first `seconds` (plus a margin), or the whole record."""
    record_name = str(Path(path).with_suffix("")) if Path(path).suffix.lower() in (".hea", ".dat") else path
    header_path = Path(f"{record_name}.hea")
    try:
        lines = wfdb_signal.header_lines(header_path)
        wfdb_signal.check_signal_sizes(header_path, lines)
        # Cut to `seconds`, only what is used is read: a 30-min Holter record is not read whole.
        rate, sig_len = wfdb_signal.record_rate_and_length(lines)
        if not seconds and sig_len and rate and sig_len / rate > max_seconds:
            raise EcgReadError(f"{path}: {sig_len / rate:.0f} s is longer than {max_seconds:.0f} s read whole; "
                               "use encoder.length 10s")
        sampto = math.ceil(rate * (seconds + CUT_MARGIN_S)) if seconds else sig_len
        try:
            header = wfdb_signal.parse_header(lines)
            leads = wfdb_signal.read_samples(record_name, header, sampto)
            units = {sig.name: sig.units for sig in reversed(header.signals)}  # first of a repeated name
        except wfdb_signal.WfdbFormatError:
            leads, units, rate = _read_with_wfdb(record_name, min(sampto, sig_len) if sig_len and sampto else sampto)
    except wfdb_signal.SignalFileTruncated as e:
        raise EcgReadError(str(e)) from None
    if not leads or next(iter(leads.values())).shape[0] == 0:
        raise EcgReadError(f"no samples in {path}")
    microvolts = {name for name, unit in units.items() if unit.lower() in ("uv", "µv")}
    return {name: v * 1e-3 if name in microvolts else v for name, v in leads.items()}, rate


def _read_with_wfdb(record_name: str, sampto: int | None) -> tuple[dict[str, np.ndarray], dict[str, str], float]:
    """Records wfdb_signal does not decode (multi-segment, skewed, difference-coded, …)."""
    import wfdb

    record = wfdb.rdrecord(record_name, sampto=sampto)
    if record.p_signal is None:
        return {}, {}, float(record.fs)
    leads: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for i, name in enumerate(record.sig_name):
        if name not in leads:  # a repeated name keeps its first signal, as in wfdb_signal
            leads[name], units[name] = record.p_signal[:, i], record.units[i] or ""
    return leads, units, float(record.fs)


def resample_to_target(x: np.ndarray, rate: float, method: str = "polyphase") -> np.ndarray:
    if rate == TARGET_RATE:
        return x
    if method == "every_second" and rate == 2 * TARGET_RATE:
        return x[:, ::2]
    if method == "fft":
        from scipy.signal import resample

        return resample(x, int(TARGET_RATE / rate * x.shape[-1]), axis=-1)
    from scipy.signal import resample_poly

    ratio = Fraction(TARGET_RATE / rate).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def fill_nans(x: np.ndarray, method: str) -> np.ndarray:
    """x float64 [leads, n], in place. A lead with no valid sample at all becomes zeros."""
    missing = ~np.isfinite(x)
    if method == "interpolate":
        for lead in np.flatnonzero(missing.any(axis=1)):
            bad = missing[lead]
            if bad.all():
                x[lead] = 0.0
            else:
                x[lead, bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), x[lead, ~bad])
    else:
        x[missing] = 0.0
    return x


def to_standard_leads(leads: dict[str, np.ndarray], rate: float, source: str,
                      seconds: float | None = TARGET_SAMPLES / TARGET_RATE, resample: str = "polyphase",
                      nan: str = "zero") -> EcgRecord:
    picked: dict[str, np.ndarray] = {}
    for name, values in leads.items():
        lead = canonical_lead(name)
        if lead and lead not in picked:
            picked[lead] = values
    if not picked:
        raise EcgReadError(f"no standard ECG lead among {sorted(leads)} in {source}")
    length = max(len(v) for v in picked.values())
    if seconds and resample != "fft":
        length = min(length, math.ceil(rate * (seconds + CUT_MARGIN_S)))
    stacked = np.zeros((len(LEADS), length), dtype=np.float64)
    for i, lead in enumerate(LEADS):
        if lead in picked:
            values = picked[lead][:length]
            stacked[i, : len(values)] = values
    nans = int((~np.isfinite(stacked)).sum())
    stacked = resample_to_target(fill_nans(stacked, nan), rate, resample)
    n = min(stacked.shape[1], round(seconds * TARGET_RATE)) if seconds else stacked.shape[1]
    if n == 0:
        raise EcgReadError(f"no samples in {source}")
    signal = np.ascontiguousarray(stacked[:, :n], dtype=np.float32)
    return EcgRecord(signal, n, rate, [lead for lead in LEADS if lead in picked], nans)


def read_ecg(path: str, seconds: float | None = TARGET_SAMPLES / TARGET_RATE, resample: str = "polyphase",
             nan: str = "zero", max_seconds: float = MAX_SECONDS) -> EcgRecord:
    """A Philips XML (.xml) or a WFDB record (.hea or .dat) as 12 leads at 500 Hz: whole (`seconds`
    None) or cut to its first `seconds`."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        leads, rate = read_sierra(path)
    elif suffix in (".hea", ".dat") or Path(f"{path}.hea").is_file():  # a WFDB record name, as lists give them
        leads, rate = read_wfdb(path, None if resample == "fft" else seconds, max_seconds)
    else:
        raise EcgReadError(f"{path}: not an ECG file embedpipe reads (.xml, .hea)")
    if rate <= 0:
        raise EcgReadError(f"sampling rate {rate} in {path}")
    return to_standard_leads(leads, rate, path, seconds, resample, nan)
