"""The ECG demo: a MIMIC-IV-ECG-shaped WFDB tree, Philips SierraECG XML files, tiny ECG models.

sierraecg reads only XLI-compressed waveforms. XLI is 10-bit LZW over a second-difference delta
code; an LZW stream of literal codes only (every byte its own code) is valid input to the decoder,
so `xli_encode` needs no dictionary: it writes the delta code and packs each byte as a 10-bit code.
"""

from __future__ import annotations

import base64
import csv
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

MIMIC_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")  # MIMIC-IV-ECG's
STANDARD = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# Frontal-plane angles of the limb leads and the precordial leads' share of the cardiac vector.
_ANGLES = {"I": 0, "II": 60, "III": 120, "aVR": -150, "aVL": -30, "aVF": 90}


def synthetic_ecg(seconds: float, rate: int, rng: np.random.Generator,
                  bpm: float | None = None) -> dict[str, np.ndarray]:
    """12 leads in mV: Gaussian P, QRS and T waves per beat projected onto each lead, plus noise.
    The heart rate is `bpm`, else drawn from U[55, 95] (the same draw: a caller passing `bpm` drawn
    just before leaves the generator's sequence, hence every demo's data, as it was)."""
    t = np.arange(int(seconds * rate)) / rate
    rr = 60.0 / (rng.uniform(55, 95) if bpm is None else bpm)
    axis = np.deg2rad(rng.uniform(-10, 80))
    beat = np.zeros_like(t)
    for onset in np.arange(rng.uniform(0, rr), seconds, rr):
        for centre, width, amp in ((0.0, 0.025, 0.15), (0.16, 0.012, 1.0), (0.2, 0.02, -0.25),
                                   (0.42, 0.05, 0.3)):
            beat += amp * np.exp(-(((t - onset - centre) / width) ** 2))
    leads = {name: beat * np.cos(np.deg2rad(angle) - axis) for name, angle in _ANGLES.items()}
    for i in range(1, 7):
        leads[f"V{i}"] = beat * (0.3 + 0.25 * i) * (1 if i > 2 else -0.6)
    wander = 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t)
    return {k: v + wander + 0.02 * rng.standard_normal(len(t)) for k, v in leads.items()}


def xli_encode(samples: np.ndarray) -> bytes:
    """One lead's int16 samples as an XLI chunk (8-byte header + literal-only 10-bit LZW)."""
    s = [int(v) for v in samples]
    n = len(s)
    if n < 3:
        raise ValueError("XLI needs at least 3 samples")
    raw = [0] * n
    raw[0], raw[1] = s[0], s[1]
    start = 2 * s[1] - s[0] - s[2]
    for i in range(3, n):  # the decoder forms s[i] = 2 s[i-1] - s[i-2] - (raw[i-1] - 64)
        raw[i - 1] = 2 * s[i - 1] - s[i - 2] - s[i] + 64
    words = np.array(raw, dtype=np.int64)
    if words.min() < -32768 or words.max() > 32767:
        raise ValueError("signal too steep for 16-bit XLI deltas")
    u16 = words.astype(np.int16).view(np.uint16)
    data = bytes((u16 >> 8).astype(np.uint8)) + bytes((u16 & 0xFF).astype(np.uint8))  # high bytes, then low
    bits = "".join(f"{b:010b}" for b in data)
    bits += "0" * (-len(bits) % 8)
    packed = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    header = len(packed).to_bytes(4, "little", signed=True) + b"\x00\x00" + start.to_bytes(2, "little", signed=True)
    return header + packed


