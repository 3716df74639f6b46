"""Names for the exports that write one file per key (ECGFounder's JSON, DeepEarth's `.pt`).

The old scripts named each file after the input's file name alone (`deid_3.xml` → `deid_3.json`),
so two inputs that share that name overwrote each other. Here every key keeps the old name where no
other key of the export shares it (downstream tools look files up by it); the keys that would share
one get their whole key instead, extension and folders included (`a/rec.hea` → `a/rec.hea.json`),
which no two keys share. Every name is checked to lie inside the export's folder before anything
is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath


class ExportError(ValueError):
    """An export that would lose or misplace a file; its message names the key."""


def has_unsafe_part(path: str) -> bool:
    """Whether a `/`-separated path (a leading `/` aside) has a `..`, `.` or empty part: a file named
    after it would not stay in the folder it is written under. Discover leaves such keys out."""
    return any(part in ("", ".", "..") for part in path.removeprefix("/").split("/"))


def inside(folder: Path, name: str, key: str) -> Path:
    """`folder / name`, refused unless it lies inside `folder`: no absolute name, no `..`, `.` or empty
    component, and nothing that resolves elsewhere (a link inside the folder)."""
    if name.startswith("/") or has_unsafe_part(name):
        raise ExportError(f"key {key!r}: its file name {name!r} would not lie inside {str(folder)!r}; "
                          "keys with '..', '.', empty or absolute parts are not exported")
    target = folder / name
    root = folder.resolve()
    resolved = target.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ExportError(f"key {key!r}: {str(target)!r} resolves to {str(resolved)!r}, outside {str(folder)!r}")
    return target


def whole_key(key: str) -> str:
    """The key as a relative path (an absolute key without its leading `/`), as given otherwise:
    `inside` refuses what it cannot place."""
    path = PurePosixPath(key)
    return path.relative_to(path.anchor).as_posix() if path.is_absolute() else key


def unique_names(keys: Iterable[str], old_name: Callable[[str], str], suffix: str,
                 folder: str = "") -> dict[str, str]:
    """Per key, the file name relative to the export's folder: `old_name(key) + suffix` where that is
    unique, else `whole_key(key) + suffix`, less `folder/` where the export is one folder's (a shard's).
    Two keys still left with one name are refused, naming both."""
    keys = list(dict.fromkeys(keys))
    short = {k: old_name(k) + suffix for k in keys}
    shared = Counter(short.values())
    prefix = f"{folder}/" if folder else ""
    names = {k: short[k] if shared[short[k]] == 1 else whole_key(k).removeprefix(prefix) + suffix for k in keys}
    seen: dict[str, str] = {}
    for key, name in names.items():
        if (other := seen.setdefault(name, key)) != key:
            raise ExportError(f"keys {other!r} and {key!r} would both be written as {name!r}; nothing was written")
    return names
