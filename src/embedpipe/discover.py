"""Scan an input tree once and assign every file to a shard manifest."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from embedpipe.atomic import write_text_if_changed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    """How files map to shards: by top-level folder, or by a stable hash into N buckets."""

    by: str  # "folder" | "hash"
    folders: tuple[str, ...] = ()
    num_shards: int = 1

    def shard_ids(self) -> list[str]:
        if self.by == "folder":
            return sorted(self.folders)
        width = max(3, len(str(self.num_shards - 1)))
        return [f"shard-{i:0{width}d}" for i in range(self.num_shards)]

    def shard_of(self, key: str) -> str | None:
        if self.by == "folder":
            top = key.split("/", 1)[0]
            return top if "/" in key and top in self.folders else None
        return self.shard_ids()[hash_bucket(key, self.num_shards)]


def hash_bucket(key: str, n: int) -> int:
    # sha1, not hash(): Python's str hash is salted per process, shards must not move between runs.
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % n


def list_top_folders(input_dir: str | os.PathLike) -> list[str]:
    """Top-level folders of the input root: the shards of a folder-sharded dataset."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir {str(root)!r} is not a directory")
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def normalise_extensions(extensions: list[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def scan_files(root: str | os.PathLike, extensions: list[str], subdir: str | None = None) -> list[str]:
    """Relative keys (POSIX, relative to `root`) of all files with one of `extensions`, sorted."""
    root = Path(root)
    exts = normalise_extensions(extensions)
    start = root / subdir if subdir else root
    keys: list[str] = []
    skipped = 0
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(exts):
                continue
            key = Path(dirpath, name).relative_to(root).as_posix()
            if "\n" in key or "\r" in key:
                # Keys are stored one per line; a newline in a file name cannot be represented.
                skipped += 1
                log.warning("skipping file with a newline in its name: %r", key)
                continue
            keys.append(key)
    if skipped:
        log.warning("%d file(s) skipped for newlines in their names", skipped)
    return sorted(keys)


def _flatten_paths(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _flatten_paths(v)]
    raise ValueError(f"expected a path or a list of paths, got {type(value).__name__}")


def keys_from_hf_dataset(dataset: str, split: str, column: str, input_dir: str | os.PathLike) -> list[str]:
    """The files a Hugging Face dataset lists in `column` (str, list[str] or list[list[str]] per row),
    as keys: relative to `input_dir` when they lie under it (or are relative), else absolute."""
    import datasets

    if Path(dataset).is_dir():
        ds = datasets.load_from_disk(dataset)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    else:
        ds = datasets.load_dataset(dataset, split=split)
    if column not in ds.column_names:
        raise ValueError(f"hf_dataset.column: {column!r} is not a column of {dataset} ({ds.column_names})")
    root = Path(input_dir).resolve()
    keys = set()
    for value in ds[column]:
        for path in _flatten_paths(value):
            p = Path(path)
            if p.is_absolute():
                try:
                    path = p.resolve().relative_to(root).as_posix()
                except ValueError:
                    path = p.as_posix()
            keys.add(path)
    return sorted(keys)


def assign_shards(keys: list[str], spec: ShardSpec) -> tuple[dict[str, list[str]], list[str]]:
    """Split sorted keys into shards; keys that belong to no shard are returned separately."""
    shards: dict[str, list[str]] = {s: [] for s in spec.shard_ids()}
    outside: list[str] = []
    for key in keys:
        shard = spec.shard_of(key)
        if shard is None:
            outside.append(key)
        else:
            shards[shard].append(key)
    return shards, outside


def write_manifests(shards: dict[str, list[str]], manifest_dir: str | os.PathLike) -> dict[str, bool]:
    """Write one manifest per shard; unchanged manifests keep their mtime (nothing reruns)."""
    out = {}
    for shard, keys in shards.items():
        text = "".join(f"{k}\n" for k in keys)
        out[shard] = write_text_if_changed(Path(manifest_dir) / f"{shard}.txt", text)
    return out


def read_manifest(path: str | os.PathLike) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


def discover_shards(
    input_dir: str | os.PathLike, extensions: list[str], spec: ShardSpec, manifest_dir: str | os.PathLike,
    keys: list[str] | None = None,
) -> dict[str, list[str]]:
    """Scan once (or take the listed `keys`), write the manifests, return them."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir {str(root)!r} is not a directory")
    if keys is None:
        keys = scan_files(root, extensions)
    shards, outside = assign_shards(keys, spec)
    if outside:
        log.warning(
            "%d file(s) lie outside the configured shard folders and are not embedded, e.g. %s",
            len(outside), outside[:3],
        )
    changed = write_manifests(shards, manifest_dir)
    for shard, keys_ in shards.items():
        log.info("%s: %d files (%s)", shard, len(keys_), "rewritten" if changed[shard] else "unchanged")
    return shards
