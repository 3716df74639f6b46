"""Logging set-up and the provenance every output carries."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import embedpipe

# The environment variables huggingface_hub takes a token from. Only the upload job needs one: SLURM
# submissions leave them out (workflow/submit/sbatch), and an extract job says whether it has one.
HUB_TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hub_token_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where `hf auth login` keeps its token, as huggingface_hub looks for it: HF_TOKEN_PATH, else
    <HF_HOME>/token, HF_HOME defaulting to <XDG_CACHE_HOME or ~/.cache>/huggingface."""
    if path := environ.get("HF_TOKEN_PATH"):
        return Path(path)
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(environ.get("HF_HOME") or os.path.join(cache, "huggingface")) / "token"


def submit_without_hub_token(shim_dir: str) -> bool:
    """With a Hub token in this (the submitting) process's environment, put `shim_dir` first on PATH: its
    `sbatch` runs the real one (found here, first, and named in EMBEDPIPE_REAL_SBATCH) without the token,
    as the SLURM plugin submits with --export=ALL. True if it did; not where SLURM is not installed."""
    if not any(os.environ.get(v) for v in HUB_TOKEN_VARS):
        return False
    shim = os.path.realpath(shim_dir)
    search = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) != shim]
    real = shutil.which("sbatch", path=os.pathsep.join(search))
    if real is None:
        return False
    os.environ["EMBEDPIPE_REAL_SBATCH"] = os.path.abspath(real)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != shim_dir:
        os.environ["PATH"] = os.pathsep.join([shim_dir, *filter(None, [os.environ.get("PATH")])])
    return True


PACKAGES = ("torch", "transformers", "decord", "soundfile", "soxr", "pyarrow", "numpy")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What LOG_FORMAT puts before each message (asctime's default form), for what reads the jobs' logs: the
# planner's timings (plan/timings.py) and the console's failure lines (runtime/failed_jobs.py).
LOG_PREFIX = r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>\w+) (?P<logger>[\w.]+): "


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
        force=True,
    )


def package_versions() -> dict[str, str]:
    versions = {"embedpipe": embedpipe.__version__, "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
