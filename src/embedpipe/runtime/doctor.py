"""`python -m embedpipe doctor`: what a job will find on this node, as one readable report.

torch and its CUDA build, the visible GPUs and their memory, the NVIDIA driver, the decoders the readers
use (decord, PyAV and its FFmpeg's codecs, libsndfile, pydicom's plugins, Pillow's), whether the results
and log folders are writable, and the Hub token's presence by variable name (never its value).

Each line is ok, warn or fail. Given a run's config (`--config`, or the flags the `doctor` rule passes),
a line fails when the run needs what is missing (encoder.device cuda and no GPU visible, a decoder its
media needs, a folder it cannot write); the exit status is then 1. Without a config it only reports.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from embedpipe.runtime import doctor_probes as probe
from embedpipe.runtime.doctor_probes import Found

# The config every run starts from, beside the package in a checkout (pip install -e): the defaults of
# results_dir, logs_dir and the encoder. Absent in a plain install: then only the given files count.
BASE_CONFIG = Path(__file__).resolve().parents[3] / "config" / "config.yaml"
# What each encoder family reads; vjepa2 reads video or photos (encoder.media).
FAMILY_MEDIA = {"metis": "audio", "ecgfounder": "ecg", "ecg_jepa": "ecg"}
# The libraries each medium's readers cannot do without: (module, distribution).
MEDIA_LIBRARIES = {
    "image": [("PIL", "pillow"), ("pillow_heif", "pillow-heif"), ("simplejpeg", "simplejpeg")],
    "ecg": [("wfdb", "wfdb"), ("sierraecg", "sierraecg")],
}
REQUIRED_CODECS = ("h264",)  # every MP4 of the video datasets so far; the others warn when absent


@dataclass(frozen=True)
class Needs:
    """What the configured run needs. `configured` False: no config, nothing can fail but torch."""

    configured: bool = False
    device: str | None = None  # encoder.device
    require_gpu: bool = False  # extract.require_gpu
    media: str | None = None  # video | image | audio | ecg
    dicom: bool = False  # DICOM cines among the inputs (extensions list .dcm)
    upload: bool = False  # upload.repo_id set and not a dry run: the upload job needs a token
    dirs: dict[str, str] = field(default_factory=dict)  # results_dir / logs_dir → the path
    dirs_given: frozenset[str] = frozenset()  # the folders named by a flag: checked even without a config


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's --configfile merge: key by key, nested blocks too."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def needs_of(config_files: list[str], given: dict[str, Any] | None = None) -> Needs:
    """The Needs of a run configured by `config_files` (over config/config.yaml where it is found), then
    `given` (the doctor rule's: the run's config as Snakemake merged it, its run folders as the dirs)."""
    config: dict[str, Any] = {}
    for path in ([BASE_CONFIG] if BASE_CONFIG.is_file() else []) + [Path(p) for p in config_files]:
        config = _merged(config, yaml.safe_load(path.read_text()) or {})
    config = _merged(config, given or {})
    if not config_files and not given:
        return Needs(dirs={k: config[k] for k in ("results_dir", "logs_dir") if k in config})
    encoder = config.get("encoder") or {}
    defaults = _family_defaults(encoder.get("name"))
    name = encoder.get("name")
    media = FAMILY_MEDIA.get(name) or encoder.get("media") or defaults.get("media")
    extensions = [e.lower() for e in config.get("extensions") or []]
    upload = config.get("upload") or {}
    return Needs(
        configured=True,
        device=str(encoder.get("device") or defaults.get("device") or "auto"),
        require_gpu=bool((config.get("extract") or {}).get("require_gpu")),
        media=media,
        dicom=media == "video" and ".dcm" in extensions,
        upload=bool(upload.get("repo_id")) and not upload.get("dry_run"),
        dirs={k: config[k] for k in ("results_dir", "logs_dir") if k in config},
    )


def _family_defaults(name: str | None) -> dict[str, Any]:
    from embedpipe.encoders import FAMILIES, family  # torch-free: the families' schemas

    return family(name).defaults() if name in FAMILIES else {}


@dataclass
class Report:
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (status, what, text)

    def add(self, found: Found, needed: bool, what: str | None = None) -> None:
        self.lines.append(("ok" if found.ok else "fail" if needed else "warn", what or found.name, found.text))

    def say(self, status: str, what: str, text: str) -> None:
        self.lines.append((status, what, text))

    def failed(self) -> bool:
        return any(status == "fail" for status, _, _ in self.lines)

    def text(self, heading: str) -> str:
        width = max(len(what) for _, what, _ in self.lines)
        body = [f"  {status:<4}  {what:<{width}}  {text}" for status, what, text in self.lines]
        counts = {s: sum(1 for status, _, _ in self.lines if status == s) for s in ("ok", "warn", "fail")}
        verdict = ("the run as configured needs what is marked fail" if counts["fail"] else
                   "nothing the configured run needs is missing" if heading.endswith("]") else
                   "a report only: give --config <run.yaml> to check what a run needs")
        summary = f"doctor: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail: {verdict}"
        return "\n".join([heading, *body, summary]) + "\n"


def device_lines(report: Report, needs: Needs, gpus: probe.Gpus) -> None:
    """torch, the GPUs, the driver, and encoder.device against what was found."""
    report.add(gpus.torch, needed=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = f"CUDA_VISIBLE_DEVICES={visible if visible is not None else 'unset'}"
    for board in gpus.boards:
        report.say("ok", "gpu", f"{board} ({shown})")
    wants_gpu = needs.require_gpu or (needs.device or "").startswith("cuda")
    if not gpus.boards:
        why = "torch is a CPU build" if gpus.torch.ok and gpus.cuda_build is None else "none visible"
        report.say("ok" if needs.device == "cpu" else "warn", "gpu", f"no GPU: {why} ({shown})")
    # never fails by itself: NVML is optional, and a driver too old for torch's CUDA leaves no GPU visible,
    # which the encoder.device line fails on; no GPU and no driver: nothing for a driver to run
    if gpus.boards or gpus.driver.ok:
        report.add(gpus.driver, needed=False, what="nvidia driver")
    else:
        report.say("ok", "nvidia driver", gpus.driver.text)
    if not needs.configured:
        return
    device, count = needs.device or "auto", len(gpus.boards)
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    if device == "cpu":
        status = "fail" if needs.require_gpu else "ok"
        text = "cpu" + (", but extract.require_gpu is set" if needs.require_gpu else
                        f" (the run leaves the {count} visible GPU(s) unused)" if count else "")
    elif count > index:
        status, text = "ok", f"{device}: runs on cuda:{index}"
    elif wants_gpu:
        build = "torch is a CPU build (make install-gpu)" if gpus.cuda_build is None else "no GPU visible"
        asked = f"encoder.device {device}" if device.startswith("cuda") else "extract.require_gpu"
        status, text = "fail", f"{asked} but {build if not count else f'only {count} GPU(s) visible'} ({shown})"
    else:
        status, text = "warn", f"{device} but no GPU visible: the run would embed on the CPU ({shown})"
    report.say(status, "encoder.device", text)


def decoder_lines(report: Report, needs: Needs) -> None:
    video, audio = needs.media == "video", needs.media == "audio"
    report.add(probe.decord(), needed=video)
    av, codecs = probe.pyav()
    report.add(av, needed=video or audio)
    for codec in codecs:
        report.add(codec, needed=video and codec.name in REQUIRED_CODECS, what=f"  {codec.name}")
    report.add(probe.soundfile(), needed=audio)
    dicom, plugins = probe.dicom()
    report.add(dicom, needed=needs.dicom or needs.media == "ecg")
    for plugin in plugins:
        report.add(plugin, needed=False, what=f"  {plugin.name}")
    for media, libraries in MEDIA_LIBRARIES.items():
        for module, dist in libraries:
            report.add(probe.library(module, dist), needed=needs.media == media)
    ffmpeg = probe.system_ffmpeg()
    report.say("ok", "ffmpeg", f"{ffmpeg.text}; not used: PyAV and decord bring their own FFmpeg")


def folder_lines(report: Report, needs: Needs) -> None:
    for key, path in needs.dirs.items():
        report.add(probe.writable(path), needed=needs.configured or key in needs.dirs_given, what=key)


def token_lines(report: Report, needs: Needs) -> None:
    """Each token variable by name, set or not; one warn line when the run uploads and none is here."""
    found = probe.token_lines()
    for f in found:
        report.say("ok", f.name, f.text)
    if needs.upload and not any(f.ok for f in found):
        if os.environ.get("SLURM_JOB_ID"):
            report.say("ok", "hub token", "none in this SLURM job, as meant: only upload, run where Snakemake "
                                          "runs, needs one (jobs are submitted without it)")
        else:
            report.say("warn", "hub token", "upload.repo_id is set but no token is here: `snakemake upload` "
                                            "needs HF_TOKEN or `hf auth login` where Snakemake runs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedpipe doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="the run's config file (as snakemake's --configfile; repeatable): what it needs "
                             "fails the report when missing")
    parser.add_argument("--config-json", type=json.loads, metavar="JSON",
                        help="config keys as one JSON value, over the files (the doctor rule passes the run's)")
    parser.add_argument("--results-dir", help="results_dir to check (default: the config's)")
    parser.add_argument("--logs-dir", help="logs_dir to check (default: the config's)")
    parser.add_argument("--device", help="encoder.device (default: the config's)")
    parser.add_argument("--require-gpu", action="store_true", default=None, help="extract.require_gpu")
    parser.add_argument("--media", choices=["video", "image", "audio", "ecg"], help="what the run reads")
    parser.add_argument("--dicom", action="store_true", default=None, help="DICOM cines among the videos")
    return parser


def needs_from_args(args: argparse.Namespace) -> Needs:
    needs = needs_of(args.config, args.config_json)
    given = {k: v for k, v in (("results_dir", args.results_dir), ("logs_dir", args.logs_dir)) if v}
    flags = {k: v for k, v in (("device", args.device), ("require_gpu", args.require_gpu), ("media", args.media),
                               ("dicom", args.dicom)) if v is not None}
    configured = needs.configured or bool(flags)
    return replace(needs, **flags, configured=configured, dirs={**needs.dirs, **given}, dirs_given=frozenset(given))


def report_for(needs: Needs) -> Report:
    report = Report()
    report.add(probe.python_line(), needed=True)
    report.add(probe.job_place(), needed=False)
    device_lines(report, needs, probe.gpus())
    decoder_lines(report, needs)
    folder_lines(report, needs)
    token_lines(report, needs)
    return report


def main(argv: list[str] | None = None) -> int:
    needs = needs_from_args(build_parser().parse_args(argv))
    report = report_for(needs)
    what = (f"[device {needs.device or 'auto'}, {needs.media or 'any'} media"
            f"{', DICOM' if needs.dicom else ''}]" if needs.configured else "(no config: a report only)")
    print(report.text(f"embedpipe doctor: what a job finds here {what}"), end="", flush=True)
    return 1 if report.failed() else 0
