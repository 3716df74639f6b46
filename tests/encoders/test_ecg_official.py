"""ECG against the official recipes: kweimann/ECG-JEPA @504b4e5 and PKUDigitalHealth/ECGFounder @04edac7.

Each expected value is computed here from the official description (numpy/scipy, or the model's
forward called directly), not by the embedpipe function under test: checkpoint layouts of
pretrain.py / minify_pretrained_checkpoint.py, PreprocessECG, EvalTransformECG's strided crops,
ECGFounder's z_score_normalization, resample_unequal and util.filter_bandpass.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import wfdb
from scipy import signal as sp
from support.workflow import REPO, fixtures_dir, snakemake

from embedpipe.encoders import build_encoder
from embedpipe.encoders.batch import Batch
from embedpipe.encoders.ecg_jepa.vit import EcgViT
from embedpipe.encoders.roles import Encoder
from embedpipe.readers.ecg import read_ecg
from embedpipe_demo.ecg import synthetic_ecg, write_mimic_record

CPU = torch.device("cpu")
# configs/pretrain/Config as pretrain.py saves it (dataclasses.asdict), for a tiny ViT.
CONFIG = {
    "sampling_frequency": 500, "channels": ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"],
    "channel_size": 5000, "patch_size": 25, "min_block_size": 10, "min_keep_ratio": 0.15, "max_keep_ratio": 0.25,
    "datasets": {"mimic-iv-ecg": 1.0}, "dim": 32, "depth": 2, "num_heads": 4, "pred_dim": 16, "pred_depth": 1,
    "pred_num_heads": 2, "mlp_ratio": 4.0, "qkv_bias": False, "dropout": 0.0, "attn_dropout": 0.0,
    "num_registers": 1, "bias": False, "norm_eps": 1e-6, "layer_scale_eps": 0.0, "steps": 10, "batch_size": 2,
    "opt_betas": (0.9, 0.99), "checkpoint_interval": 10,
}
# data/datasets/mimic_iv_ecg.py, in MIMIC-IV-ECG's own lead order (aVF before aVL), used as float16.
MIMIC_CHANNELS = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
MIMIC_MEAN = (0.023, 0.015, -0.007, -0.019, 0.004, 0.014, -0.018, -0.004, 0.002, 0.017, 0.022, 0.022)
MIMIC_STD = (0.155, 0.158, 0.166, 0.133, 0.143, 0.141, 0.207, 0.282, 0.284, 0.253, 0.222, 0.197)


def _ptb() -> str:
    return str(fixtures_dir("ecg") / "wfdb" / "ptbdb_s0010_re" / "s0010_re")  # 1000 Hz, leads i … v6 first


def _sierra() -> str:
    return str(sorted((fixtures_dir("ecg") / "sierra_xml").iterdir())[0])  # 11 s at 500 Hz


def _vit(seed: int, heads: int = 4) -> EcgViT:
    """A random bias-free ECG-JEPA ViT; qkv scaled ×10 so attention is sharp and the head split matters."""
    torch.manual_seed(seed)
    vit = EcgViT(dim=32, depth=2, heads=heads, mlp_hidden=128, registers=1, bias=False, qkv_bias=False)
    with torch.no_grad():
        vit.registers.normal_()
        for block in vit.blocks:
            block.attn.qkv.weight.mul_(10)
    return vit.eval()


def _record(root, seconds: float, subject: int) -> str:
    leads = synthetic_ecg(seconds, 500, np.random.default_rng(subject))
    return str(write_mimic_record(root, 10_000_000 + subject, 40_000_000 + subject, leads, 500))


def _build(kind: str, path, **options) -> Encoder:
    """The `kind` encoder on `path`, on the CPU, not loaded."""
    return build_encoder(kind, {"model": "t", "path": str(path), "device": "cpu", **options})


def _jepa(path, **options) -> Encoder:
    encoder = _build("ecg_jepa", path, **options)
    encoder.model.ensure_loaded(CPU)
    return encoder


def _founder(tiny_ecg, **options) -> Encoder:
    encoder = _build("ecgfounder", tiny_ecg / "ecgfounder.pth", **options)
    encoder.model.ensure_loaded(CPU)
    return encoder


def _signal(encoder: Encoder, path: str) -> np.ndarray:
    """The reader's normalised `[leads, n]` float32 signal of one file."""
    return encoder.reader.prepare(path).sample.numpy()


