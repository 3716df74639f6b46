"""AUROC of every class at once (the Mann–Whitney rank statistic) and its bootstrap over test rows.

The rank form costs one sort per class, so a thousand resamples of a PTB-XL test fold take seconds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def auroc_columns(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(classes,) AUROC of scores[:, c] for targets[:, c]; NaN where a class has no positive or no
    negative. Tied scores count one half, as roc_auc_score does."""
    targets = targets.astype(bool)
    ranks = rankdata(scores, axis=0)
    positives = targets.sum(axis=0).astype(float)
    negatives = len(targets) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * targets).sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def mean_over_parts(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-class AUROC averaged over parts (k-fold's test folds; one part with a given split),
    over the parts where the class has both positives and negatives."""
    per_part = np.stack([auroc_columns(t, s) for t, s in parts])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: the class is undefined everywhere
        return np.nanmean(per_part, axis=0)


@dataclass
class Intervals:
    per_class: np.ndarray  # (classes, 2): 2.5 and 97.5 percentiles; NaN where no resample had the class
    macro: np.ndarray  # (2,)
    resamples: int
    skipped_per_class: np.ndarray  # resamples that lacked the class (a positive or a negative)
    skipped_macro: int  # resamples that lacked any class: the macro mean is undefined there


def bootstrap_intervals(parts: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int) -> Intervals:
    """Percentile 95 % intervals: each part's test rows drawn with replacement (seeded), the
    statistic recomputed as for the point estimate; a resample lacking a class is skipped and counted."""
    classes = parts[0][0].shape[1]
    rng = np.random.default_rng(seed)
    values = np.full((resamples, classes), np.nan)
    for b in range(resamples):
        drawn = []
        for targets, scores in parts:
            rows = rng.integers(0, len(targets), len(targets))
            drawn.append((targets[rows], scores[rows]))
        values[b] = mean_over_parts(drawn)
    defined = ~np.isnan(values)
    complete = defined.all(axis=1)
    per_class = np.full((classes, 2), np.nan)
    for c in range(classes):
        if defined[:, c].any():
            per_class[c] = np.percentile(values[defined[:, c], c], [2.5, 97.5])
    macro = np.percentile(values[complete].mean(axis=1), [2.5, 97.5]) if complete.any() else np.full(2, np.nan)
    return Intervals(per_class, macro, resamples, (~defined).sum(axis=0), int((~complete).sum()))
