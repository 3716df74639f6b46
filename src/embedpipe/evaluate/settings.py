"""The `evaluate` config block as the library takes it, and the checks that run before any job.

Imports only the standard library: the Snakefile reads this module when it builds the DAG.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from embedpipe.runtime.step_settings import setting

TASKS = ("rhythm", "superdiagnostic", "form")
SPLITS = ("train", "validation", "test")
# PTB-XL's recommended split (its strat_fold column): 1-8 train, 9 validation, 10 test.
PTBXL_SPLIT: dict[str, list[Any]] = {"train": list(range(1, 9)), "validation": [9], "test": [10]}
NAMED_SPLIT: dict[str, list[Any]] = {"train": ["train"], "validation": ["validation", "val"], "test": ["test"]}
LABEL_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
PTBXL_FILES = ("ptbxl_database.csv", "scp_statements.csv")


@dataclass
class EvaluationSettings:
    """The `evaluate` block (without `enabled`): the only defaults of these settings in code."""

    labels: str | None = setting(None, "a labels table (.csv/.parquet): the join column, then label columns (and "
                                       "a split column)")
    ptbxl_dir: str | None = setting(None, "... or PTB-XL as it ships (ptbxl_database.csv, scp_statements.csv); set "
                                          "one of the two")
    task: str = setting("rhythm", "PTB-XL: rhythm | superdiagnostic | form")
    join_on: str = setting("key", "key, or a metadata column of the dataset (file_path, study_id); the table names "
                                  "it so")
    label_columns: list[str] | None = setting(None, "null = every column but the join and split columns")
    split_column: str | None = setting(None, "null = stratified k-fold (rows sharing a join value stay in one fold)")
    split_values: dict[str, list[Any]] | None = setting(None, "{train: [...], validation: [...], test: [...]}; null "
                                                              "= train/validation/test, PTB-XL 1-8/9/10")
    folds: int = setting(5, "folds of the k-fold protocol")
    c_grid: list[float] = setting(help="C of the logistic regression, chosen by validation macro AUROC",
                                  factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0])
    class_weight: str | None = setting(None, "null | balanced")
    knn_k: int = setting(11, "neighbours of the cosine k-NN (odd, so a binary vote never ties)")
    bootstrap: int = setting(1000, "resamples of the test rows for the 95 % intervals")
    seed: int = setting(0, "seed of the folds, the probe and the bootstrap")

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
