"""ECG records → 12 standard leads at 500 Hz: WFDB here; Philips SierraECG, GE MUSE and HL7 aECG XML in
`ecg_xml`, DICOM waveforms in `ecg_dicom`, chosen by the file's content (`read_ecg`).

Leads are picked by name, never by position (MIMIC-IV-ECG stores aVF before aVL); a lead the file
does not have is zeros and is missing from `leads_found`. Signals are in millivolts. A record is
kept whole or cut to its first 10 s; it is never padded (padding would reach the model's values).
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from embedpipe.readers import wfdb_signal
from embedpipe.readers.ecg_leads import (  # noqa: F401  (re-exported: the readers' names)
    CUT_MARGIN_S,
    LEADS,
    MAX_SECONDS,
    TARGET_RATE,
    TARGET_SAMPLES,
    WHOLE_HINT,
    EcgReadError,
    canonical_lead,
    mv_per_unit,
    to_mv,
)
from embedpipe.readers.limits import check_decoded, check_duration
from embedpipe.readers.sniff import has_dicom_preamble

# polyphase: scipy's resample_poly (the default); fft: scipy.signal.resample to int(n · 500 / rate),
# as ECG-JEPA's PreprocessECG; every_second: ECGFounder's resample_unequal (a 1000 Hz source keeps
# every second sample; other rates fall back to polyphase, where that function's output is not a resampling).
RESAMPLERS = ("polyphase", "fft", "every_second")
# zero: NaN samples set to 0 (ECGFounder's np.nan_to_num); interpolate: linear between the valid
# neighbours of the same lead (ECG-JEPA's interpolate_NaNs_). Either way they are counted.
NAN_FILLS = ("zero", "interpolate")

@dataclass
class EcgRecord:
    signal: np.ndarray  # float32 [12, n_samples], mV at 500 Hz, zero in missing leads
    n_samples: int  # length at 500 Hz: the whole record, or at most 5000 when cut to 10 s
    source_rate: float
    leads_found: list[str]
    nan_samples: int  # NaN samples, set to 0 or interpolated
    leads_derived: list[str] = field(default_factory=list)  # computed from other leads (in leads_found too)
    source_format: str = ""  # sierra | ge_muse | hl7_aecg | dicom_waveform | wfdb


def read_wfdb(path: str, seconds: float | None = TARGET_SAMPLES / TARGET_RATE,
              max_seconds: float = MAX_SECONDS) -> tuple[dict[str, np.ndarray], float]:
    """Signals by name, in mV, at the rate of the standard leads among them (see `_at_lead_rate`): the
    first `seconds` (plus a margin), or the whole record."""
    record_name = str(Path(path).with_suffix("")) if Path(path).suffix.lower() in (".hea", ".dat") else path
    header_path = Path(f"{record_name}.hea")
    try:
        lines = wfdb_signal.header_lines(header_path)
        wfdb_signal.check_signal_sizes(header_path, lines)
        # Cut to `seconds`, only what is used is read: a 30-min Holter record is not read whole. The
        # header's rate and length count frames, so the cut is in seconds whatever a signal's samples per frame.
        rate, sig_len = wfdb_signal.record_rate_and_length(lines)
        if not seconds and sig_len and rate:
            check_duration(sig_len / rate, max_seconds, path, WHOLE_HINT, EcgReadError)
        sampto = math.ceil(rate * (seconds + CUT_MARGIN_S)) if seconds else sig_len
        try:
            header = wfdb_signal.parse_header(lines)
            signals = wfdb_signal.read_samples(record_name, header, sampto)
            first = list(reversed(header.signals))  # the first of a repeated name wins, as in read_samples
            units = {sig.name: sig.units for sig in first}
            rates = {sig.name: header.rate * sig.per_frame for sig in first}
        except wfdb_signal.WfdbFormatError:
            sampto = min(sampto, sig_len) if sig_len and sampto else sampto
            signals, units, rates = _read_with_wfdb(record_name, sampto)
    except wfdb_signal.SignalFileTruncated as e:
        raise EcgReadError(str(e)) from None
    leads, rate = _at_lead_rate(signals, rates)
    if not leads or next(iter(leads.values())).shape[0] == 0:
        raise EcgReadError(f"no samples in {path}")
    microvolts = {name for name, unit in units.items() if unit.lower() in ("uv", "µv")}
    return {name: v * 1e-3 if name in microvolts else v for name, v in leads.items()}, rate


def _read_with_wfdb(record_name: str, sampto: int | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, float]]:
    """Records wfdb_signal does not decode (multi-segment, skewed, difference-coded, …): signals, units
    and rates by name. smooth_frames=False: wfdb's default averages the samples of each frame, which
    would give a 500-Hz ECG stored 4 samples a 125-Hz frame as a 125-Hz average."""
    import wfdb

    record = wfdb.rdrecord(record_name, sampto=sampto, smooth_frames=False)
    signals: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    rates: dict[str, float] = {}
    for i, name in enumerate(record.sig_name if record.e_p_signal is not None else []):
        if name not in signals:  # a repeated name keeps its first signal, as in wfdb_signal
            signals[name], units[name] = record.e_p_signal[i], record.units[i] or ""
            rates[name] = float(record.fs) * record.samps_per_frame[i]
    return signals, units, rates


def _at_lead_rate(signals: dict[str, np.ndarray], rates: dict[str, float]) -> tuple[dict[str, np.ndarray], float]:
    """One rate for a record whose signals have several (WFDB samples per frame): the highest of its
    standard leads' rates (of all its signals when it has no standard lead).

    A standard lead at a lower rate is upsampled to it rather than the others downsampled: downsampling
    would throw away what the faster leads recorded, and the model's 500 Hz is one resampling away
    anyway. Another signal at another rate (a monitor's 125-Hz blood pressure beside its 500-Hz ECG)
    is no lead: it is dropped, so that every signal returned is at the rate returned. (A NaN in an
    upsampled lead spreads over the resampler's span, and is counted and filled there.)"""
    if len(set(rates.values())) == 1:  # the common single-rate record: nothing to choose
        return signals, next(iter(rates.values()))
    lead_rates = [rates[name] for name in signals if canonical_lead(name)]
    rate = max(lead_rates or rates.values(), default=0.0)
    return {name: values if rates[name] == rate else resample_to_target(values, rates[name], target=rate)
            for name, values in signals.items() if rates[name] == rate or canonical_lead(name)}, rate


def resample_to_target(x: np.ndarray, rate: float, method: str = "polyphase",
                       target: float = TARGET_RATE) -> np.ndarray:
    if rate == target:
        return x
    if method == "every_second" and rate == 2 * target:
        return x[:, ::2]
    if method == "fft":
        from scipy.signal import resample

        return resample(x, int(target / rate * x.shape[-1]), axis=-1)
    from scipy.signal import resample_poly

    ratio = Fraction(target / rate).limit_denominator(1000)
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
    # Before the arrays: a short file declaring 0.1 Hz is gigabytes at 500 Hz (float64, source and resampled).
    out = length * TARGET_RATE / rate
    check_decoded(8 * len(LEADS) * (length + out), f"{length} samples a lead at {rate:g} Hz ({out:.0f} at 500 Hz)")
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


def derive_limb_leads(leads: dict[str, np.ndarray]) -> list[str]:
    """III, aVR, aVL, aVF from I and II (Einthoven, Goldberger), added to `leads` where absent; returns
    those added. Devices that store 8 leads (GE MUSE always) store only these two limb leads: the
    other four are sums of them, as ECG software shows them."""
    by_name = {canonical_lead(name): values for name, values in leads.items()}
    if by_name.get("I") is None or by_name.get("II") is None:
        return []
    n = min(len(by_name["I"]), len(by_name["II"]))
    lead_1, lead_2 = by_name["I"][:n], by_name["II"][:n]
    formulas = {"III": lambda: lead_2 - lead_1, "aVR": lambda: -(lead_1 + lead_2) / 2,
                "aVL": lambda: lead_1 - lead_2 / 2, "aVF": lambda: lead_2 - lead_1 / 2}
    derived = [name for name in formulas if name not in by_name]
    for name in derived:
        leads[name] = formulas[name]()
    return derived


def read_source(path: str, seconds: float | None = TARGET_SAMPLES / TARGET_RATE,
                max_seconds: float = MAX_SECONDS) -> tuple[dict[str, np.ndarray], float, list[str], str]:
    """Leads by name in mV at the source rate (missing limb leads derived from I and II, whatever the
    format), the rate, the leads derived, and the format."""
    leads, rate, source_format = _read_leads(path, seconds, max_seconds)
    return leads, rate, derive_limb_leads(leads), source_format


def _read_leads(path: str, seconds: float | None, max_seconds: float) -> tuple[dict[str, np.ndarray], float, str]:
    """Chosen by content: a DICOM preamble, else the XML root element. A WFDB record is named by its
    .hea/.dat or by its record name, as file lists give them."""
    # Imported here: pydicom and the XML parser load only for a file that needs them.
    from embedpipe.readers import ecg_dicom, ecg_xml

    source = Path(path)
    if source.suffix.lower() in (".hea", ".dat"):
        return *read_wfdb(path, seconds, max_seconds), "wfdb"
    if source.exists() and not source.is_dir():  # a FIFO or a hung mount is opened: the decode deadline acts
        if has_dicom_preamble(path):
            return *ecg_dicom.read_dicom_ecg(path, seconds, max_seconds), "dicom_waveform"
        root = _xml_root(path)
        if root is not None:
            kind = ecg_xml.XML_FORMATS.get(root)
            if kind is None:
                raise EcgReadError(f"{path}: XML root <{root}> is not an ECG format embedpipe reads "
                                   f"({ecg_xml.SUPPORTED_XML})")
            reader = {"sierra": ecg_xml.read_sierra, "ge_muse": ecg_xml.read_muse, "hl7_aecg": ecg_xml.read_hl7_aecg}
            return *reader[kind](path), kind
    if Path(f"{path}.hea").is_file():
        return *read_wfdb(path, seconds, max_seconds), "wfdb"
    if not source.exists():  # a list (a HF dataset's ecg_paths) can name a file that is not there
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    raise EcgReadError(f"{path}: not an ECG file embedpipe reads (Philips, GE MUSE or HL7 aECG XML; "
                       "DICOM ECG waveform; WFDB .hea/.dat)")


def _xml_root(path: str) -> str | None:
    """The root element's local name; None for a file that is not XML (and not named .xml)."""
    from defusedxml import DefusedXmlException

    from embedpipe.readers import ecg_xml

    try:
        return ecg_xml.xml_root_name(path)
    except DefusedXmlException as e:
        raise EcgReadError(f"{path}: XML refused ({e})") from None
    except ElementTree.ParseError as e:
        if Path(path).suffix.lower() == ".xml":
            raise EcgReadError(f"{path}: not well-formed XML ({e})") from None
        return None


def read_ecg(path: str, seconds: float | None = TARGET_SAMPLES / TARGET_RATE, resample: str = "polyphase",
             nan: str = "zero", max_seconds: float = MAX_SECONDS) -> EcgRecord:
    """An ECG file (see `read_source`) as 12 leads at 500 Hz: whole (`seconds` None) or cut to its first
    `seconds`."""
    leads, rate, derived, source_format = read_source(path, None if resample == "fft" else seconds, max_seconds)
    if rate <= 0:
        raise EcgReadError(f"sampling rate {rate} in {path}")
    if not seconds or resample == "fft":  # read whole: WFDB and DICOM checked their headers, XML is checked here
        check_duration(max(map(len, leads.values()), default=0) / rate, max_seconds, path, WHOLE_HINT, EcgReadError)
    record = to_standard_leads(leads, rate, path, seconds, resample, nan)
    record.leads_derived = [lead for lead in record.leads_found if lead in derived]
    record.source_format = source_format
    return record
