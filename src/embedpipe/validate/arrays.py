"""Per-row arrays: every row's latents, feature maps, crops and tokens, against NaN/Inf and the row's own facts.

The arrays beside `embedding` (Metis's `latents` [T, 8], ECGFounder's `features` [T, D], ECG-JEPA's
`crop_embeddings` [crops, D], V-JEPA 2's `temporal`, `spatial` and the `tokens` in safetensors
sidecars) are read in batches bounded by decoded bytes (ARRAY_BYTES), a sidecar one tensor at a
time: memory does not grow with rows. Two counts per column: rows holding a NaN or an Inf, and rows
whose shape disagrees with what the family's facts give for that row (a Metis row's frames against
its duration: 50 Hz, one frame of rounding either way; an ECGFounder map against the row's samples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedpipe.encoders.ecgfounder.sizes import feature_frames
from embedpipe.encoders.metis.sizes import LATENT_DIM, stacked_frames
from embedpipe.readers.audio import TARGET_RATE
from embedpipe.store.footer import read_provenance
from embedpipe.store.parquet_io import rows_per_group, streamed
from embedpipe.store.sidecar import FILE_SUFFIX, iter_tensors

ARRAY_BYTES = 16 << 20  # decoded bytes of array columns per read batch
MAX_BATCH_ROWS = 8192
EXAMPLES = 3
METIS_FRAME_TOLERANCE = 1  # duration_s · 16 kHz rounds to the resampled length's sample ± 1: one frame
NOT_ARRAYS = ("embedding", "embedding_pca")  # the embedding checks' own columns
# A batch → each row's expected first-axis length from its own facts (NaN: not judged) and tolerance
Lengths = Callable[[pa.RecordBatch], tuple[np.ndarray, Any]]


@dataclass
class Rule:
    """One array column: its dims per nesting level (None: any), level 0 from the row's facts where
    `lengths` is set, and the columns those facts come from."""

    column: str
    dims: tuple[int | None, ...]
    rule: str
    lengths: Lengths | None = None
    facts: tuple[str, ...] = ()
    sidecar: bool = False


@dataclass
class ColumnTally:
    rule: str
    rows: int = 0
    nonfinite: int = 0
    wrong_shape: int = 0
    nonfinite_examples: list[str] = field(default_factory=list)
    shape_examples: list[str] = field(default_factory=list)
    shards: dict[str, list[int]] = field(default_factory=dict)  # shard → [nonfinite, wrong_shape]

    def count(self, shard: str, kind: str, examples: list[str]) -> None:
        """`examples`: one line per failing row of a batch (`kind` "nonfinite" or "shape")."""
        if not examples:
            return
        shape = kind == "shape"
        self.shards.setdefault(shard, [0, 0])[shape] += len(examples)
        if shape:
            self.wrong_shape += len(examples)
        else:
            self.nonfinite += len(examples)
        kept = self.shape_examples if shape else self.nonfinite_examples
        kept += [f"{shard}: {e}" for e in examples[: EXAMPLES - len(kept)]]


def list_depth(kind: pa.DataType) -> tuple[int, pa.DataType]:
    depth = 0
    while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        kind, depth = kind.value_type, depth + 1
    return depth, kind


def family_rules(meta: dict[str, Any], names: set[str]) -> dict[str, Rule]:
    """What the family's facts say each array column holds, per row."""
    encoder, dim = meta.get("encoder"), meta.get("embedding_dim")
    rules: dict[str, Rule] = {}
    if encoder == "metis" and {"duration_s", "n_frames"} <= names:
        rules["latents"] = Rule("latents", (None, LATENT_DIM), f"[T, {LATENT_DIM}], T = n_frames = the frames of "
                                f"duration_s at 50 Hz (± {METIS_FRAME_TOLERANCE})", metis_lengths,
                                ("duration_s", "n_frames"))
    elif encoder == "ecgfounder" and "n_samples" in names and "architecture" in meta:
        arch = meta["architecture"]
        rules["features"] = Rule("features", (None, dim), f"[T, {dim}], T = n_samples / "
                                 f"{int(arch['stride']) ** (1 + len(arch['filter_list']))} rounded up",
                                 lambda b: (feature_frames(column(b, "n_samples"), arch), 0), ("n_samples",))
    elif encoder == "ecg_jepa" and "n_crops" in names:
        rules["crop_embeddings"] = Rule("crop_embeddings", (None, dim), f"[crops, {dim}], crops = n_crops (1 when 0)",
                                        lambda b: (np.maximum(column(b, "n_crops"), 1), 0), ("n_crops",))
    elif encoder == "vjepa2" and "token_grid" in meta:
        t, h, w = meta["token_grid"]
        rules["tokens"] = Rule("tokens", (t, h, w, dim), f"[{t}, {h}, {w}, {dim}] (token_grid × embedding_dim)",
                               sidecar=True)
        rules["temporal"] = Rule("temporal", (t, dim), f"[{t}, {dim}]")
        rules["spatial"] = Rule("spatial", (h, w, dim), f"[{h}, {w}, {dim}]")
    return rules


