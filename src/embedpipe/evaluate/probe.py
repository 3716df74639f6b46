"""The linear probe on frozen embeddings, and k-NN as the parameter-free read.

Per class (one-vs-rest, so multi-label works): standardised features (the scaler fit on train),
logistic regression for each C of the grid fit on train, the C with the best validation macro AUROC
kept; its scores on the test rows are what the metrics measure. Without a split: stratified k-fold,
fold i the test rows, fold i+1 the validation rows, the rest train.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from embedpipe.evaluate.auroc import auroc_columns
from embedpipe.evaluate.settings import EvaluationSettings

VALIDATION_SHARE_FOLDS = 5  # a split without validation rows: one fifth of train chooses C
STRATIFICATION = "each row's rarest positive class (rows with none: a stratum of their own)"


@dataclass
class FoldResult:
    train: np.ndarray  # row indices
    validation: np.ndarray
    test: np.ndarray
    chosen_c: float
    validation_auroc: dict[float, float]  # macro AUROC on the validation rows, per C
    probe_scores: np.ndarray  # (test rows, classes) decision function
    knn_scores: np.ndarray  # (test rows, classes) share of the k nearest training rows that are positive
    knn_accuracy: float


def strata(targets: np.ndarray) -> np.ndarray:
    """One stratum per row for stratified folds: its rarest positive class, so rare classes spread."""
    frequency = targets.sum(axis=0)
    rarity = np.where(targets.astype(bool), frequency[None, :], np.iinfo(np.int64).max)
    return np.where(targets.any(axis=1), rarity.argmin(axis=1), targets.shape[1])


def assign_folds(targets: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each row, stratified; rows sharing a group (a study, a patient) share a fold."""
    folds = np.zeros(len(targets), np.int64)
    grouped = len(set(groups)) < len(groups)
    splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if grouped else \
        StratifiedKFold(k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a stratum smaller than k: it just cannot be in every fold
        for fold, (_, rows) in enumerate(splitter.split(targets, strata(targets), groups if grouped else None)):
            folds[rows] = fold
    return folds


def _fit_class(x: np.ndarray, y: np.ndarray, c: float, class_weight: str | None) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight=class_weight, max_iter=2000).fit(x, y)


def choose_and_score(x: np.ndarray, targets: np.ndarray, train: np.ndarray, validation: np.ndarray,
                     test: np.ndarray, settings: EvaluationSettings, n_jobs: int) -> tuple[float, dict, np.ndarray]:
    """(chosen C, validation macro AUROC per C, test scores of the chosen C's probe)."""
    scaler = StandardScaler().fit(x[train])
    xs = {part: scaler.transform(x[rows]) for part, rows in (("train", train), ("validation", validation),
                                                            ("test", test))}
    best: tuple[float, float, np.ndarray] | None = None
    by_c: dict[float, float] = {}
    for c in sorted(settings.c_grid):
        models = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_fit_class)(xs["train"], targets[train, k], c, settings.class_weight)
            for k in range(targets.shape[1]))
        scores_val = np.stack([m.decision_function(xs["validation"]) for m in models], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no class defined on validation: every C ties
            by_c[c] = float(np.nanmean(auroc_columns(targets[validation], scores_val)))
        score = by_c[c] if not np.isnan(by_c[c]) else -np.inf
        if best is None or score > best[1]:  # ties keep the smaller C: the stronger regularisation
            best = (c, score, np.stack([m.decision_function(xs["test"]) for m in models], axis=1))
    assert best is not None
    return best[0], by_c, best[2]


def knn_read(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             k: int, n_jobs: int) -> tuple[np.ndarray, float]:
    """Cosine k-NN: per class the share of positive neighbours, and the accuracy of their vote."""
    index = NearestNeighbors(n_neighbors=min(k, len(x_train)), metric="cosine", algorithm="brute", n_jobs=n_jobs)
    neighbours = index.fit(x_train).kneighbors(x_test, return_distance=False)
    scores = y_train[neighbours].mean(axis=1)
    if exclusive(y_train) and exclusive(y_test) and y_test.shape[1] > 1:
        accuracy = float((scores.argmax(axis=1) == y_test.argmax(axis=1)).mean())
    else:
        accuracy = float(((scores > 0.5) == y_test.astype(bool)).mean())
    return scores, accuracy


def exclusive(targets: np.ndarray) -> bool:
    """Every row exactly one class: single-label, so k-NN accuracy is the top-1 vote's."""
    return bool((targets.sum(axis=1) == 1).all())


def accuracy_kind(targets: np.ndarray) -> str:
    if exclusive(targets) and targets.shape[1] > 1:
        return "top-1: the class most of the k neighbours have"
    return "label-wise: a class is predicted where more than half of the k neighbours have it, averaged over classes"


def run_fold(x: np.ndarray, targets: np.ndarray, train: np.ndarray, validation: np.ndarray, test: np.ndarray,
             settings: EvaluationSettings, n_jobs: int) -> FoldResult:
    chosen, by_c, scores = choose_and_score(x, targets, train, validation, test, settings, n_jobs)
    knn_scores, knn_accuracy = knn_read(x[train], targets[train], x[test], targets[test], settings.knn_k, n_jobs)
    return FoldResult(train, validation, test, chosen, by_c, scores, knn_scores, knn_accuracy)


def fixed_split(split: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """(train, validation, test) rows of a given split; a split without validation rows gets them
    from a stratified fifth of train, and says so."""
    train, validation, test = (np.flatnonzero(split == part) for part in ("train", "validation", "test"))
    note = None
    if not len(validation):
        folds = assign_folds(targets[train], groups[train], VALIDATION_SHARE_FOLDS, seed)
        train, validation = train[folds != 0], train[folds == 0]
        note = f"no validation rows in the split: C chosen on a stratified fifth of train ({STRATIFICATION})"
    return train, validation, test, note


def kfold_splits(targets: np.ndarray, groups: np.ndarray, k: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    folds = assign_folds(targets, groups, k, seed)
    return [(np.flatnonzero((folds != i) & (folds != (i + 1) % k)), np.flatnonzero(folds == (i + 1) % k),
             np.flatnonzero(folds == i)) for i in range(k)]


def classes_to_drop(targets: np.ndarray, parts: dict[str, np.ndarray], minimum: int = 1) -> dict[int, str]:
    """Classes an AUROC cannot be measured for: fewer than `minimum` positives or negatives in a part."""
    dropped: dict[int, str] = {}
    for name, rows in parts.items():
        positives = targets[rows].sum(axis=0)
        for c in range(targets.shape[1]):
            if c in dropped:
                continue
            if positives[c] < minimum:
                dropped[c] = f"{int(positives[c])} positive(s) in {name}"
            elif len(rows) - positives[c] < minimum:
                dropped[c] = f"{int(len(rows) - positives[c])} negative(s) in {name}"
    return dropped
