"""Memory bombs from tiny files: real fixtures whose headers are edited to lie (a GE MUSE or HL7 aECG
at a tiny rate, a WAV at 1 Hz, an RLE DICOM of 30000×30000 pixels) are refused from what they declare,
before anything that size is allocated; and the decode workers' memory ceiling turns an allocation
nobody declared into a MemoryError, an error row. Nothing here allocates more than a few MB: the
refusals come before the arrays (run on the code before them, these tests asked for gigabytes)."""

from __future__ import annotations

import resource
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless
from support.dicom_files import cine, write_dicom
from support.workflow import fixtures_dir
from torch.utils.data import DataLoader, Dataset

from embedpipe.readers import limits
from embedpipe.readers.audio import decode_pyav, read_audio
from embedpipe.readers.dicom_video import DicomReadError, read_dicom_video
from embedpipe.readers.ecg import EcgReadError, read_ecg
from embedpipe.readers.limits import DecodedTooLarge
from embedpipe.runtime.decode_guard import read_within, settle_worker

MUSE = fixtures_dir("ecg") / "ge_muse_xml" / "braveheart_example1.xml"
HL7 = fixtures_dir("ecg") / "hl7_aecg" / "liryc_hl7aecg_example_mindray.xml"
WAV = fixtures_dir("audio") / "vosk_test_speech_16k_mono.wav"  # canonical PCM16 mono, a fact chunk
WAVEX = fixtures_dir("audio") / "wavex" / "androidx_wav_format_extensible_6ch_f32_48k.wav"
OVER_HALF_A_MB = r"over the 0.0005 GiB limit \(extract.max_decoded_gb\)$"  # 537 KB


@pytest.fixture
def decoded_limit():
    """Set the limit (GiB) for one test; the default again after it."""
    yield limits.set_max_decoded_gb
    limits.set_max_decoded_gb(limits.DEFAULT_MAX_DECODED_GB)


def muse_at(tmp_path: Path, base: str, exponent: str) -> Path:
    """The MUSE fixture with its Rhythm waveform's rate (SampleBase × 10^SampleExponent) edited."""
    text = MUSE.read_text("latin-1")
    at = text.index("<WaveformType>Rhythm")
    rhythm = text[at:].replace("<SampleBase>500</SampleBase>", f"<SampleBase>{base}</SampleBase>", 1)
    rhythm = rhythm.replace("<SampleExponent>0</SampleExponent>", f"<SampleExponent>{exponent}</SampleExponent>", 1)
    path = tmp_path / f"muse_{base}e{exponent}.xml"
    path.write_text(text[:at] + rhythm, encoding="latin-1")
    return path


def test_a_muse_record_at_1_hz_is_5000_s_and_refused_read_whole(tmp_path):
    path = muse_at(tmp_path, "1", "0")  # its 5000 samples a lead: 5000 s, 2.5 M samples at 500 Hz
    with pytest.raises(EcgReadError, match=r"5000 s is longer than 3600 s read whole; use encoder.length 10s"):
        read_ecg(str(path), None)
    assert read_ecg(str(path)).n_samples == 5000  # a 10-s cut reads 11 samples: nothing to refuse


def test_a_muse_record_at_0_01_hz_is_refused_before_fft_resampling(tmp_path):
    # 12 leads × 5000 samples at 0.01 Hz are 2.5e8 samples a lead at 500 Hz: 22 GiB as float64.
    path = muse_at(tmp_path, "1", "-2")
    with pytest.raises(EcgReadError, match=r"500000 s is longer than 3600 s"):
        read_ecg(str(path), 10.0, resample="fft")


def test_an_hl7_aecg_with_a_10_s_increment_is_refused_read_whole(tmp_path):
    text = HL7.read_text("utf-8").replace('<increment value="0.01" unit="s">', '<increment value="10" unit="s">')
    path = tmp_path / "hl7.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EcgReadError, match=r"10000 s is longer than 3600 s read whole"):
        read_ecg(str(path), None)


def test_an_ecg_over_the_byte_limit_names_what_it_declares(decoded_limit):
    decoded_limit(0.0005)  # 537 KB; the MUSE record: 12 leads × (5000 + 5000) float64 = 960 KB
    with pytest.raises(DecodedTooLarge, match=r"^declares 5000 samples a lead at 500 Hz \(5000 at 500 Hz\): "
                                              rf"0.000894 GiB decoded, {OVER_HALF_A_MB}"):
        read_ecg(str(MUSE), None)
    decoded_limit(0.001)
    assert read_ecg(str(MUSE), None).n_samples == 5000


