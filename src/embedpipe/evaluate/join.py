"""The dataset's embeddings meet the labels: every row that is not evaluated is counted, by reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedpipe.evaluate.labels import EXAMPLES, LabelError, LabelTable, join_value
from embedpipe.store.footer import read_provenance
from embedpipe.store.parquet_io import streamed

BATCH_ROWS = 8192


@dataclass
class Embeddings:
    key_column: str
    join_column: str
    keys: list[str]
    join_values: list[str | None]
    vectors: np.ndarray  # (rows, dim) float32; zeros where not usable
    usable: np.ndarray  # (rows,) bool: the embedding is present and finite


@dataclass
class Joined:
    """The rows evaluated: embeddings, their labels, their split (None: k-fold) and their join
    value (rows sharing one, e.g. a study, stay in one fold)."""

    vectors: np.ndarray
    targets: np.ndarray
    classes: list[str]
    split: np.ndarray | None
    groups: np.ndarray
    counts: dict[str, Any] = field(default_factory=dict)


def read_embeddings(files: list[Path], join_on: str) -> Embeddings:
    """The key, the join column and the embedding of every row of the dataset files."""
    keys: list[str] = []
    joins: list[str | None] = []
    blocks: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    key_column = join_column = "key"
    for path in files:
        key_column = read_provenance(path).get("key_column", "key")
        join_column = key_column if join_on == "key" else join_on
        source = streamed(path)
        if join_column not in source.schema_arrow.names:
            raise LabelError(f"evaluate.join_on: {path.name} has no column {join_column!r} "
                             f"(it has {source.schema_arrow.names})")
        dim = source.schema_arrow.field("embedding").type.list_size
        if blocks and dim != blocks[0].shape[1]:
            raise LabelError(f"{path.name}: embeddings of width {dim}, other files {blocks[0].shape[1]}")
        for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=list(dict.fromkeys(
                [key_column, join_column, "embedding"]))):
            column = batch.column("embedding")
            present = column.is_valid().to_numpy(zero_copy_only=False)
            values = np.zeros((len(batch), dim), np.float32)
            # flatten() drops null rows, so the values fill only the rows that have one
            values[present] = column.filter(present).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            masks.append(present & np.isfinite(values).all(axis=1))
            blocks.append(np.where(masks[-1][:, None], values, 0))
            keys += batch.column(key_column).to_pylist()
            joins += [join_value(v) for v in batch.column(join_column).to_pylist()]
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    usable = np.concatenate(masks) if masks else np.zeros(0, bool)
    return Embeddings(key_column, join_column, keys, joins, vectors, usable)


def split_names(values: list[str | None], split_map: dict[str, list[Any]]) -> np.ndarray:
    """Each row's part (train, validation, test) from its split value; "" where the map has none."""
    part_of = {join_value(v): part for part, listed in split_map.items() for v in listed}
    return np.array([part_of.get(v, "") for v in values], dtype=object)


def join_labels(emb: Embeddings, table: LabelTable, split_map: dict[str, list[Any]] | None = None,
                normalise: Callable[[str], str] = lambda v: v) -> Joined:
    """The rows that have a usable embedding, a label and (with a split) a part; `normalise` turns a
    dataset join value into the table's spelling (PTB-XL: the record path without extension)."""
    row_of = {v: i for i, v in enumerate(table.join_values)}
    label_row = np.array([row_of.get(normalise(v), -1) if v is not None else -1 for v in emb.join_values], np.int64)
    matched = label_row >= 0
    met = np.zeros(len(table.join_values), bool)
    met[label_row[matched]] = True
    valid_label = matched & table.valid[np.maximum(label_row, 0)]
    parts = np.full(len(label_row), "train", dtype=object)
    if split_map is not None and table.split is not None:
        parts = split_names([table.split[i] if i >= 0 else None for i in label_row], split_map)
    in_split = parts != ""
    keep = valid_label & emb.usable & in_split
    without = [k for k, m in zip(emb.keys, matched, strict=True) if not m]
    counts = {
        "join_on": emb.join_column,
        "dataset_rows": len(emb.keys),
        "label_rows": len(table.join_values),
        "rows_without_label": len(without),
        "rows_without_label_examples": without[:EXAMPLES],
        "labels_without_row": int((~met).sum()),
        "labels_without_row_examples": [v for v, m in zip(table.join_values, met, strict=True) if not m][:EXAMPLES],
        "rows_with_missing_label": int((matched & ~valid_label).sum()),
        "rows_without_usable_embedding": int((valid_label & ~emb.usable).sum()),
        "rows_outside_split": int((valid_label & emb.usable & ~in_split).sum()),
        "rows_evaluated": int(keep.sum()),
    }
    return Joined(
        vectors=emb.vectors[keep],
        targets=table.targets[label_row[keep]],
        classes=list(table.classes),
        split=parts[keep] if split_map is not None and table.split is not None else None,
        groups=np.array([emb.join_values[i] for i in np.flatnonzero(keep)], dtype=object),
        counts=counts,
    )