def _encode(encoder, paths: list[str]) -> dict:
    return encoder.model.encode(Batch([encoder.reader.prepare(p).sample for p in paths]))


def _token_mean(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The ViT's patch tokens `[n // 25, dim]` for one window, averaged: what finetune.py pools."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x)).float()[None])[1].mean(1)[0].numpy()


def _zscore(x: np.ndarray) -> np.ndarray:  # dataset.py z_score_normalization: one mean/std over all leads
    return (x - np.mean(x)) / (np.std(x) + 1e-8)


def _official_bandpass(x: np.ndarray, notch: float, fs: int = 500) -> np.ndarray:
    """util.filter_bandpass, per channel as written there (notch_hz replaces its fixed 50)."""
    out = np.zeros_like(x)
    b, a = sp.iirnotch(notch, 30, fs)
    for c in range(len(x)):
        out[c] = sp.filtfilt(b, a, x[c])
    b, a = sp.butter(N=4, Wn=[0.67, 40], btype="bandpass", fs=fs)
    for c in range(len(x)):
        out[c] = sp.filtfilt(b, a, out[c])
    kernel = int(0.4 * fs) + 1
    kernel += 1 - kernel % 2
    return out - np.stack([sp.medfilt(out[c], kernel_size=kernel) for c in range(len(x))])


def test_every_checkpoint_layout_loads_strictly_with_the_target_encoder_and_config_heads(tmp_path):
    online, target = _vit(1), _vit(2)  # pretrain.py saves both; finetune.py embeds with the target (EMA) one

    def prefixed(prefix, vit):
        return {f"{prefix}.{k}": v for k, v in vit.state_dict().items()}

    predictor = {"predictor.mask_token": torch.zeros(1, 1, 16), "predictor.embed.weight": torch.randn(16, 32)}
    layouts = {
        "full.pt": {"model": {**prefixed("encoder", online), **predictor, **prefixed("target_encoder", target)},
                    "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
                    "config": CONFIG, "step": 10},
        "min.pt": {"model": prefixed("target_encoder", target), "config": CONFIG},  # minify_pretrained_checkpoint
        "encoder.pt": {"encoder": target.state_dict(), "config": CONFIG},
        "bare.pt": target.state_dict(),
    }
    for name, checkpoint in layouts.items():
        torch.save(checkpoint, tmp_path / name)
    ecg = _record(tmp_path, 10.0, 1)
    x = _signal(_build("ecg_jepa", tmp_path / "min.pt"), ecg)
    want = _token_mean(target, x)
    assert not np.allclose(_token_mean(online, x), want, atol=1e-3)  # otherwise the entry is not tested
    for name in layouts:
        options = {"num_heads": 4} if name == "bare.pt" else {}
        got = _encode(_jepa(tmp_path / name, **options), [ecg])["embedding"][0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)

    # The head count is read from the config: the same tensors split into 2 heads give another output.
    two_heads = EcgViT(dim=32, depth=2, heads=2, mlp_hidden=128, registers=1, bias=False).eval()
    two_heads.load_state_dict(target.state_dict(), strict=True)
    assert not np.allclose(_token_mean(two_heads, x), want, atol=1e-3)
    torch.save({"model": prefixed("target_encoder", target), "config": {**CONFIG, "num_heads": 2}}, tmp_path / "h2.pt")
    np.testing.assert_allclose(_encode(_jepa(tmp_path / "h2.pt"), [ecg])["embedding"][0], _token_mean(two_heads, x),
                               rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match=r"encoder\.num_heads"):  # an option contradicting the config
        _build("ecg_jepa", tmp_path / "min.pt", num_heads=2)
    with pytest.raises(ValueError, match=r"encoder\.num_heads"):  # nothing says the head count: never guessed
        _build("ecg_jepa", tmp_path / "bare.pt")
    torch.save({"model": prefixed("target_encoder", target), "config": {**CONFIG, "dim": 64}}, tmp_path / "dim.pt")
    with pytest.raises(ValueError, match="dim 64"):
        _build("ecg_jepa", tmp_path / "dim.pt")
    torch.save({"state_dict": {"first_conv.conv.weight": torch.zeros(8, 12, 16)}}, tmp_path / "founder.pth")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "founder.pth"))):
        _build("ecg_jepa", tmp_path / "founder.pth", num_heads=4)


