"""The `evaluate` config block as the library takes it, and the checks that run before any job.

Imports only the standard library: the Snakefile reads this module when it builds the DAG.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TASKS = ("rhythm", "superdiagnostic", "form")
SPLITS = ("train", "validation", "test")
# PTB-XL's recommended split (its strat_fold column): 1-8 train, 9 validation, 10 test.
PTBXL_SPLIT: dict[str, list[Any]] = {"train": list(range(1, 9)), "validation": [9], "test": [10]}
NAMED_SPLIT: dict[str, list[Any]] = {"train": ["train"], "validation": ["validation", "val"], "test": ["test"]}
LABEL_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
PTBXL_FILES = ("ptbxl_database.csv", "scp_statements.csv")


@dataclass
class EvaluationSettings:
    """Defaults match config/config.yaml's `evaluate` block."""

    labels: str | None = None
    ptbxl_dir: str | None = None
    task: str = "rhythm"
    join_on: str = "key"
    label_columns: list[str] | None = None
    split_column: str | None = None
    split_values: dict[str, list[Any]] | None = None
    folds: int = 5
    c_grid: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0])
    class_weight: str | None = None
    knn_k: int = 11  # odd, so a binary neighbour vote never ties
    bootstrap: int = 1000
    seed: int = 0

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> EvaluationSettings:
        """The config block (schema-checked) without `enabled`; null means the default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in block.items() if k in known and v is not None})

    @property
    def is_ptbxl(self) -> bool:
        return self.ptbxl_dir is not None

    def split_map(self) -> dict[str, list[Any]] | None:
        """Which values of the split column mean train, validation and test; None: k-fold."""
        if self.split_values:
            return self.split_values
        if self.is_ptbxl:
            return PTBXL_SPLIT
        return NAMED_SPLIT if self.split_column else None


def config_problems(block: dict[str, Any], exists: Callable[[str], bool] = os.path.exists) -> list[tuple[str, str]]:
    """(config key, reason) for everything that would stop the evaluation, found before any job runs."""
    labels, ptbxl = block.get("labels"), block.get("ptbxl_dir")
    if bool(labels) == bool(ptbxl):
        return [("evaluate.labels", "set exactly one of evaluate.labels (a CSV or Parquet labels table) "
                                    "and evaluate.ptbxl_dir (PTB-XL as it ships)")]
    problems: list[tuple[str, str]] = []
    if labels:
        if not str(labels).lower().endswith(LABEL_SUFFIXES):
            problems.append(("evaluate.labels", f"{labels!r}: a labels table is .csv or .parquet"))
        elif not exists(labels):
            problems.append(("evaluate.labels", f"{labels!r} does not exist"))
        if block.get("split_values") and not block.get("split_column"):
            problems.append(("evaluate.split_values", "needs evaluate.split_column (the column they are values of)"))
    else:
        problems += [("evaluate.ptbxl_dir", f"{str(Path(ptbxl) / name)!r} does not exist (PTB-XL's folder holds "
                                            f"{' and '.join(PTBXL_FILES)})")
                     for name in PTBXL_FILES if not exists(str(Path(ptbxl) / name))]
        # PTB-XL decides these itself: the record path, the task's statements, strat_fold.
        if block.get("join_on", "key") != "key":
            problems.append(("evaluate.join_on", "PTB-XL joins on the key (the record path); leave it at key"))
        for key in ("label_columns", "split_column"):
            if block.get(key):
                problems.append((f"evaluate.{key}", "not used with evaluate.ptbxl_dir (evaluate.task picks the "
                                                    "labels, strat_fold the split)"))
    return problems
