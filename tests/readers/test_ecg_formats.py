"""GE MUSE XML, HL7 aECG and DICOM ECG waveforms, each against a reading made here another way; content
dispatch and its refusals; the derived-leads and source-format facts."""

from __future__ import annotations

import base64
import shutil
import xml.etree.ElementTree as StdET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pydicom
import pytest
import wfdb
from scipy.signal import resample_poly
from support.dicom_files import ECG_12_LEAD, write_waveform_dicom
from support.workflow import fixtures_dir

from embedpipe.encoders.ecg import EcgReader
from embedpipe.extract.writer import to_arrow
from embedpipe.readers.ecg import LEADS, EcgReadError, read_ecg, read_source
from embedpipe.readers.ecg_dicom import read_dicom_ecg
from embedpipe.readers.ecg_xml import read_hl7_aecg, xml_root_name

MUSE = ("braveheart_example1.xml", "braveheart_example4.xml")
HL7_FILE = "hl7_aecg/liryc_hl7aecg_example_mindray.xml"
HEMODYNAMIC = "dicom_waveform/dicomparser_wave_dfl_hemodynamic.dcm"
HEMODYNAMIC_SOP = "1.2.840.10008.5.1.4.1.1.9.2.1"
LIMBS = ["III", "aVR", "aVL", "aVF"]


def muse_rhythm_by_hand(path: Path) -> dict[str, np.ndarray]:
    """The Rhythm leads in mV: the standard library's parser, an XPath predicate, int16 × µV/bit."""
    rhythm = StdET.parse(path).getroot().find("./Waveform[WaveformType='Rhythm']")
    out = {}
    for lead in rhythm.iter("LeadData"):
        assert lead.findtext("LeadAmplitudeUnits") == "MICROVOLTS"
        digits = np.frombuffer(base64.b64decode("".join(lead.findtext("WaveFormData").split())), np.int16)
        out[lead.findtext("LeadID")] = digits * float(lead.findtext("LeadAmplitudeUnitsPerBit")) / 1000.0
    return out


def write_muse(path: Path, digits: dict[str, np.ndarray], per_bit: float, units: str,
               counts: dict[str, int] | None = None) -> None:
    """A minimal MUSE export: a Median block (which must be skipped), then the Rhythm block."""
    def block(kind: str, leads: dict[str, np.ndarray]) -> str:
        parts = [f"<Waveform><WaveformType>{kind}</WaveformType><SampleBase>500</SampleBase>"]
        for name, d in leads.items():
            n = (counts or {}).get(name, len(d))
            parts.append(f"<LeadData><LeadSampleCountTotal>{n}</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>"
                         f"{per_bit}</LeadAmplitudeUnitsPerBit><LeadAmplitudeUnits>{units}</LeadAmplitudeUnits>"
                         f"<LeadID>{name}</LeadID><WaveFormData>{base64.b64encode(d.astype('<i2').tobytes()).decode()}"
                         "</WaveFormData></LeadData>")
        return "".join(parts) + "</Waveform>"
    median = {name: np.full(60, 999, np.int16) for name in digits}
    path.write_text(f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
                    f"<RestingECG>{block('Median', median)}{block('Rhythm', digits)}</RestingECG>",
                    encoding="latin-1")


