"""The WFDB reader that bypasses wfdb.rdrecord gives exactly what wfdb.rdrecord gives, format by format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly
from support.workflow import fixtures_dir

from embedpipe.readers import wfdb_signal
from embedpipe.readers.ecg import LEADS, EcgReadError, read_ecg, read_source, read_wfdb

LIMBS = ["III", "aVR", "aVL", "aVF"]
RANGES = {"16": 2**15, "80": 2**7, "212": 2**11, "24": 2**23, "32": 2**31}


def write_record(folder, fmt: str, n: int = 1001, seed: int = 0) -> str:
    """Three signals, full-range random samples, one invalid sample, differing gains, baselines and units."""
    half = RANGES[fmt]
    d = np.random.default_rng(seed).integers(-half + 1, half - 1, size=(n, 3), endpoint=True)
    d[5, 1] = -half  # WFDB's invalid sample value: NaN
    d[0] = [-half + 1, half - 1, 0]
    wfdb.wrsamp(f"r{fmt}", fs=500, units=["mV", "uV", "mV"], sig_name=["I", "II", "V1"], d_signal=d,
                fmt=[fmt] * 3, adc_gain=[200.0, 1000.0, 37.5], baseline=[0, -3, 12], write_dir=str(folder))
    return str(folder / f"r{fmt}")


def parse(header: str | Path) -> wfdb_signal.WfdbHeader:
    return wfdb_signal.parse_header(wfdb_signal.header_lines(Path(header)))


def assert_same_as_wfdb(record_name: str, n: int) -> None:
    ours = wfdb_signal.read_samples(record_name, parse(f"{record_name}.hea"), n)
    theirs = wfdb.rdrecord(record_name, sampto=n)
    assert list(ours) == theirs.sig_name
    for i, name in enumerate(theirs.sig_name):
        np.testing.assert_array_equal(ours[name], theirs.p_signal[:, i])  # NaNs in the same places


@pytest.mark.parametrize("fmt", sorted(RANGES))
def test_each_format_equals_wfdb_rdrecord(tmp_path, fmt):
    record = write_record(tmp_path, fmt)
    assert_same_as_wfdb(record, 999)  # an odd sample count: 212's last byte triple is half used
    assert_same_as_wfdb(record, 1001)
    assert np.isnan(wfdb_signal.read_samples(record, parse(tmp_path / f"r{fmt}.hea"), 10)["II"][5])


def test_big_endian_offset_binary_and_byte_offsets_equal_wfdb(tmp_path):
    """Formats 61 and 160 (wfdb cannot write them) and a '+offset' prefix, made from a format-16 record."""
    record = write_record(tmp_path, "16")
    digital = np.fromfile(f"{record}.dat", dtype="<i2")
    header = (tmp_path / "r16.hea").read_text()
    variants = {"61": b"", "160": b"", "16+512": b"\x7f" * 512}
    for fmt, prefix in variants.items():
        name = f"r{fmt.replace('+', 'o')}"
        data = {"61": digital.astype(">i2"), "160": (digital.astype(np.int32) + 32768).astype("<u2")}.get(fmt, digital)
        (tmp_path / f"{name}.dat").write_bytes(prefix + data.tobytes())
        (tmp_path / f"{name}.hea").write_text(re.sub(r"\.dat 16 ", f".dat {fmt} ", header.replace("r16", name)))
        assert parse(tmp_path / f"{name}.hea").signals[0].fmt == fmt.split("+")[0]
        assert_same_as_wfdb(str(tmp_path / name), 1001)


def test_real_records_equal_wfdb_rdrecord():
    ecg = fixtures_dir("ecg") / "wfdb"
    for record in (ecg / "mitdb_100" / "100", ecg / "ptbdb_s0010_re" / "s0010_re"):  # formats 212 and 16
        assert_same_as_wfdb(str(record), 3601)


def test_records_it_does_not_decode_are_read_by_wfdb(tmp_path):
    """Format 516 (FLAC): the header is refused here, and read_ecg still reads it
    via wfdb. (Several samples per frame, refused here before, are decoded here: test_ecg_formats.)"""
    d = np.random.default_rng(3).integers(-500, 500, size=(1000, 3))
    wfdb.wrsamp("flac", fs=500, units=["mV"] * 3, sig_name=["I", "II", "V1"], d_signal=d, fmt=["516"] * 3,
                adc_gain=[200.0] * 3, baseline=[0] * 3, write_dir=str(tmp_path))
    with pytest.raises(wfdb_signal.WfdbFormatError):
        parse(tmp_path / "flac.hea")
    leads, rate = read_wfdb(str(tmp_path / "flac.hea"))
    expected = wfdb.rdrecord(str(tmp_path / "flac"))
    assert rate == 500 and list(leads) == ["I", "II", "V1"]
    np.testing.assert_array_equal(leads["V1"], expected.p_signal[:, 2])
    assert read_ecg(str(tmp_path / "flac.hea")).n_samples == 1000


def test_a_truncated_signal_file_is_an_error_naming_it(tmp_path):
    record = write_record(tmp_path, "212")
    dat = tmp_path / "r212.dat"
    dat.write_bytes(dat.read_bytes()[:100])
    with pytest.raises(EcgReadError, match=r"r212\.dat is truncated: 100 bytes"):
        read_ecg(f"{record}.hea")


MULTI_RATE = "wfdb/mimicdb_041s01_multifreq/041s01"  # ECG III, I, V at 4 samples per 125-Hz frame; ABP … at 1


def test_a_multi_frequency_wfdb_record_is_read_at_its_ecg_rate_without_averaging_frames():
    record = str(fixtures_dir("ecg") / MULTI_RATE)
    expanded = wfdb.rdrecord(record, smooth_frames=False)  # the independent decoder, frames not averaged
    by_name = dict(zip(expanded.sig_name, expanded.e_p_signal, strict=True))
    assert (expanded.fs, expanded.units[1], len(by_name["I"]), len(by_name["ABP"])) == (125, "mV", 4000, 1000)
    header = wfdb_signal.parse_header(wfdb_signal.header_lines(Path(f"{record}.hea")))
    decoded = wfdb_signal.read_samples(record, header, 1000)  # every signal, each at its own rate
    for name, values in by_name.items():
        np.testing.assert_array_equal(decoded[name], values)
    leads, rate, derived, _ = read_source(f"{record}.hea")
    assert (rate, sorted(leads), derived) == (500, ["I", "III", "V"], [])  # ABP … at 125 Hz are not leads
    for name in ("I", "III", "V"):
        np.testing.assert_array_equal(leads[name], by_name[name])
    whole = read_ecg(f"{record}.hea", seconds=None)
    assert (whole.source_rate, whole.n_samples, whole.leads_found, whole.leads_derived) == (500, 4000, ["I", "III"], [])
    cut = read_ecg(f"{record}.hea", seconds=2)  # seconds, not frames: 2 s is 250 frames, 1000 samples
    assert (cut.source_rate, cut.n_samples) == (500, 1000)
    for lead in ("I", "III"):
        np.testing.assert_array_equal(whole.signal[LEADS.index(lead)], by_name[lead].astype(np.float32))
        np.testing.assert_array_equal(cut.signal[LEADS.index(lead)], by_name[lead][:1000].astype(np.float32))


def write_mixed_rate_record(folder: Path) -> str:
    """Frames at 250 Hz, 1000 of them: lead I at 2 samples per frame (500 Hz); II, V1 (in µV) and a blood
    pressure at 1 (250 Hz)."""
    rng = np.random.default_rng(11)
    t = np.arange(2000) / 500
    e_d = [np.round(800 * np.sin(2 * np.pi * 3 * t) + rng.integers(-20, 20, 2000)).astype(np.int64),
           rng.integers(-900, 900, 1000), rng.integers(-900, 900, 1000), rng.integers(0, 3000, 1000)]
    wfdb.wrsamp("mixed", fs=250, units=["mV", "mV", "uV", "mmHg"], sig_name=["I", "II", "V1", "ABP"], e_d_signal=e_d,
                samps_per_frame=[2, 1, 1, 1], fmt=["16"] * 4, adc_gain=[200.0, 200.0, 5.0, 20.0],
                baseline=[0, 3, 0, 0], write_dir=str(folder))
    return str(folder / "mixed")


def test_standard_leads_at_different_rates_are_upsampled_to_the_fastest(tmp_path):
    record = write_mixed_rate_record(tmp_path)
    expanded = wfdb.rdrecord(record, smooth_frames=False)
    by_name = dict(zip(expanded.sig_name, expanded.e_p_signal, strict=True))
    leads, rate, derived, _ = read_source(f"{record}.hea")
    assert (rate, sorted(leads), derived) == (500, ["I", "II", "III", "V1", "aVF", "aVL", "aVR"], LIMBS)
    np.testing.assert_array_equal(leads["I"], by_name["I"])
    np.testing.assert_allclose(leads["II"], resample_poly(by_name["II"], 2, 1))
    np.testing.assert_allclose(leads["V1"], resample_poly(by_name["V1"], 2, 1) / 1000)  # µV
    np.testing.assert_allclose(leads["III"], leads["II"] - leads["I"])
    ecg = read_ecg(f"{record}.hea", seconds=None)
    assert (ecg.source_rate, ecg.n_samples, ecg.leads_derived) == (500, 2000, LIMBS)
    dat = tmp_path / "mixed.dat"  # 1000 frames of 5 int16 samples; a size check blind to I's 2 wants 8000 B
    dat.write_bytes(dat.read_bytes()[:9000])
    with pytest.raises(EcgReadError, match=r"mixed\.dat is truncated: 9000 bytes"):
        read_ecg(f"{record}.hea", seconds=1)


def refuse_header(lines: list[str]) -> wfdb_signal.WfdbHeader:
    raise wfdb_signal.WfdbFormatError("refused, so that wfdb.rdrecord reads the record")


@pytest.mark.parametrize("record", [MULTI_RATE, "mixed"])
def test_the_fast_wfdb_decoder_and_the_wfdb_fallback_agree_on_multi_frequency_records(tmp_path, monkeypatch, record):
    path = f"{write_mixed_rate_record(tmp_path) if record == 'mixed' else fixtures_dir('ecg') / record}.hea"
    lines = wfdb_signal.header_lines(Path(path))
    assert max(sig.per_frame for sig in wfdb_signal.parse_header(lines).signals) > 1  # decoded here, not refused
    for seconds in (None, 2.0):
        fast, fast_rate = read_wfdb(path, seconds)
        with monkeypatch.context() as m:
            m.setattr(wfdb_signal, "parse_header", refuse_header)
            slow, slow_rate = read_wfdb(path, seconds)
        assert fast_rate == slow_rate == 500 and list(fast) == list(slow)
        for name in fast:
            np.testing.assert_array_equal(fast[name], slow[name])
