"""A row's file identity: what reuse compares (extract/reuse.py)."""

from __future__ import annotations

import os

from embedpipe.store.file_identity import file_identity


def test_a_wfdb_header_s_identity_covers_its_signal_file(tmp_path):
    header, signal = tmp_path / "r1.hea", tmp_path / "r1.dat"
    header.write_text("r1 12 500 5000\n")
    assert file_identity(header) == {"file_size": 15, "file_mtime_ns": header.stat().st_mtime_ns}  # no .dat yet
    signal.write_bytes(b"\0" * 100)
    os.utime(signal, ns=(header.stat().st_mtime_ns + 10**9,) * 2)
    before = file_identity(header)
    assert before == {"file_size": 115, "file_mtime_ns": signal.stat().st_mtime_ns}
    signal.write_bytes(b"\1" * 100)  # the samples replaced, the header untouched: another identity
    os.utime(signal, ns=(before["file_mtime_ns"] + 1,) * 2)
    assert file_identity(header) != before
    assert file_identity(tmp_path / "missing.hea") == {"file_size": None, "file_mtime_ns": None}
