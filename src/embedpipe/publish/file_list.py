"""The dataset's file list (`<results_dir>/<run>/dataset.files.json`): the files the parquet rule wrote,
with their sizes. The parquet rule writes it; upload pushes exactly what it lists, after checking that
the folder holds those files and nothing else, each a regular file reached through no link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from embedpipe.store.atomic import write_text_atomic

# fnmatch reads these as patterns, and allow_patterns must match exactly the listed paths.
PATTERN_CHARS = set("*?[]\\")


class UnsafeFile(ValueError):
    """A file list entry that is not a plain file of the folder, or a folder holding more than its list."""


def _check_name(rel: Any) -> str:
    if not isinstance(rel, str) or not rel:
        raise UnsafeFile(f"{rel!r}: not a file path")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or PurePosixPath(rel).is_absolute():
        raise UnsafeFile(f"{rel}: an absolute path; the list names files relative to the folder")
    if ".." in parts:
        raise UnsafeFile(f"{rel}: goes up with '..'")
    if PATTERN_CHARS & set(rel) or PurePosixPath(rel).as_posix() != rel:
        raise UnsafeFile(f"{rel}: not a plain relative path (pattern characters, '.', '//' or a backslash)")
    return rel


def regular_file_size(root: Path, rel: str) -> int:
    """Size of `root/rel`, a regular file inside root reached through no link; raises UnsafeFile."""
    path = root
    for part in PurePosixPath(_check_name(rel)).parts:
        path = path / part
        if path.is_symlink():
            what = "is a symlink" if path == root / rel else f"has a symlinked parent ({path.relative_to(root)})"
            raise UnsafeFile(f"{rel}: {what}; only files the workflow wrote are uploaded")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeFile(f"{rel}: listed but not in {root}") from None
    if not path.resolve().is_relative_to(root):
        raise UnsafeFile(f"{rel}: resolves outside {root}")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{rel}: not a regular file")
    return st.st_size


def folder_contents(root: Path) -> set[str]:
    """Every file and link under root, relative to it; links are listed, never followed."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        links = [d for d in dirnames if (base / d).is_symlink()]
        found |= {(base / n).relative_to(root).as_posix() for n in [*filenames, *links]}
    return found


def write_file_list(folder: Path, files: list[str], out: Path) -> None:
    """Record the files the parquet rule wrote into `folder` (paths relative to it) and their sizes,
    atomically. Refuses (UnsafeFile) an entry that upload would refuse."""
    root = folder.resolve(strict=True)
    entries = [{"path": rel, "bytes": regular_file_size(root, rel)} for rel in sorted(set(files))]
    # `folder` as given, relative or not: upload runs from the same working directory, and a run folder
    # copied or moved whole keeps pointing at its own dataset folder.
    write_text_atomic(out, json.dumps({"folder": str(folder), "files": entries}, indent=2) + "\n")


def read_file_list(path: str | os.PathLike) -> tuple[Path, dict[str, int]]:
    """(folder, {relative path: bytes}) from a file list; raises UnsafeFile on a malformed one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        folder, entries = Path(data["folder"]), data["files"]
        listed = [(e["path"], e["bytes"]) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsafeFile(f"{path}: not a dataset file list ({exc})") from None
    sizes: dict[str, int] = {}
    for rel, size in listed:
        if _check_name(rel) in sizes:
            raise UnsafeFile(f"{rel}: listed twice in {path}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UnsafeFile(f"{rel}: size {size!r} is not a byte count")
        sizes[rel] = size
    return folder, sizes


def verify_folder(folder: Path, sizes: dict[str, int]) -> Path:
    """The folder holds exactly the listed files, each a regular file of the listed size. Returns it resolved
    (the folder itself may sit behind a link, e.g. results/ on a scratch filesystem)."""
    try:
        root = folder.resolve(strict=True)
    except OSError:
        raise UnsafeFile(f"{folder}: the dataset folder the file list names does not exist") from None
    for rel, size in sizes.items():
        if (actual := regular_file_size(root, rel)) != size:
            raise UnsafeFile(f"{rel}: {actual} bytes, but the file list says {size}; rebuild the dataset folder")
    if extra := sorted(folder_contents(root) - set(sizes)):
        raise UnsafeFile(f"{extra[0]}: in {folder} but not in the file list ({len(extra)} such); the folder must "
                         "hold exactly this run's files")
    return root
