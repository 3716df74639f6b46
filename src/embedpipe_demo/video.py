"""The embedded demo: a small MIMIC-IV-Echo-shaped tree of real H.264 videos and DICOM cines, and a
tiny V-JEPA 2.

Everything is generated from a seed, so the demo needs nothing but the installed packages.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedpipe.store.atomic import atomic_path

log = logging.getLogger(__name__)

SHAPES = [(96, 128), (112, 80), (120, 160), (72, 96), (128, 128)]  # (height, width)


@dataclass(frozen=True)
class DemoVideo:
    key: str
    subject_id: int
    study_id: int
    dicom_id: str
    frames: int
    height: int
    width: int
    dicom: str | None = None  # rle | native | still: written as a DICOM file, as MIMIC-IV-Echo ships them


DICOM_KINDS = ("rle", "native", "still")


def plan_videos(folders: list[str], per_folder: int, seed: int, dicom_every: int = 0) -> list[DemoVideo]:
    """`dicom_every` > 0: every such clip of a folder is a DICOM cine (RLE, uncompressed, or a one-frame still)."""
    rng = np.random.default_rng(seed)
    videos = []
    for fi, folder in enumerate(folders):
        prefix = int(folder[1:])
        for i in range(per_folder):
            subject = prefix * 1_000_000 + 1000 * fi + i // 3  # three clips per subject
            study = 90_000_000 + 1000 * fi + 10 * (i // 3) + (i % 3 == 2)  # some subjects: two studies
            dicom_id = f"{study}_{i + 1:04d}"
            h, w = SHAPES[(fi + i) % len(SHAPES)]
            frames = int(rng.integers(10, 48))
            dicom = None
            if dicom_every and i % dicom_every == dicom_every - 1:
                dicom = DICOM_KINDS[(fi + i // dicom_every) % len(DICOM_KINDS)]
                frames = 1 if dicom == "still" else frames
            key = f"{folder}/p{subject}/s{study}/{dicom_id}.{'dcm' if dicom else 'mp4'}"
            videos.append(DemoVideo(key, subject, study, dicom_id, frames, h, w, dicom))
    return videos


def render_frames(video: DemoVideo, seed: int) -> np.ndarray:
    """A bright disc moving across a tinted gradient with noise: content that changes over time."""
    rng = np.random.default_rng(seed)
    h, w, n = video.height, video.width, video.frames
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tint = rng.uniform(40, 160, size=3).astype(np.float32)
    base = (tint[None, None, :] * (0.5 + 0.5 * xx[..., None] / w)).astype(np.float32)
    vx, vy = rng.uniform(-3, 3, size=2)
    cx, cy, radius = w / 2, h / 2, min(h, w) / (4 + rng.uniform(0, 3))
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        x, y = (cx + vx * t) % w, (cy + vy * t) % h
        disc = ((xx - x) ** 2 + (yy - y) ** 2) < radius**2
        img = base + rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)
        img[disc] = 235.0
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_h264(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    import av

    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_demo_data(out_dir: Path, folders: list[str], per_folder: int, seed: int = 0) -> dict[str, int]:
    """Videos under out_dir/mp4/ (every fourth one a DICOM cine), two corrupt files, and the two
    MIMIC-IV-Echo CSVs."""
    from embedpipe_demo.dicom import write_dicom_cine

    mp4_root = out_dir / "mp4"
    videos = plan_videos(folders, per_folder, seed, dicom_every=4)
    for i, video in enumerate(videos):
        frames = render_frames(video, seed * 1000 + i)
        if video.dicom:
            write_dicom_cine(mp4_root / video.key, frames, 25.0, video.dicom == "rle", video.key)
        else:
            write_h264(mp4_root / video.key, frames)
    # Two corrupt inputs: a truncated MP4 (its moov atom is lost, as in an interrupted copy) and
    # a text file with an .mp4 name.
    mp4s = [v for v in videos if not v.dicom]  # the two corrupt files stay MP4s whatever per_folder is
    victim = next(v for v in videos[per_folder + 1:] + mp4s if not v.dicom)
    data = (mp4_root / victim.key).read_bytes()
    (mp4_root / victim.key).write_bytes(data[: len(data) // 3])
    bogus = mp4s[-1]
    (mp4_root / bogus.key).write_text("this is not a video\n")
    write_echo_csvs(out_dir, videos, seed)
    log.info("demo data: %d videos (%d DICOM, 2 corrupt) in %s", len(videos), sum(bool(v.dicom) for v in videos),
             mp4_root)
    return {"videos": len(videos), "corrupt": 2}


def write_echo_csvs(out_dir: Path, videos: list[DemoVideo], seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    with atomic_path(out_dir / "echo-record-list.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"])
        for v in videos:
            minute = int(rng.integers(0, 60))
            dicom_path = f"files/{v.key.split('/')[0]}/p{v.subject_id}/s{v.study_id}/{v.dicom_id}.dcm"
            w.writerow([v.subject_id, v.study_id, f"2180-07-{10 + v.study_id % 9:02d} 10:{minute:02d}:00", dicom_path])
    studies = sorted({(v.subject_id, v.study_id) for v in videos})
    with atomic_path(out_dir / "echo-study-list.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject_id", "study_id", "study_datetime", "note_id", "note_seq", "note_charttime"])
        for j, (subject, study) in enumerate(studies):
            dt = f"2180-07-{10 + study % 9:02d} 09:00:00"
            if j % 3 == 2:  # no report for this study: nulls, as in the real list
                w.writerow([subject, study, dt, "", "", ""])
            else:
                charttime = f"2180-07-{11 + study % 9:02d} 12:00:00"
                w.writerow([subject, study, dt, f"{subject}-EC-{j + 1}", j + 1, charttime])


def make_tiny_vjepa2(out_dir: Path, seed: int = 0, crop: int = 64, hidden: int = 32, layers: int = 2) -> Path:
    """A random-weight V-JEPA 2 of the real architecture, saved the way hub checkpoints are."""
    import torch
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(seed)
    config = VJEPA2Config(
        crop_size=crop, frames_per_clip=16, patch_size=16, tubelet_size=2,
        hidden_size=hidden, num_attention_heads=2, num_hidden_layers=layers, mlp_ratio=2.0,
        pred_hidden_size=16, pred_num_attention_heads=2, pred_num_hidden_layers=1, num_pooler_layers=1,
    )
    model = VJEPA2Model(config).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    return out_dir
