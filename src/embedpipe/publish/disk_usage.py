"""What a run keeps on disk, folder by folder: the card's Disk section.

A run keeps two copies of each embedding: its shard file (embeddings/, what reruns, merge_all and the
exports read) and its dataset file (staged/, metadata joined). parquet/ holds hard links of the staged
files, and the token sidecars are hard links all the way from extract's parts; merged files
(merge.formats) are full copies, written only when asked for. Here each file is stat'ed once and each
inode counted once, in the first folder it appears in (embeddings/, staged/, parquet/, the merged
files): a hard link shows as bytes shared with a folder above, a copy as bytes of its own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from embedpipe.publish.staged import hub_safe_name
from embedpipe.store.sidecar import FILE_SUFFIX, SUFFIX

CARD_NAME = "README.md"
FLOAT32 = 4


@dataclass
class Usage:
    """One row of the section: a folder (or a merged file), or the token sidecars in one."""

    label: str
    sidecars: bool = False
    files: int = 0
    bytes: int = 0
    shared: int = 0  # bytes of files counted in a row above (hard links of them)

    @property
    def own(self) -> int:
        return self.bytes - self.shared


@dataclass(frozen=True)
class RunFiles:
    """This run's files, as the parquet rule names them (merged ones counted where they exist)."""

    shards: list[Path]  # embeddings/<shard>.parquet
    errors: list[Path]  # embeddings/<shard>.errors.parquet
    staged: list[Path]  # staged/<shard>.parquet
    merged: list[Path]  # <model>_embeddings_all.{pt,npy,keys.txt}


class DiskTally:
    """Bytes per row, each inode counted once: one stat per file."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()
        self.rows: dict[tuple[str, bool], Usage] = {}

    def add(self, label: str, path: Path, st: os.stat_result | None = None) -> None:
        """Count `path` (nothing where it does not exist: an optional file)."""
        if st is None:
            try:
                st = path.stat()
            except FileNotFoundError:
                return
        sidecar = path.name.endswith(SUFFIX)
        row = self.rows.setdefault((label, sidecar), Usage(label, sidecar))
        row.files += 1
        row.bytes += st.st_size
        if (st.st_dev, st.st_ino) in self.seen:
            row.shared += st.st_size
        else:
            self.seen.add((st.st_dev, st.st_ino))

    def add_tree(self, label: str, folder: Path, skip: Iterable[Path] = ()) -> None:
        """Every file below `folder` (none where it does not exist), links not followed."""
        skipped = set(skip)
        for root, _dirs, names in os.walk(folder):
            for name in sorted(names):
                path = Path(root) / name
                if path not in skipped and not stat.S_ISLNK((st := path.lstat()).st_mode):
                    self.add(label, path, st)


def sidecar_columns(staged: list[Path]) -> list[str]:
    """The columns kept beside the rows (image tokens), from the first dataset file's schema."""
    if not staged:
        return []
    return [f.name.removesuffix(FILE_SUFFIX) for f in pq.read_schema(staged[0]) if f.name.endswith(FILE_SUFFIX)]


def measure(files: RunFiles, folder: Path) -> list[Usage]:
    """The rows of the section: embeddings/, staged/, the dataset folder `folder` (the one being built,
    without its card, written after), then each merged file that exists."""
    tally = DiskTally()
    columns = sidecar_columns(files.staged)
    for path in [*files.shards, *files.errors]:
        tally.add("embeddings/", path)
    for shard in files.shards:  # extract's sidecars: embeddings/<shard>.<column>/part-*.safetensors
        for column in columns:
            tally.add_tree("embeddings/", shard.parent / f"{shard.name.removesuffix('.parquet')}.{column}")
    for path in files.staged:
        tally.add("staged/", path)
    for path in files.staged:  # staged's: staged/<column>/<shard>/part-*.safetensors
        for column in columns:
            tally.add_tree("staged/", path.parent / column / hub_safe_name(path.name.removesuffix(".parquet")))
    tally.add_tree("parquet/", folder, skip=[folder / CARD_NAME])
    for path in files.merged:
        tally.add(path.name, path)
    return list(tally.rows.values())


def matrix_shape(staged: list[Path]) -> tuple[int, int]:
    """(rows, embedding width) of the run's float32 matrix, from the dataset files' footers."""
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in staged)
    return rows, pq.read_schema(staged[0]).field("embedding").type.list_size


def ratio(usage: list[Usage], rows: int, dim: int) -> float:
    """The run's bytes on disk, token sidecars aside, over the float32 matrix's."""
    return sum(u.own for u in usage if not u.sidecars) / max(rows * dim * FLOAT32, 1)


def _label(u: Usage) -> str:
    name = f"`{u.label}`" + (" (without this card)" if u.label == "parquet/" and not u.sidecars else "")
    return f"{name} token sidecars (`*{SUFFIX}`)" if u.sidecars else name


def disk_section(usage: list[Usage], rows: int, dim: int) -> str:
    """The card's Disk section: a row per folder, the total, and the ratio to the float32 matrix."""
    table = ["| what | files | bytes | hard links of files above | own bytes |", "|---|---|---|---|---|"]
    table += [f"| {_label(u)} | {u.files:,} | {u.bytes:,} | {u.shared:,} | {u.own:,} |" for u in usage]
    total = sum(u.own for u in usage)
    table.append(f"| total | {sum(u.files for u in usage):,} | | | {total:,} |")
    sidecars = sum(u.own for u in usage if u.sidecars)
    matrix = rows * dim * FLOAT32
    sidecar_text = (f"; the token sidecars, {sidecars:,} bytes, are kept once, hard-linked into each folder"
                    if sidecars else "")
    return ("## Disk\n\n"
            "What the run keeps on disk as this card was written, in bytes. A file hard-linked into a later "
            "folder (each dataset file here is its `staged/` file) is counted once, in the first folder that "
            "holds it. `embeddings/` holds each shard's file and its errors: what reruns, `merge_all` and the "
            "exports read; `staged/` the dataset files; merged files (`merge.formats`) are counted where they "
            "exist.\n\n" + "\n".join(table) + "\n\n"
            f"The run's bytes{', token sidecars aside,' if sidecars else ''} against the float32 embedding matrix "
            f"({rows:,} × {dim} × 4 = {matrix:,} bytes): "
            f"**{ratio(usage, rows, dim):.2f}×**{sidecar_text}.")