def test_ecg_jepa_preprocessing_is_preprocess_ecg(tiny_ecg, tmp_path):
    record = wfdb.rdrecord(_ptb())
    p = record.p_signal[:, :12].copy()  # [time, 12], as ECG-JEPA holds it
    holes = [(slice(100, 105), 0), (slice(20000, 20001), 7), (slice(38397, 38400), 11)]  # the last: edge hold
    for rows, lead in holes:
        p[rows, lead] = np.nan
    wfdb.wrsamp("ptbnan", fs=1000, units=["mV"] * 12, sig_name=record.sig_name[:12], p_signal=p,
                fmt=["16"] * 12, adc_gain=[2000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    prepared = _build("ecg_jepa", tiny_ecg / "ecg_jepa.pt").reader.prepare(str(tmp_path / "ptbnan.hea"))
    signal = prepared.sample.numpy()

    x = wfdb.rdrecord(str(tmp_path / "ptbnan")).p_signal  # what the official load_raw_data reads
    for c in range(x.shape[1]):  # transforms.interpolate_NaNs_
        bad = np.isnan(x[:, c])
        if bad.any():
            x[bad, c] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), x[~bad, c])
    x = sp.resample(x, int(500 / 1000 * len(x)), axis=0)  # resample_ratio = 500 / dataset rate
    order = [[c.casefold() for c in MIMIC_CHANNELS].index(n.casefold()) for n in record.sig_name[:12]]
    mean = np.array(MIMIC_MEAN, np.float16)[order].astype(np.float64)
    std = np.array(MIMIC_STD, np.float16)[order].astype(np.float64)
    want = np.clip((x - mean) / std, -5, 5).T
    assert (np.abs(want) == 5).any()  # the clip is exercised
    assert signal.shape == (12, 19200)
    np.testing.assert_allclose(signal, want, atol=1e-4)
    assert prepared.facts["nan_samples"] == 9


