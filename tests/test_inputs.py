"""Bad and odd inputs: every real-world fixture, cut files, odd names, links, permissions, empty shards.

Each file becomes a row or an error row, never a crash; a file that decodes shorter than its
header says is a row flagged `truncated`, not passed off as whole (see docs/reliability.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from conftest import fixtures_dir, metis_encoder, tiny_encoders, unprivileged

from embedpipe.discover import read_manifest, scan_files, write_manifests
from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.extract import run_extract
from embedpipe.writer import ShardWriter

SAME_CONTENT = {"video/nasa_13013_nonutf8_title.mp4": "video/nasa_13013.mp4"}  # a Latin-1 title, nothing else
PENDING_READERS = ("video/dicom/", "ecg/ge_muse_xml/", "ecg/hl7_aecg/", "ecg/dicom_waveform/")
MODALITIES = {"video": (".mp4", ".mkv", ".avi"), "audio": (".wav", ".mp3", ".flac", ".ogg", ".aif"),
              "image": (".png", ".jpg"), "ecg": (".xml", ".hea")}


def embed(encoder: Encoder, root: Path, keys: list[str], out: Path) -> tuple[dict, dict]:
    """One shard through the extract loop and assembly, in this process. Returns (rows, errors) by key."""
    writer = ShardWriter(out / "parts", encoder.output_fields(), encoder.fingerprint(),
                         sidecar=encoder.output.sidecar)
    run_extract(keys, root, encoder, writer, shard="s", device=torch.device("cpu"), num_workers=0)
    writer.finalize(keys, out / "s.parquet", out / "s.errors.parquet", {})
    rows = {r["key"]: r for r in pq.read_table(out / "s.parquet").to_pylist()}
    errors = {r["key"]: r for r in pq.read_table(out / "s.errors.parquet").to_pylist()}
    assert len(rows) + len(errors) == len(keys) and not rows.keys() & errors.keys()  # nothing lost
    return rows, errors


def test_every_fixture_becomes_a_row_or_an_error_row(tiny_model, tiny_metis, tiny_ecg, tmp_path):
    root = fixtures_dir("")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "SOURCES.md")
    # Formats whose readers are the real-inputs issue's work (DICOM cine, GE MUSE, HL7 aECG, DICOM
    # waveforms): set aside here by folder, so that any other new fixture still fails the check below.
    pending = {k for k in files if k.startswith(PENDING_READERS)}
    files = [k for k in files if k not in pending]
    by_modality = {m: [k for k in files if k.lower().endswith(ext)] for m, ext in MODALITIES.items()}
    companions = {k for k in files if k.endswith((".dat", ".atr", ".xyz"))}  # read through their .hea
    assert {k for keys in by_modality.values() for k in keys} | companions == set(files), "a fixture no test reads"
    for modality, encoder in tiny_encoders(tiny_model, tiny_metis, tiny_ecg).items():
        keys = by_modality[modality]
        rows, errors = embed(encoder, root, keys, tmp_path / modality)
        broken = {k for k in keys if "/broken/" in k}
        # every whole file is a row; every broken one an error row naming why, except where a
        # cut file still decodes (then its row says how much of it there is)
        assert set(rows) >= set(keys) - broken, (modality, errors)
        assert all(errors[k]["stage"] == "decode" and errors[k]["message"] for k in errors)
        for key, row in rows.items():
            assert np.isfinite(row["embedding"]).all(), key
            assert row.get("truncated") in (False, None), key  # the whole ones are not flagged
        assert set(errors) == broken, (modality, set(errors) ^ broken)
        for copy, original in SAME_CONTENT.items():  # the same frames under other container tags
            if copy in rows:
                np.testing.assert_array_equal(rows[copy]["embedding"], rows[original]["embedding"])
        values = np.array([r["embedding"] for k, r in rows.items() if k not in SAME_CONTENT])
        assert np.linalg.matrix_rank(values) == len(values), modality  # different files, different rows


def cut(src: Path, dest: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def mp3_with_length_header(path: Path, seconds: float = 4.0, rate: int = 44100) -> Path:
    """An MP3 as LAME writes it, with the Xing/Info frame that states its length."""
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        for i in range(0, len(wave), 1152):
            frame = av.AudioFrame.from_ndarray(wave[None, i : i + 1152], format="flt", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_files_cut_short_are_rows_flagged_truncated(tiny_model, tiny_metis, tiny_ecg, tmp_path):
    src = fixtures_dir("")
    root = tmp_path / "in"
    whole_mp3 = mp3_with_length_header(tmp_path / "whole.mp3")
    cut(src / "audio/sr_english_speech_44k1_mono.wav", root / "audio/cut.wav")
    cut(whole_mp3, root / "audio/cut.mp3")
    shutil.copy(whole_mp3, root / "audio/whole.mp3")
    cut(src / "audio/librispeech_198-209-0000_16k_mono.ogg", root / "audio/cut.ogg")  # OGG states no length
    cut(src / "video/mmaction2_test.avi", root / "video/cut.avi")
    cut(src / "video/flipping_a_pancake.mkv", root / "video/cut.mkv")
    shutil.copy(src / "video/mmaction2_test.avi", root / "video/whole.avi")
    models = tiny_encoders(tiny_model, tiny_metis, tiny_ecg)

    audio, audio_errors = embed(models["audio"], root, scan_files(root, [".wav", ".mp3", ".ogg"]), tmp_path / "a")
    assert not audio_errors
    assert audio["audio/cut.wav"]["truncated"] is True
    assert audio["audio/cut.wav"]["declared_duration_s"] == pytest.approx(121052 / 44100)
    assert audio["audio/cut.wav"]["duration_s"] == pytest.approx(121052 / 44100 / 2, rel=0.01)
    assert audio["audio/cut.mp3"]["truncated"] is True and audio["audio/whole.mp3"]["truncated"] is False
    assert audio["audio/whole.mp3"]["declared_duration_s"] == pytest.approx(4.0)
    assert audio["audio/cut.ogg"]["truncated"] is None and audio["audio/cut.ogg"]["declared_duration_s"] is None

    video, video_errors = embed(models["video"], root, scan_files(root, [".avi", ".mkv"]), tmp_path / "v")
    assert not video_errors
    assert video["video/cut.avi"]["truncated"] is True
    assert video["video/cut.avi"]["frames_declared"] == 164 > video["video/cut.avi"]["frames_decoded"]
    assert video["video/cut.mkv"]["truncated"] is True
    assert video["video/whole.avi"]["truncated"] is False
    assert video["video/whole.avi"]["frames_decoded"] == video["video/whole.avi"]["frames_declared"] == 164


def test_odd_names_links_permissions_and_wrong_contents(tiny_model, tmp_path):
    src = fixtures_dir("video") / "mmaction2_test.mp4"
    root = tmp_path / "in"
    shard = root / "p10"
    shard.mkdir(parents=True)
    for name in ("plain.mp4", "with space.mp4", "ñandú 日本語.mp4", "locked.mp4"):
        shutil.copy(src, shard / name)
    (shard / "locked.mp4").chmod(0)
    (shard / "zero.mp4").touch()
    shutil.copy(fixtures_dir("audio") / "vosk_test_speech_16k_mono.wav", shard / "a wav.mp4")
    (shard / "link.mp4").symlink_to(shard / "plain.mp4")
    (shard / "dangling.mp4").symlink_to(shard / "gone.mp4")
    (root / "elsewhere").mkdir()
    shutil.copy(src, root / "elsewhere" / "x.mp4")
    (shard / "linked-folder").symlink_to(root / "elsewhere", target_is_directory=True)

    keys = scan_files(root, [".mp4"], subdir="p10")
    # file links are embedded under their own name; linked folders are not entered (no loops, no
    # file counted twice)
    assert "p10/linked-folder/x.mp4" not in keys and "p10/link.mp4" in keys and "p10/dangling.mp4" in keys
    write_manifests({"p10": keys}, tmp_path / "manifests")
    assert read_manifest(tmp_path / "manifests" / "p10.txt") == keys  # spaces and non-ASCII round-trip
    encoder = build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "batch_size": 2, "device": "cpu"})
    with unprivileged():
        rows, errors = embed(encoder, root, keys, tmp_path / "out")
    assert set(rows) == {"p10/plain.mp4", "p10/with space.mp4", "p10/ñandú 日本語.mp4", "p10/link.mp4"}
    assert set(errors) == {"p10/locked.mp4", "p10/zero.mp4", "p10/a wav.mp4", "p10/dangling.mp4"}
    assert rows["p10/link.mp4"]["embedding"] == rows["p10/plain.mp4"]["embedding"]
    assert all(e["stage"] == "decode" and e["error_type"] and e["message"] for e in errors.values())


def test_an_empty_shard_gives_empty_outputs_with_the_full_schema(tiny_model, tmp_path):
    encoder = build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "batch_size": 2, "device": "cpu"})
    rows, errors = embed(encoder, tmp_path, [], tmp_path / "out")
    assert rows == errors == {}
    schema = pq.read_schema(tmp_path / "out" / "s.parquet")
    assert [f.name for f in encoder.output_fields()] == schema.names[1:]


def test_audio_named_mp4_is_read_by_its_contents_in_an_audio_run(tiny_metis, tmp_path):
    speech = tmp_path / "in" / "speech.mp4"
    speech.parent.mkdir()
    shutil.copy(fixtures_dir("audio") / "sr_english_speech_44k1_mono.wav", speech)
    rows, errors = embed(metis_encoder(tiny_metis), speech.parent, ["speech.mp4"], tmp_path / "out")
    assert not errors and rows["speech.mp4"]["duration_s"] == pytest.approx(soundfile.info(speech).duration)
    assert rows["speech.mp4"]["truncated"] is False
