"""Checks on the finished dataset: a hard failure fails the rule, so nothing broken is published.

One streaming pass over the Parquet shards (BATCH_ROWS rows at a time) feeds the counts and an
EmbeddingStats; memory is O(D² + rows·small), never the whole matrix. The per-row arrays (latents,
feature maps, tokens) are a second pass, bounded by bytes: arrays.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedpipe.discover.scan import read_manifest
from embedpipe.runtime.error_text import ErrorGroups
from embedpipe.store.footer import read_provenance
from embedpipe.store.key_hashes import key_hashes, repeated_keys
from embedpipe.store.made_with import model_problems
from embedpipe.store.parquet_io import streamed
from embedpipe.validate.arrays import ColumnTally, array_checks, array_metrics, scan_arrays
from embedpipe.validate.rows_needed import error_fraction_verdict, mean_cosine_verdict, rank_verdict
from embedpipe.validate.settings import ValidationConfig
from embedpipe.validate.stats import EmbeddingStats, effective_rank, summarise

log = logging.getLogger(__name__)
BATCH_ROWS = 8192
EXAMPLES = 3  # keys quoted in a failed check's detail


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    key: str | None = None  # the config key of its threshold: what a failed run's console line names


@dataclass
class ShardCounts:
    shard: str
    manifest: int
    rows: int
    errors: int
    nonfinite_rows: int = 0
    zero_rows: int = 0
    dims: set[int] = field(default_factory=set)
    columns: tuple[str, ...] = ()  # "name: type" of the dataset file, in order
    declared_dims: set[int] = field(default_factory=set)  # the model's width, from provenance
    null_keys: list[str] = field(default_factory=list)  # rows whose embedding is null
    keys: KeyTally | None = None
    made_with: dict[str, Any] | None = None  # what the footer says the rows were made with
    fingerprint: str | None = None

    @property
    def reconciled(self) -> bool:
        return self.manifest == self.rows + self.errors


class KeyTally:
    """A shard's row and error keys against its manifest, one key at a time: memory is the manifest's
    key set, whatever the number of rows (counts alone miss a renamed key or a swapped error row)."""

    def __init__(self, manifest: list[str]) -> None:
        self.expected = set(manifest)
        self.remaining = set(self.expected)
        self.unexpected = 0
        self.unexpected_examples: list[str | None] = []

    def add(self, keys: list[str | None]) -> None:
        for key in keys:
            if key in self.expected:
                self.remaining.discard(key)  # a second occurrence is the unique_keys check's
            else:
                self.unexpected += 1
                if len(self.unexpected_examples) < EXAMPLES:
                    self.unexpected_examples.append(key)

    @property
    def missing(self) -> int:
        return len(self.remaining)

    @property
    def matched(self) -> bool:
        return not self.remaining and not self.unexpected

    def describe(self, shard: str) -> str:
        missing = sorted(self.remaining)[:EXAMPLES]
        return (f"{shard}: {self.missing} manifest key(s) with no row or error row"
                + (f" (e.g. {missing})" if missing else "") + f", {self.unexpected} key(s) not in the manifest"
                + (f" (e.g. {self.unexpected_examples})" if self.unexpected else ""))


@dataclass
class ValidationResult:
    metrics: dict[str, Any]
    stats: EmbeddingStats | None
    shards: list[str]

    @property
    def passed(self) -> bool:
        return bool(self.metrics["passed"])

    def failures(self) -> str:
        """The failed checks in one line, each with its value and its threshold's config key."""
        failed = [c for c in self.metrics["checks"] if not c["passed"]]
        return "; ".join(f"{c['detail']} ({c['key']})" if c.get("key") else f"{c['name']}: {c['detail']}"
                         for c in failed)


