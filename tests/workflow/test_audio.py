"""The metis encoder: real audio files, broken ones, batching, the codec checkpoint's names, the JSON export."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from support.workflow import REPO, fixtures_dir, metis_encoder, run_script, snakemake

from embedpipe.encoders.batch import Batch
from embedpipe.encoders.metis.fbank import KaldiFbank
from embedpipe.encoders.metis.repcodec import SemanticCodecEncoder, WeightNormConv1x1, load_codec
from embedpipe.encoders.metis.sizes import fbank_frames, stacked_frames
from embedpipe.readers.audio import read_audio


def released_codec_names(blocks: int) -> set[str]:
    """The encoder-side entries of amphion/MaskGCT semantic_codec/model.safetensors, as published."""
    names = {"encoder.0.embed.weight", "encoder.0.embed.bias", "encoder.0.norm.weight", "encoder.0.norm.bias",
             "encoder.0.final_layer_norm.weight", "encoder.0.final_layer_norm.bias",
             "encoder.1.weight", "encoder.1.bias", "quantizer.quantizers.0.in_project.weight_g",
             "quantizer.quantizers.0.in_project.weight_v", "quantizer.quantizers.0.in_project.bias"}
    for i in range(blocks):
        for layer in ("dwconv", "norm", "pwconv1", "pwconv2"):
            names |= {f"encoder.0.convnext.{i}.{layer}.weight", f"encoder.0.convnext.{i}.{layer}.bias"}
        names.add(f"encoder.0.convnext.{i}.gamma")
    return names


def test_codec_parameter_names_are_the_released_checkpoints():
    codec = SemanticCodecEncoder()  # the released geometry: 1024 → 384, 12 blocks, 2048, 8
    assert set(codec.state_dict()) == released_codec_names(12)
    assert codec.in_project.weight_v.shape == (8, 1024, 1)


def test_codec_checkpoint_loads_by_name_and_refuses_a_missing_entry(tiny_metis, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tiny_metis / "semantic_codec" / "model.safetensors"
    state = load_file(str(path))
    assert any(k.startswith("decoder.") for k in state) and "quantizer.quantizers.0.codebook.weight" in state
    codec = load_codec(path)
    for name, tensor in codec.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)
    del state["encoder.0.convnext.1.gamma"]
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(RuntimeError, match="encoder.0.convnext.1.gamma"):
        load_codec(tmp_path / "short.safetensors")


def test_weight_norm_projection_equals_torch_weight_norm():
    ours = WeightNormConv1x1(12, 8)
    with torch.no_grad():
        ours.weight_g.uniform_(0.5, 2)
    ref = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(12, 8, 1))
    with torch.no_grad():
        ref.parametrizations.weight.original0.copy_(ours.weight_g)
        ref.parametrizations.weight.original1.copy_(ours.weight_v)
        ref.bias.copy_(ours.bias)
    x = torch.randn(2, 12, 9)
    torch.testing.assert_close(ours(x), ref(x))


def test_truncated_ssl_model_gives_the_full_models_layer(tiny_metis):
    from transformers import Wav2Vec2BertModel

    full = Wav2Vec2BertModel.from_pretrained(tiny_metis).eval()
    encoder = metis_encoder(tiny_metis)
    assert len(encoder.model.ssl.encoder.layers) == 17 < len(full.encoder.layers)
    x = torch.randn(2, 30, 160)
    with torch.no_grad():
        want = full(input_features=x, output_hidden_states=True).hidden_states[17]
        got = encoder.model.ssl(input_features=x, output_hidden_states=True).hidden_states[17]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("padding_value", [0.0, 1.0])  # 1.0: w2v-bert-2.0's preprocessor_config
def test_batched_filter_banks_equal_the_feature_extractor_on_real_files(padding_value):
    """The device path computes what SeamlessM4TFeatureExtractor computes per file, to float32 rounding,
    including the padding it puts in the second half of an odd file's last stacked pair."""
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor(padding_value=padding_value)
    waves = [read_audio(str(p)).samples for p in sorted(fixtures_dir("audio").iterdir()) if p.is_file()]
    n = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(n.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    feats, mask, lengths = KaldiFbank.like(extractor)(batch, n)
    for i, w in enumerate(waves):
        want = extractor(w, sampling_rate=16000, return_tensors="np")
        t = want["input_features"].shape[1]
        assert int(lengths[i]) == stacked_frames(len(w)) == t
        np.testing.assert_allclose(feats[i, :t].numpy(), want["input_features"][0], rtol=0, atol=1e-4)
        assert mask[i, :t].tolist() == want["attention_mask"][0].tolist() and not mask[i, t:].any()
        assert not feats[i, t:].any()
    assert any(fbank_frames(len(w)) % 2 for w in waves), "an odd frame count must be among the files"


def test_batched_equals_one_at_a_time_on_real_files(tiny_metis):
    files = sorted(p for p in fixtures_dir("audio").iterdir() if p.is_file())
    encoder = metis_encoder(tiny_metis)
    samples = [encoder.reader.prepare(str(f)).sample for f in files]
    assert len({len(s) for s in samples}) == len(samples), "lengths must differ for padding to matter"
    batched = encoder.model.encode(Batch(samples))
    for i, sample in enumerate(samples):
        alone = encoder.model.encode(Batch([sample]))
        assert batched["latents"][i].shape == alone["latents"][0].shape == (stacked_frames(len(sample)), 8)
        np.testing.assert_allclose(batched["latents"][i], alone["latents"][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(batched["embedding"][i], alone["embedding"][0], rtol=1e-4, atol=1e-5)


def test_extract_real_and_broken_audio_then_export_json(tiny_metis, tmp_path):
    """Every real file becomes a row of ≈ 50 frames per second; every broken one an error row, except
    the cut WAV that libsndfile reads silently short: a row flagged truncated."""
    audio = fixtures_dir("audio")
    shard = tmp_path / "in" / "part_000"
    shard.mkdir(parents=True)
    for f in [*audio.iterdir(), *(audio / "broken").iterdir()]:
        if f.is_file():
            (shard / f.name).symlink_to(f)
    out = tmp_path / "out" / "part_000.parquet"
    options = {"path": str(tiny_metis), "codec_path": str(tiny_metis / "semantic_codec" / "model.safetensors"),
               "stats_path": str(tiny_metis / "wav2vec2bert_stats.pt"), "batch_size": 2}
    run_script("extract.py", "--encoder", "metis", "--model", "metis-tiny", "--encoder_options", json.dumps(options),
               "--input_dir", tmp_path / "in", "--shard", "part_000", "--extensions", ".wav", ".flac", ".mp3", ".ogg",
               "--output", out, "--device", "cpu", "--num_workers", "1")
    rows = pq.read_table(out).to_pylist()
    errors = pq.read_table(out.with_name("part_000.errors.parquet")).to_pylist()
    assert len(rows) == 6 and {r["key"].rsplit(".", 1)[1] for r in rows} == {"wav", "flac", "mp3", "ogg"}
    assert {r["sample_rate"] for r in rows} == {16000, 44100, 48000} and {r["decoder"] for r in rows} == {"soundfile"}
    cut = next(r for r in rows if r["key"].endswith("androidx_wavex_6ch_f32_TRUNCATED_300000B.wav"))
    assert cut["truncated"] is True and cut["declared_duration_s"] == pytest.approx(24576 / 48000)
    for r in rows:
        assert r["n_frames"] == len(r["latents"]) and all(len(f) == 8 for f in r["latents"])
        assert abs(r["n_frames"] - 50 * r["duration_s"]) <= 2, r["key"]  # the 25 ms window, pairs
    by_name = {e["key"].split("/")[-1]: e for e in errors}
    assert sorted(by_name) == ["pydub_test1_empty_header_only.wav", "sr_chinese_TRUNCATED_20000B.flac"]
    assert all(e["stage"] == "decode" and e["message"] for e in errors)
    assert by_name["sr_chinese_TRUNCATED_20000B.flac"]["message"].startswith("soundfile: flac decoder lost sync; PyAV:")

    exported = tmp_path / "semantic_audio_embeddings.json"
    run_script("export_json.py", "--out", exported, out)
    doc = json.loads(exported.read_text())
    assert list(doc) == [r["key"] for r in rows]
    for r in rows:
        assert np.array_equal(np.asarray(doc[r["key"]], np.float32), np.asarray(r["latents"], np.float32))


def test_audio_demo_workflow_and_export_target(tmp_path):
    config = str(REPO / "config" / "demo_audio.yaml")
    snakemake(tmp_path, "--cores", "2", "--configfile", config)
    run = tmp_path / "results" / "demo-audio"
    assert not list(run.glob("*_embeddings_all*"))  # a plain run writes no merged copy (merge.in_default_run)
    keys = [k for s in ("part_003", "part_004", "part_005")
            for k in pq.read_table(run / "embeddings" / f"{s}.parquet", columns=["key"]).column("key").to_pylist()]
    assert len(keys) == 18 and all(re.fullmatch(r"part_00[345]/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\.wav", k)
                                   for k in keys)
    errors = [e for s in ("part_003", "part_004", "part_005")
              for e in pq.read_table(run / "embeddings" / f"{s}.errors.parquet").to_pylist()]
    assert len(errors) == 2
    metrics = json.loads((run / "validation" / "metrics.json").read_text())
    assert metrics["passed"] is True
    # every row's latents read and judged against its duration (validate/arrays.py)
    assert metrics["arrays"]["latents"] | {"shape": None} == {"shape": None, "rows": 18, "nonfinite_rows": 0,
                                                              "wrong_shape_rows": 0, "shards": {}}
    snakemake(tmp_path, "export_json", "--cores", "1", "--configfile", config)
    doc = json.loads((run / "export" / "semantic_audio_embeddings.json").read_text())
    assert sorted(doc) == sorted(keys)
    refused = snakemake(tmp_path, "export_json", "-n", "--configfile", str(REPO / "config" / "demo.yaml"), check=False)
    assert refused.returncode != 0 and "encoder.name" in refused.stdout + refused.stderr


def test_versaface_example_plans_one_job_per_part_and_needs_the_statistics(tmp_path):
    audios = tmp_path / "audios"
    for part in ("part_000", "part_001", "part_002"):
        (audios / part / "ab" / "cd").mkdir(parents=True)
    stats = tmp_path / "wav2vec2bert_stats.pt"
    torch.save({"mean": torch.zeros(1024), "var": torch.ones(1024)}, stats)
    example = str(REPO / "config" / "examples" / "versaface_audio.yaml")
    dry = snakemake(tmp_path, "-n", "--configfile", example, "--config", f"input_dir={audios}",
                    f"encoder={{'stats_path': '{stats}'}}")
    assert sorted(set(re.findall(r"shard=(part_\d+)", dry.stdout))) == ["part_000", "part_001", "part_002"]
    assert dry.stdout.count("rule extract:") == 3
    bad = snakemake(tmp_path, "-n", "--configfile", example, "--config", f"input_dir={audios}",
                    "encoder={'stats_path': ''}", check=False)
    assert bad.returncode != 0 and "encoder.stats_path" in bad.stdout + bad.stderr


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 44100, 48000])
def test_resampled_waveform_is_what_librosa_load_gives(rate, tmp_path):
    """Length ceil(n · 16000 / rate) and the same samples as `librosa.load(path, sr=16000)`, the Metis
    script's reader. 8, 16 and 44.1 kHz are real fixture files; 32 and 48 kHz are the 44.1 kHz
    speech file resampled and written as PCM_24 (no fixture ships those rates)."""
    import librosa
    import soxr

    audio = fixtures_dir("audio")
    real = {8000: "phon_M1F1-int16C-AFsp_aifc_8k_stereo.aif", 16000: "vosk_test_speech_16k_mono.wav",
            44100: "sr_english_speech_44k1_mono.wav"}
    if rate in real:
        path = audio / real[rate]
    else:
        speech, sr = soundfile.read(audio / real[44100], dtype="float32")
        path = tmp_path / f"speech_{rate}.wav"
        soundfile.write(path, soxr.resample(speech, sr, rate), rate, subtype="PCM_24")
    want, _ = librosa.load(path, sr=16000)
    got = read_audio(str(path)).samples
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

