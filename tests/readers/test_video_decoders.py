"""The video decoder chain on real files: decord first, PyAV for what decord lacks or miscounts.

References are independent reads of the same files: PyAV's own decode loop (every frame, in
presentation order) and decord's frames where SOURCES.md records them as right.
"""

from __future__ import annotations

import logging
import shutil

import av
import decord
import numpy as np
import pytest
from support.workflow import fixtures_dir

from embedpipe.readers import video, video_pyav
from embedpipe.readers.video import NoDecoderError, VideoReadError, frame_indices, read_video


def pyav_frames(path) -> list[np.ndarray]:
    """Every frame PyAV decodes from the best video stream, as stored (no display rotation)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.best("video"))]


@pytest.mark.parametrize("name,frames,size", [("androidx_sample_av1_aac.mp4", 30, (720, 1080)),
                                              ("androidx_hdr10_av1_10bit_aac.mp4", 127, (1280, 720))])
def test_a_codec_decord_lacks_is_read_by_pyav_with_the_same_sampling(name, frames, size):
    path = fixtures_dir("video/av1") / name
    reference = pyav_frames(path)
    assert len(reference) == frames  # SOURCES.md: every frame decodes, = the container's nb_frames
    clip = read_video(str(path), 16)
    assert (clip.decoder, clip.frames_decoded, clip.frames_declared, clip.truncated) == ("pyav", frames, frames, False)
    assert (clip.height, clip.width) == size and clip.frame_rate == pytest.approx(30000 / 1001)
    np.testing.assert_array_equal(clip.frames, np.stack([reference[i] for i in frame_indices(frames, 16)]))


def test_without_a_decoder_for_the_codec_the_message_names_it():
    path = fixtures_dir("video/av1") / "androidx_sample_av1_aac.mp4"
    with pytest.raises(NoDecoderError, match=r"^AV1 video: no decoder available"):
        read_video(str(path), 16, decoders=("decord",))  # decord 0.6's FFmpeg 4.1 has no AV1 decoder


def test_an_edit_lists_preroll_frame_is_not_counted_and_no_frame_repeats():
    """decord counts 17 frames and returns PyAV's 16 labelled one early plus a copy of the last."""
    path = fixtures_dir("video/edit_list") / "androidx_sample_edit_list_only_preroll_sync_sample.mp4"
    reference = pyav_frames(path)
    assert len(reference) == 16
    clip = read_video(str(path), 16)
    assert (clip.decoder, clip.frames_decoded, clip.frames_declared, clip.truncated) == ("pyav", 16, 16, False)
    np.testing.assert_array_equal(clip.frames, np.stack(reference))  # 16 of 16: each frame once
    assert len({frame.tobytes() for frame in clip.frames}) == 16


def test_an_iphone_clips_trimmed_frame_is_not_filled_with_a_copy_and_the_rotation_is_kept():
    """Five packets, an edit list that keeps four: decord's fifth frame is a copy of the fourth."""
    path = fixtures_dir("video/edit_list") / "androidx_iphone14pro_dolbyvision_hevc10.mov"
    reference = pyav_frames(path)
    assert len(reference) == 4 and reference[0].shape == (720, 1280, 3)  # stored landscape
    clip = read_video(str(path), 16)
    assert (clip.decoder, clip.frames_decoded, clip.frames_declared, clip.truncated) == ("pyav", 4, 4, False)
    assert (clip.height, clip.width) == (1280, 720)  # shown portrait, as decord shows it
    shown = decord.VideoReader(str(path), num_threads=1).get_batch(range(4)).asnumpy()  # decord applies the rotation
    expected = shown[frame_indices(4, 16)].astype(int)
    # the same pictures in the same orientation; the 10-bit to 8-bit conversions of FFmpeg 4 and 7 differ
    assert np.abs(clip.frames.astype(int) - expected).mean() < 0.5
    assert len({frame.tobytes() for frame in clip.frames}) == 4


def test_repeated_samples_send_the_file_to_pyav_even_where_the_counts_cannot_be_checked(monkeypatch):
    path = fixtures_dir("video/edit_list") / "androidx_iphone14pro_dolbyvision_hevc10.mov"
    real_probe = video_pyav.probe_video

    def probe_without_count(p):  # as for a container whose frames cannot be counted up front
        return video_pyav.VideoProbe(**(vars(real_probe(p)) | {"presented": None}))

    monkeypatch.setattr(video, "probe_video", probe_without_count)
    clip = read_video(str(path), 16)
    assert (clip.decoder, clip.frames_decoded) == ("pyav", 4)
    # a still ending (a fade to black, a slide) repeats a picture too: where every frame decodes,
    # decord's frames stand (the count is what PyAV checks; here it is made to say "all five decode")
    monkeypatch.setattr(video, "_count_with_pyav", lambda p: 5)
    assert read_video(str(path), 16).decoder == "decord"


def test_mpeg_ts_goes_straight_to_pyav(tmp_path):
    """decord 0.6 hangs in get_batch on MPEG-TS (until the decode deadline kills the worker)."""
    from embedpipe.runtime.decode_guard import read_within

    source, ts = fixtures_dir("video") / "mmaction2_test.mp4", tmp_path / "remuxed.ts"
    with av.open(str(source)) as inp, av.open(str(ts), "w", format="mpegts") as out:  # the same packets
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    clip, error = read_within(lambda: read_video(str(ts), 16), 120)
    assert error is None and (clip.decoder, clip.frames_decoded) == ("pyav", 300)
    np.testing.assert_array_equal(clip.frames, np.stack(pyav_frames(source))[frame_indices(300, 16)])


@pytest.mark.parametrize("name", ["mmaction2_test.mp4", "mmaction2_test.avi", "flipping_a_pancake.mkv",
                                  "nasa_13013.mp4"])
def test_files_decord_reads_right_stay_with_decord(name):
    """The official transform's numbers come from decord: it stays first wherever its count is right."""
    path = fixtures_dir("video") / name
    clip = read_video(str(path), 16)
    reader = decord.VideoReader(str(path), num_threads=1)
    assert (clip.decoder, clip.frames_decoded) == ("decord", len(reader))
    np.testing.assert_array_equal(clip.frames, reader.get_batch(frame_indices(len(reader), 16)).asnumpy())


def test_a_stream_that_fails_part_way_is_an_error_naming_the_codec_and_each_decoder(caplog, capfd, tmp_path):
    """PyAV decodes 28 of 50 frames, then fails: never a shorter clip passed off as the file."""
    from embedpipe.extract.decoder_output import DecoderOutput

    path = tmp_path / "corrupted.mp4"
    shutil.copy(fixtures_dir("video/broken") / "decord_corrupted.mp4", path)
    capfd.readouterr()
    with caplog.at_level(logging.WARNING), pytest.raises(VideoReadError) as err, \
            DecoderOutput().labelled("broken/corrupted.mp4"):
        read_video(str(path), 16)
    message = str(err.value)
    assert message.startswith("H264 video: decord: ") and "; pyav: " in message and "after 28 frames" in message
    # FFmpeg's own lines ("[h264 @ 0x…] Invalid NAL unit size") are logged under the key, not loose on stderr
    said = [r.getMessage() for r in caplog.records if "decoder said" in r.getMessage()]
    assert said and all(line.startswith("broken/corrupted.mp4: decoder said: ") for line in said)
    assert any("[h264]" in line for line in said) and not any(" @ 0x" in line for line in said)
    assert "NAL" not in capfd.readouterr().err