def test_ecg_jepa_embeds_strided_crops_and_short_records_whole(tiny_ecg, tmp_path):
    encoder = _jepa(tiny_ecg / "ecg_jepa.pt")
    paths = [_record(tmp_path, s, i) for i, s in enumerate((25.0, 10.0, 7.03))]
    samples = [encoder.reader.prepare(p).sample for p in paths]
    out = encoder.model.encode(Batch(samples))
    assert out["n_crops"].tolist() == [2, 1, 0]
    # strided_crops(x, 5000, 5000): windows from sample 0, the last 2.5 s dropped
    long = samples[0].numpy()
    crops = np.stack([_token_mean(encoder.model.network, long[:, i * 5000:(i + 1) * 5000]) for i in range(2)])
    np.testing.assert_allclose(out["crop_embeddings"][0], crops, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["embedding"][0], crops.mean(0), rtol=1e-4, atol=1e-5)
    # shorter than one crop: one window of whole patches
    short = samples[2].numpy()
    n = short.shape[-1]
    assert n % 25 and out["crop_embeddings"][2].shape == (1, 32)
    np.testing.assert_allclose(out["embedding"][2], _token_mean(encoder.model.network, short[:, : n // 25 * 25]),
                               rtol=1e-4, atol=1e-5)
    for i, sample in enumerate(samples):  # the batch's other lengths reach nothing
        alone = encoder.model.encode(Batch([sample]))
        np.testing.assert_allclose(out["embedding"][i], alone["embedding"][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["crop_embeddings"][i], alone["crop_embeddings"][0], rtol=1e-4, atol=1e-5)


def test_ecgfounder_full_length_frames_and_no_padding(tiny_ecg, tmp_path):
    full, ten = _founder(tiny_ecg), _founder(tiny_ecg, length="10s")
    assert _encode(full, [_sierra()])["features"][0].shape == (22, 32)  # 5500 halved (rounding up) 8 times
    assert _encode(ten, [_sierra()])["features"][0].shape == (20, 32)
    short, ten_s = _record(tmp_path, 7.0, 1), _record(tmp_path, 10.0, 2)
    x = read_ecg(short, seconds=None).signal.astype(np.float64)
    assert x.shape == (12, 3500)
    with torch.no_grad():  # the model on the unpadded z-scored record, as the ECGFounder script feeds it
        direct = full.model.network.features(torch.from_numpy(_zscore(x)).float()[None])[0].T.numpy()
    frames = 3500
    for _ in range(8):
        frames = -(-frames // 2)
    assert direct.shape == (frames, 32)
    alone, batched = _encode(full, [short]), _encode(full, [short, ten_s])
    for out in (alone, batched):  # SAME padding and the SE means would show any padding in every frame
        np.testing.assert_allclose(out["features"][0], direct, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["embedding"][0], direct.mean(0), rtol=1e-4, atol=1e-5)


def test_ecgfounder_resample_every_second(tiny_ecg):
    every = _signal(_founder(tiny_ecg, resample="every_second"), _ptb())
    p = np.nan_to_num(wfdb.rdrecord(_ptb()).p_signal[:, :12], nan=0).T  # resample_unequal: 1000 → 500 is ts[:, ::2]
    np.testing.assert_allclose(every, _zscore(p[:, ::2]), atol=1e-5)
    poly = _signal(_founder(tiny_ecg), _ptb())
    assert poly.shape == every.shape and not np.allclose(poly, every, atol=1e-3)
    # 360 Hz is not an exact halving: every_second is polyphase there
    mit = str(fixtures_dir("ecg") / "wfdb" / "mitdb_100" / "100.hea")
    np.testing.assert_array_equal(_signal(_founder(tiny_ecg, length="10s", resample="every_second"), mit),
                                  _signal(_founder(tiny_ecg, length="10s"), mit))


def test_ecgfounder_filter_is_util_filter_bandpass(tiny_ecg, tmp_path):
    x = read_ecg(_sierra(), seconds=None).signal.astype(np.float64)
    got = {}
    for notch in (50, 60):
        got[notch] = _signal(_founder(tiny_ecg, filter="ecgfounder", notch_hz=notch), _sierra())
        np.testing.assert_allclose(got[notch], _zscore(_official_bandpass(x, notch)), atol=1e-5)
    assert not np.allclose(got[50], got[60], atol=1e-4)
    assert not np.allclose(got[50], _zscore(x), atol=1e-2)  # the filter is applied at all
    tiny = _record(tmp_path, 0.04, 3)  # 20 samples: filtfilt's default padlen is 27
    with pytest.raises(ValueError, match=r"encoder\.filter"):
        _founder(tiny_ecg, filter="ecgfounder").reader.prepare(tiny)


@pytest.mark.parametrize(("kind", "key", "value"), [
    ("ecgfounder", "length", "5s"), ("ecgfounder", "resample", "linear"), ("ecgfounder", "nan", "drop"),
    ("ecgfounder", "filter", "butter"), ("ecg_jepa", "length", "20s"), ("ecg_jepa", "normalise", "ptb_xl"),
])
def test_bad_option_values_name_their_key(tiny_ecg, kind, key, value):
    file = {"ecgfounder": "ecgfounder.pth", "ecg_jepa": "ecg_jepa.pt"}[kind]
    with pytest.raises(ValueError, match=rf"encoder\.{key}\b"):
        _build(kind, tiny_ecg / file, **{key: value})


def test_ecg_jepa_ten_seconds_is_crop_zero_and_config_without_heads(tiny_ecg, tmp_path):
    """FFT resampling depends on the whole record: `length: 10s` still resamples it whole, so its
    window is exactly the full path's first crop. A config that lacks num_heads takes the option."""
    config = {k: v for k, v in CONFIG.items() if k != "num_heads"}
    torch.save({"model": {f"target_encoder.{k}": v for k, v in _vit(5).state_dict().items()}, "config": config},
               tmp_path / "noheads.pt")
    with pytest.raises(ValueError, match="encoder.num_heads"):
        _build("ecg_jepa", tmp_path / "noheads.pt")
    full = _jepa(tmp_path / "noheads.pt", num_heads=4)
    ten = _jepa(tmp_path / "noheads.pt", num_heads=4, length="10s")
    whole, cut = _signal(full, _ptb()), _signal(ten, _ptb() + ".hea")
    assert whole.shape == (12, 19200) and cut.shape == (12, 5000)
    np.testing.assert_array_equal(cut, whole[:, :5000])
    np.testing.assert_allclose(_encode(ten, [_ptb()])["embedding"][0],
                               _encode(full, [_ptb()])["crop_embeddings"][0][0], atol=1e-6)


def test_polyphase_ten_second_cut_equals_the_whole_record_cut_after(tmp_path):
    """Reading only the first 10 s (and a margin) gives the samples resampling the whole record would."""
    mit = str(fixtures_dir("ecg") / "wfdb" / "mitdb_100" / "100.hea")  # 360 Hz, 30 min
    cut, whole = read_ecg(mit, 10.0), read_ecg(mit, None)
    assert cut.n_samples == 5000 and whole.n_samples == 902778
    np.testing.assert_allclose(cut.signal, whole.signal[:, :5000], atol=1e-6)
    with pytest.raises(Exception, match="longer than 600 s read whole"):
        read_ecg(mit, None, max_seconds=600)


def test_notch_without_the_filter_and_features_off_give_the_same_embedding(tiny_ecg, tmp_path):
    with pytest.raises(ValueError, match="encoder.notch_hz"):
        _build("ecgfounder", tiny_ecg / "ecgfounder.pth", notch_hz=60)
    paths = [_record(tmp_path, 7.0, 1), _sierra(), _record(tmp_path, 10.0, 2)]  # three lengths, one batch
    kept = _encode(_founder(tiny_ecg), paths)
    mean_only = _encode(_founder(tiny_ecg, keep_features=False), paths)
    assert "features" not in mean_only and [len(f) for f in kept["features"]] == [14, 22, 20]
    np.testing.assert_array_equal(kept["embedding"], mean_only["embedding"])
    for features, embedding in zip(kept["features"], kept["embedding"], strict=True):
        np.testing.assert_allclose(features.mean(0), embedding, atol=1e-6)


@pytest.mark.workflow
@pytest.mark.parametrize(("config", "override", "key"), [
    ("demo_ecg.yaml", "notch_hz: 60", "encoder.notch_hz"),
    ("demo_ecg.yaml", "normalise: record", "encoder.normalise"),
    ("demo.yaml", "length: full", "encoder.length"),
])
def test_ecg_options_that_do_nothing_stop_the_run_before_any_job(tmp_path, config, override, key):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"encoder:\n  {override}\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / config), str(overlay), check=False)
    assert proc.returncode != 0 and key in proc.stdout + proc.stderr
