"""Hard checks on the finished dataset: a failure fails the rule, so nothing broken is published."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from embedpipe.discover import read_manifest
from embedpipe.writer import read_embedpipe_metadata

log = logging.getLogger(__name__)
BATCH_ROWS = 8192


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class ShardCounts:
    shard: str
    manifest: int
    rows: int
    errors: int
    nonfinite_rows: int = 0
    zero_rows: int = 0
    dims: set[int] = field(default_factory=set)
    declared_dims: set[int] = field(default_factory=set)  # the model's width, from provenance

    @property
    def reconciled(self) -> bool:
        return self.manifest == self.rows + self.errors


def scan_dataset_file(path: Path, counts: ShardCounts, seen: dict[str, str], duplicates: list[str],
                      column: str = "embedding") -> str:
    """Stream one dataset file: count rows, non-finite and all-zero rows, duplicate keys, widths."""
    meta = read_embedpipe_metadata(path)
    key_column = meta.get("key_column", "key")
    if "embedding_dim" in meta:
        counts.declared_dims.add(int(meta["embedding_dim"]))
    f = pq.ParquetFile(path)
    counts.dims.add(f.schema_arrow.field(column).type.list_size)
    dtype = str(f.schema_arrow.field(column).type.value_type)
    for batch in f.iter_batches(batch_size=BATCH_ROWS, columns=[key_column, column]):
        dim = batch.schema.field(column).type.list_size
        values = batch.column(column).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        counts.rows += len(values)
        counts.nonfinite_rows += int((~np.isfinite(values)).any(axis=1).sum())
        counts.zero_rows += int((values == 0).all(axis=1).sum())
        for key in batch.column(key_column).to_pylist():
            if key in seen:
                duplicates.append(key)
            seen[key] = counts.shard
    return dtype


def validate_dataset(
    shards: list[str],
    manifests: dict[str, Path],
    dataset_files: dict[str, Path],
    error_files: dict[str, Path],
    expected_dim: int | None,
    max_error_fraction: float,
) -> dict[str, Any]:
    """Run every check; returns the metrics (with `passed`)."""
    per_shard: list[ShardCounts] = []
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    dtypes: set[str] = set()
    for shard in shards:
        counts = ShardCounts(
            shard,
            manifest=len(read_manifest(manifests[shard])),
            rows=0,
            errors=pq.ParquetFile(error_files[shard]).metadata.num_rows,
        )
        dtypes.add(scan_dataset_file(dataset_files[shard], counts, seen, duplicates))
        per_shard.append(counts)
        log.info("%s: %d files, %d rows, %d errors", shard, counts.manifest, counts.rows, counts.errors)

    total_files = sum(c.manifest for c in per_shard)
    total_rows = sum(c.rows for c in per_shard)
    total_errors = sum(c.errors for c in per_shard)
    dims = set().union(*(c.dims for c in per_shard)) if per_shard else set()
    declared = set().union(*(c.declared_dims for c in per_shard)) if per_shard else set()
    if expected_dim is None and len(declared) == 1:
        expected_dim = declared.pop()
    error_fraction = total_errors / total_files if total_files else 0.0
    bad_counts = [c.shard for c in per_shard if not c.reconciled]
    nonfinite = sum(c.nonfinite_rows for c in per_shard)
    zeros = sum(c.zero_rows for c in per_shard)
    checks = [
        Check("counts_reconcile", not bad_counts,
              "files = rows + errors in every shard" if not bad_counts else f"mismatch in {bad_counts}"),
        Check("not_empty", total_rows > 0, f"{total_rows} rows"),
        Check("finite", nonfinite == 0, f"{nonfinite} rows with NaN or Inf"),
        Check("no_zero_rows", zeros == 0, f"{zeros} all-zero rows"),
        Check("unique_keys", not duplicates, f"{len(duplicates)} duplicate keys" + (
            f", e.g. {duplicates[:3]}" if duplicates else "")),
        Check("dimension", expected_dim is None and len(dims) <= 1 or dims == {expected_dim},
              f"widths {sorted(dims)}, expected {expected_dim}"),
        Check("dtype", dtypes <= {"float"}, f"value types {sorted(dtypes)} (float = float32)"),
        Check("error_fraction", error_fraction <= max_error_fraction,
              f"{total_errors}/{total_files} = {error_fraction:.4f} (max {max_error_fraction})"),
    ]
    passed = all(c.passed for c in checks)
    return {
        "passed": passed,
        "totals": {
            "files": total_files,
            "rows": total_rows,
            "errors": total_errors,
            "error_fraction": round(error_fraction, 6) if math.isfinite(error_fraction) else None,
        },
        "checks": [asdict(c) for c in checks],
        "shards": [
            {
                "shard": c.shard, "files": c.manifest, "rows": c.rows, "errors": c.errors,
                "reconciled": c.reconciled, "nonfinite_rows": c.nonfinite_rows, "zero_rows": c.zero_rows,
            }
            for c in per_shard
        ],
    }
