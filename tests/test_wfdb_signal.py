"""The WFDB reader that bypasses wfdb.rdrecord gives exactly what wfdb.rdrecord gives, format by format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import fixtures_dir

from embedpipe.readers import wfdb_signal
from embedpipe.readers.ecg import EcgReadError, read_ecg, read_wfdb

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
    """Two samples per frame in one signal: the header is refused here, and read_ecg still reads it via wfdb."""
    rng = np.random.default_rng(3)
    e_d = [rng.integers(-500, 500, 1000), rng.integers(-500, 500, 2000), rng.integers(-500, 500, 1000)]
    wfdb.wrsamp("multi", fs=500, units=["mV"] * 3, sig_name=["I", "II", "V1"], e_d_signal=e_d,
                samps_per_frame=[1, 2, 1], fmt=["16"] * 3, adc_gain=[200.0] * 3, baseline=[0] * 3,
                write_dir=str(tmp_path))
    with pytest.raises(wfdb_signal.WfdbFormatError):
        parse(tmp_path / "multi.hea")
    leads, rate = read_wfdb(str(tmp_path / "multi.hea"))
    expected = wfdb.rdrecord(str(tmp_path / "multi"))
    assert rate == 500 and list(leads) == ["I", "II", "V1"]
    np.testing.assert_array_equal(leads["V1"], expected.p_signal[:, 2])
    assert read_ecg(str(tmp_path / "multi.hea")).n_samples == 1000


def test_a_truncated_signal_file_is_an_error_naming_it(tmp_path):
    record = write_record(tmp_path, "212")
    dat = tmp_path / "r212.dat"
    dat.write_bytes(dat.read_bytes()[:100])
    with pytest.raises(EcgReadError, match=r"r212\.dat is truncated: 100 bytes"):
        read_ecg(f"{record}.hea")
