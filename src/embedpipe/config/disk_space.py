"""Is there room under results_dir for what the run is about to write? Known before any job only where
a previous discover left its manifests (their lines are the rows to come); otherwise not checked.

Kept simple on purpose (a later planner measures a trial run): the prediction counts the embedding
column alone, 4 bytes a float, once in each copy the run keeps (the shard file, the staged file; the
published folder hard-links the staged ones; merge_all's .pt and .npy when a plain run writes them).
Tokens, sidecars, metadata and Parquet overhead are left out, so it is a lower bound: when even that
is more than the free space, the run clearly cannot finish.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

FLOAT_BYTES = 4


@dataclass(frozen=True)
class DiskNeed:
    rows: int
    width: int
    copies: int

    @property
    def bytes(self) -> int:
        return self.rows * self.width * FLOAT_BYTES * self.copies


def rows_to_write(manifests: Mapping[str, str], done: Callable[[str], bool]) -> int | None:
    """The files listed by the manifests of the shards not yet embedded (`done(shard)` false); None when
    a manifest is missing (discover has not run: the rows are not known yet)."""
    rows = 0
    for shard, manifest in manifests.items():
        if done(shard):
            continue
        if not os.path.isfile(manifest):
            return None
        with open(manifest, "rb") as fh:
            rows += sum(1 for line in fh if line.strip())
    return rows


def free_bytes(path: str) -> int | None:
    """Free bytes where `path` is (or would be made), or None when that cannot be read."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def disk_problem(need: DiskNeed, results_dir: str, free: Callable[[str], int | None] = free_bytes) -> str | None:
    """Why results_dir has clearly too little room for `need`, or None."""
    available = free(results_dir)
    if available is None or need.bytes <= available:
        return None
    return (f"{available / 1e9:.1f} GB free, but the run writes at least {need.bytes / 1e9:.1f} GB "
            f"({need.rows:,} rows × {need.width} floats × {need.copies} copies: the shard and staged files"
            f"{', merge_all' if need.copies > 2 else ''}): free space there or set results_dir to a larger disk")
