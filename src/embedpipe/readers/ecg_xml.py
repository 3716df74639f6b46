"""ECG XML formats: Philips SierraECG, GE MUSE RestingECG and HL7 aECG → leads by name in mV at the source rate.

Every file is parsed by defusedxml: entity declarations and external references are refused, a DOCTYPE
itself is allowed (MUSE exports name `restecg.dtd`; it is never fetched).
"""

from __future__ import annotations

import base64
import zlib
from typing import TYPE_CHECKING

import numpy as np
from defusedxml import ElementTree

from embedpipe.readers.ecg_leads import EcgReadError, canonical_lead, to_mv

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

XML_FORMATS = {"restingecgdata": "sierra", "RestingECG": "ge_muse", "AnnotatedECG": "hl7_aecg"}
SUPPORTED_XML = "Philips SierraECG <restingecgdata>, GE MUSE <RestingECG>, HL7 aECG <AnnotatedECG>"
# sierraecg's own list (lib.assert_version): anything else it refuses.
SIERRA_VERSIONS = "SierraECG/PhilipsECG 1.03, 1.04, 1.04.01, 1.04.02"
_HL7 = "{urn:hl7-org:v3}"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_root_name(path: str) -> str:
    """The root element's local name, read up to its start tag only (a large file is not parsed whole).
    Expat reads the byte-order mark, so UTF-16 Sierra 1.04 files need nothing special."""
    with open(path, "rb") as f:
        for _, element in ElementTree.iterparse(f, events=("start",)):
            return _local(element.tag)
    raise EcgReadError(f"{path}: no XML element")


# --- Philips SierraECG -------------------------------------------------------------------------------------

def _sierra_document_type(path: str) -> str:
    """`<documenttype> <documentversion>`, read until both are seen."""
    found: dict[str, str] = {}
    with open(path, "rb") as f:
        for _, element in ElementTree.iterparse(f, events=("end",)):
            name = _local(element.tag)
            if name in ("documenttype", "documentversion"):
                found[name] = (element.text or "").strip()
            if len(found) == 2 or name == "documentinfo":
                break
    return f"{found.get('documenttype', '?')} {found.get('documentversion', '?')}"


def _sierra_resolution_uv(path: str) -> float:
    """µV per LSB: sierraecg does not return it. 1.04 has it on <parsedwaveforms resolution=...>,
    1.03 in <signalcharacteristics><signalresolution>."""
    root = ElementTree.parse(path).getroot()
    local = {_local(el.tag): el for el in root.iter()}
    waveforms = local.get("parsedwaveforms")
    if waveforms is not None and waveforms.get("resolution"):
        return float(waveforms.get("resolution"))
    for tag in ("signalresolution", "resolution"):
        if tag in local and (local[tag].text or "").strip():
            return float(local[tag].text)
    raise EcgReadError(f"no amplitude resolution in {path}")


def read_sierra(path: str) -> tuple[dict[str, np.ndarray], float]:
    import sierraecg

    try:
        ecg = sierraecg.read_file(path)
    except sierraecg.UnsupportedXmlFileError as e:
        if "Files of type" not in str(e):  # an unsupported waveform encoding or compression
            raise EcgReadError(f"{path}: {e}") from None
        raise EcgReadError(f"{path}: Philips XML document type {_sierra_document_type(path)} is not read; "
                           f"embedpipe reads {SIERRA_VERSIONS}") from None
    if not ecg.leads:
        raise EcgReadError(f"no leads in {path}")
    scale = _sierra_resolution_uv(path) / 1000.0
    leads = {lead.label: np.asarray(lead.samples, dtype=np.float64) * scale for lead in ecg.leads}
    return leads, float(ecg.leads[0].sampling_freq)


# --- GE MUSE -----------------------------------------------------------------------------------------------

def _muse_lead(lead: Element, path: str) -> tuple[str, np.ndarray]:
    name = (lead.findtext("LeadID") or "").strip()
    where = f"{path}: lead {name or '?'}"
    raw = base64.b64decode(lead.findtext("WaveFormData") or "")
    declared_crc = (lead.findtext("LeadDataCRC32") or "").strip()
    if declared_crc and zlib.crc32(raw) != int(declared_crc):
        raise EcgReadError(f"{where}: waveform data fails its LeadDataCRC32 {declared_crc}")
    sample_size = int(lead.findtext("LeadSampleSize") or 2)
    if sample_size != 2:
        raise EcgReadError(f"{where}: {sample_size}-byte samples; MUSE waveforms are 2-byte")
    count = int(lead.findtext("LeadSampleCountTotal") or -1)
    if len(raw) % 2 or len(raw) // 2 != count:
        raise EcgReadError(f"{where}: {len(raw) / 2:g} samples decoded, LeadSampleCountTotal says {count}")
    units = lead.findtext("LeadAmplitudeUnits")
    scale = float(lead.findtext("LeadAmplitudeUnitsPerBit") or "nan") * to_mv(units, where)
    if not np.isfinite(scale):
        raise EcgReadError(f"{where}: no LeadAmplitudeUnitsPerBit")
    return name, np.frombuffer(raw, dtype="<i2").astype(np.float64) * scale


