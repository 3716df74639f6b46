"""The checks whose verdict depends on the run's size: how many rows each needs, and what it says below."""

from __future__ import annotations

import math

import pytest

from embedpipe.validate.rows_needed import (
    SPREAD_ROWS,
    binomial_tail,
    error_fraction_verdict,
    mean_cosine_verdict,
    rank_rows,
    rank_verdict,
)


def test_the_rank_check_needs_ten_rows_per_unit_of_the_rank_it_judges():
    assert rank_rows(2.0) == 20 and rank_rows(4.5) == 45 and rank_rows(0.5) == SPREAD_ROWS
    # a 6-row trial that measured 1.987 (the issue's): not judged, and it says why
    assert rank_verdict(6, 1.987, 2.0) == (True, "too few rows to judge (n = 6 < 20): 10 rows per unit of the rank "
                                                 "judged")
    assert rank_verdict(20, 1.987, 2.0) == (False, "effective rank 1.9870 < 2.0")
    assert rank_verdict(28, 3.0157, 2.0) == (True, "effective rank 3.0157 ≥ 2.0")


def test_the_collapse_check_needs_twenty_rows():
    assert mean_cosine_verdict(19, 0.999, 0.99) == (True, "too few rows to judge (n = 19 < 20)")
    assert mean_cosine_verdict(20, 0.999, 0.99) == (False, "mean cosine of random pairs 0.9990 > 0.99")


def test_the_binomial_tail_is_exact():
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(1, 6, 0.01) == pytest.approx(1 - 0.99**6)
    assert binomial_tail(2, 6, 0.01) == pytest.approx(1 - 0.99**6 - 6 * 0.01 * 0.99**5)
    assert binomial_tail(3, 5, 0.5) == pytest.approx(sum(math.comb(5, i) for i in range(3, 6)) / 32)
    assert 0 < binomial_tail(4000, 9000, 0.4) < 1e-10  # no float overflow at thousands of files


def test_an_error_fraction_below_one_over_the_max_files_is_judged_by_how_likely_the_errors_are():
    # one error in a 6-file trial is a sixth, and at a 1 % rate happens in 6 % of trials: not judged
    passed, detail = error_fraction_verdict(1, 6, 0.01)
    assert passed and detail == ("1/6 error rows = 0.1667 > 0.01, but 6 files are too few to judge the fraction "
                                 "(n < 100): 1 or more errors happen at that rate with p = 0.059")
    # two of six happen at that rate in 0.15 % of trials: too many, whatever the size
    passed, detail = error_fraction_verdict(2, 6, 0.01)
    assert not passed and detail == ("2/6 error rows = 0.3333 > 0.01: too many to be chance at that rate, even in "
                                     "6 files (p = 0.0015)")
    assert error_fraction_verdict(6, 6, 0.01)[0] is False  # a decoder missing: every file an error row
    # from 1/max files on, the fraction is the fraction
    assert error_fraction_verdict(2, 100, 0.01) == (False, "2/100 error rows = 0.0200 > 0.01")
    assert error_fraction_verdict(1, 100, 0.01) == (True, "1/100 error rows = 0.0100 ≤ 0.01")
    # max 0: any error fails, at any size
    assert error_fraction_verdict(1, 3, 0.0) == (False, "1/3 error rows = 0.3333 > 0.0")
    assert error_fraction_verdict(0, 0, 0.0) == (True, "0/0 error rows = 0.0000 ≤ 0.0")


def test_leniency_is_for_small_runs_and_an_unmeasured_statistic_on_many_rows_fails():
    from embedpipe.validate.rows_needed import error_fraction_verdict

    # 1e-6 over 525,000 files: the user's "none", judged as written (3 errors fail)
    passed, detail = error_fraction_verdict(3, 525_000, 1e-6)
    assert not passed and "> 1e-06" in detail
    assert error_fraction_verdict(1, 6, 0.01)[0]  # a 6-file trial with one error is too small to judge
    assert rank_verdict(525_000, None, 2.0) == (False, "effective rank not measured on 525000 rows")
    assert mean_cosine_verdict(525_000, None, 0.99) == (False, "mean cosine not measured on 525000 rows")
