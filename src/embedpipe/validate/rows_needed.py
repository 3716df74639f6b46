"""The checks whose verdict depends on the run's size, and how many rows each needs to judge.

A trial of a few files per shard (`extract.limit`) runs the same checks as the full run; on six rows
the spread of the embeddings is the sample's, not the model's, and one corrupt file is a sixth of the
run. Below its minimum a spread check says "too few rows to judge" and passes; the error fraction is
then judged by how likely that many errors are at the allowed rate. The other checks count per row
(NaN, all-zero, duplicate keys and vectors, widths, the manifests) and mean the same at any size.
docs/outputs.md (Validation report) lists these minimums and their reasons.
"""

from __future__ import annotations

import math

# The mean cosine of the pairs of n rows has the sampling error of n rows, not of their n(n-1)/2
# pairs: each row is in 2/n of them, so below 20 rows one unusual row moves the mean by over a tenth
# of the rows' spread.
SPREAD_ROWS = 20
# The effective rank of n rows is at most n - 1 (they are centred) and biased down well before that:
# an isotropic 32-D spectrum (effective rank 22) measures 4.4 on 6 rows, 11.9 on 20 and 22 only past
# 1,000; the demo's tiny model measures 1.99 on 6 rows and 3.0 on 28. Ten rows per unit of the rank
# judged (20 for the default 2.0) keep a model at the threshold from failing for want of rows.
ROWS_PER_UNIT_OF_RANK = 10
# Below 1/max_error_fraction files, one error is over the fraction: then the errors fail the check only
# when that many would happen at the allowed rate less than once in a hundred runs (an exact binomial tail).
ERROR_TAIL = 0.01
SMALL_RUN_FILES = 1000  # past this many files a run is judged by its fraction alone


def rank_rows(min_effective_rank: float) -> int:
    """Rows the effective-rank check needs to judge `min_effective_rank`."""
    return max(SPREAD_ROWS, math.ceil(ROWS_PER_UNIT_OF_RANK * min_effective_rank))


def too_few(rows: int, needed: int) -> str:
    return f"too few rows to judge (n = {rows} < {needed})"


def mean_cosine_verdict(rows: int, mean: float | None, max_mean: float) -> tuple[bool, str]:
    if rows < SPREAD_ROWS:
        return True, too_few(rows, SPREAD_ROWS)
    if mean is None:
        return False, f"mean cosine not measured on {rows} rows"
    passed = mean <= max_mean
    return passed, f"mean cosine of random pairs {mean:.4f} {'≤' if passed else '>'} {max_mean}"


def rank_verdict(rows: int, rank: float | None, min_rank: float) -> tuple[bool, str]:
    needed = rank_rows(min_rank)
    if rows < needed:
        return True, too_few(rows, needed) + f": {ROWS_PER_UNIT_OF_RANK} rows per unit of the rank judged"
    if rank is None:
        return False, f"effective rank not measured on {rows} rows"
    passed = rank >= min_rank
    return passed, f"effective rank {rank:.4f} {'≥' if passed else '<'} {min_rank}"


def error_fraction_verdict(errors: int, files: int, max_fraction: float) -> tuple[bool, str]:
    fraction = errors / files if files else 0.0
    stated = f"{errors}/{files} error rows = {fraction:.4f}"
    if fraction <= max_fraction:
        return True, f"{stated} ≤ {max_fraction}"
    # Leniency is for runs too small to show the fraction at all (a trial): a strict threshold on a
    # large run (1e-6 over 525,000 files) is the user's choice of "none", judged as written.
    needed = min(math.ceil(1 / max_fraction), SMALL_RUN_FILES) if max_fraction > 0 else 0
    if files >= needed:
        return False, f"{stated} > {max_fraction}"
    chance = binomial_tail(errors, files, max_fraction)
    if chance < ERROR_TAIL:
        return False, (f"{stated} > {max_fraction}: too many to be chance at that rate, even in {files} files "
                       f"(p = {chance:.2g})")
    return True, (f"{stated} > {max_fraction}, but {files} files are too few to judge the fraction (n < {needed}): "
                  f"{errors} or more errors happen at that rate with p = {chance:.2g}")


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), 0 < p < 1 (the terms in logs: comb(n, i) overflows a float)."""
    def term(i: int) -> float:
        return math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * math.log(p) + (n - i) * math.log1p(-p))

    return min(1.0, max(0.0, 1.0 - math.fsum(term(i) for i in range(k))))
