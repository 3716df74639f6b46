"""DICOM ECG waveforms: which multiplex group is read, and how much of a long record (decoding against
pydicom: test_ecg_formats.py; privacy: test_dicom_privacy.py)."""

from __future__ import annotations

import numpy as np
import pytest
from support.dicom_files import ECG_12_LEAD, write_waveform_dicom

from embedpipe.readers import ecg_dicom
from embedpipe.readers.ecg import CUT_MARGIN_S, EcgReadError, read_ecg
from embedpipe.readers.ecg_dicom import read_dicom_ecg

AMBULATORY = "1.2.840.10008.5.1.4.1.1.9.1.3"


def lead_ii(samples: int, value: int) -> tuple:
    return 500, "SS", 16, [("Lead II", "uV", np.full(samples, value), 1.0, 1, 0)]


def test_dicom_prefers_the_original_group_then_the_longest(tmp_path):
    """A 12-lead file's median beat is a DERIVED group, often the first, and here even the longest."""
    path = tmp_path / "median_first.dcm"
    write_waveform_dicom(path, ECG_12_LEAD, [lead_ii(6000, 1), lead_ii(5000, 2)], originality=["DERIVED", "ORIGINAL"])
    leads, _ = read_dicom_ecg(str(path))
    assert len(leads["II"]) == 5000 and (leads["II"] == 0.002).all()
    write_waveform_dicom(path, ECG_12_LEAD, [lead_ii(600, 1), lead_ii(5000, 2), lead_ii(4000, 3)],
                         originality=["ORIGINAL", "ORIGINAL", "DERIVED"])
    leads, _ = read_dicom_ecg(str(path))
    assert len(leads["II"]) == 5000 and (leads["II"] == 0.002).all()
    assert read_ecg(str(path)).n_samples == 5000


def test_a_long_dicom_ecg_cut_to_10_s_converts_only_those_and_whole_it_is_refused(tmp_path, monkeypatch):
    ramp = np.arange(200 * 100) % 1000  # 100 s at 200 Hz
    path = tmp_path / "holter.dcm"
    write_waveform_dicom(path, AMBULATORY, [(200, "SS", 16, [("Lead I", "uV", ramp, 1.0, 1, 0),
                                                             ("Lead V1", "uV", -ramp, 1.0, 1, 0)])])
    counts = []
    frombuffer = np.frombuffer

    def counted(*args, **kwargs):
        counts.append(kwargs.get("count", -1))
        return frombuffer(*args, **kwargs)

    monkeypatch.setattr(ecg_dicom.np, "frombuffer", counted)
    leads, rate = read_dicom_ecg(str(path), seconds=10)
    kept = int(np.ceil(200 * (10 + CUT_MARGIN_S)))
    assert rate == 200 and len(leads["I"]) == kept and max(counts) == 2 * kept  # both channels, no more
    np.testing.assert_allclose(leads["V1"], -ramp[:kept] / 1000)
    monkeypatch.undo()
    assert len(read_dicom_ecg(str(path), max_seconds=100)[0]["I"]) == 20000  # whole, at the limit
    for read in (lambda: read_dicom_ecg(str(path), max_seconds=50), lambda: read_ecg(str(path), None, max_seconds=50)):
        with pytest.raises(EcgReadError, match="100 s is longer than 50 s read whole; use encoder.length 10s"):
            read()
    assert read_ecg(str(path), max_seconds=50).n_samples == 5000  # cut to 10 s, the limit does not apply