def wav_at_1_hz(tmp_path: Path, data_bytes: int = 40000) -> Path:
    """The vosk WAV's first `data_bytes` of samples, its header edited to say 1 Hz (2 bytes/s)."""
    raw = bytearray(WAV.read_bytes())
    assert raw[12:16] == b"fmt " and raw[24:28] == struct.pack("<I", 16000)
    raw[24:32] = struct.pack("<II", 1, 2)
    data = raw.index(b"data")
    raw[data + 4 : data + 8] = struct.pack("<I", data_bytes)
    del raw[data + 8 + data_bytes :]
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    path = tmp_path / "one_hz.wav"
    path.write_bytes(bytes(raw))
    return path


def test_a_wav_at_1_hz_is_refused_before_resampling_in_both_decoders(tmp_path):
    path = wav_at_1_hz(tmp_path)  # 20000 frames: 5.6 h, 3.2e8 samples (1.3 GB) at 16 kHz
    with pytest.raises(DecodedTooLarge, match=r"^20000 frames at 1 Hz: 20000 s is longer than 3600 s$"):
        read_audio(str(path))
    with pytest.raises(DecodedTooLarge, match=r"^3601 frames at 1 Hz: 3601 s is longer than 3600 s$"):
        decode_pyav(str(path))  # checked frame by frame: refused as soon as it is past the limit


def test_audio_over_the_byte_limit_is_refused_as_it_decodes(decoded_limit):
    decoded_limit(0.0005)  # the 6-channel 48-kHz clip is 24576 frames: 590 KB as float32, and 32 KB at 16 kHz
    with pytest.raises(DecodedTooLarge, match=r"^declares 24576 frames × 6 channels at 48000 Hz, 8192 at 16 kHz: "
                                              rf"0.00058 GiB decoded, {OVER_HALF_A_MB}"):
        read_audio(str(WAVEX))
    decoded_limit(0.0006)
    assert read_audio(str(WAVEX)).samples.shape == (8192,)


def rle_claiming(tmp_path: Path, rows: int, columns: int) -> Path:
    """An 11-frame 24×32 RGB RLE cine whose Rows and Columns are then edited: the frames stay 2 KB each."""
    path = write_dicom(tmp_path / "rle.dcm", np.stack([cine(11)] * 3, axis=-1), "RGB", syntax=RLELossless)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = rows, columns
    ds.save_as(path)
    return path


@pytest.mark.parametrize("side", [30000, 65535])
def test_an_rle_dicom_declaring_huge_frames_is_refused_before_decoding(tmp_path, side):
    path = rle_claiming(tmp_path, side, side)
    with pytest.raises(DicomReadError, match=rf"^declares {side}×{side}×3 × 11 frames: [\d.]+ GiB decoded, "
                                             r"over the 4 GiB limit \(extract.max_decoded_gb\)$"):
        read_dicom_video(str(path), 16)
    assert read_dicom_video(str(rle_claiming(tmp_path, 24, 32)), 16).frames.shape == (16, 24, 32, 3)


class _Allocations(Dataset):
    """In a decode worker: its RLIMIT_DATA, then allocations under and over its ceiling."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> tuple:
        if i == 0:
            return resource.getrlimit(resource.RLIMIT_DATA)
        size = 8 << 20 if i == 1 else 2 << 30  # 8 MB, then 2 GiB (never touched: refused by the kernel)
        out, error = read_within(lambda: int(np.ones(size, np.uint8)[-1]), None)
        return out, error


def test_a_decode_worker_runs_under_a_memory_ceiling(decoded_limit):
    decoded_limit(0.05)  # before the fork: the worker inherits it, and may grow by 3 × 51 MB
    worker = DataLoader(_Allocations(), batch_size=None, num_workers=1, worker_init_fn=lambda _: settle_worker())
    (soft, _hard), under, over = list(worker)
    assert soft != resource.RLIM_INFINITY and resource.getrlimit(resource.RLIMIT_DATA)[0] != soft  # the worker's only
    assert list(under) == [1, None]
    assert over[0] is None and over[1][0] == "MemoryError"


def test_the_ceiling_keeps_a_stricter_limit(decoded_limit):
    decoded_limit(1.0)
    before = resource.getrlimit(resource.RLIMIT_DATA)
    if before[1] != resource.RLIM_INFINITY:
        pytest.skip("a hard RLIMIT_DATA is set: the ceiling is that")
    try:
        assert limits.cap_worker_memory(0.5) == 1 << 29  # 512 MB over what this process holds
        strict = resource.getrlimit(resource.RLIMIT_DATA)
        assert limits.cap_worker_memory(3.0) == 3 << 30
        assert resource.getrlimit(resource.RLIMIT_DATA) == strict  # never raised
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, before)
