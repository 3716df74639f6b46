"""The ECG half of bench/throughput.py: 10-s 12-lead WFDB records → ECGFounder (full-size Net1D) or ECG-JEPA."""

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
from embedpipe.encoders.ecg_jepa.vit import EcgViT
from embedpipe.encoders.ecgfounder.net1d import Net1D
from embedpipe.encoders.roles import Encoder
from embedpipe.extract.loop import run_extract
from embedpipe.extract.writer import ShardWriter
from embedpipe_demo.ecg import make_tiny_ecg_models, synthetic_ecg, write_mimic_record

SIZES = ("tiny", "ecgfounder", "ecg-jepa-vits")


def build_checkpoint(encoder: str, model: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if model == "tiny":
        make_tiny_ecg_models(out, seed=0)
        return out / ("ecgfounder.pth" if encoder == "ecgfounder" else "ecg_jepa.pt")
    torch.manual_seed(0)
    if encoder == "ecgfounder":  # the released geometry, 30.8M parameters
        torch.save({"state_dict": Net1D().state_dict()}, out / "ecgfounder.pth")
        return out / "ecgfounder.pth"
    # ViT-S as released (ViTS_mimic: 384 wide, 8 deep, 6 heads, no biases), in pretrain.py's layout
    state = {f"target_encoder.{k}": v for k, v in EcgViT(bias=False).state_dict().items()}
    torch.save({"model": state, "config": {"num_heads": 6, "bias": False, "channel_size": 5000}}, out / "ecg_jepa.pt")
    return out / "ecg_jepa.pt"


def _write_record(args: tuple[Path, int]) -> None:
    root, i = args
    write_mimic_record(root / "bench", 10_000_000 + i, 40_000_000 + i, synthetic_ecg(10.0, 500,
                       np.random.default_rng(i)), 500)


def make_records(root: Path, n: int) -> None:
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.map(_write_record, [(root, i) for i in range(n)], chunksize=32)


def model_only(encoder: Encoder, n: int) -> float:
    model = encoder.model
    dtype = torch.bfloat16 if model.precision == "bf16" else torch.float32
    x = torch.randn(encoder.batch_size, len(encoder.reader.lead_index), 5000, device=model.device, dtype=dtype)
    forward = model.network.features if hasattr(model.network, "features") else model.network
    with torch.inference_mode():
        for _ in range(2):
            forward(x)
        sync(model.device)
        steps = max(1, n // encoder.batch_size)
        start = time.perf_counter()
        for _ in range(steps):
            forward(x)
        sync(model.device)
    return steps * encoder.batch_size / (time.perf_counter() - start)


def run(args: Any, device: torch.device, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = build_checkpoint(args.encoder, args.model, tmp / "model")
        records = Path(args.videos) if args.videos else tmp / "records"
        if len(scan_files(records, [".hea"]) if records.is_dir() else []) != args.n:
            make_records(records, args.n)
        keys = scan_files(records, [".hea"])
        precision = args.precision if args.precision in ("auto", "bf16", "fp32") else "auto"
        encoder = build_encoder(args.encoder, {"model": args.model, "path": str(checkpoint), "device": str(device),
                                               "batch_size": args.batch_size, "precision": precision})
        encoder.model.ensure_loaded(device)
        ref = model_only(encoder, min(args.n, 8 * args.batch_size))
        decode = decode_only(keys, records, encoder, workers)
        write = write_only(keys, records, encoder, tmp, save_every=10**6)
        writer = ShardWriter(tmp / "parts", encoder.output_fields(), encoder.fingerprint(), save_every=10**6)
        start = time.perf_counter()
        run_extract(keys, records, encoder, writer, shard="bench", device=device, num_workers=workers,
                    log_every=10**9)
        writer.finalize(keys, tmp / "out.parquet", tmp / "out.errors.parquet", {})
        e2e = len(keys) / (time.perf_counter() - start)
        return {"precision": encoder.model.precision, "end_to_end_files_per_s": round(e2e, 2),
                "model_only_files_per_s": round(ref, 2), "ratio": round(e2e / ref, 3),
                "decode_only_files_per_s": round(decode, 2), "write_only_files_per_s": round(write, 2),
                "output_mb_per_1000_files": round((tmp / "out.parquet").stat().st_size / len(keys) * 1000 / 1e6, 1)}
