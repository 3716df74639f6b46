"""What `embedpipe doctor` looks at on a node, one probe a function, each returning report lines.

A probe never raises: a library that is missing or fails to load is a line saying so. Whether a missing
thing fails the report or only warns is the caller's (`doctor.py`): it depends on what the run needs.
No probe reads a Hub token's value: `token_lines` asks only whether the variable is set.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedpipe.runtime.runinfo import HUB_TOKEN_VARS, hub_token_file

GIB = 2**30
# The codecs a video dataset is likely to hold; AV1's software decoders are libdav1d and libaom (FFmpeg's
# own `av1` decoder decodes only through a hardware accelerator).
VIDEO_CODECS = {"h264": ("h264",), "hevc": ("hevc",), "av1": ("libdav1d", "libaom-av1"), "vp9": ("vp9", "libvpx-vp9"),
                "mpeg4": ("mpeg4",)}
# pydicom's pixel-data plugins: module → distribution (embedpipe's dependencies)
DICOM_PLUGINS = {"pylibjpeg": "pylibjpeg", "libjpeg": "pylibjpeg-libjpeg", "openjpeg": "pylibjpeg-openjpeg",
                 "rle": "pylibjpeg-rle"}


@dataclass(frozen=True)
class Found:
    """One probe's answer: `ok` False means absent or broken; `text` says what was found."""

    name: str
    ok: bool
    text: str


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load(module: str) -> tuple[Any | None, str]:
    """The module, or None and one line saying why (an ImportError of a missing shared library too)."""
    try:
        with warnings.catch_warnings():  # a library's deprecation warnings on import are not the report's
            warnings.simplefilter("ignore")
            return importlib.import_module(module), ""
    except Exception as exc:  # noqa: BLE001 — any failure to load is the answer
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def job_place() -> Found:
    """The host, and the SLURM job, partition and CPUs when in one."""
    host = socket.gethostname()
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return Found("host", True, f"{host}; not in a SLURM job")
    parts = [f"SLURM job {job}", f"partition {os.environ.get('SLURM_JOB_PARTITION', '?')}"]
    if cpus := os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE"):
        parts.append(f"{cpus} CPUs")
    if gpus := os.environ.get("SLURM_JOB_GPUS") or os.environ.get("SLURM_STEP_GPUS"):
        parts.append(f"GPUs {gpus}")
    return Found("host", True, f"{host}; {', '.join(parts)}")


@dataclass(frozen=True)
class Gpus:
    """What torch (and NVML, when installed) see: the build, the boards, the driver."""

    torch: Found
    cuda_build: str | None  # torch.version.cuda: None for a CPU build
    boards: list[str]  # one line per visible GPU
    driver: Found


def _nvml_driver() -> tuple[str | None, str | None]:
    """The driver's version and the newest CUDA it runs, from NVML (nvidia-ml-py, the [gpu] extra)."""
    nvml, _ = _load("pynvml")
    if nvml is None:
        return None, None
    try:
        nvml.nvmlInit()
        driver = nvml.nvmlSystemGetDriverVersion()
        cuda = nvml.nvmlSystemGetCudaDriverVersion()
    except Exception:  # noqa: BLE001 — no driver library on this machine
        return None, None
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    return driver, f"{cuda // 1000}.{cuda % 1000 // 10}"


def gpus() -> Gpus:
    torch, why = _load("torch")
    if torch is None:
        return Gpus(Found("torch", False, f"not importable ({why})"), None, [], Found("driver", False, "unknown"))
    build = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if build else None
    available = bool(build) and torch.cuda.is_available()
    text = f"{torch.__version__}, " + (f"CUDA {build} build (cuDNN {cudnn}), CUDA available: "
                                       f"{'yes' if available else 'no'}" if build else "CPU build (no CUDA)")
    boards = []
    if available:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            try:
                free, total = torch.cuda.mem_get_info(i)
                memory = f"{total / GIB:.1f} GiB total, {free / GIB:.1f} GiB free"
            except Exception as exc:  # noqa: BLE001 — a board taken by another process, in exclusive mode
                memory = f"{props.total_memory / GIB:.1f} GiB total, free unknown ({type(exc).__name__})"
            boards.append(f"cuda:{i} {props.name}, {memory}")
    driver, driver_cuda = _nvml_driver()
    if driver is None:
        installed = _version("nvidia-ml-py")
        note = ("NVML not loadable (no NVIDIA driver here)" if installed
                else "nvidia-ml-py not installed (the [gpu] extra)")
        return Gpus(Found("torch", True, text), build, boards, Found("driver", False, note))
    fits = build is None or _as_tuple(driver_cuda) >= _as_tuple(build)
    line = f"NVIDIA {driver}, runs CUDA up to {driver_cuda}"
    if not fits:
        line += (f": older than torch's CUDA {build} build (install a cu{driver_cuda.split('.')[0]}x torch for this "
                 "driver: make install-gpu TORCH_INDEX=...)")
    return Gpus(Found("torch", True, text), build, boards, Found("driver", fits, line))


