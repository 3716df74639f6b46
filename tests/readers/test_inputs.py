"""Bad and odd inputs: every real-world fixture, cut files, odd names, links, permissions, empty shards.

Each file becomes a row or an error row, never a crash; a file that decodes shorter than its
header says is a row flagged `truncated`, not passed off as whole (see docs/reliability.md).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from support.workflow import fixtures_dir, metis_encoder, tiny_encoders, unprivileged

from embedpipe.discover.scan import read_manifest, scan_files, write_manifests
from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import run_extract
from embedpipe.extract.writer import ShardWriter
from embedpipe.runtime.error_text import clean_message

SAME_CONTENT = {"video/nasa_13013_nonutf8_title.mp4": "video/nasa_13013.mp4"}  # a Latin-1 title, nothing else
COMPANIONS = (".dat", ".atr", ".xyz")  # WFDB signal and annotation files, read through their .hea
# What each real file holds, from SOURCES.md and the files' own headers (not from embedpipe's output).
# Video: (frames in the file, frames per second, height, width); audio: seconds; ECG: (source rate,
# leads found, leads derived, seconds).
VIDEO_FACTS = {
    "video/flipping_a_pancake.mkv": (310, 30.0, 240, 426), "video/mmaction2_test.avi": (164, 25.0, 240, 320),
    "video/mmaction2_test.mp4": (300, 30.0, 256, 340), "video/nasa_13013.mp4": (390, 29.97, 270, 480),
    "video/nasa_13013_nonutf8_title.mp4": (390, 29.97, 270, 480),
    "video/dicom/dbdicom_us_echo_palette_rle_11f.dcm": (11, 1000 / 62.727272, 430, 600),
    # no FrameTime: its FrameTimeVector gives each frame's time in ms
    "video/dicom/dicomparser_us_acuson_ybr_jpeg_baseline_8f.dcm": (
        8, 1000 / np.mean([33.333, 50.0, 33.333, 50.0, 50.0, 50.0, 33.333, 43.333]), 240, 320),
    "video/dicom/dcmbench_us_esopecho_rgb_single.dcm": (1, None, 120, 256),
    "video/dicom/pylibjpeg_us_acuson_ybr_jpeg_extended_single.dcm": (1, None, 576, 768),
    # AV1, which decord's FFmpeg cannot decode; the HDR10 one is 10-bit, 720x1280 portrait
    "video/av1/androidx_hdr10_av1_10bit_aac.mp4": (127, 30000 / 1001, 1280, 720),
    "video/av1/androidx_sample_av1_aac.mp4": (30, 30000 / 1001, 720, 1080),
    # edit lists: the frames FFmpeg presents (4 of 5 packets; 16 of 17), shown as the display matrix says
    "video/edit_list/androidx_iphone14pro_dolbyvision_hevc10.mov": (4, 30.0, 1280, 720),
    "video/edit_list/androidx_sample_edit_list_only_preroll_sync_sample.mp4": (16, 30.0, 360, 640),
}
# Which decoder reads a file: decord first, PyAV where decord lacks the codec or miscounts the frames.
DECODER_OF = {"video/av1/": "pyav", "video/edit_list/": "pyav", "video/dicom/": "pydicom", "video/": "decord",
              "audio/ogg_flac/": "pyav", "audio/adts/": "pyav", "audio/": "soundfile"}
AUDIO_SECONDS = {"audio/librispeech_198-209-0000_16k_mono.ogg": 13.91, "audio/pydub_party_44k1_mono.mp3": 6.58,
                 "audio/sr_english_speech_44k1_mono.wav": 2.74, "audio/vosk_test_speech_16k_mono.wav": 8.31,
                 "audio/whisper_jfk_44k1_stereo.flac": 11.0, "audio/phon_M1F1-int16C-AFsp_aifc_8k_stereo.aif": 2.94,
                 "audio/broken/pydub_test1_empty_header_only.wav": None,
                 "audio/ogg_flac/androidx_bear_flac_48k_stereo.ogg": 2.74,
                 "audio/wavex/androidx_wav_format_extensible_6ch_f32_48k.wav": 24576 / 48000,
                 "audio/adts/androidx_bbb_1ch_8k_aac_lc.aac": 3.20,
                 "audio/adts/androidx_sample_adts_44k1_mono.aac": 143 * 1024 / 44100}
# Headers that state a length, in seconds (None: none does; raw ADTS states none, FFmpeg's figure is
# an estimate from the bit rate).
AUDIO_DECLARED = {"audio/wavex/androidx_wav_format_extensible_6ch_f32_48k.wav": 24576 / 48000,
                  "audio/ogg_flac/androidx_bear_flac_48k_stereo.ogg": 131568 / 48000,  # STREAMINFO
                  "audio/adts/androidx_bbb_1ch_8k_aac_lc.aac": None,
                  "audio/adts/androidx_sample_adts_44k1_mono.aac": None}
# Files that decode without an exception into filler (libjpeg only warns): error rows all the same. A
# bad Huffman code; a scan cut short but closed with an end marker.
ERROR_TYPES = {"image/broken/zune_fuzz_small-img_bad_huffman.jpg": "CorruptImageData",
               "image/broken/androidx_pixel4xl_non-motion-photo-shortened.jpg": "CorruptImageData"}
# Cut files that still decode: rows flagged truncated, not error rows.
CUT_ROWS = {"audio/broken/androidx_wavex_6ch_f32_TRUNCATED_300000B.wav": (12495 / 48000, 24576 / 48000)}
LIMBS = ["III", "aVR", "aVL", "aVF"]
ECG_FACTS = {
    "ecg/sierra_xml/v1_03_129DYPRG.XML": (500, 12, [], 11.0),
    "ecg/sierra_xml/v1_04_01_2020-5-18_15-48-11.xml": (500, 12, [], 11.0),
    "ecg/sierra_xml/v1_04_3191723_ZZDEMOPTONLY_1-04_orig.xml": (500, 12, [], 11.0),
    "ecg/wfdb/mitdb_100/100.hea": (360, 2, [], 650000 / 360),
    "ecg/wfdb/ptbdb_s0010_re/s0010_re.hea": (1000, 12, [], 38.4),
    "ecg/ge_muse_xml/braveheart_example1.xml": (500, 12, LIMBS, 10.0),
    "ecg/ge_muse_xml/braveheart_example4.xml": (500, 12, LIMBS, 10.0),
    "ecg/hl7_aecg/liryc_hl7aecg_example_mindray.xml": (100, 12, [], 10.0),  # the first of its two series
    "ecg/dicom_waveform/dicomparser_wave_dfl_hemodynamic.dcm": (240, 12, [], 10.0),
    # ECG leads III, I and V at 4 samples a frame (500 Hz) beside 125 Hz pressures; `V` names no standard lead
    "ecg/wfdb/mimicdb_041s01_multifreq/041s01.hea": (500, 2, [], 8.0),
}
NATIVE_NOISE = re.compile(r"\[\d{1,2}:\d{2}:\d{2}\]|\.(cc|cpp|c|h):\d+|/github/workspace")


def embed(encoder: Encoder, root: Path, keys: list[str], out: Path,
          timeout_s: float | None = None) -> tuple[dict, dict]:
    """One shard through the extract loop and assembly, in this process. Returns (rows, errors) by key."""
    writer = ShardWriter(out / "parts", encoder.output_fields(), encoder.fingerprint(),
                         sidecar=encoder.output.sidecar)
    run_extract(keys, root, encoder, writer, shard="s", device=torch.device("cpu"), num_workers=0,
                **({"decode_timeout_s": timeout_s} if timeout_s else {}))
    writer.finalize(keys, out / "s.parquet", out / "s.errors.parquet", {})
    rows = {r["key"]: r for r in pq.read_table(out / "s.parquet").to_pylist()}
    errors = {r["key"]: r for r in pq.read_table(out / "s.errors.parquet").to_pylist()}
    assert len(rows) + len(errors) == len(keys) and not rows.keys() & errors.keys()  # nothing lost
    return rows, errors


def check_facts(modality: str, rows: dict) -> None:
    for key, row in rows.items():
        if modality == "video":
            frames, fps, height, width = VIDEO_FACTS[key]
            assert (row["frames_decoded"], row["height"], row["width"]) == (frames, height, width), key
            assert row["frame_rate"] == (None if fps is None else pytest.approx(fps, rel=1e-3)), key
            assert (row["transfer_syntax"] is not None) == key.endswith(".dcm"), key
        elif modality == "audio" and key in CUT_ROWS:
            seconds, declared = CUT_ROWS[key]
            assert row["truncated"] is True, key
            assert (row["duration_s"], row["declared_duration_s"]) == pytest.approx((seconds, declared), abs=1e-3), key
        elif modality == "audio" and AUDIO_SECONDS[key] is not None:
            assert row["duration_s"] == pytest.approx(AUDIO_SECONDS[key], abs=0.01), key
            if key in AUDIO_DECLARED:
                assert row["declared_duration_s"] == pytest.approx(AUDIO_DECLARED[key], abs=1e-3), key
        if modality in ("video", "audio"):
            assert row["decoder"] == next(d for prefix, d in DECODER_OF.items() if key.startswith(prefix)), key
        if modality == "ecg":
            rate, leads, derived, seconds = ECG_FACTS[key]
            assert (row["source_rate"], len(row["leads_found"]), row["leads_derived"]) == (rate, leads, derived), key
            assert row["n_samples"] == pytest.approx(seconds * 500, abs=1), key  # read whole, at 500 Hz


def test_every_fixture_becomes_a_row_or_an_error_row(tiny_model, tiny_metis, tiny_ecg, tmp_path):
    root = fixtures_dir("")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "SOURCES.md")
    by_modality = {m: [k for k in files if k.startswith(f"{m}/") and not k.endswith(COMPANIONS)]
                   for m in ("video", "audio", "image", "ecg")}
    companions = {k for k in files if k.startswith("ecg/") and k.endswith(COMPANIONS)}
    assert {k for keys in by_modality.values() for k in keys} | companions == set(files), "a fixture no test reads"
    whole = {k for keys in by_modality.values() for k in keys if "/broken/" not in k}
    assert whole <= set(VIDEO_FACTS) | set(AUDIO_SECONDS) | set(ECG_FACTS) | set(by_modality["image"]), \
        "a fixture whose facts this test does not know"
    for modality, encoder in tiny_encoders(tiny_model, tiny_metis, tiny_ecg).items():
        keys = by_modality[modality]
        rows, errors = embed(encoder, root, keys, tmp_path / modality)
        broken = {k for k in keys if "/broken/" in k} - set(CUT_ROWS)
        # every whole file is a row; every broken one an error row naming why, except where a
        # cut file still decodes (then its row says how much of it there is)
        assert set(rows) >= set(keys) - broken, (modality, errors)
        assert all(errors[k]["stage"] == "decode" and errors[k]["message"] for k in errors)
        assert not [e["message"] for e in errors.values() if NATIVE_NOISE.search(e["message"])], modality
        assert not [e["message"] for e in errors.values() if str(root) in e["message"]], "a path, not the key"
        for key, row in rows.items():
            assert np.isfinite(row["embedding"]).all(), key
            assert row.get("truncated") in (False, None) or key in CUT_ROWS, key  # the whole ones are not flagged
        assert set(errors) == broken, (modality, set(errors) ^ broken)
        assert all(errors[k]["error_type"] == kind for k, kind in ERROR_TYPES.items() if k in errors)
        check_facts(modality, rows)
        for copy, original in SAME_CONTENT.items():  # the same frames under other container tags
            if copy in rows:
                np.testing.assert_array_equal(rows[copy]["embedding"], rows[original]["embedding"])
        values = np.array([r["embedding"] for k, r in rows.items() if k not in SAME_CONTENT])
        # different files, different rows (a tiny model's rows span at most its width)
        assert np.linalg.matrix_rank(values) == min(values.shape), modality
        assert len({v.tobytes() for v in values}) == len(values), modality


def test_a_decoders_message_is_one_line_without_its_build_path_or_clock():
    decord = ("[13:06:56] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: [13:06:56] "
              "/github/workspace/src/video/ffmpeg/threaded_decoder.cc:218: Check failed: "
              "avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-1094995529 vs. 0)\n"
              "Thread worker: Error sending packet.")
    assert clean_message(decord) == ("Check failed: avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 "
                                     "(invalid data found when processing input) Thread worker: Error sending packet.")
    assert clean_message("  no frames in x.mp4\n") == "no frames in x.mp4"  # plain messages keep their words


@pytest.mark.parametrize("modality,names", [("video", ["hang.mp4", "hang.dcm", "hang"]),
                                            ("audio", ["hang.wav", "hang.aif"]), ("image", ["hang.png"]),
                                            ("ecg", ["hang.xml", "hang.hea", "hang.dcm"])])
def test_a_file_that_never_answers_is_a_timeout_error_row_in_every_reader(tiny_model, tiny_metis, tiny_ecg,
                                                                          modality, names, tmp_path):
    """A FIFO nobody writes to blocks the reader's first read, in whichever library it happens (decord,
    pydicom, libsndfile, Pillow, the XML and WFDB parsers), as a hung mount or decoder would."""
    root = tmp_path / "in"
    root.mkdir()
    for name in names:
        os.mkfifo(root / name)
    good = {"video": "video/mmaction2_test.avi", "audio": "audio/sr_english_speech_44k1_mono.wav",
            "image": "image/skimage_camera_gray.png", "ecg": "ecg/sierra_xml/v1_03_129DYPRG.XML"}[modality]
    shutil.copy(fixtures_dir("") / good, root / Path(good).name)
    encoder = tiny_encoders(tiny_model, tiny_metis, tiny_ecg)[modality]
    rows, errors = embed(encoder, root, sorted([*names, Path(good).name]), tmp_path / "out", timeout_s=1)
    assert set(rows) == {Path(good).name}  # the shard goes on past every hung file
    assert {k: (e["stage"], e["error_type"], e["message"]) for k, e in errors.items()} == \
        dict.fromkeys(names, ("decode", "DecodeTimeout", "timed out after 1 s"))


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
    cut(src / "audio/phon_M1F1-int16C-AFsp_aifc_8k_stereo.aif", root / "audio/cut.aif")  # AIFF-C: COMM's frames
    shutil.copy(src / "audio/phon_M1F1-int16C-AFsp_aifc_8k_stereo.aif", root / "audio/whole.aif")
    cut(src / "video/mmaction2_test.avi", root / "video/cut.avi")
    cut(src / "video/flipping_a_pancake.mkv", root / "video/cut.mkv")
    shutil.copy(src / "video/mmaction2_test.avi", root / "video/whole.avi")
    models = tiny_encoders(tiny_model, tiny_metis, tiny_ecg)

    audio_keys = scan_files(root, [".wav", ".mp3", ".ogg", ".aif"])
    audio, audio_errors = embed(models["audio"], root, audio_keys, tmp_path / "a")
    assert not audio_errors
    assert audio["audio/cut.wav"]["truncated"] is True
    assert audio["audio/cut.wav"]["declared_duration_s"] == pytest.approx(121052 / 44100)
    assert audio["audio/cut.wav"]["duration_s"] == pytest.approx(121052 / 44100 / 2, rel=0.01)
    assert audio["audio/cut.mp3"]["truncated"] is True and audio["audio/whole.mp3"]["truncated"] is False
    assert audio["audio/whole.mp3"]["declared_duration_s"] == pytest.approx(4.0)
    assert audio["audio/cut.aif"]["truncated"] is True and audio["audio/whole.aif"]["truncated"] is False
    assert audio["audio/cut.aif"]["declared_duration_s"] == pytest.approx(23493 / 8000)
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