def _stored_limb_leads(leads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Philips stores III, aVR, aVL, aVF as residuals that sierraecg adds I and II back into."""
    i, ii, iii = leads["I"], leads["II"], leads["III"]
    return {**leads, "III": ii - i - iii, "aVR": -leads["aVR"] - np.floor_divide(i + ii, 2),
            "aVL": np.floor_divide(i - iii, 2) - leads["aVL"], "aVF": np.floor_divide(ii + iii, 2) - leads["aVF"]}


def write_sierra_xml(path: Path, leads_mv: dict[str, np.ndarray], rate: int, version: str = "1.04",
                     resolution_uv: float = 5.0) -> None:
    """A minimal Philips XML that sierraecg reads: 1.04 as UTF-16 with the resolution on
    <parsedwaveforms>, 1.03 as UTF-8 with <signalresolution>."""
    counts = {k: np.round(v * 1000 / resolution_uv).astype(np.int64) for k, v in leads_mv.items()}
    stored = _stored_limb_leads(counts)
    payload = base64.b64encode(b"".join(xli_encode(stored[name]) for name in STANDARD)).decode()
    n = len(next(iter(counts.values())))
    duration_ms = int(n * 1000 / rate)
    doc_type = "PhilipsECG" if version != "1.03" else "SierraECG"
    resolution_attr = f' resolution="{resolution_uv:g}"' if version != "1.03" else ""
    text = f"""<?xml version="1.0" encoding="{'UTF-16' if version != '1.03' else 'UTF-8'}"?>
<restingecgdata>
  <documentinfo><documenttype>{doc_type}</documenttype><documentversion>{version}</documentversion></documentinfo>
  <dataacquisition>
    <signalcharacteristics>
      <samplingrate>{rate}</samplingrate><signalresolution>{resolution_uv:g}</signalresolution>
      <acquisitiontype>STD-12</acquisitiontype><numberchannelsallocated>12</numberchannelsallocated>
    </signalcharacteristics>
  </dataacquisition>
  <waveforms>
    <parsedwaveforms dataencoding="Base64" compression="XLI" numberofleads="12" leadlabels="{' '.join(STANDARD)}"
      durationperchannel="{duration_ms}" samplespersecond="{rate}"{resolution_attr}>{payload}</parsedwaveforms>
  </waveforms>
</restingecgdata>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-16") if version != "1.03" else text.encode("utf-8"))


def write_mimic_record(root: Path, subject: int, study: int, leads_mv: dict[str, np.ndarray], rate: int) -> Path:
    """`p{subject // 10^4}/p{subject}/s{study}/{study}.hea/.dat`, leads in MIMIC-IV-ECG's order."""
    import wfdb

    folder = root / f"p{subject // 10_000}" / f"p{subject}" / f"s{study}"
    folder.mkdir(parents=True, exist_ok=True)
    signal = np.stack([leads_mv[name] for name in MIMIC_ORDER], axis=1)
    wfdb.wrsamp(str(study), fs=rate, units=["mV"] * 12, sig_name=list(MIMIC_ORDER), p_signal=signal,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    return folder / f"{study}.hea"


FAST_BPM = 75.0  # the demo label: a heart rate at or above it is `fast`


def make_demo_ecg(out: Path, folders: list[str], per_folder: int, seed: int, labels: Path | None = None) -> None:
    """WFDB records in the `pNNNN` folders, Philips XML in a `philips` folder, and one broken file of each.
    With `labels`, a CSV of every WFDB record's key (as discover names it), heart rate and `fast` (0/1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for fi, folder in enumerate(f for f in folders if f != "philips"):
        group = int(folder[1:])
        for i in range(per_folder):
            subject = group * 10_000 + 10 * fi + i
            seconds = 10.0 if i % 3 else float(rng.uniform(6, 9.5))  # some shorter than 10 s
            bpm = float(rng.uniform(55, 95))
            header = write_mimic_record(out, subject, 40_000_000 + subject % 10_000_000,
                                        synthetic_ecg(seconds, 500, rng, bpm), 500)
            shown = round(bpm, 1)  # the label follows the rate as written, so the table never contradicts itself
            rows.append((header.relative_to(out).as_posix(), shown, int(shown >= FAST_BPM)))
    if "philips" in folders:
        for i in range(per_folder):
            version = ("1.04", "1.03", "1.04.01")[i % 3]
            write_sierra_xml(out / "philips" / f"ecg_{i:04d}.xml", synthetic_ecg(11.0, 500, rng), 500, version)
        (out / "philips" / "ecg_broken.xml").write_text("<restingecgdata><documentinfo>")  # unclosed
    broken = sorted(out.glob("p*/p*/s*/*.dat"))[0]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])  # truncated signal file
    log.info("ECG demo under %s (one truncated WFDB record, one broken XML)", out)
    if labels is not None:
        labels.parent.mkdir(parents=True, exist_ok=True)
        with labels.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["key", "heart_rate_bpm", "fast"])
            writer.writerows(rows)
        log.info("labels of %d records in %s (fast: >= %g bpm)", len(rows), labels, FAST_BPM)


def make_tiny_ecg_models(out: Path, seed: int) -> None:
    """`ecgfounder.pth` ({'state_dict'}, a narrow Net1D) and `ecg_jepa.pt` (a narrow bias-free ViT in
    ECG-JEPA's pretrain.py layout: {'model': encoder.* and target_encoder.*, 'config', 'step'})."""
    from embedpipe.encoders.ecg_jepa.vit import EcgViT
    from embedpipe.encoders.ecgfounder.net1d import Net1D

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    net = Net1D(in_channels=12, base_filters=8, filter_list=(8, 16, 16, 24, 24, 32, 32),
                m_blocks_list=(1, 1, 1, 2, 1, 1, 1), groups_width=8, n_classes=5)
    torch.save({"state_dict": net.state_dict(), "epoch": 0}, out / "ecgfounder.pth")
    online, target = (EcgViT(dim=32, depth=2, heads=2, mlp_hidden=128, registers=1, bias=False) for _ in range(2))
    with torch.no_grad():
        for vit in (online, target):
            vit.registers.normal_(std=0.02)
    model = {f"{name}.{k}": v for name, vit in (("encoder", online), ("target_encoder", target))
             for k, v in vit.state_dict().items()}
    config = {"sampling_frequency": 500, "channels": ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4",
                                                      "V5", "V6"],
              "channel_size": 5000, "patch_size": 25, "dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.0,
              "qkv_bias": False, "num_registers": 1, "bias": False, "norm_eps": 1e-6, "layer_scale_eps": 0.0}
    torch.save({"model": model, "config": config, "step": 0}, out / "ecg_jepa.pt")
    log.info("tiny ECGFounder and ECG-JEPA checkpoints in %s", out)
