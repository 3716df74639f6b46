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


# Bits per sample of the WFDB storage formats, to check a signal file holds what its header says.
_FORMAT_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 32 / 3,
                "311": 32 / 3}


def _header_lines(header_path: Path) -> list[list[str]]:
    """A WFDB header's record and signal lines, split. Parsed here (a few lines of text): wfdb.rdheader
    costs more than reading the signal itself."""
    return [ln.split() for ln in header_path.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def _check_wfdb_size(header_path: Path) -> None:
    """Reading only the first 10 s would not notice a truncated signal file: compare sizes with what the
    header promises."""
    lines = _header_lines(header_path)
    if not lines or len(lines[0]) < 4 or "/" in lines[0][0]:
        return  # no sample count, or a multi-segment record: wfdb itself is the judge
    n_sig, sig_len = int(lines[0][1]), int(lines[0][3])
    bits: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for fields in lines[1 : 1 + n_sig]:
        m = re.match(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?$", fields[1]) if len(fields) > 1 else None
        if m is None or m.group(1) not in _FORMAT_BITS:
            return  # a format this check does not know
        bits[fields[0]] = bits.get(fields[0], 0) + _FORMAT_BITS[m.group(1)]
        offsets[fields[0]] = int(m.group(2) or 0)
    for name, per_frame in bits.items():
        expected = offsets[name] + math.ceil(sig_len * per_frame / 8)
        actual = (header_path.parent / name).stat().st_size
        if actual < expected:
            raise EcgReadError(f"{name} is truncated: {actual} bytes, the header's {sig_len} samples need {expected}")


def read_wfdb(path: str) -> tuple[dict[str, np.ndarray], float]:
    import wfdb

    record_name = str(Path(path).with_suffix("")) if Path(path).suffix.lower() in (".hea", ".dat") else path
    _check_wfdb_size(Path(f"{record_name}.hea"))
    # Only the first 10 s are used: a 30-min Holter record is not read whole. wfdb clips sampto to the
    # record's length, but needs a number: the header's first line gives the rate.
    first = (_header_lines(Path(f"{record_name}.hea")) or [[]])[0]
    rate = float(re.split(r"[/(]", first[2])[0]) if len(first) > 2 else 250.0
    sig_len = int(first[3]) if len(first) > 3 else None
    sampto = math.ceil(rate * TARGET_SAMPLES / TARGET_RATE) + 1
    record = wfdb.rdrecord(record_name, sampto=min(sampto, sig_len) if sig_len else None)
    if record.p_signal is None or record.p_signal.shape[0] == 0:
        raise EcgReadError(f"no samples in {path}")
    scales = [1e-3 if (u or "").lower() in ("uv", "µv") else 1.0 for u in record.units]
    return {name: record.p_signal[:, i] * scales[i] for i, name in enumerate(record.sig_name)}, float(record.fs)


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