def scan_dataset_file(path: Path, counts: ShardCounts, hashes: list[np.ndarray], stats_for: Any,
                      column: str = "embedding") -> str:
    """Stream one dataset file into the counts, the statistics and the key hashes (key_hashes: the
    duplicate check); returns the value type."""
    meta = read_provenance(path)
    key_column = meta.get("key_column", "key")
    if "embedding_dim" in meta:
        counts.declared_dims.add(int(meta["embedding_dim"]))
    counts.made_with, counts.fingerprint = meta.get("made_with"), meta.get("fingerprint")
    f = streamed(path)
    counts.columns = tuple(f"{c.name}: {c.type}" for c in f.schema_arrow)
    dim = f.schema_arrow.field(column).type.list_size
    counts.dims.add(dim)
    stats: EmbeddingStats = stats_for(dim)
    for batch in f.iter_batches(batch_size=BATCH_ROWS, columns=[key_column, column]):
        embeddings = batch.column(column)
        keys = batch.column(key_column).to_pylist()
        counts.rows += len(keys)
        if counts.keys is not None:
            counts.keys.add(keys)
        hashes.append(key_hashes(keys))
        if embeddings.null_count:
            # flatten() drops null rows, so the values would no longer line up with the keys
            valid = embeddings.is_valid().to_numpy(zero_copy_only=False)
            counts.null_keys.extend(k for k, ok in zip(keys, valid, strict=True) if not ok)
            embeddings = embeddings.filter(valid)
            keys = [k for k, ok in zip(keys, valid, strict=True) if ok]
        values = embeddings.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        finite = np.isfinite(values).all(axis=1)
        counts.nonfinite_rows += int((~finite).sum())
        counts.zero_rows += int((values == 0).all(axis=1).sum())
        if stats.dim == dim:  # a shard of another width is reported by the dimension check
            stats.add(counts.shard, [k for k, ok in zip(keys, finite, strict=True) if ok], values[finite])
    return str(f.schema_arrow.field(column).type.value_type)


def dataset_keys(path: Path) -> Iterator[str]:
    """A dataset file's keys again, batch by batch (the duplicate check's second pass, only when needed)."""
    key_column = read_provenance(path).get("key_column", "key")
    for batch in streamed(path).iter_batches(batch_size=BATCH_ROWS, columns=[key_column]):
        yield from batch.column(0).to_pylist()


def validate_dataset(
    shards: list[str],
    manifests: dict[str, Path],
    dataset_files: dict[str, Path],
    error_files: dict[str, Path],
    config: ValidationConfig,
    made_with: dict[str, Any] | None = None,
) -> ValidationResult:
    """`made_with`: the configuration's (made_with.made_with); every shard must record it."""
    per_shard: list[ShardCounts] = []
    hashes: list[np.ndarray] = []
    dtypes: set[str] = set()
    holder: list[EmbeddingStats] = []

    def stats_for(dim: int) -> EmbeddingStats:
        if not holder:
            holder.append(EmbeddingStats(dim, sample_size=config.sample_size, seed=config.seed))
        return holder[0]

    failures = ErrorGroups()
    arrays: dict[str, ColumnTally] = {}
    for shard in shards:
        manifest = read_manifest(manifests[shard])
        errors = streamed(error_files[shard])
        tally = KeyTally(manifest)
        for batch in errors.iter_batches(batch_size=BATCH_ROWS, columns=["key", "stage", "error_type", "message"]):
            tally.add(batch.column("key").to_pylist())
            failures.add(shard, batch.to_pylist())
        counts = ShardCounts(shard, manifest=len(manifest), rows=0, errors=errors.metadata.num_rows, keys=tally)
        dtypes.add(scan_dataset_file(dataset_files[shard], counts, hashes, stats_for))
        scan_arrays(dataset_files[shard], shard, arrays)
        per_shard.append(counts)
        log.info("%s: %d files, %d rows, %d errors", shard, counts.manifest, counts.rows, counts.errors)
    stats = holder[0] if holder else None
    keys_again = lambda: (k for s in shards for k in dataset_keys(dataset_files[s]))  # noqa: E731
    duplicates = list(repeated_keys(hashes, keys_again()))
    if stats is not None:
        stats.find_duplicates(keys_again)
    metrics = assemble_metrics(per_shard, duplicates, dtypes, stats, config, made_with, arrays)
    metrics["errors_by_type"] = failures.summary()
    return ValidationResult(metrics, stats, shards)