def read_muse(path: str) -> tuple[dict[str, np.ndarray], float]:
    """The Rhythm waveform (the whole recording; Median is one averaged beat): the leads stored, and the rate."""
    root = ElementTree.parse(path).getroot()
    waveforms = {(w.findtext("WaveformType") or "").strip(): w for w in reversed(root.findall("Waveform"))}
    rhythm = waveforms.get("Rhythm")
    if rhythm is None:
        raise EcgReadError(f"{path}: no Rhythm waveform (found {sorted(waveforms) or 'none'})")
    rate = float(rhythm.findtext("SampleBase") or 0) * 10.0 ** int(rhythm.findtext("SampleExponent") or 0)
    leads: dict[str, np.ndarray] = {}
    for element in rhythm.findall("LeadData"):
        name, values = _muse_lead(element, path)
        leads.setdefault(name, values)
    if not leads:
        raise EcgReadError(f"no leads in {path}")
    return leads, rate  # its 8 stored leads: read_source derives the other four


# --- HL7 aECG ----------------------------------------------------------------------------------------------

def _quantity(element: Element | None, where: str) -> tuple[float, str]:
    if element is None or element.get("value") is None:
        raise EcgReadError(f"{where}: missing")
    return float(element.get("value")), element.get("unit") or ""


def _hl7_lead(value: Element, where: str) -> np.ndarray:
    if value.get(_XSI_TYPE) != "SLIST_PQ":
        raise EcgReadError(f"{where}: value type {value.get(_XSI_TYPE)!r}; embedpipe reads SLIST_PQ")
    origin, origin_unit = _quantity(value.find(f"{_HL7}origin"), f"{where} origin")
    scale, scale_unit = _quantity(value.find(f"{_HL7}scale"), f"{where} scale")
    try:
        digits = np.array((value.findtext(f"{_HL7}digits") or "").split(), dtype=np.int64)
    except ValueError as e:
        raise EcgReadError(f"{where}: digits are not integers ({e})") from None
    return origin * to_mv(origin_unit, where) + digits * (scale * to_mv(scale_unit, where))


def read_hl7_aecg(path: str) -> tuple[dict[str, np.ndarray], float]:
    """The first RHYTHM series' first sequence set. A file may hold several rhythm series (consecutive
    strips, or one strip recorded twice); embedpipe embeds one record per file, so it reads the first one
    and never splices series whose timing it would have to trust."""
    root = ElementTree.parse(path).getroot()
    series = next((s for s in root.iter(f"{_HL7}series")
                   if s.find(f"{_HL7}code") is not None and s.find(f"{_HL7}code").get("code") == "RHYTHM"), None)
    if series is None:
        raise EcgReadError(f"{path}: no RHYTHM series")
    sequence_set = series.find(f"{_HL7}component/{_HL7}sequenceSet")
    if sequence_set is None:
        raise EcgReadError(f"{path}: the RHYTHM series has no sequenceSet")
    leads: dict[str, np.ndarray] = {}
    rate = 0.0
    for sequence in sequence_set.findall(f"{_HL7}component/{_HL7}sequence"):
        code = sequence.find(f"{_HL7}code")
        name = code.get("code", "") if code is not None else ""
        value = sequence.find(f"{_HL7}value")
        if value is None:
            continue
        if name in ("TIME_ABSOLUTE", "TIME_RELATIVE"):
            increment, unit = _quantity(value.find(f"{_HL7}increment"), f"{path}: {name} increment")
            if unit not in _TO_SECONDS or increment <= 0:
                raise EcgReadError(f"{path}: {name} increment {increment} {unit!r} (s or ms)")
            rate = round(1.0 / (increment * _TO_SECONDS[unit]), 6)  # 1 / 0.002 s is 500, not 499.99…
        elif name.startswith("MDC_ECG_LEAD_"):
            lead = name.removeprefix("MDC_ECG_LEAD_")
            leads.setdefault(canonical_lead(lead) or lead, _hl7_lead(value, f"{path}: {name}"))
    if not rate:
        raise EcgReadError(f"{path}: no TIME_ABSOLUTE or TIME_RELATIVE sequence gives the sampling interval")
    if not leads:
        raise EcgReadError(f"no leads in {path}")
    return leads, rate
