"""What native decoders print goes to the log under the file's key, and fd 2 always comes back; error
messages name the file by key."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from embedpipe.extract import decoder_output
from embedpipe.extract.decoder_output import DecoderOutput, decoder_lines
from embedpipe.runtime.decode_guard import read_within
from embedpipe.runtime.error_text import relative_to
from embedpipe.runtime.stop import Interrupted, StopRequest


def fd2() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_a_deadline_inside_the_capture_leaves_stderr_where_it_was(caplog):
    """The decode deadline's SIGALRM raises out of the decoder: fd 2 comes back, what was said is logged."""
    before, output = fd2(), DecoderOutput()
    with caplog.at_level(logging.WARNING):
        result, error = read_within(lambda: _print_and_hang(output), timeout_s=0.05)
    assert result is None and error[0] == "DecodeTimeout"
    assert fd2() == before
    assert any("k: decoder said: native line" in r.getMessage() for r in caplog.records)


def _print_and_hang(output: DecoderOutput) -> None:
    with output.labelled("k"):
        os.write(2, b"native line\n")
        time.sleep(5)  # the alarm ends this


def test_without_a_scratch_file_the_file_is_still_read_uncaptured(monkeypatch):
    def full_disk():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(decoder_output.tempfile, "TemporaryFile", full_disk)
    before = fd2()
    with DecoderOutput().labelled("k"):
        read = "decoded"
    assert read == "decoded" and fd2() == before


def test_a_stop_signal_during_the_swaps_waits_until_fd2_is_back(monkeypatch):
    """SIGTERM while the main process decodes (num_workers 0) raises Interrupted: never between the
    two halves of a swap, which would leave stderr in the scratch file for the rest of the job."""
    stop, before = StopRequest().install(), fd2()
    monkeypatch.setattr(decoder_output, "_flush_stderr", lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        with pytest.raises(Interrupted), stop.waiting(), DecoderOutput().labelled("k"):
            pass
    finally:
        stop.restore()
    assert fd2() == before


def test_the_deadline_never_outlives_its_block():
    """The capture is undone outside read_within: no alarm may fire there, however late it came."""
    handler = signal.getsignal(signal.SIGALRM)
    for _ in range(200):
        read_within(lambda: sum(range(20000)), timeout_s=1e-4)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert signal.getsignal(signal.SIGALRM) is handler


def test_each_distinct_line_once_without_ffmpegs_addresses():
    raw = b"[h264 @ 0x55d1a2] Invalid NAL unit size\n" * 40 + b"\n[h264 @ 0x66e] Error splitting\n"
    assert decoder_lines(raw) == ["[h264] Invalid NAL unit size", "[h264] Error splitting"]
    many = b"".join(f"line {i}\n".encode() for i in range(9))
    assert decoder_lines(many)[-1] == "(and 4 more distinct lines)" and len(decoder_lines(many)) == 6


def test_messages_name_the_file_by_key_and_touch_no_other_words():
    assert relative_to("cannot open /data/in/p1/a.mp4: gone", "/data/in", "p1/a.mp4") == "cannot open p1/a.mp4: gone"
    # another file under an absolute root (a WFDB record's signal file) is relative too
    assert relative_to("/data/in/p1/100.dat is truncated", "/data/in", "p1/100.hea") == "p1/100.dat is truncated"
    # a relative root is replaced only as the file's own path: `data/` also ends `metadata/`
    assert relative_to("data/p1/a.wav: see metadata/p1/x", "data", "p1/a.wav") == "p1/a.wav: see metadata/p1/x"
    assert relative_to("no path here", "/", "a.wav") == "no path here"


def test_an_alarm_due_before_the_block_begins_leaves_no_timer(monkeypatch):
    """A deadline that passes inside `with`'s own set-up (a tiny timeout on a loaded machine): no __exit__
    runs then, and a repeating timer left armed raised DecodeTimeout in whatever ran next."""
    import os

    from embedpipe.runtime import decode_guard

    real = signal.setitimer

    def due_at_once(which, seconds, interval=0.0):
        real(which, seconds, interval)
        if seconds:
            os.kill(os.getpid(), signal.SIGALRM)  # handled as setitimer returns, inside __enter__

    handler = signal.getsignal(signal.SIGALRM)
    monkeypatch.setattr(decode_guard.signal, "setitimer", due_at_once)
    assert read_within(lambda: 1, timeout_s=5)[1][0] == "DecodeTimeout"
    monkeypatch.undo()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is handler