def assemble_metrics(per_shard: list[ShardCounts], duplicates: list[str], dtypes: set[str],
                     stats: EmbeddingStats | None, config: ValidationConfig,
                     made_with: dict[str, Any] | None = None,
                     arrays: dict[str, ColumnTally] | None = None) -> dict[str, Any]:
    total_files = sum(c.manifest for c in per_shard)
    total_rows = sum(c.rows for c in per_shard)
    total_errors = sum(c.errors for c in per_shard)
    dims = set().union(*(c.dims for c in per_shard)) if per_shard else set()
    declared = set().union(*(c.declared_dims for c in per_shard)) if per_shard else set()
    expected_dim = config.expected_dim
    if expected_dim is None and len(declared) == 1:
        expected_dim = next(iter(declared))
    error_fraction = total_errors / total_files if total_files else 0.0
    bad_counts = [c.shard for c in per_shard if not c.reconciled]
    bad_keys = [c.keys.describe(c.shard) for c in per_shard if c.keys is not None and not c.keys.matched]
    nulls = {c.shard: c.null_keys for c in per_shard if c.null_keys}
    null_rows = sum(map(len, nulls.values()))
    nonfinite = sum(c.nonfinite_rows for c in per_shard)
    zeros = sum(c.zero_rows for c in per_shard)
    embedding = embedding_metrics(stats, config) if stats is not None and stats.count else {}
    mean_cos = embedding.get("cosine", {}).get("mean")
    erank = embedding.get("pca", {}).get("effective_rank")
    finite_rows = stats.count if stats is not None else 0  # the spread checks' n (rows_needed.py)
    dup_pairs = stats.duplicate_pairs if stats is not None else []
    model = model_problems({c.shard: (c.made_with, c.fingerprint) for c in per_shard}, made_with)
    fingerprints = {c.fingerprint for c in per_shard}
    checks = [
        same_columns(per_shard),
        Check("same_model", not model, "; ".join(model) + ": re-embed those shards (snakemake --forcerun extract)"
              if model else f"every shard made with this config's model, weights and preprocessing "
              f"(fingerprint {next(iter(fingerprints), None)})"),
        Check("counts_reconcile", not bad_counts,
              "files = rows + errors in every shard" if not bad_counts else f"mismatch in {bad_counts}"),
        Check("keys_match_manifest", not bad_keys,
              "row and error keys equal the manifest's in every shard" if not bad_keys else "; ".join(bad_keys)),
        Check("no_null_embeddings", not nulls, f"{null_rows} rows with a null embedding" + "".join(
            f"; {shard}: {keys[:EXAMPLES]}" for shard, keys in nulls.items())),
        Check("not_empty", total_rows > 0, f"{total_rows} rows"),
        Check("finite", nonfinite == 0, f"{nonfinite} rows with NaN or Inf"),
        *(Check(**c) for c in array_checks(arrays or {})),
        Check("no_zero_rows", zeros == 0, f"{zeros} all-zero rows"),
        Check("unique_keys", not duplicates, f"{len(duplicates)} duplicate keys" + (
            f", e.g. {duplicates[:3]}" if duplicates else "")),
        Check("unique_embeddings", len(dup_pairs) <= config.max_duplicate_embeddings,
              f"{len(dup_pairs)} rows identical to an earlier row under another key (max "
              f"{config.max_duplicate_embeddings})" + (f", e.g. {dup_pairs[:2]}" if dup_pairs else ""),
              "validate.max_duplicate_embeddings"),
        Check("dimension", expected_dim is None and len(dims) <= 1 or dims == {expected_dim},
              f"widths {sorted(dims)}, expected {expected_dim}"),
        Check("dtype", dtypes <= {"float"}, f"value types {sorted(dtypes)} (float = float32)"),
        Check("error_fraction", *error_fraction_verdict(total_errors, total_files, config.max_error_fraction),
              "validate.max_error_fraction"),
        Check("not_collapsed", *mean_cosine_verdict(finite_rows, mean_cos, config.max_mean_cosine),
              "validate.max_mean_cosine"),
        Check("effective_rank", *rank_verdict(finite_rows, erank, config.min_effective_rank),
              "validate.min_effective_rank"),
    ]
    return {
        "passed": all(c.passed for c in checks),
        "totals": {
            "files": total_files,
            "rows": total_rows,
            "errors": total_errors,
            "error_fraction": round(error_fraction, 6) if math.isfinite(error_fraction) else None,
        },
        "checks": [asdict(c) for c in checks],
        "fingerprint": next(iter(fingerprints)) if len(fingerprints) == 1 else None,
        "shards": [
            {
                "shard": c.shard, "files": c.manifest, "rows": c.rows, "errors": c.errors,
                "reconciled": c.reconciled, "nonfinite_rows": c.nonfinite_rows, "zero_rows": c.zero_rows,
                "null_embeddings": len(c.null_keys),
                "missing_keys": c.keys.missing if c.keys else None,
                "unexpected_keys": c.keys.unexpected if c.keys else None,
                "norm": summarise(stats.shard_norms(c.shard)) if stats is not None else {"n": 0},
            }
            for c in per_shard
        ],
        "embedding": embedding,
        "arrays": array_metrics(arrays or {}),
        "thresholds": asdict(config),
    }


