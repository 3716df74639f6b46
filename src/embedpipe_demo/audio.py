"""The audio demo: a VersaFace-shaped tree (`part_XXX/ab/cd/<md5>.wav`) and a tiny random Metis stack.

Speech-like signals (a glottal pulse train through two formant resonances, syllable envelopes,
breath noise) at several rates and channel counts, plus one header-only and one corrupt file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from embedpipe.store.atomic import atomic_path

log = logging.getLogger(__name__)

RATES = (16000, 22050, 44100, 48000)
TINY_SSL_LAYERS = 18  # one more than the layer read out, so the truncation is exercised


def versaface_key(part: str, name: str) -> str:
    digest = hashlib.md5(name.encode()).hexdigest()
    return f"{part}/{digest[:2]}/{digest[2:4]}/{digest}.wav"


def speech_like(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(duration_s * rate))
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    pulses = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate)) * 0.5
    voiced = np.zeros(n)
    for formant in rng.uniform((400, 1200), (900, 2500)):
        voiced += np.sin(2 * np.pi * formant * t) * pulses
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, np.pi)), 0, None)
    signal = 0.3 * voiced * syllables + 0.01 * rng.standard_normal(n)
    return (signal / max(1e-6, np.abs(signal).max()) * 0.8).astype(np.float32)


def make_demo_audio(out: Path, parts: list[str], per_part: int, seed: int) -> list[str]:
    """Write the tree under `out`; returns the keys written (broken files included)."""
    import soundfile

    rng = np.random.default_rng(seed)
    keys = []
    for part in parts:
        for i in range(per_part):
            key = versaface_key(part, f"{seed}-{part}-{i}")
            rate, channels = RATES[i % len(RATES)], 1 + (i % 3 == 2)
            audio = speech_like(float(rng.uniform(0.5, 6.0)), rate, rng)
            if channels == 2:
                audio = np.stack([audio, 0.9 * audio], axis=1)
            dest = out / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                soundfile.write(str(tmp), audio, rate, format="WAV", subtype="PCM_16")
            keys.append(key)
    first = parts[0]
    empty = out / versaface_key(first, "empty")
    empty.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(empty), np.zeros(0, np.float32), 16000, format="WAV", subtype="PCM_16")
    corrupt = out / versaface_key(parts[-1], "corrupt")
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + rng.bytes(200))
    keys += [str(empty.relative_to(out)), str(corrupt.relative_to(out))]
    log.info("%d audio files under %s (one empty, one corrupt)", len(keys), out)
    return keys


def make_tiny_metis(out: Path, seed: int) -> None:
    """A random w2v-bert (with its feature extractor), a random codec under the released checkpoint's
    key names (decoder and codebook entries included, which the encoder leaves out by name), and a
    statistics file — laid out as `encoder.path`, `codec_path` and `stats_path` expect."""
    from safetensors.torch import save_file
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    from embedpipe.encoders.metis.repcodec import SemanticCodecEncoder

    torch.manual_seed(seed)
    cfg = Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=TINY_SSL_LAYERS, num_attention_heads=2,
                             intermediate_size=64, conv_depthwise_kernel_size=5)
    Wav2Vec2BertModel(cfg).save_pretrained(out)
    SeamlessM4TFeatureExtractor(padding_value=1.0).save_pretrained(out)  # as facebook/w2v-bert-2.0 ships it
    codec = SemanticCodecEncoder(in_dim=32, dim=16, intermediate=48, layers=2, latent_dim=8)
    with torch.no_grad():  # layer scale and weight-norm gains as a trained model has them, not 1/12 and 1
        for block in codec.encoder[0].convnext:
            block.gamma.uniform_(0.1, 0.5)
        codec.in_project.weight_g.uniform_(0.5, 2.0)
    state = {k: v.contiguous() for k, v in codec.state_dict().items()}
    state |= {  # entries of the full checkpoint that computing the latent does not use
        "decoder.0.embed.weight": torch.randn(16, 32, 7),
        "decoder.1.weight": torch.randn(32, 16),
        "quantizer.quantizers.0.codebook.weight": torch.randn(64, 8),
        "quantizer.quantizers.0.out_project.weight_v": torch.randn(32, 8, 1),
    }
    (out / "semantic_codec").mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "semantic_codec" / "model.safetensors"))
    torch.save({"mean": torch.randn(32) * 0.1, "var": torch.rand(32) + 0.5}, out / "wav2vec2bert_stats.pt")
    log.info("tiny Metis stack (w2v-bert %d layers, codec, stats) in %s", TINY_SSL_LAYERS, out)
