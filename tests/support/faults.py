"""Fault injection for test_faults.py: the extract script run in forked processes that can be killed.

multiprocessing's forkserver imports torch, transformers and embedpipe once; every run is a fork
of that process: milliseconds to start instead of the seconds a fresh
interpreter spends importing torch, so a test can kill and rerun the script twenty times. The
forkserver runs no torch operation before it forks, so each run starts its own thread pools.

A run is the script's own `main(argv)`. A probe kills it for real (SIGKILL from the kernel, no
Python cleanup) at the n-th call of one of the places below, or sends SIGTERM as a scheduler does.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedpipe.extract import assemble, writer
from embedpipe.extract import loop as extract
from embedpipe.store import atomic
from embedpipe.store.atomic import TMP_MARK

SCRIPT = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "extract.py"
_spec = importlib.util.spec_from_file_location("extract_script", SCRIPT)
extract_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(extract_script)

# where a run can be killed: the file decode, an encoded batch still on its way to disk, the rename
# that completes any file (its temporary file is cut to half first: a write cut short), a chunk of
# the shard file written, a tokens file published, the parts about to be removed
PROBES = ("decode", "encode", "write", "assemble", "publish", "cleanup")


# What the forkserver imports (it does not see the tests folder on sys.path, so not this module)
PRELOAD = ["transformers.models.vjepa2.modeling_vjepa2", "embedpipe.encoders", "embedpipe.encoders.vjepa2",
           "embedpipe.extract.loop", "embedpipe.runtime.runinfo", "embedpipe.extract.gpu_slots", "pyarrow.parquet",
           "safetensors.numpy", "decord", "av", "tqdm"]


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _after(owner: Any, name: str, probe: str, hit: Callable[[Any], None], counts: Counter) -> None:
    """Wrap owner.name so that `hit(args)` runs after each call and counts it under `probe`."""
    real = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        counts[probe] += 1
        hit(counts[probe])
        return out

    setattr(owner, name, wrapped)


def _install(probe: tuple[str, int] | None, counts: Counter) -> None:
    target, nth = probe or ("", 0)

    def kill_at(name: str, sig: int = signal.SIGKILL) -> Callable[[int], None]:
        return lambda n: os.kill(os.getpid(), sig) if (name == target and n == nth) else None

    _after(extract.FileDataset, "__getitem__", "decode", kill_at("decode"), counts)
    _after(extract, "encode_or_split", "encode", kill_at("encode"), counts)
    _after(extract, "encode_or_split", "sigterm", kill_at("sigterm", signal.SIGTERM), counts)
    _after(assemble, "write_parquet", "assemble", kill_at("assemble"), counts)
    _after(writer, "publish", "publish", kill_at("publish"), counts)
    real_replace = atomic.os.replace

    def replace(src: Any, dest: Any) -> None:
        if TMP_MARK in Path(src).name:
            counts["write"] += 1
            if target == "write" and counts["write"] == nth:
                os.truncate(src, os.path.getsize(src) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dest)

    atomic.os = _OsWithReplace(replace)
    real_remove = writer.ShardWriter.remove_parts

    def remove_parts(self: writer.ShardWriter) -> None:
        counts["cleanup"] += 1
        if target == "cleanup":
            os.kill(os.getpid(), signal.SIGKILL)
        real_remove(self)

    writer.ShardWriter.remove_parts = remove_parts


class _OsWithReplace:
    """`os` as embedpipe.store.atomic sees it, with `replace` watched (the rest of the process keeps `os`)."""

    def __init__(self, replace: Callable[[Any, Any], None]) -> None:
        self.replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def run(argv: list[str], log_path: str, probe: tuple[str, int] | None = None, counts_path: str | None = None) -> None:
    """A forked run of the extract script; output to `log_path`, exit status the script's."""
    # A forked child inherits "forkserver" as its start method; the script, started by python, forks
    # its DataLoader workers (and a forkserver would outlive a killed run).
    multiprocessing.set_start_method("fork", force=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    counts: Counter = Counter()
    _install(probe, counts)
    code = extract_script.main(argv)
    if counts_path:
        Path(counts_path).write_text(json.dumps(counts))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