def same_columns(per_shard: list[ShardCounts]) -> Check:
    """One table: `load_dataset` refuses a folder whose files differ in columns (shards written by two
    embedpipe versions, or two configs, in one run folder)."""
    kinds = [c.columns for c in per_shard]
    common = max(set(kinds), key=kinds.count) if kinds else ()
    odd = [c for c in per_shard if c.columns != common]
    if not odd:
        return Check("same_columns", True, f"{len(common)} columns in every shard file")
    c = odd[0]
    missing, extra = [x for x in common if x not in c.columns], [x for x in c.columns if x not in common]
    return Check("same_columns", False, f"{len(odd)} shard files differ from the other shards' columns, e.g. "
                 f"{c.shard}: lacks {missing[:EXAMPLES]}, has {extra[:EXAMPLES]}; shards written by another "
                 "embedpipe version or config: re-extract them (snakemake --forcerun extract)")


def embedding_metrics(stats: EmbeddingStats, config: ValidationConfig) -> dict[str, Any]:
    eigenvalues, _ = stats.pca()
    total = float(eigenvalues.sum())
    ratio = eigenvalues / total if total > 0 else np.zeros_like(eigenvalues)
    k = min(config.pca_components, len(ratio))
    cosines = stats.random_pair_cosines(config.cosine_pairs)
    sample, _ = stats.sample
    norms = np.concatenate([stats.shard_norms(s) for s in stats.norms]) if stats.norms else np.zeros(0)
    return {
        "dim": stats.dim,
        "finite_rows": stats.count,
        "norm": summarise(norms),
        "per_dimension": {"mean": stats.mean().round(6).tolist(),
                          "std": np.sqrt(np.clip(np.diag(stats.covariance()), 0, None)).round(6).tolist()},
        "pca": {
            "explained_variance_ratio": ratio[:k].round(6).tolist(),
            "cumulative": np.cumsum(ratio[:k]).round(6).tolist(),
            "effective_rank": round(effective_rank(eigenvalues), 4),
            "exact": True,
        },
        "cosine": {**summarise(cosines), "pairs": int(len(cosines)), "sample_rows": int(len(sample)),
                   "sampled": stats.count > len(sample)},
        "duplicate_embeddings": len(stats.duplicate_pairs),
        "sampling": (f"norms, per-dimension statistics, PCA spectrum, effective rank and duplicate detection use "
                     f"all {stats.count} finite rows; cosine similarity ({len(cosines)} random pairs) and the "
                     f"2-D scatter use a uniform sample of {len(sample)} rows"),
    }

