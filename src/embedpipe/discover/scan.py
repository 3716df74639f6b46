"""Scan an input tree once and assign every file to a shard manifest."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from embedpipe.discover.exclusions import Exclusions
from embedpipe.readers.sniff import has_dicom_preamble
from embedpipe.store.atomic import write_text_if_changed
from embedpipe.store.export_names import has_unsafe_part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    """How files map to shards: by top-level folder, or by a stable hash into N buckets. More folders
    than `max_shards` (0: no limit) are grouped: each folder whole into one of `max_shards` shards
    (`folders-NNN`) by a stable hash of its name, so a folder added later changes only its own shard."""

    by: str  # "folder" | "hash"
    folders: tuple[str, ...] = ()
    num_shards: int = 1
    max_shards: int = 0

    @property
    def grouped(self) -> bool:
        return self.by == "folder" and 0 < self.max_shards < len(self.folders)

    def group_of(self, folder: str) -> str:
        return f"folders-{hash_bucket(folder, self.max_shards):0{max(3, len(str(self.max_shards - 1)))}d}"

    def shard_ids(self) -> list[str]:
        if self.grouped:
            return sorted({self.group_of(f) for f in self.folders})  # a group no folder hashes to is no shard
        if self.by == "folder":
            return sorted(self.folders)
        return [self._bucket_id(i) for i in range(self.num_shards)]

    def _bucket_id(self, i: int) -> str:
        return f"shard-{i:0{max(3, len(str(self.num_shards - 1)))}d}"

    def shard_of(self, key: str) -> str | None:
        if self.by == "folder":
            top = key.split("/", 1)[0]
            if "/" not in key or top not in self._folder_set:
                return None
            return self.group_of(top) if self.grouped else top
        return self._bucket_id(hash_bucket(key, self.num_shards))  # not shard_ids()[…]: once per key

    @cached_property
    def _folder_set(self) -> frozenset[str]:
        return frozenset(self.folders)


def hash_bucket(key: str, n: int) -> int:
    # sha1, not hash(): Python's str hash is salted per process, shards must not move between runs.
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % n


def list_top_folders(input_dir: str | os.PathLike) -> list[str]:
    """Top-level folders of the input root: the shards of a folder-sharded dataset."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir {str(root)!r} is not a directory")
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


# Snakemake's own marker in a folder a rule made (directory() outputs: the demo's input folder; a
# user's own rule that writes input_dir): its mtime stands for the folder's. Not an input file, so not
# counted as one the scan skipped (the demo's card said "1 with other extensions").
SNAKEMAKE_MARKERS = frozenset({".snakemake_timestamp"})
DICOM_EXTENSION = ".dcm"
WFDB_HEADER = ".hea"