def column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """A numeric facts column as float64, null → NaN (a row with unknown facts is not judged)."""
    return batch.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)


def metis_lengths(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """T = the row's n_frames exactly, which must be the frames of its duration (the reader resamples
    to ceil(frames · 16 kHz / rate) samples; duration_s · 16 kHz rounds to within a sample of that, so
    one frame either way); a row whose n_frames disagrees gets -1: wrong whatever T."""
    samples = np.ceil(column(batch, "duration_s") * TARGET_RATE)
    known = np.isfinite(samples)
    from_duration = np.where(known, stacked_frames(np.where(known, samples, 0).astype(np.int64)), np.nan)
    n_frames = column(batch, "n_frames")
    counted = np.isfinite(n_frames)
    expected = np.where(counted, n_frames, from_duration)
    expected[np.abs(n_frames - from_duration) > METIS_FRAME_TOLERANCE] = -1  # NaN compares False: unjudged
    return expected, np.where(counted, 0, METIS_FRAME_TOLERANCE)


def rules_for(schema: pa.Schema, meta: dict[str, Any]) -> list[Rule]:
    names = set(schema.names)
    known = family_rules(meta, names)
    rules = []
    for f in schema:
        depth, leaf = list_depth(f.type)
        if f.name in known and not known[f.name].sidecar:
            rules.append(known[f.name])
        elif f.name.endswith(FILE_SUFFIX) and f.name.removesuffix(FILE_SUFFIX) in known:
            rules.append(known[f.name.removesuffix(FILE_SUFFIX)])
        elif depth and pa.types.is_floating(leaf) and f.name not in NOT_ARRAYS:
            rules.append(Rule(f.name, (None,) * depth, "finite values only"))  # a column no family rule knows
    return rules


def walk(values: pa.Array) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A batch of nested lists → (leaf values, each row's [start, end) in them as bounds [n + 1],
    per level: (each element's length, each row's elements as bounds)). A null list has length 0."""
    bounds = np.arange(len(values) + 1, dtype=np.int64)
    levels = []
    while list_depth(values.type)[0]:
        lengths = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        levels.append((lengths, bounds))
        ends = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=ends[1:])
        bounds = ends[bounds]
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False), bounds, levels


def rows_of(indices: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.unique(np.searchsorted(bounds, indices, side="right") - 1)


def check_parquet(rule: Rule, batch: pa.RecordBatch, keys: list[str], shard: str, tally: ColumnTally) -> None:
    array = batch.column(rule.column)
    leaves, bounds, levels = walk(array)
    bad = rows_of(np.flatnonzero(~np.isfinite(leaves)), bounds)
    tally.count(shard, "nonfinite", [keys[i] for i in bad])
    wrong = set(np.flatnonzero(~array.is_valid().to_numpy(zero_copy_only=False)).tolist())
    expected = np.full(len(keys), np.nan)
    for level, ((lengths, row_bounds), dim) in enumerate(zip(levels, rule.dims, strict=True)):
        if level == 0 and rule.lengths is not None:
            expected, tolerance = rule.lengths(batch)
            judged = np.isfinite(expected)
            off = np.abs(lengths - np.where(judged, expected, 0)) > tolerance
            wrong |= set(np.flatnonzero(judged & off).tolist())
        elif dim is not None:
            wrong |= set(rows_of(np.flatnonzero(lengths != dim), row_bounds).tolist())
    tally.count(shard, "shape", [why(rule, batch, keys, levels[0][0], expected, i) for i in sorted(wrong)])


def why(rule: Rule, batch: pa.RecordBatch, keys: list[str], first: np.ndarray, expected: np.ndarray, i: int) -> str:
    """A wrong row, for the check's detail: its length, what its facts give, the facts."""
    facts = ", ".join(f"{c} {batch.column(c)[i].as_py()}" for c in rule.facts)
    return (f"{keys[i]} ({int(first[i])} along the first axis" + (f", expected {int(expected[i])}"
            if expected[i] >= 0 else "") + (f"; {facts}" if facts else "") + ")")


def check_sidecar(rule: Rule, batch: pa.RecordBatch, keys: list[str], shard: str, path: Path,
                  tally: ColumnTally) -> None:
    files = batch.column(rule.column + FILE_SUFFIX).to_pylist()
    nonfinite, wrong = [], []
    for rel in dict.fromkeys(f for f in files if f is not None):
        mine = [k for k, f in zip(keys, files, strict=True) if f == rel]
        bad, odd = [], []
        try:
            for key, tensor in iter_tensors(path, rel, mine):
                if tensor is None or tensor.shape != rule.dims:
                    odd.append(f"{key} ({'no tensor' if tensor is None else list(tensor.shape)})")
                elif not np.isfinite(tensor).all():
                    bad.append(key)
        except Exception as exc:  # a missing or unreadable file: none of its rows has its array
            bad, odd = [], [f"{k} ({rel}: {type(exc).__name__})" for k in mine]
        nonfinite += bad
        wrong += odd
    wrong += [f"{k} (no {rule.column} file)" for k, f in zip(keys, files, strict=True) if f is None]
    tally.count(shard, "nonfinite", nonfinite)
    tally.count(shard, "shape", wrong)


def batch_rows(source: pq.ParquetFile, columns: list[str]) -> int:
    """Rows per read: about ARRAY_BYTES of these columns once decoded (a row group's own sizes)."""
    meta = source.metadata
    wanted = set(columns)
    size = sum(meta.row_group(g).column(c).total_uncompressed_size for g in range(meta.num_row_groups)
               for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema.split(".")[0] in wanted)
    return max(1, min(MAX_BATCH_ROWS, rows_per_group(size, meta.num_rows, ARRAY_BYTES)))


def scan_arrays(path: Path, shard: str, tallies: dict[str, ColumnTally]) -> None:
    """One dataset file's per-row arrays into `tallies` (one per column, over every shard)."""
    meta = read_provenance(path)
    key_column = meta.get("key_column", "key")
    # pre_buffer (pyarrow's default) keeps every row group's raw column chunks read so far: memory would
    # grow with the file's rows (bench/validate_arrays.py measured it)
    source = streamed(path)
    rules = rules_for(source.schema_arrow, meta)
    if not rules:
        return
    columns = list(dict.fromkeys([key_column, *(r.column + FILE_SUFFIX if r.sidecar else r.column for r in rules),
                                  *(c for r in rules for c in r.facts)]))
    # one decoding thread: the threads' own allocations raised the peak by a fifth, for no time on one column
    for batch in source.iter_batches(batch_size=batch_rows(source, columns), columns=columns, use_threads=False):
        keys = batch.column(key_column).to_pylist()
        for rule in rules:
            tally = tallies.setdefault(rule.column, ColumnTally(rule.rule))
            tally.rows += len(keys)
            if rule.sidecar:
                check_sidecar(rule, batch, keys, shard, path, tally)
            else:
                check_parquet(rule, batch, keys, shard, tally)


def array_checks(tallies: dict[str, ColumnTally]) -> list[dict[str, Any]]:
    """The two checks (name, passed, detail) over every shard, zero tolerance as the `finite` check."""
    if not tallies:
        none = "no per-row arrays in this run's files"
        return [{"name": "arrays_finite", "passed": True, "detail": none},
                {"name": "array_shapes", "passed": True, "detail": none}]
    nonfinite = sum(t.nonfinite for t in tallies.values())
    wrong = sum(t.wrong_shape for t in tallies.values())
    finite_detail = (f"{nonfinite} rows with NaN or Inf in a per-row array: " + "; ".join(
        f"{c} {t.nonfinite} (e.g. {t.nonfinite_examples})" for c, t in tallies.items() if t.nonfinite)
        if nonfinite else "no NaN or Inf in " + ", ".join(f"{c} ({t.rows} rows)" for c, t in tallies.items()))
    shape_detail = (f"{wrong} rows whose array disagrees with the row's own facts: " + "; ".join(
        f"{c} {t.wrong_shape}, expected {t.rule} (e.g. {t.shape_examples})" for c, t in tallies.items()
        if t.wrong_shape) if wrong else "; ".join(f"{c} {t.rule} in all {t.rows} rows" for c, t in tallies.items()))
    return [{"name": "arrays_finite", "passed": nonfinite == 0, "detail": finite_detail},
            {"name": "array_shapes", "passed": wrong == 0, "detail": shape_detail}]


def array_metrics(tallies: dict[str, ColumnTally]) -> dict[str, Any]:
    """metrics.json's `arrays`: per column, the rule, the rows read and the failures, per shard."""
    return {c: {"shape": t.rule, "rows": t.rows, "nonfinite_rows": t.nonfinite, "wrong_shape_rows": t.wrong_shape,
                "shards": {s: {"nonfinite_rows": n, "wrong_shape_rows": w} for s, (n, w) in t.shards.items()}}
            for c, t in tallies.items()}
