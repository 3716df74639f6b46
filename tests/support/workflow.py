"""Running the workflow and its scripts from a test (snakemake, run_script), the shared folders, small disks."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


SCRIPTS = REPO / "workflow" / "scripts"


FIXTURES = REPO.parent / "shared" / "fixtures"


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ) | (extra or {})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_script(name: str, *args: str, check: bool = True, env: dict[str, str] | None = None,
               **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        env=run_env(env), capture_output=True, text=True, check=check, **kw,
    )


def snakemake(workdir: Path, *args: str, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        env=run_env(env), capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


CONFORMANCE = REPO.parent / "shared" / "conformance"


# CI sets EMBEDPIPE_FIXTURES=required: there a missing shared/fixtures or shared/conformance fails the
# tests that need it instead of skipping them (a user's clone has neither, and skips).
FIXTURES_REQUIRED = os.environ.get("EMBEDPIPE_FIXTURES") == "required"


def _shared_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        if FIXTURES_REQUIRED:
            pytest.fail(f"EMBEDPIPE_FIXTURES=required but {path} is absent ({what})")
        pytest.skip(f"{path} is absent: {what} come with the project's CI checkout")
    return path


def fixtures_dir(sub: str) -> Path:
    return _shared_dir(FIXTURES / sub, "the shared real-world fixtures")


def conformance_dir() -> Path:
    return _shared_dir(CONFORMANCE, "the reference conformance kit's official outputs")


def metis_encoder(root: Path, **options):
    """A loaded Metis encoder on the tiny checkpoint `tiny_metis` made."""
    import torch

    from embedpipe.encoders import build_encoder

    files = {"path": str(root), "codec_path": str(root / "semantic_codec" / "model.safetensors"),
             "stats_path": str(root / "wav2vec2bert_stats.pt")}
    encoder = build_encoder("metis", files | {"device": "cpu"} | options)
    encoder.model.ensure_loaded(torch.device("cpu"))
    return encoder


def tiny_encoders(tiny_model: Path, tiny_metis: Path, tiny_ecg: Path) -> dict:
    """One tiny encoder per modality (batch size 2, CPU), on the session's tiny checkpoints."""
    from embedpipe.encoders import build_encoder

    return {
        "video": build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "batch_size": 2, "device": "cpu"}),
        "audio": metis_encoder(tiny_metis, batch_size=2),
        "image": build_encoder("vjepa2", {"model": "t", "path": str(tiny_model), "media": "image", "image_frames": 2,
                                          "batch_size": 2, "device": "cpu"}),
        "ecg": build_encoder("ecgfounder", {"model": "t", "path": str(tiny_ecg / "ecgfounder.pth"), "batch_size": 2,
                                            "device": "cpu"}),
    }


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the filesystem up to `leave` bytes (whole pages) with one file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
        os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Root reads any file; drop this thread's permission override (CAP_DAC_*) so modes apply."""
    if os.geteuid() != 0:
        yield
        return

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    assert libc.capget(ctypes.byref(header), data) == 0
    saved = data[0].effective
    data[0].effective &= ~0b110  # CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2)
    assert libc.capset(ctypes.byref(header), data) == 0
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0


def planned_settings(dry_run: str, script: str) -> list[dict]:
    """The `--settings` block (one JSON value) of each `script` command a `snakemake -np` printed, with
    the command's own flags (`--threads`) under the key `flags`."""
    import json
    import shlex

    planned = []
    for line in dry_run.splitlines():
        if f"/{script} " not in line or "--settings=" not in line:
            continue
        words = shlex.split(line.split(">", 1)[0])
        settings = json.loads(next(w.split("=", 1)[1] for w in words if w.startswith("--settings=")))
        settings["flags"] = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--") and "=" in w}
        planned.append(settings)
    return planned
