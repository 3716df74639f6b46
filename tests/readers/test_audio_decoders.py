"""The audio decoder chain on real files: libsndfile first, PyAV for what it cannot open or decode; the
length each container's header states (never an estimate from the bit rate), and `truncated` from it.

References are independent reads of the same files: soundfile's and PyAV's own decode loops.
"""

from __future__ import annotations

from pathlib import Path

import av
import pyarrow as pa
import pytest
import soundfile
from support.workflow import fixtures_dir

from embedpipe.encoders.metis.reader import AudioReader
from embedpipe.readers.audio import AudioReadError, decode_pyav, decode_soundfile, read_audio, resampled_length


def pyav_decoded(path: Path) -> tuple[int, int]:
    """(source rate, frames) of the first audio stream as PyAV decodes it: the count every check compares with."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.rate, sum(frame.samples for frame in container.decode(stream))


@pytest.mark.parametrize("name,declared", [
    # FLAC in Ogg: libsndfile fails in its FLAC decoder. The Ogg FLAC header carries FLAC's STREAMINFO,
    # whose total FFmpeg also reaches from the last page's granule position.
    ("ogg_flac/androidx_bear_flac_48k_stereo.ogg", 131568),
    # raw ADTS states no length: FFmpeg's duration is a bitrate guess (3.48 s for 3.32 s decoded)
    ("adts/androidx_bbb_1ch_8k_aac_lc.aac", None),
    ("adts/androidx_sample_adts_44k1_mono.aac", None),
])
def test_audio_libsndfile_cannot_decode_is_read_by_pyav_and_says_so(name, declared):
    path = fixtures_dir("audio") / name
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(path)
    rate, frames = pyav_decoded(path)
    clip = read_audio(str(path))
    assert clip.decoder == "pyav"
    assert (clip.source_rate, clip.source_frames, clip.duration_s) == (rate, frames, frames / rate)
    assert len(clip.samples) == resampled_length(frames, rate, 16000)
    assert clip.declared_frames == declared
    assert clip.truncated is (None if declared is None else False)  # never flagged from an estimate
    if name.endswith("44k1_mono.aac"):
        assert frames == 143 * 1024  # SOURCES.md: 143 AAC frames, 3.32 s


def test_a_file_neither_decoder_reads_is_an_error_naming_both_reasons():
    """libsndfile loses sync in the cut FLAC; PyAV decodes 5 frames, then fails: an error, not a shorter row."""
    audio = fixtures_dir("audio") / "broken"
    path = audio / "sr_chinese_TRUNCATED_20000B.flac"
    with pytest.raises(soundfile.LibsndfileError, match="lost sync"):
        soundfile.read(path)
    with pytest.raises(av.InvalidDataError):
        pyav_decoded(path)
    with pytest.raises(AudioReadError) as failure:
        read_audio(str(path))
    assert str(failure.value) == "soundfile: flac decoder lost sync; PyAV: invalid data found when processing input"
    with pytest.raises(AudioReadError) as empty:
        read_audio(str(audio / "pydub_test1_empty_header_only.wav"))
    assert str(empty.value) == "no audio samples"  # the error row names the file; its path adds nothing


def test_cut_wave_format_extensible_file_is_a_row_flagged_truncated():
    """RIFF and data sizes say 24576 frames; libsndfile reads the 12495 present without a word."""
    audio = fixtures_dir("audio")
    whole = soundfile.info(audio / "wavex" / "androidx_wav_format_extensible_6ch_f32_48k.wav")
    assert (whole.format, whole.frames, whole.samplerate) == ("WAVEX", 24576, 48000)
    cut = audio / "broken" / "androidx_wavex_6ch_f32_TRUNCATED_300000B.wav"
    clip = read_audio(str(cut))
    assert clip.source_frames == soundfile.info(cut).frames == pyav_decoded(cut)[1] == 12495
    assert clip.truncated is True and clip.declared_duration_s == pytest.approx(24576 / 48000)
    clip = read_audio(str(audio / "wavex" / "androidx_wav_format_extensible_6ch_f32_48k.wav"))
    assert (clip.truncated, clip.declared_frames, clip.source_frames, clip.source_channels) == (False, 24576, 24576, 6)


def rewrite_header(path: Path, magic: bytes) -> Path:
    """The same bytes under another 4-byte magic (RF64 → BW64: ITU's name for the same layout)."""
    data = path.read_bytes()
    path.write_bytes(magic + data[4:])
    return path


# Real speech written losslessly by libsndfile into containers no public fixture here has, then cut
# in half as `head -c` would. ADPCM and GSM WAVs: frames in the fact chunk and in blocks of the fmt
# extension's samples per block; AIFF-C IMA: 64-frame packets in COMM. Mono, as libsndfile's stereo
# IMA headers halve the count. ALAC in CAF: variable packets, the count in the packet table; cut
# mid-packet, neither decoder reads it. GSM 6.10 is a format libsndfile cannot seek in. MP3: LAME's
# Xing header, as libsndfile writes it.
STEREO, MONO = "whisper_jfk_44k1_stereo.flac", "sr_english_speech_44k1_mono.wav"
CONTAINERS = [("W64", "PCM_24", STEREO), ("RF64", "PCM_24", STEREO), ("BW64", "PCM_24", STEREO),
              ("WAVEX", "PCM_24", STEREO), ("CAF", "PCM_24", STEREO), ("CAF", "ALAC_24", STEREO),
              ("AU", "PCM_24", STEREO), ("NIST", "PCM_24", STEREO), ("AVR", "PCM_16", STEREO),
              ("WAV", "IMA_ADPCM", MONO), ("WAV", "MS_ADPCM", MONO), ("WAV", "GSM610", MONO),
              ("AIFF", "IMA_ADPCM", MONO), ("MP3", "MPEG_LAYER_III", MONO)]


@pytest.mark.parametrize("container,subtype,source", CONTAINERS)
def test_every_container_that_states_a_length_flags_a_cut_copy(container, subtype, source, tmp_path):
    speech, rate = soundfile.read(fixtures_dir("audio") / source, dtype="int32")
    whole = tmp_path / f"whole.{container.lower()}"
    soundfile.write(whole, speech, rate, format="RF64" if container == "BW64" else container, subtype=subtype)
    if container == "BW64":
        rewrite_header(whole, b"BW64")  # libsndfile does not open BW64: PyAV reads it
    with av.open(str(whole)) as probe:  # FFmpeg reads every one of these headers itself
        stream = probe.streams.audio[0]
        stated = int(stream.duration * stream.time_base * rate)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{container.lower()}"
    cut.write_bytes(data[: len(data) // 2])

    clip = read_audio(str(whole))
    assert clip.declared_frames == stated and clip.truncated is False
    assert clip.decoder == ("pyav" if container == "BW64" else "soundfile")
    assert decode_pyav(str(whole)).declared == stated  # the header's, whichever decoder read the file
    if subtype == "ALAC_24":
        with pytest.raises(AudioReadError, match="^soundfile: .*; PyAV: invalid data found"):
            read_audio(str(cut))
        return
    clip = read_audio(str(cut))
    assert clip.declared_frames == stated and clip.truncated is True
    assert clip.source_frames < stated * 0.6


@pytest.mark.parametrize("name", ["librispeech_198-209-0000_16k_mono.ogg", "pydub_party_44k1_mono.mp3",
                                  "sr_english_speech_44k1_mono.wav", "whisper_jfk_44k1_stereo.flac",
                                  "phon_M1F1-int16C-AFsp_aifc_8k_stereo.aif", "vosk_test_speech_16k_mono.wav"])
def test_either_decoder_finds_the_same_declared_length(name):
    """A length is the header's, whichever decoder read the file: Ogg Vorbis and an MP3 without a
    Xing/VBRI header state none, though libsndfile and FFmpeg both put a number on them."""
    path = fixtures_dir("audio") / name
    by_soundfile, by_pyav = decode_soundfile(str(path)), decode_pyav(str(path))
    assert by_soundfile.declared == by_pyav.declared
    assert (by_soundfile.declared is None) == name.endswith((".ogg", ".mp3"))
    assert by_soundfile.data.shape == by_pyav.data.shape or name.endswith(".mp3")  # MP3: decoders trim differently


def test_matroska_length_is_its_duration_element_and_none_without_one(tmp_path):
    """The pancake clip's Opus track; remuxed as a live WebM (no Duration) and cut in half."""
    mkv = fixtures_dir("video") / "flipping_a_pancake.mkv"
    with av.open(str(mkv)) as container:
        seconds = container.duration / 1_000_000  # FFmpeg's reading of the Segment's Duration
    clip = read_audio(str(mkv))
    assert clip.decoder == "pyav" and clip.declared_duration_s == pytest.approx(seconds, abs=1e-3)
    assert clip.truncated is False
    data = mkv.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    clip = read_audio(str(tmp_path / "cut.mkv"))
    assert clip.truncated is True and clip.declared_duration_s == pytest.approx(seconds, abs=1e-3)
    live = tmp_path / "live.webm"
    with av.open(str(mkv)) as src, av.open(str(live), "w", format="webm", options={"live": "1"}) as out:
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    clip = read_audio(str(live))
    assert clip.declared_frames is None and clip.truncated is None and clip.duration_s > 10


def test_mp4_length_is_its_audio_tracks_duration():
    """A video file's first AAC track (8 kHz): FFmpeg's stream duration there is the track's mdhd."""
    mp4 = fixtures_dir("video") / "nasa_13013.mp4"
    with av.open(str(mp4)) as container:
        stream = container.streams.audio[0]
        declared = stream.duration * stream.time_base * stream.rate
    clip = read_audio(str(mp4))
    assert (clip.decoder, clip.declared_frames, clip.truncated) == ("pyav", declared, False)
    assert clip.source_frames == pyav_decoded(mp4)[1]


def test_audio_rows_say_which_decoder_read_them():
    reader = AudioReader()
    assert [(f.name, f.type) for f in reader.fact_fields()] == [
        ("duration_s", pa.float64()), ("sample_rate", pa.int32()), ("declared_duration_s", pa.float64()),
        ("truncated", pa.bool_()), ("decoder", pa.string())]
    audio = fixtures_dir("audio")
    assert reader.prepare(str(audio / "whisper_jfk_44k1_stereo.flac")).facts["decoder"] == "soundfile"
    facts = reader.prepare(str(audio / "adts" / "androidx_sample_adts_44k1_mono.aac")).facts
    assert facts["decoder"] == "pyav" and facts["declared_duration_s"] is None and facts["truncated"] is None