def _as_tuple(version: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in (version or "0").split(".")[:2] if p.isdigit())


def decord() -> Found:
    module, why = _load("decord")
    return Found("decord", module is not None, f"{module.__version__}" if module else f"not importable ({why})")


def pyav() -> tuple[Found, list[Found]]:
    """PyAV and its FFmpeg; then one line per codec of VIDEO_CODECS: the decoder FFmpeg has for it."""
    av, why = _load("av")
    if av is None:
        return Found("PyAV", False, f"not importable ({why})"), []
    ffmpeg = getattr(av, "ffmpeg_version_info", None) or ".".join(map(str, av.library_versions.get("libavcodec", ())))
    codecs = []
    for codec, decoders in VIDEO_CODECS.items():
        have = [d for d in decoders if _has_decoder(av, d)]
        text = f"decoder {have[0]}" if have else f"no decoder ({' / '.join(decoders)})"
        codecs.append(Found(codec, bool(have), text))
    return Found("PyAV", True, f"{av.__version__}, FFmpeg {ffmpeg}"), codecs


def _has_decoder(av: Any, name: str) -> bool:
    try:
        av.codec.Codec(name, "r")
    except Exception:  # noqa: BLE001 — UnknownCodecError, or a PyAV that names it otherwise
        return False
    return True


def soundfile() -> Found:
    module, why = _load("soundfile")
    if module is None:
        return Found("soundfile", False, f"not importable ({why})")
    formats = sorted(module.available_formats())
    shown = [f for f in ("WAV", "FLAC", "OGG", "AIFF", "MP3") if f in formats]
    return Found("soundfile", True, f"{module.__version__}, libsndfile {module.__libsndfile_version__}: "
                                    f"{', '.join(shown)} (+{len(formats) - len(shown)} more)")


def dicom() -> tuple[Found, list[Found]]:
    module, why = _load("pydicom")
    if module is None:
        return Found("pydicom", False, f"not importable ({why})"), []
    plugins = []
    for name, dist in DICOM_PLUGINS.items():
        loaded, why = _load(name)
        text = (_version(dist) or "installed") if loaded else f"missing ({why})"
        plugins.append(Found(dist, loaded is not None, text))
    return Found("pydicom", True, module.__version__), plugins


def library(module: str, dist: str) -> Found:
    """Any other reader library: importable, and its version."""
    loaded, why = _load(module)
    return Found(dist, loaded is not None, (_version(dist) or "installed") if loaded else f"not importable ({why})")


def system_ffmpeg() -> Found:
    """The ffmpeg on PATH: the readers do not use it (PyAV's and decord's wheels bring their own FFmpeg)."""
    path = shutil.which("ffmpeg")
    if path is None:
        return Found("ffmpeg", False, "none on PATH")
    try:
        first = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=20).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        first = []
    return Found("ffmpeg", True, f"{first[0] if first else 'version unknown'} ({path})")


def writable(directory: str) -> Found:
    """Whether a job can write in `directory`: a temporary file there, or, where it does not exist yet, in
    the nearest folder above it that does (the job makes the rest). Nothing is left behind."""
    path = Path(directory).absolute()
    existing = path
    while not existing.is_dir():
        if existing.exists() or existing.parent == existing:
            return Found(directory, False, f"{existing} is not a folder")
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".embedpipe-doctor-"):
            pass
    except OSError as exc:
        return Found(directory, False, f"not writable: {exc.strerror or exc} ({existing})")
    where = "writable" if existing == path else f"absent; {existing} is writable (the run makes it)"
    return Found(directory, True, f"{where} ({path})" if existing == path else where)


def token_lines() -> list[Found]:
    """Each Hub token variable: set or not, by name. The value is never read beyond being non-empty."""
    found = [Found(var, bool(os.environ.get(var)), "set (value not shown)" if os.environ.get(var) else "not set")
             for var in HUB_TOKEN_VARS]
    stored = hub_token_file()
    found.append(Found("hf auth login", stored.is_file(), f"token file {stored} " +
                       ("present (value not shown)" if stored.is_file() else "absent")))
    return found


def python_line() -> Found:
    import embedpipe

    return Found("python", sys.version_info >= (3, 11), f"{sys.version.split()[0]} ({sys.executable}); "
                 f"embedpipe {embedpipe.__version__} ({Path(embedpipe.__file__).parent})")
