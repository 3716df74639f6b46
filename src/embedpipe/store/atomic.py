"""Atomic writes: a file exists under its final name only once it is complete."""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
TMP_MARK = ".tmp-"
# safetensors (Rust's `tempfile`) writes `.tmpXXXXXX` beside the file it saves and then renames it: a
# job killed while saving a part's tokens leaves one in the parts folder, as large as the tokens.
SAFETENSORS_TMP = re.compile(r"\.tmp[A-Za-z0-9]{6}")


class OutputWriteError(OSError):
    """Writing an output failed (disk full, quota, I/O error); nothing was left under its name."""

    def __init__(self, dest: Path, cause: OSError) -> None:
        try:
            free = f"{shutil.disk_usage(dest.parent).free / 2**20:.1f} MiB free there"
        except OSError:
            free = "free space unknown"
        reason = os.strerror(cause.errno) if cause.errno else str(cause)  # pyarrow wraps it in prose
        super().__init__(cause.errno, f"could not write {dest}: {reason} ({free}); nothing was left under that name")
        self.dest = dest


@contextlib.contextmanager
def writing(dest: Path) -> Iterator[None]:
    """A write error raised here names `dest`, not the temporary file or staging folder it went to
    (or the innermost of nested atomic_paths)."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OutputWriteError) and exc.dest == dest:
            raise
        raise OutputWriteError(dest, exc) from exc


def out_of_space(exc: OSError) -> str | None:
    """A failed write's one line (`could not write <file>: <reason> …`) for a step's log, or None
    when `exc` is another error (a step re-raises those)."""
    if isinstance(exc, OutputWriteError):
        return exc.strerror
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"could not write {exc.filename}: {exc.strerror}"
    return None


def tmp_path_for(dest: Path) -> Path:
    # Same directory as the destination so os.replace is a rename, never a copy.
    return dest.with_name(f".{dest.name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success fsync it and rename it onto `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(dest)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise OutputWriteError(dest, exc) from exc
        raise


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside `dest`; on success it replaces `dest` by a rename, else it is removed,
    so a folder of outputs appears complete or not at all."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide a shared results folder from the group
    try:
        yield staging
        # The old folder is renamed aside before the new one goes in: removing it in place, a kill
        # would leave part of it under the final name, its README.md still there, looking complete.
        old = staging.with_name(f"{staging.name}.old")
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        _fsync_dir(dest.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_staged_leftovers(dest: str | os.PathLike) -> int:
    """The staging folders (`.<name>.*`, and their `.old` swaps) a killed staged_dir(dest) left; only
    for a destination one job at a time writes."""
    dest = Path(dest)
    removed = 0
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def remove_leftovers_of(*dests: str | os.PathLike) -> int:
    """At a step's start: the temporary files and staging folders a killed run of it left beside its
    outputs. Matched by each output's own name, never by folder: another step writing into the same
    folder at the same time keeps its temporaries (one output has one writer: Snakemake's rule)."""
    removed = 0
    for dest in map(Path, dests):
        if n := remove_stale_tmp_of(dest) + remove_staged_leftovers(dest):
            log.info("removed %d temporary file(s) a killed run left beside %s", n, dest)
            removed += n
    return removed


def write_text_atomic(dest: str | os.PathLike, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text_if_changed(dest: str | os.PathLike, text: str) -> bool:
    """Rewrite `dest` only when its content differs, so its mtime marks real changes."""
    dest = Path(dest)
    if dest.exists() and dest.read_text(encoding="utf-8") == text:
        return False
    write_text_atomic(dest, text)
    return True


def remove_stale_tmp(directory: Path) -> int:
    """Delete temporary files a killed writer left behind (ours and safetensors'), and temporary
    folders (an assembly's spill, `.assemble-spill.tmp-<pid>/`); they never hold complete data. Only
    for folders one job owns (a shard's parts, its tokens folder)."""
    removed = 0
    if directory.is_dir():
        for p in directory.iterdir():
            if (TMP_MARK in p.name and p.name.startswith(".")) or SAFETENSORS_TMP.fullmatch(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed += 1
    return removed


def remove_stale_tmp_of(dest: Path) -> int:
    """Delete the temporary files of `dest` that a killed writer left (its own name only: other
    jobs may be writing theirs in the same folder)."""
    removed = 0
    for p in dest.parent.glob(f".{glob.escape(dest.name)}{TMP_MARK}*"):
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
