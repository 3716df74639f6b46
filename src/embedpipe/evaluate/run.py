"""The evaluate step: read the dataset and the labels, probe, measure, write metrics.json and the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from embedpipe.evaluate.auroc import bootstrap_intervals
from embedpipe.evaluate.join import Joined, join_labels, read_embeddings
from embedpipe.evaluate.labels import LabelError, read_labels
from embedpipe.evaluate.metrics import Evaluation, build_metrics
from embedpipe.evaluate.probe import (
    STRATIFICATION,
    classes_to_drop,
    fixed_split,
    kfold_splits,
    run_fold,
)
from embedpipe.evaluate.ptbxl import ptbxl_labels, record_of
from embedpipe.evaluate.settings import EvaluationSettings
from embedpipe.store.atomic import write_text_atomic

log = logging.getLogger(__name__)


def load_labelled(settings: EvaluationSettings, dataset_files: list[Path]) -> tuple[Joined, str, dict[str, Any]]:
    """The joined rows, the task's name and what the labels came from."""
    embeddings = read_embeddings(dataset_files, settings.join_on)
    if settings.is_ptbxl:
        table, source = ptbxl_labels(settings.ptbxl_dir, settings.task)
        return join_labels(embeddings, table, settings.split_map(), normalise=record_of), \
            f"PTB-XL {settings.task}", source
    if not settings.labels:
        raise LabelError("evaluate.labels: set a labels table or evaluate.ptbxl_dir")
    names = ["key", embeddings.key_column] if settings.join_on == "key" else [settings.join_on]
    table = read_labels(settings.labels, names, settings.label_columns, settings.split_column)
    source = {"labels": table.source, "join_column": table.join_column, "split_column": settings.split_column}
    return join_labels(embeddings, table, settings.split_map()), f"labels table {table.source}", source


def evaluate(settings: EvaluationSettings, dataset_files: list[Path], n_jobs: int = 1) -> Evaluation:
    joined, task, source = load_labelled(settings, dataset_files)
    log.info("%s: %s", task, json.dumps(joined.counts))
    if joined.split is not None:
        train, validation, test, note = fixed_split(joined.split, joined.targets, joined.groups, settings.seed)
        if not len(train) or not len(test):
            raise LabelError(f"evaluate.split_values: {len(train)} train and {len(test)} test rows; both are needed "
                             f"(split values {settings.split_map()})")
        splits = [(train, validation, test)]
        dropped = classes_to_drop(joined.targets, {"train": train, "test": test})
        protocol = {"kind": "split", "split_values": settings.split_map(), "note": note}
    else:
        splits = kfold_splits(joined.targets, joined.groups, settings.folds, settings.seed)
        dropped = classes_to_drop(joined.targets, {"all rows": np.arange(len(joined.targets))}, settings.folds)
        grouped = len(set(joined.groups)) < len(joined.groups)
        protocol = {"kind": "stratified k-fold", "folds": settings.folds, "stratified_by": STRATIFICATION,
                    "grouped_by": joined.counts["join_on"] if grouped else None,
                    "validation": "fold i+1 chooses C for test fold i; the others train",
                    "averaged": "per-class AUROC averaged over the test folds; n_* are per-fold means"}
    keep = [c for c in range(len(joined.classes)) if c not in dropped]
    if not keep:
        raise LabelError(f"{task}: no class has positives and negatives where needed: {dropped}")
    for c, reason in dropped.items():
        log.warning("class %s dropped: %s", joined.classes[c], reason)
    targets = joined.targets[:, keep]
    folds = [run_fold(joined.vectors, targets, *rows, settings=settings, n_jobs=n_jobs) for rows in splits]
    intervals = bootstrap_intervals([(targets[f.test], f.probe_scores) for f in folds], settings.bootstrap,
                                    settings.seed)
    metrics = build_metrics(settings, task, source, protocol, [joined.classes[c] for c in keep],
                            {joined.classes[c]: reason for c, reason in dropped.items()}, targets, folds, intervals,
                            joined.counts)
    return Evaluation(metrics, targets, folds)


def write_evaluation(result: Evaluation, out_dir: Path, title: str) -> dict[str, Path]:
    """metrics.json, roc.png and report.html into out_dir."""
    from embedpipe.evaluate.report import plot_roc, render_html  # matplotlib loads only when a page is written

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "roc": out_dir / "roc.png", "report": out_dir / "report.html"}
    plot_roc(result, paths["roc"])
    write_text_atomic(paths["report"], render_html(result.metrics, paths["roc"], title))
    write_text_atomic(paths["metrics"], json.dumps(result.metrics, indent=2))
    return paths