def normalise_extensions(extensions: list[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


class DiscoverError(ValueError):
    """The input does not match the configuration (a listed folder missing or empty, loose files)."""


def scan_tree(root: str | os.PathLike, extensions: list[str], subdir: str | None = None,
              exclusions: Exclusions | None = None) -> list[str]:
    """Relative keys (POSIX, relative to `root`) of all files with one of `extensions`, sorted.
    What is left out is recorded in `exclusions`. Top-level folders are entered even when they are
    links (data on another disk); deeper links to folders are listed, not entered (no loops, no file
    twice). A folder that cannot be read stops the scan: its files would fall out of every count."""
    root = Path(root)
    exts = normalise_extensions(extensions)
    dicom = DICOM_EXTENSION in exts  # then files with no extension are DICOM if their content says so
    out = exclusions if exclusions is not None else Exclusions()
    if subdir:
        starts = [root / subdir]
    else:
        starts = [root] + [Path(e.path) for e in os.scandir(root) if e.is_symlink() and e.is_dir()
                           and not e.name.startswith(".")]
    keys: list[str] = []
    for start in starts:
        for dirpath, dirnames, filenames in os.walk(start, onerror=_unreadable, followlinks=False):
            here = Path(dirpath)
            top = here == root
            entered = []
            for d in dirnames:
                rel = (here / d).relative_to(root).as_posix()
                if d.startswith("."):
                    out.hidden_folders.append(rel)
                elif not (here / d).is_symlink():
                    entered.append(d)
                elif not top:  # top-level links are walked as starts of their own
                    out.linked_folders.append(rel)
            dirnames[:] = entered
            records = wfdb_records(filenames) if WFDB_HEADER in exts else set()
            for name in filenames:
                if name in SNAKEMAKE_MARKERS:
                    continue
                if not name.lower().endswith(exts) and not (dicom and is_unnamed_dicom(here / name)):
                    stem, ext = os.path.splitext(name)
                    out.by_extension[ext.lower()] += 1
                    if stem in records:
                        out.companions[ext.lower()] += 1
                    continue
                key = (here / name).relative_to(root).as_posix()
                if name.startswith("."):
                    out.hidden.append(key)
                elif representable(key, out):
                    keys.append(key)
    for names in (out.hidden, out.line_breaks, out.not_utf8, out.hidden_folders, out.linked_folders):
        names.sort()
    return sorted(keys)


def wfdb_records(filenames: list[str]) -> set[str]:
    """The record names of a folder's WFDB headers: their signal and annotation files (`100.dat`,
    `100.atr`) are read through the header, never embedded on their own."""
    return {name[: -len(WFDB_HEADER)] for name in filenames if name.lower().endswith(WFDB_HEADER)}


def is_unnamed_dicom(path: Path) -> bool:
    """A file without an extension (or named by a bare UID, `1.2.840.….320`) that holds a DICOM
    file's preamble ("DICM" at byte 128): scanners and PACS exports name DICOMs so. DICOMDIR, the
    index of a DICOM medium, is not an image and stays out."""
    suffix = os.path.splitext(path.name)[1]
    if (suffix and not suffix[1:].isdigit()) or path.name.upper() == "DICOMDIR":
        return False
    return has_dicom_preamble(path, block=False)  # a FIFO must not block the scan: only regular files are read


def _unreadable(err: OSError) -> None:
    raise DiscoverError(f"cannot read folder {err.filename!r} ({err.strerror}): its files would be left out "
                        "of every count; fix its permissions, or move it out of input_dir")


def representable(key: str, exclusions: Exclusions) -> bool:
    """A key is one line of UTF-8 (manifests, keys.txt, Parquet strings) whose parts are names (no '..',
    '.' or empty part: every file named after it stays in its folder); else it is a listed exclusion."""
    if len(key.splitlines()) != 1:  # \n, \r and every other line end str.splitlines knows
        exclusions.line_breaks.append(key)
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # os.walk's surrogate escapes of bytes that are not UTF-8
        exclusions.not_utf8.append(key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
        return False
    if has_unsafe_part(key):
        exclusions.unsafe_paths.append(key)
        return False
    return True


def scan_files(root: str | os.PathLike, extensions: list[str], subdir: str | None = None) -> list[str]:
    return scan_tree(root, extensions, subdir)


def trial_keys(keys: list[str], limit: int | None) -> list[str]:
    """A trial run (`extract.limit`) takes the first `limit` keys of each shard, in key order: the one
    place a trial is applied (discover's manifests, and extract's scan when it runs by hand)."""
    return keys[:limit] if limit else keys


def shard_keys(input_dir: str | os.PathLike, shard: str, extensions: list[str], limit: int | None = None) -> list[str]:
    """One shard folder's keys without a manifest (extract by hand), a trial's first `limit` only."""
    return trial_keys(scan_files(input_dir, list(normalise_extensions(extensions)), subdir=shard), limit)


def _flatten_paths(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _flatten_paths(v)]
    raise ValueError(f"expected a path or a list of paths, got {type(value).__name__}")


def files_from_hf_dataset(dataset: str, split: str, column: str,
                          input_dir: str | os.PathLike) -> tuple[dict[str, list[int]], str | None]:
    """The files a Hugging Face dataset lists in `column` (str, list[str] or list[list[str]] per row),
    as keys (relative to `input_dir` when they lie under it, or are relative; else absolute), each
    with the indices of the rows that list it; and the split read (None: a saved Dataset has none)."""
    import datasets

    read_split: str | None = split
    if Path(dataset).is_dir():
        ds = datasets.load_from_disk(dataset)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
        else:
            read_split = None
    else:
        ds = datasets.load_dataset(dataset, split=split)
    if column not in ds.column_names:
        raise ValueError(f"hf_dataset.column: {column!r} is not a column of {dataset} ({ds.column_names})")
    root = Path(input_dir).resolve()
    rows: dict[str, list[int]] = {}
    for index, value in enumerate(ds[column]):
        for path in _flatten_paths(value):
            p = Path(path)
            if p.is_absolute():
                try:
                    path = p.resolve().relative_to(root).as_posix()
                except ValueError:
                    path = p.as_posix()
            listed = rows.setdefault(path, [])
            if not listed or listed[-1] != index:  # a row that lists a file twice is one row
                listed.append(index)
    return rows, read_split


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


def check_folder_shards(shards: dict[str, list[str]], outside: list[str], root: Path, all_folders: bool,
                        exclusions: Exclusions, folders: tuple[str, ...]) -> None:
    """Folder sharding: every listed folder exists and holds files; with every top-level folder a
    shard (`shards.folders: []`), a matching file outside them has no shard and stops the run."""
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise DiscoverError(f"shards.folders: {missing} not found under input_dir {str(root)!r}")
    holding = {key.split("/", 1)[0] for keys in shards.values() for key in keys}
    empty = sorted(set(folders) - holding)
    if empty:
        raise DiscoverError(f"shards.folders: {empty} under {str(root)!r} hold no file with the configured "
                            "extensions; check `extensions`, or leave these folders out of shards.folders")
    if not all_folders:
        exclusions.outside_shards = outside
        return
    loose = [k for k in outside if "/" not in k]
    if loose:
        raise DiscoverError(f"{len(loose)} files lie directly under input_dir {str(root)!r}, in no shard folder: "
                            f"{loose[:10]}; move them into a folder, or use shards.by: hash")
    if outside:  # a folder that appeared after the DAG was built
        new = sorted({k.split("/", 1)[0] for k in outside})
        raise DiscoverError(f"folders {new} appeared under input_dir after the workflow started; run it again")


def discover_shards(
    input_dir: str | os.PathLike, extensions: list[str], spec: ShardSpec, manifest_dir: str | os.PathLike,
    keys: list[str] | None = None, *, all_folders: bool = False, exclusions: Exclusions | None = None,
    limit: int | None = None,
) -> dict[str, list[str]]:
    """Scan once (or take the listed `keys`), check them against the shard spec, write the
    manifests, return them. `all_folders`: the shards are every top-level folder of the input.
    `limit`: a trial run, the first `limit` keys of each shard (the rest counted in `exclusions`)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir {str(root)!r} is not a directory")
    exclusions = exclusions if exclusions is not None else Exclusions()
    if keys is None:
        keys = scan_tree(root, extensions, exclusions=exclusions)
    else:  # listed by a dataset (hf_dataset): the same rule for what a key can be
        keys = [k for k in keys if representable(k, exclusions)]
    shards, outside = assign_shards(keys, spec)
    if spec.by == "folder":
        check_folder_shards(shards, outside, root, all_folders, exclusions, spec.folders)
    if limit:
        exclusions.limit = limit
        exclusions.beyond_limit = {s: max(0, len(k) - limit) for s, k in shards.items()}
        shards = {s: trial_keys(k, limit) for s, k in shards.items()}
    changed = write_manifests(shards, manifest_dir)
    for shard, keys_ in shards.items():
        log.info("%s: %d files (%s)", shard, len(keys_), "rewritten" if changed[shard] else "unchanged")
    for line in exclusions.summary():
        log.warning(line)
    return shards
