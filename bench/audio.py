"""The metis half of bench/throughput.py: 5-s speech-like WAVs → Metis latents, batched vs one at a time."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stages import decode_only, sync, write_only

from embedpipe.discover.scan import scan_files
from embedpipe.encoders import build_encoder
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import run_extract
from embedpipe.extract.writer import ShardWriter
from embedpipe_demo.audio import make_tiny_metis, speech_like

SIZES = ("tiny", "w2v-bert-2.0")


def build_metis(model: str, out: Path) -> Path:
    """tiny: the demo's stack. w2v-bert-2.0: the real widths (24 × 1024 conformer, 12-block codec), random."""
    if model == "tiny":
        make_tiny_metis(out, seed=0)
        return out
    from safetensors.torch import save_file
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    from embedpipe.encoders.metis.repcodec import SemanticCodecEncoder

    torch.manual_seed(0)
    Wav2Vec2BertModel(Wav2Vec2BertConfig()).save_pretrained(out)
    SeamlessM4TFeatureExtractor().save_pretrained(out)
    (out / "semantic_codec").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in SemanticCodecEncoder().state_dict().items()},
              str(out / "semantic_codec" / "model.safetensors"))
    torch.save({"mean": torch.zeros(1024), "var": torch.ones(1024)}, out / "wav2vec2bert_stats.pt")
    return out


def _write_clip(args: tuple[Path, int, float]) -> None:
    import soundfile

    root, i, seconds = args
    dest = root / "bench" / f"{i:02x}"[-2:] / f"clip{i:06d}.wav"
    dest.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(dest), speech_like(seconds, 16000, np.random.default_rng(i)), 16000, subtype="PCM_16")


def make_clips(root: Path, n: int, seconds: float) -> None:
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.map(_write_clip, [(root, i, seconds) for i in range(n)], chunksize=16)


def model_only(encoder: Encoder, n: int, seconds: float) -> float:
    model = encoder.model
    frames = int(seconds * 50)
    feats = torch.randn(encoder.batch_size, frames, 160, device=model.device, dtype=model.ssl.dtype)
    mask = torch.ones(encoder.batch_size, frames, dtype=torch.long, device=model.device)
    lengths = torch.full((encoder.batch_size,), frames, device=model.device)
    with torch.inference_mode():
        for _ in range(2):
            model.forward(feats, mask, lengths)
        sync(model.device)
        steps = max(1, n // encoder.batch_size)
        start = time.perf_counter()
        for _ in range(steps):
            model.forward(feats, mask, lengths)
        sync(model.device)
    return steps * encoder.batch_size / (time.perf_counter() - start)


def end_to_end(encoder: Encoder, clips: Path, keys: list[str], tmp: Path, workers: int, name: str) -> float:
    writer = ShardWriter(tmp / f"parts-{name}", encoder.output_fields(), encoder.fingerprint(), save_every=10**6)
    start = time.perf_counter()
    run_extract(keys, clips, encoder, writer, shard=name, device=encoder.model.device, num_workers=workers,
                log_every=10**9)
    writer.finalize(keys, tmp / f"{name}.parquet", tmp / f"{name}.errors.parquet", {})
    return len(keys) / (time.perf_counter() - start)


def run(args: Any, device: torch.device, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_metis(args.model, tmp / "model")
        clips = Path(args.videos) if args.videos else tmp / "clips"
        if len(scan_files(clips, [".wav"]) if clips.is_dir() else []) != args.n:
            make_clips(clips, args.n, args.seconds)
        keys = scan_files(clips, [".wav"])
        options = {"path": str(model), "codec_path": str(model / "semantic_codec" / "model.safetensors"),
                   "stats_path": str(model / "wav2vec2bert_stats.pt"), "device": str(device),
                   "precision": args.precision if args.precision in ("auto", "bf16", "fp32") else "auto"}
        batched = build_encoder("metis", {"batch_size": args.batch_size, **options})
        batched.model.ensure_loaded(device)
        ref = model_only(batched, min(args.n, 8 * args.batch_size), args.seconds)
        decode = decode_only(keys, clips, batched, workers)
        write = write_only(keys, clips, batched, tmp, save_every=10**6)
        e2e = end_to_end(batched, clips, keys, tmp, workers, "batched")
        single = build_encoder("metis", {"batch_size": 1, **options})
        single.model.ensure_loaded(device)
        n_single = min(len(keys), args.single_n)
        one = end_to_end(single, clips, keys[:n_single], tmp, workers, "single")
        return {
            "clip_seconds": args.seconds, "precision": batched.model.precision,
            "end_to_end_files_per_s": round(e2e, 2), "model_only_files_per_s": round(ref, 2),
            "ratio": round(e2e / ref, 3), "decode_only_files_per_s": round(decode, 2),
            "write_only_files_per_s": round(write, 2),
            "one_at_a_time_files_per_s": round(one, 2), "one_at_a_time_n": n_single,
            "batched_over_one_at_a_time": round(e2e / one, 1),
        }