@pytest.mark.parametrize("name", MUSE)
def test_muse_rhythm_matches_a_decode_by_hand_and_derives_the_limb_leads(name):
    path = fixtures_dir("ecg") / "ge_muse_xml" / name
    expected = muse_rhythm_by_hand(path)
    assert sorted(expected) == sorted(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
    leads, rate, derived, _ = read_source(str(path))
    assert (rate, derived) == (500.0, LIMBS)
    record = read_ecg(str(path))
    assert (record.n_samples, record.source_rate, record.source_format) == (5000, 500, "ge_muse")
    assert record.leads_found == list(LEADS) and record.leads_derived == LIMBS
    signal = {lead: record.signal[i].astype(np.float64) for i, lead in enumerate(LEADS)}
    for lead, values in expected.items():
        np.testing.assert_allclose(signal[lead], values[:5000], atol=1e-6)
    one, two = signal["I"], signal["II"]  # Einthoven and Goldberger on what comes out
    np.testing.assert_allclose(signal["III"], two - one, atol=1e-5)
    np.testing.assert_allclose(signal["aVR"] + signal["aVL"] + signal["aVF"], 0, atol=1e-5)
    np.testing.assert_allclose(signal["aVR"], -(one + two) / 2, atol=1e-5)
    np.testing.assert_allclose(signal["aVL"], one - two / 2, atol=1e-5)
    np.testing.assert_allclose(signal["aVF"], two - one / 2, atol=1e-5)
    assert np.abs(signal["III"]).max() > 0.05  # a real lead, not zeros


def test_muse_millivolt_units_stored_limb_leads_and_a_wrong_sample_count(tmp_path):
    ramp = (np.arange(800) % 200 - 100).astype(np.int16)
    digits = {"I": ramp, "II": 2 * ramp, "III": 3 * ramp, "V3": -ramp}  # III stored (not II − I): kept
    write_muse(tmp_path / "mv.xml", digits, 0.005, "MILLIVOLTS")
    leads, rate, derived, _ = read_source(str(tmp_path / "mv.xml"))
    assert (rate, derived, len(leads["I"])) == (500.0, ["aVR", "aVL", "aVF"], 800)  # the Rhythm, not the Median
    np.testing.assert_allclose(leads["II"], 2 * ramp * 0.005)
    np.testing.assert_allclose(leads["III"], 3 * ramp * 0.005)
    np.testing.assert_allclose(leads["aVF"], (2 * ramp - ramp / 2) * 0.005)
    write_muse(tmp_path / "bad.xml", digits, 4.88, "MICROVOLTS", counts={"V3": 801})
    with pytest.raises(EcgReadError, match=r"lead V3: 800 samples decoded, LeadSampleCountTotal says 801"):
        read_ecg(str(tmp_path / "bad.xml"))
    text = (fixtures_dir("ecg") / "ge_muse_xml" / MUSE[0]).read_text("latin-1")
    at = text.index("<WaveFormData>", text.index("<WaveformType>Rhythm")) + len("<WaveFormData>")
    flipped = text[:at] + ("B" if text[at] != "B" else "C") + text[at + 1:]
    (tmp_path / "crc.xml").write_text(flipped, encoding="latin-1")
    with pytest.raises(EcgReadError, match="lead I: waveform data fails its LeadDataCRC32"):
        read_ecg(str(tmp_path / "crc.xml"))


def hl7_first_rhythm_by_hand(path: Path) -> tuple[dict[str, np.ndarray], float]:
    ns = {"h": "urn:hl7-org:v3"}
    series = [s for s in StdET.parse(path).getroot().iter("{urn:hl7-org:v3}series")
              if s.find("h:code", ns).get("code") == "RHYTHM"][0]
    leads, step = {}, None
    for seq in series.findall("h:component/h:sequenceSet/h:component/h:sequence", ns):
        code, value = seq.find("h:code", ns).get("code"), seq.find("h:value", ns)
        if code.startswith("TIME_"):
            assert value.find("h:increment", ns).get("unit") == "s"
            step = float(value.find("h:increment", ns).get("value"))
        else:
            scale, origin = value.find("h:scale", ns), value.find("h:origin", ns)
            assert scale.get("unit") == origin.get("unit") == "uV"
            digits = np.array([int(t) for t in value.find("h:digits", ns).text.split()], dtype=np.float64)
            leads[code.split("_")[-1]] = (digits * float(scale.get("value")) + float(origin.get("value"))) / 1000
    return leads, 1 / step


def test_hl7_aecg_first_rhythm_series_matches_a_parse_by_hand_and_is_resampled():
    path = fixtures_dir("ecg") / HL7_FILE
    expected, rate = hl7_first_rhythm_by_hand(path)
    assert rate == pytest.approx(100) and len(expected) == 12 and len(expected["I"]) == 1000
    leads, read_rate = read_hl7_aecg(str(path))
    assert read_rate == 100.0
    by_upper = {name.upper(): values for name, values in leads.items()}
    assert sorted(by_upper) == sorted(expected)
    for code, values in expected.items():
        np.testing.assert_allclose(by_upper[code], values, atol=1e-12)
    record = read_ecg(str(path), seconds=None)  # whole: the first series' 10 s, not the second's 5 s
    assert (record.n_samples, record.source_rate, record.source_format) == (5000, 100, "hl7_aecg")
    assert record.leads_found == list(LEADS) and record.leads_derived == []
    stacked = np.stack([expected[lead.upper()] for lead in LEADS])
    np.testing.assert_allclose(record.signal, resample_poly(stacked, 5, 1, axis=-1), atol=1e-5)


def test_hl7_aecg_origin_millivolt_scale_and_milliseconds(tmp_path):
    digits = np.arange(-50, 50)
    lead = ('<component><sequence><code code="MDC_ECG_LEAD_{name}"/><value xsi:type="SLIST_PQ">'
            '<origin value="0.25" unit="mV"/><scale value="10" unit="uV"/><digits>{d}</digits></value>'
            "</sequence></component>")
    body = "".join(lead.format(name=n, d=" ".join(map(str, k * digits))) for k, n in ((1, "II"), (-2, "AVF")))
    (tmp_path / "a.xml").write_text(
        '<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<component><series><code code="RHYTHM"/><component><sequenceSet><component><sequence>'
        '<code code="TIME_RELATIVE"/><value xsi:type="GLIST_PQ"><head value="0" unit="s"/>'
        f'<increment value="4" unit="ms"/></value></sequence></component>{body}</sequenceSet></component>'
        "</series></component></AnnotatedECG>")
    leads, rate = read_hl7_aecg(str(tmp_path / "a.xml"))
    assert rate == 250.0 and sorted(leads) == ["II", "aVF"]
    np.testing.assert_allclose(leads["II"], 0.25 + digits * 0.01)
    np.testing.assert_allclose(leads["aVF"], 0.25 - 2 * digits * 0.01)


def test_dicom_hemodynamic_ecg_matches_pydicom_and_is_resampled():
    path = fixtures_dir("ecg") / HEMODYNAMIC
    ds = pydicom.dcmread(path)
    expected = ds.waveform_array(0)  # pydicom: raw × sensitivity × correction + baseline, in mV here
    names = [c.ChannelSourceSequence[0].CodeMeaning.removeprefix("Lead ")
             for c in ds.WaveformSequence[0].ChannelDefinitionSequence]
    assert expected.shape == (2400, 12) and sorted(names) == sorted(LEADS)
    leads, rate = read_dicom_ecg(str(path))
    assert rate == 240.0 and sorted(leads) == sorted(LEADS)
    for i, name in enumerate(names):
        np.testing.assert_allclose(leads[name], expected[:, i], rtol=1e-12)
    record = read_ecg(str(path))
    assert (record.n_samples, record.source_rate, record.source_format, record.leads_derived) == \
        (5000, 240, "dicom_waveform", [])
    by_lead = np.stack([expected[:, names.index(lead)] for lead in LEADS])
    np.testing.assert_allclose(record.signal, resample_poly(by_lead, 25, 12, axis=-1), atol=1e-5)


@pytest.mark.parametrize(("interpretation", "bits", "step_uv"), [("SS", 16, 1.0), ("UB", 8, 20.0)])
def test_synthetic_12_lead_dicom_at_1000_hz_reads_back_its_sines_at_500_hz(tmp_path, interpretation, bits, step_uv):
    t = np.arange(10_000) / 1000.0
    order = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # aVF before aVL
    sines = {lead: (0.4 + 0.08 * k) * np.sin(2 * np.pi * (1 + 0.7 * k) * t + k) for k, lead in enumerate(order)}
    offset = 128 if interpretation == "UB" else 0  # unsigned samples sit above a negative baseline
    channels = [(f"Lead {lead}", "uV", np.round(sines[lead] * 1000 / step_uv) + offset, step_uv * 2, 0.5,
                 -offset * step_uv) for lead in order]
    path = tmp_path / "ecg.dcm"
    write_waveform_dicom(path, ECG_12_LEAD, [(1000, interpretation, bits, channels)])
    check = pydicom.dcmread(path).waveform_array(0)  # the writer, checked by pydicom: µV
    np.testing.assert_allclose(check[:, 0] / 1000, sines["I"], atol=step_uv / 2000 + 1e-9)
    record = read_ecg(str(path))
    assert (record.source_rate, record.n_samples, record.leads_found) == (1000, 5000, list(LEADS))
    t500 = np.arange(5000) / 500.0
    for i, lead in enumerate(LEADS):
        k = order.index(lead)
        truth = (0.4 + 0.08 * k) * np.sin(2 * np.pi * (1 + 0.7 * k) * t500 + k)
        # quantisation noise, low-passed by the resampler, can reach past half a step near a peak
        np.testing.assert_allclose(record.signal[i, 20:-20], truth[20:-20], atol=step_uv / 1000 + 2e-3)


def test_dicom_skips_pressure_and_inverted_leads_and_marks_padding_missing(tmp_path):
    ramp = np.arange(-300, 300)
    pressure_only = (125, "SS", 16, [("Arterial pressure", "mm[Hg]", ramp, 0.1, 1, 0)])
    mixed = (250, "SS", 16, [("Arterial pressure", "mm[Hg]", ramp, 0.1, 1, 0), ("Lead II", "mV", ramp, 0.002, 1, 0),
                             ("Lead -aVR", "mV", ramp, 0.002, 1, 0), ("Lead V2", "uV", 2 * ramp + 1, 5, 1, 100)])
    path = tmp_path / "hemo.dcm"
    write_waveform_dicom(path, HEMODYNAMIC_SOP, [pressure_only, mixed], padding=-300)
    leads, rate = read_dicom_ecg(str(path))
    assert rate == 250 and sorted(leads) == ["II", "V2"]  # not the inverted aVR, not the pressure
    expected_ii = ramp * 0.002
    expected_ii[0] = np.nan  # the padding value marks a missing sample
    np.testing.assert_allclose(leads["II"], expected_ii)
    np.testing.assert_allclose(leads["V2"], ((2 * ramp + 1) * 5 + 100) / 1000)
    record = read_ecg(str(path), seconds=None)
    assert record.nan_samples == 1 and record.leads_found == ["II", "V2"]


def test_content_not_extension_chooses_the_reader(tmp_path):
    ecg = fixtures_dir("ecg")
    shutil.copy(ecg / "ge_muse_xml" / MUSE[0], tmp_path / "muse.export")
    shutil.copy(ecg / HEMODYNAMIC, tmp_path / "waveform")
    assert read_ecg(str(tmp_path / "muse.export")).source_format == "ge_muse"
    assert read_ecg(str(tmp_path / "waveform")).source_rate == 240
    assert xml_root_name(str(ecg / "sierra_xml" / "v1_04_3191723_ZZDEMOPTONLY_1-04_orig.xml")) == "restingecgdata"
    sierra = read_ecg(str(ecg / "sierra_xml" / "v1_04_01_2020-5-18_15-48-11.xml"))  # UTF-16
    wfdb = read_ecg(str(ecg / "wfdb" / "mitdb_100" / "100.hea"))
    assert (sierra.source_format, wfdb.source_format, sierra.leads_derived) == ("sierra", "wfdb", [])


def test_unknown_formats_are_refused_in_one_line(tmp_path):
    (tmp_path / "foo.xml").write_text('<?xml version="1.0"?><Foo xmlns="urn:x"><Bar/></Foo>')
    (tmp_path / "bomb.xml").write_text('<!DOCTYPE r [<!ENTITY a "aaaa">]><restingecgdata>&a;</restingecgdata>')
    cases = {
        tmp_path / "foo.xml": ["XML root <Foo> is not an ECG format embedpipe reads", "Philips SierraECG "
                               "<restingecgdata>, GE MUSE <RestingECG>, HL7 aECG <AnnotatedECG>"],
        fixtures_dir("ecg") / "broken" / "sierra_invalid-doc-type.xml": [
            "Philips XML document type MortaraECG 1.03 is not read", "SierraECG/PhilipsECG 1.03, 1.04"],
        fixtures_dir("video") / "dicom" / "dcmbench_us_esopecho_rgb_single.dcm": [
            "DICOM Ultrasound Image Storage is not an ECG waveform; embedpipe reads 12-lead ECG, General ECG, "
            "Ambulatory ECG and Hemodynamic Waveform Storage"],
        tmp_path / "bomb.xml": ["XML refused", "Entit"],
    }
    for path, parts in cases.items():
        with pytest.raises(EcgReadError) as caught:
            read_ecg(str(path))
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        for part in parts:
            assert part in message, message


def test_reader_facts_carry_derived_leads_and_source_format():
    reader = EcgReader(lead_index=list(range(12)), length="10s", resample="polyphase", nan="zero", filter="none",
                       notch_hz=50.0, mode="12lead")
    ecg = fixtures_dir("ecg")
    muse = reader.prepare(str(ecg / "ge_muse_xml" / MUSE[1])).facts
    dicom = reader.prepare(str(ecg / HEMODYNAMIC)).facts
    assert (list(muse["leads_derived"]), muse["source_format"]) == (LIMBS, "ge_muse")
    assert (list(dicom["leads_derived"]), dicom["source_format"]) == ([], "dicom_waveform")
    fields = {f.name: f.type for f in reader.fact_fields()}
    assert (fields["leads_derived"], fields["source_format"]) == (pa.list_(pa.string()), pa.string())
    for facts in ([muse, dicom], [dicom, dicom]):  # a batch where no record has a derived lead, too
        column = to_arrow([f["leads_derived"] for f in facts], fields["leads_derived"])
        assert column.to_pylist() == [list(f["leads_derived"]) for f in facts]


def test_an_eight_lead_record_in_any_format_gets_its_limb_leads_derived(tmp_path):
    rng = np.random.default_rng(5)
    stored = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    signal = np.round(rng.normal(0, 0.5, size=(5000, 8)), 3)
    wfdb.wrsamp("eight", fs=500, units=["mV"] * 8, sig_name=stored, p_signal=signal, fmt=["16"] * 8,
                adc_gain=[1000.0] * 8, baseline=[0] * 8, write_dir=str(tmp_path))
    record = read_ecg(str(tmp_path / "eight.hea"))
    assert record.leads_found == list(LEADS) and record.leads_derived == LIMBS and record.source_format == "wfdb"
    one, two = signal[:, 0], signal[:, 1]
    by_lead = dict(zip(LEADS, record.signal.astype(np.float64), strict=True))
    for lead, want in {"III": two - one, "aVR": -(one + two) / 2, "aVL": one - two / 2, "aVF": two - one / 2}.items():
        np.testing.assert_allclose(by_lead[lead], want, atol=1e-5)


def test_a_listed_file_that_is_not_there_says_so():
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        read_ecg("/nonexistent/p1000/s1/record.xml")

