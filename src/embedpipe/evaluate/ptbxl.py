"""PTB-XL as it ships: `ptbxl_database.csv` (ecg_id, filename_hr, scp_codes, strat_fold) and
`scp_statements.csv` (one row per SCP statement; diagnostic/form/rhythm flags, diagnostic_class).

A record's labels for a task are the statements of that kind its scp_codes lists, whatever their
likelihood (as PTB-XL's benchmark counts them); superdiagnostic maps diagnostic statements to their
class (NORM, MI, STTC, CD, HYP). Records with no statement of the task are left out, and counted.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from embedpipe.evaluate.labels import LabelError, LabelTable

RECORDS = "records500"


def record_of(key: str) -> str:
    """An embedpipe key as PTB-XL's filename_hr spells it: `records500/00000/00001_hr.hea` →
    `records500/00000/00001_hr`; a key under records500 itself (input_dir = records500) gains the prefix."""
    stem = str(PurePosixPath(key.replace("\\", "/")).with_suffix(""))
    at = stem.rfind(f"{RECORDS}/")
    return stem[at:] if at >= 0 else f"{RECORDS}/{stem}"


def task_statements(statements: pd.DataFrame, task: str) -> dict[str, str]:
    """SCP code → the class it counts as in this task."""
    if task == "superdiagnostic":
        chosen = statements[(statements["diagnostic"] == 1) & statements["diagnostic_class"].notna()]
        return {str(code): str(cls) for code, cls in chosen["diagnostic_class"].items()}
    if task not in ("rhythm", "form"):
        raise LabelError(f"evaluate.task: {task!r} is not a PTB-XL task (rhythm, superdiagnostic, form)")
    return {str(code): str(code) for code in statements.index[statements[task] == 1]}


def ptbxl_labels(folder: str | Path, task: str) -> tuple[LabelTable, dict[str, Any]]:
    """The task's labels, one row per record that has any, joined on filename_hr, split by strat_fold."""
    folder = Path(folder)
    database = pd.read_csv(folder / "ptbxl_database.csv", index_col="ecg_id")
    statements = pd.read_csv(folder / "scp_statements.csv", index_col=0)
    missing = [c for c in ("filename_hr", "scp_codes", "strat_fold") if c not in database.columns]
    missing += [c for c in ("diagnostic", "form", "rhythm", "diagnostic_class") if c not in statements.columns]
    if missing:
        raise LabelError(f"evaluate.ptbxl_dir: {folder} lacks PTB-XL's columns {missing}")
    counts_as = task_statements(statements, task)
    per_record = [sorted({counts_as[c] for c in ast.literal_eval(codes) if c in counts_as})
                  for codes in database["scp_codes"]]
    has = np.array([bool(labels) for labels in per_record])
    classes = sorted({c for labels in per_record for c in labels})
    index = {c: i for i, c in enumerate(classes)}
    targets = np.zeros((int(has.sum()), len(classes)), np.uint8)
    for row, labels in enumerate(labels for labels, ok in zip(per_record, has, strict=True) if ok):
        targets[row, [index[c] for c in labels]] = 1
    chosen = database[has]
    table = LabelTable(
        join_column="filename_hr",
        join_values=[record_of(str(f)) for f in chosen["filename_hr"]],
        classes=classes,
        targets=targets,
        valid=np.ones(len(chosen), bool),
        split=[str(int(f)) for f in chosen["strat_fold"]],
        source=f"PTB-XL {task}",
    )
    info = {"task": task, "records": len(database), "records_without_task_label": int((~has).sum()),
            "statements": sorted(counts_as) if task != "superdiagnostic" else classes,
            "likelihood": "every statement scp_codes lists counts, whatever its likelihood (PTB-XL's benchmark)"}
    return table, info
