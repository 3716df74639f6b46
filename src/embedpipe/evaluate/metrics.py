"""metrics.json: what was measured, on how many rows, and how sure it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedpipe.evaluate.auroc import Intervals, mean_over_parts
from embedpipe.evaluate.probe import FoldResult, accuracy_kind
from embedpipe.evaluate.settings import EvaluationSettings

PROBE = "StandardScaler (fit on train) + LogisticRegression per class (one-vs-rest)"
BOOTSTRAP = ("percentile 95 % interval; each test fold's rows drawn with replacement, the statistic recomputed "
             "(per-class AUROC averaged over folds, macro = mean over classes); a resample lacking a positive or "
             "a negative of a class is skipped for that class, and for the macro mean")


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    targets: np.ndarray  # the evaluated rows' labels, measured classes only
    folds: list[FoldResult]


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 6)


def _ci(pair: np.ndarray) -> list[float | None]:
    return [_num(pair[0]), _num(pair[1])]


def fold_summary(fold: FoldResult, targets: np.ndarray) -> dict[str, Any]:
    auroc = mean_over_parts([(targets[fold.test], fold.probe_scores)])
    return {"n_train": len(fold.train), "n_validation": len(fold.validation), "n_test": len(fold.test),
            "chosen_c": fold.chosen_c, "validation_macro_auroc": {str(c): _num(v) for c, v in
                                                                  fold.validation_auroc.items()},
            "test_macro_auroc": _num(float(np.mean(auroc))) if not np.isnan(auroc).any() else None,
            "knn_accuracy": _num(fold.knn_accuracy)}


def build_metrics(settings: EvaluationSettings, task: str, source: dict[str, Any], protocol: dict[str, Any],
                  classes: list[str], dropped: dict[str, str], targets: np.ndarray, folds: list[FoldResult],
                  intervals: Intervals, join: dict[str, Any]) -> dict[str, Any]:
    probe_parts = [(targets[f.test], f.probe_scores) for f in folds]
    knn_parts = [(targets[f.test], f.knn_scores) for f in folds]
    per_class = mean_over_parts(probe_parts)
    knn_per_class = mean_over_parts(knn_parts)
    split = protocol["kind"] == "split"
    summaries = [fold_summary(f, targets) for f in folds]

    def positives(c: int) -> dict[str, int]:
        if not split:
            return {"rows": int(targets[:, c].sum())}
        f = folds[0]
        return {part: int(targets[rows, c].sum()) for part, rows in
                (("train", f.train), ("validation", f.validation), ("test", f.test))}

    def n(part: str) -> int:
        return int(round(np.mean([s[f"n_{part}"] for s in summaries])))

    return {
        "task": task,
        "source": source,
        "protocol": protocol,
        "n_train": n("train"), "n_validation": n("validation"), "n_test": n("test"),
        "classes": classes,
        "dropped_classes": dropped,
        "probe": {"model": PROBE, "c_grid": sorted(settings.c_grid), "class_weight": settings.class_weight,
                  "chosen_c": folds[0].chosen_c if split else [f.chosen_c for f in folds],
                  "chosen_by": "validation macro AUROC (ties: the smaller C)"},
        "macro_auroc": {"value": _num(float(per_class.mean())), "ci95": _ci(intervals.macro)},
        "per_class": {name: {"auroc": _num(per_class[c]), "ci95": _ci(intervals.per_class[c]),
                             "positives": positives(c)} for c, name in enumerate(classes)},
        "bootstrap": {"resamples": intervals.resamples, "method": BOOTSTRAP, "skipped_macro": intervals.skipped_macro,
                      "skipped_per_class": {name: int(intervals.skipped_per_class[c])
                                            for c, name in enumerate(classes)}},
        "knn": {"k": settings.knn_k, "metric": "cosine", "neighbours_from": "train rows",
                "accuracy": _num(float(np.mean([f.knn_accuracy for f in folds]))),
                "accuracy_kind": accuracy_kind(targets),
                "macro_auroc": _num(float(knn_per_class.mean())),
                "per_class": {name: _num(knn_per_class[c]) for c, name in enumerate(classes)}},
        "folds": summaries,
        "join": join,
        "seed": settings.seed,
    }
