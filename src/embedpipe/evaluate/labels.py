"""A labels table (CSV or Parquet): the column to join on, one or more label columns, an optional split.

Labels become one 0/1 column per class (multi-label allowed): several 0/1 columns are the classes;
one column is a binary class (0/1), a list per row (multi-label), or a category per row (one class
per value). Rows with a missing label are kept and flagged, so the join can count them.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXAMPLES = 3


class LabelError(ValueError):
    """A labels table that cannot be read as labels; the message names the column."""


@dataclass
class LabelTable:
    join_column: str
    join_values: list[str]  # normalised by join_value, unique
    classes: list[str]
    targets: np.ndarray  # (rows, classes) uint8
    valid: np.ndarray  # (rows,) bool: False where the row's label is missing
    split: list[str | None] | None  # the split column's values (normalised), or None: no split given
    source: str


def join_value(value: Any) -> str | None:
    """One spelling per value on both sides of the join: 10001 (Parquet int), 10001.0 (a CSV column
    with a gap reads as float) and "10001" all meet."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def read_table(path: str | Path, text_columns: list[str]) -> pd.DataFrame:
    """CSV or Parquet by suffix. CSV's join and split columns are read as text: a key like
    "00123" must not become the number 123."""
    path = Path(path)
    if path.name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={c: str for c in text_columns if c in header}, keep_default_na=True)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_list(value: Any, column: str) -> list[str] | None:
    if _is_missing(value):
        return None
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)  # "['AFIB', 'STACH']" as CSV writes a list
        except (ValueError, SyntaxError) as exc:
            raise LabelError(f"label column {column!r}: {value[:40]!r} is not a list") from exc
    if not isinstance(value, list | tuple | np.ndarray):
        raise LabelError(f"label column {column!r}: {value!r} is not a list")
    return [str(v) for v in value]


def _binary(series: pd.Series) -> np.ndarray | None:
    """0/1 (or booleans) as float with NaN where missing; None if the column holds other values."""
    present = series.dropna()
    if present.map(lambda v: isinstance(v, bool | int | float | np.integer | np.floating | np.bool_)).all() \
            and set(present.astype(float).unique()) <= {0.0, 1.0}:
        return series.astype(float).to_numpy()
    return None


def _is_list_column(series: pd.Series) -> bool:
    present = series.dropna()
    return bool(len(present)) and present.map(
        lambda v: isinstance(v, list | tuple | np.ndarray) or (isinstance(v, str) and v.lstrip().startswith("["))
    ).all()


def decode_labels(frame: pd.DataFrame, columns: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(classes, targets (rows, classes) uint8, valid rows) from the label columns."""
    if len(columns) > 1:
        values = []
        for column in columns:
            binary = _binary(frame[column])
            if binary is None:
                odd = [v for v in frame[column].dropna().unique() if v not in (0, 1)][:EXAMPLES]
                raise LabelError(f"label column {column!r}: several label columns must each be 0/1 "
                                 f"(a class per column), found {odd}")
            values.append(binary)
        matrix = np.stack(values, axis=1)
        valid = ~np.isnan(matrix).any(axis=1)
        return list(columns), np.nan_to_num(matrix).astype(np.uint8), valid
    column = columns[0]
    series = frame[column]
    if _is_list_column(series):
        lists = [_as_list(v, column) for v in series]
        classes = sorted({c for row in lists if row for c in row})
        index = {c: i for i, c in enumerate(classes)}
        targets = np.zeros((len(lists), len(classes)), np.uint8)
        for r, row in enumerate(lists):
            targets[r, [index[c] for c in row or []]] = 1
        return classes, targets, np.array([row is not None for row in lists], bool)
    binary = _binary(series)
    if binary is not None:
        return [column], np.nan_to_num(binary).astype(np.uint8)[:, None], ~np.isnan(binary)
    text = series.map(join_value)
    classes = sorted(v for v in text.dropna().unique())
    targets = np.stack([(text == c).to_numpy() for c in classes], axis=1).astype(np.uint8) if classes else \
        np.zeros((len(text), 0), np.uint8)
    return classes, targets, text.notna().to_numpy()


def label_table(frame: pd.DataFrame, join_column: str, label_columns: list[str] | None,
                split_column: str | None, source: str) -> LabelTable:
    """The labels, one row per join value (a value twice is ambiguous and refused)."""
    for key, name in (("evaluate.join_on", join_column), ("evaluate.split_column", split_column),
                      *(("evaluate.label_columns", c) for c in label_columns or [])):
        if name is not None and name not in frame.columns:
            raise LabelError(f"{key}: {source} has no column {name!r} (it has {list(frame.columns)})")
    columns = label_columns or [c for c in frame.columns if c not in (join_column, split_column)]
    if not columns:
        raise LabelError(f"{source}: no label column besides {join_column!r}")
    join_values = [join_value(v) for v in frame[join_column]]
    if None in join_values:
        raise LabelError(f"{source}: {join_values.count(None)} row(s) with an empty {join_column!r}")
    counts = pd.Series(join_values).value_counts()
    if (twice := counts[counts > 1]).size:
        raise LabelError(f"{source}: {twice.size} {join_column!r} value(s) appear more than once, e.g. "
                         f"{list(twice.index[:EXAMPLES])}; one row per value, so each label is unambiguous")
    classes, targets, valid = decode_labels(frame, columns)
    split = [join_value(v) for v in frame[split_column]] if split_column else None
    return LabelTable(join_column, join_values, classes, targets, valid, split, source)


def read_labels(path: str | Path, join_columns: list[str], label_columns: list[str] | None,
                split_column: str | None) -> LabelTable:
    """join_columns: the names the join column may have, the first one present wins (join_on: key
    meets a `key` column or one named like the dataset's key column, e.g. file_path)."""
    frame = read_table(path, [*join_columns, *([split_column] if split_column else [])])
    join_column = next((c for c in join_columns if c in frame.columns), join_columns[0])
    return label_table(frame, join_column, label_columns, split_column, Path(path).name)
