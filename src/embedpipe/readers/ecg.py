"""ECG readers: Philips SierraECG XML and WFDB records → 12 standard leads, 500 Hz, 10 s.

Leads are picked by name, never by position (MIMIC-IV-ECG stores aVF before aVL); a lead the file
does not have is zeros and is missing from `leads_found`. Signals are in millivolts.
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
_CANONICAL = {name.upper(): name for name in LEADS}
# Modified limb leads of Holter/monitoring records (MIT-BIH's MLII) stand in for the limb lead.
_ALIASES = {"MLI": "I", "MLII": "II", "MLIII": "III", "D1": "I", "D2": "II", "D3": "III"}


class EcgReadError(RuntimeError):
    """A file that parsed but holds no usable ECG."""


@dataclass
class EcgRecord:
    signal: np.ndarray  # float32 [12, TARGET_SAMPLES], mV, zero beyond n_samples and in missing leads
    n_samples: int  # true length at 500 Hz (≤ 5000)
    source_rate: float
    leads_found: list[str]
    nan_samples: int  # NaN samples set to 0


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


def read_wfdb(path: str) -> tuple[dict[str, np.ndarray], float]:
    record_name = str(Path(path).with_suffix("")) if Path(path).suffix.lower() in (".hea", ".dat") else path
    header_path = Path(f"{record_name}.hea")
    try:
        lines = wfdb_signal.header_lines(header_path)
        wfdb_signal.check_signal_sizes(header_path, lines)
        # Only the first 10 s are used: a 30-min Holter record is not read whole.
        rate, sig_len = wfdb_signal.record_rate_and_length(lines)
        sampto = math.ceil(rate * TARGET_SAMPLES / TARGET_RATE) + 1
        try:
            header = wfdb_signal.parse_header(lines)
            leads = wfdb_signal.read_samples(record_name, header, sampto)
            units = {sig.name: sig.units for sig in reversed(header.signals)}  # first of a repeated name
        except wfdb_signal.WfdbFormatError:
            leads, units, rate = _read_with_wfdb(record_name, min(sampto, sig_len) if sig_len else None)
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


def resample_to_target(x: np.ndarray, rate: float) -> np.ndarray:
    if rate == TARGET_RATE:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(TARGET_RATE / rate).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def to_standard_leads(leads: dict[str, np.ndarray], rate: float, source: str) -> EcgRecord:
    picked: dict[str, np.ndarray] = {}
    for name, values in leads.items():
        lead = canonical_lead(name)
        if lead and lead not in picked:
            picked[lead] = values
    if not picked:
        raise EcgReadError(f"no standard ECG lead among {sorted(leads)} in {source}")
    length = max(len(v) for v in picked.values())
    stacked = np.zeros((len(LEADS), length), dtype=np.float64)
    for i, lead in enumerate(LEADS):
        if lead in picked:
            stacked[i, : len(picked[lead])] = picked[lead]
    nans = ~np.isfinite(stacked)
    stacked[nans] = 0.0
    stacked = resample_to_target(stacked, rate)
    n = min(stacked.shape[1], TARGET_SAMPLES)
    signal = np.zeros((len(LEADS), TARGET_SAMPLES), dtype=np.float32)
    signal[:, :n] = stacked[:, :n]
    return EcgRecord(signal, n, rate, [lead for lead in LEADS if lead in picked], int(nans.sum()))


def read_ecg(path: str) -> EcgRecord:
    """A Philips XML (.xml) or a WFDB record (.hea or .dat) as 12 leads at 500 Hz, cropped or padded to 10 s."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        leads, rate = read_sierra(path)
    elif suffix in (".hea", ".dat") or Path(f"{path}.hea").is_file():  # a WFDB record name, as lists give them
        leads, rate = read_wfdb(path)
    else:
        raise EcgReadError(f"{path}: not an ECG file embedpipe reads (.xml, .hea)")
    if rate <= 0:
        raise EcgReadError(f"sampling rate {rate} in {path}")
    return to_standard_leads(leads, rate, path)
