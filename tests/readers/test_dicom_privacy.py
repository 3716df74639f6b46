"""DICOM privacy, refusals and dispatch: no header value outside a reader's allow-list reaches a fact, an
error, a log record or a warning, whatever the damage (cuts, flipped bytes); every failure is the
reader's own one-line error; DICOM is the same thing to the video and the ECG reader."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pydicom
import pytest
from pydicom.uid import RLELossless
from support.dicom_files import (
    CANARIES,
    ECG_12_LEAD,
    ParseSpy,
    cine,
    flipped,
    leads_12,
    write_dicom,
    write_waveform_dicom,
)
from support.workflow import fixtures_dir

from embedpipe.discover.scan import is_unnamed_dicom
from embedpipe.encoders import build_encoder
from embedpipe.readers import ecg_dicom
from embedpipe.readers.dicom_video import ALLOWED_FIELDS, DicomReadError, read_dicom_video
from embedpipe.readers.ecg import EcgReadError, read_ecg
from embedpipe.readers.sniff import has_dicom_preamble
from embedpipe.readers.video import VideoReadError, read_video

PALETTE = "dbdicom_us_echo_palette_rle_11f.dcm"
BASELINE = "dicomparser_us_acuson_ybr_jpeg_baseline_8f.dcm"
ALWAYS_PARSED = {"SpecificCharacterSet"}  # pydicom adds it to any specific_tags read


def fixture(name: str) -> Path:
    return fixtures_dir("video/dicom") / name


def leaked(texts) -> list[str]:
    return [t for t in texts if any(c.lower() in str(t).lower() for c in CANARIES)]


def damaged(data: bytes, region: int, seed: int, cuts: list[int], flips: int):
    """Each cut of `data`, then `flips` copies with 1-4 random bytes changed in its first `region` bytes."""
    yield from (data[:size] for size in cuts)
    rng = np.random.default_rng(seed)
    for _ in range(flips):
        yield flipped(data, region, rng, int(rng.integers(1, 5)))


def test_no_header_value_outside_the_allow_list_reaches_a_fact_or_an_error(tmp_path, tiny_model, monkeypatch):
    assert isinstance(ALLOWED_FIELDS, tuple) and all(pydicom.datadict.tag_for_keyword(k) for k in ALLOWED_FIELDS)
    assert not {"PatientName", "PatientID", "StudyDate", "InstitutionName"} & set(ALLOWED_FIELDS)
    path = write_dicom(tmp_path / "canary.dcm", cine(8).astype(np.uint8), "MONOCHROME2", syntax=RLELossless)
    data = path.read_bytes()
    assert all(c.encode() in data for c in CANARIES)
    encoder = build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "device": "cpu"})
    spy = ParseSpy(monkeypatch)
    facts = encoder.reader.prepare(str(path)).facts
    assert facts["transfer_syntax"] == "RLE Lossless" and facts["frames_decoded"] == 8
    assert not leaked(facts.values())
    assert spy.parsed and spy.keywords() <= set(ALLOWED_FIELDS) | ALWAYS_PARSED, spy.keywords()
    messages = set()
    cut = tmp_path / "cut.dcm"
    for size in [*range(0, 1200, 3), *range(1200, len(data), 97)]:  # every cut through the header, then some
        cut.write_bytes(data[:size])
        try:
            read_dicom_video(str(cut), 4)
        except DicomReadError as exc:
            messages.add(str(exc))
    assert len(messages) >= 3  # header, no-pixels and no-whole-frame failures were all met
    assert all("\n" not in m for m in messages)
    assert not leaked(messages), leaked(messages)
    assert spy.keywords() <= set(ALLOWED_FIELDS) | ALWAYS_PARSED, spy.keywords()


def test_flipped_header_bytes_give_only_dicom_read_errors_without_a_header_value(tmp_path, monkeypatch):
    """Random bytes changed before the pixel data: lengths, VRs, UIDs and counts go wrong in every way.
    Whatever breaks, and where (also in a value pydicom converts lazily), it is a DicomReadError."""
    path = write_dicom(tmp_path / "canary.dcm", cine(8).astype(np.uint8), "MONOCHROME2", syntax=RLELossless)
    data = path.read_bytes()
    region = data.index(b"\xe0\x7f\x10\x00")  # the Pixel Data tag
    spy = ParseSpy(monkeypatch)
    messages, read = set(), 0
    for k, variant in enumerate(damaged(data, region, seed=7, cuts=[], flips=600)):
        (tmp_path / f"{k}.dcm").write_bytes(variant)
        try:
            read_dicom_video(str(tmp_path / f"{k}.dcm"), 4)
            read += 1
        except DicomReadError as exc:  # anything else fails the test
            messages.add(str(exc))
    assert read > 50 and len(messages) > 10  # most flips hit values that do not matter; many did
    assert all("\n" not in m for m in messages)
    assert not leaked(messages), leaked(messages)
    assert spy.keywords() <= set(ALLOWED_FIELDS) | ALWAYS_PARSED, spy.keywords()


@pytest.mark.parametrize("damage", ["transfer syntax with a backslash", "Rows with an unknown VR"])
def test_a_damaged_field_is_a_dicom_read_error_naming_no_value(damage, tmp_path):
    path = write_dicom(tmp_path / "x.dcm", cine(4).astype(np.uint8), "MONOCHROME2")  # Explicit VR Little Endian
    data = path.read_bytes()
    old, new = {"transfer syntax with a backslash": (b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2\\1\0"),
                "Rows with an unknown VR": (b"\x28\x00\x10\x00US", b"\x28\x00\x10\x00ZX")}[damage]
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    with pytest.raises(DicomReadError) as caught:
        read_dicom_video(str(path), 4)
    assert not leaked([caught.value]) and "\n" not in str(caught.value)


def test_no_header_value_reaches_an_ecg_error_log_or_warning_whatever_the_damage(tmp_path, monkeypatch, caplog,
                                                                                 recwarn):
    path = write_waveform_dicom(tmp_path / "canary.dcm", ECG_12_LEAD, [(500, "SS", 16, leads_12(6000))])
    data = path.read_bytes()
    assert all(c.encode() in data for c in CANARIES)
    assert isinstance(ecg_dicom.ALLOWED_FIELDS, tuple)
    spy = ParseSpy(monkeypatch)
    record = read_ecg(str(path))
    assert (record.source_format, record.n_samples, record.leads_found[:2]) == ("dicom_waveform", 5000, ["I", "II"])
    assert spy.keywords() <= set(ecg_dicom.ALLOWED_FIELDS) | ALWAYS_PARSED, spy.keywords()
    assert len(spy.parsed[0].WaveformSequence[0].ChannelDefinitionSequence) == 12  # items kept whole
    region = data.index(b"\x00\x54\x10\x10")  # the Waveform Data tag: all of the header comes before
    cuts = [*range(0, region + 64), *range(region + 64, len(data), 501)]
    messages, read = set(), 0
    with caplog.at_level("DEBUG"):
        for k, variant in enumerate(damaged(data, region, seed=11, cuts=cuts, flips=600)):
            (tmp_path / f"{k}.dcm").write_bytes(variant)
            try:
                ecg_dicom.read_dicom_ecg(str(tmp_path / f"{k}.dcm"), seconds=10)
                read += 1
            except EcgReadError as exc:  # anything else fails the test
                messages.add(str(exc))
                if k < len(cuts):
                    assert "cut short" in str(exc), (k, str(exc))
    assert read > 50 and len(messages) > 10
    assert all("\n" not in m and m.startswith(str(tmp_path)) for m in messages)
    assert not leaked(messages), leaked(messages)
    assert not leaked(r.getMessage() for r in caplog.records) and not leaked(str(w.message) for w in recwarn)
    assert spy.keywords() <= set(ecg_dicom.ALLOWED_FIELDS) | ALWAYS_PARSED, spy.keywords()


def test_pydicoms_warnings_about_a_header_stay_out_of_the_logs(recwarn, caplog):
    path = fixture(BASELINE)  # Specific Character Set 'ISO-IR 100': pydicom warns and logs it on every read
    with caplog.at_level("DEBUG"):
        pydicom.dcmread(path).PatientName  # noqa: B018 - the read that warns, as a check that it still does
        assert caplog.records and recwarn.list
        caplog.clear()
        recwarn.clear()
        read_dicom_video(str(path), 4)
    assert not caplog.records and not recwarn.list


def test_a_waveform_dicom_is_refused_naming_its_sop_class():
    path = fixtures_dir("ecg/dicom_waveform") / "dicomparser_wave_dfl_hemodynamic.dcm"
    with pytest.raises(DicomReadError) as refused:
        read_video(str(path), 16)
    assert str(refused.value) == "DICOM is not an image: Hemodynamic Waveform Storage has no Pixel Data"


def test_read_video_sends_dicom_by_preamble_whatever_the_name_and_mp4_to_decord(tmp_path):
    unnamed = tmp_path / "1.2.840.113619.2.1"
    shutil.copy(fixture(BASELINE), unnamed)
    upper = tmp_path / "CINE.DCM"
    shutil.copy(fixture(PALETTE), upper)
    assert read_video(str(unnamed), 4).transfer_syntax == "JPEG Baseline (Process 1)"
    assert read_video(str(upper), 4).transfer_syntax == "RLE Lossless"
    mp4 = read_video(str(fixtures_dir("video") / "nasa_13013.mp4"), 4)
    assert mp4.transfer_syntax is None and (mp4.height, mp4.width) == (270, 480)
    assert mp4.frame_rate == pytest.approx(30000 / 1001)


def test_a_dcm_name_without_the_preamble_is_not_dicom_to_either_reader(tmp_path):
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(fixture(PALETTE).read_bytes()[132:])  # the data set without the Part 10 preamble
    with pytest.raises(VideoReadError, match="named .dcm but without the DICOM preamble") as video:
        read_video(str(bare), 4)
    assert not isinstance(video.value, DicomReadError)
    with pytest.raises(EcgReadError, match="not an ECG file embedpipe reads"):
        read_ecg(str(bare))


class Blocked(Exception):
    """Not an OSError: has_dicom_preamble must not take it for an unreadable file."""


def test_the_scan_sniffs_a_fifo_without_waiting_on_it(tmp_path):
    fifo = tmp_path / "1.2.3.4"
    os.mkfifo(fifo)

    def hung(*_):
        raise Blocked

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        assert has_dicom_preamble(fifo, block=False) is False
        assert is_unnamed_dicom(fifo) is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    (tmp_path / "IM0001").write_bytes(bytes(128) + b"DICM")
    assert has_dicom_preamble(tmp_path / "IM0001", block=False) and has_dicom_preamble(tmp_path / "IM0001")


def test_mp4_and_dicom_rows_share_one_fact_schema(tiny_model):
    encoder = build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "device": "cpu"})
    schema = pa.schema(encoder.reader.fact_fields())
    rows = [encoder.reader.prepare(str(p)).facts for p in (fixtures_dir("video") / "nasa_13013.mp4", fixture(PALETTE))]
    table = pa.Table.from_pylist(rows, schema=schema)
    assert set(rows[0]) == set(rows[1]) == set(schema.names)
    assert table.column("transfer_syntax").to_pylist() == [None, "RLE Lossless"]
    assert table.column("height").to_pylist() == [270, 430] and table.column("width").to_pylist() == [480, 600]
    assert table.column("frames_decoded").to_pylist() == [390, 11]
    assert table.column("frame_rate").to_pylist()[1] == pytest.approx(1000 / 62.727272)
    assert schema.field("frame_rate").type == pa.float64() and schema.field("height").type == pa.int32()
