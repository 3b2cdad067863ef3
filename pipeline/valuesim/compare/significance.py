"""Tests between every pair of boxes of one figure, Benjamini-Hochberg corrected over
the figure's pairs.

Default (``paired``): the boxes hold the same (model, method, country, question) cells
under different settings, so each pair is compared on the cells both score with the
paired test clustered by question of :mod:`valuesim.analysis.paired`: per question the
differences a - b are averaged over the (model, method, country) cells both boxes
score, a sign-flip permutation test runs over the questions, and the mean difference
gets a 95% interval from a bootstrap resampling questions. A box that pools several
experiments (a one-param panel of a several-param sweep) contributes, per cell, the
mean over its experiments that score it; cells only one box scores are left out and
counted (``n_unmatched``).

``mann-whitney``: the paper's two-sided Mann-Whitney U between the boxes' pooled cell
errors (Figure 6 annotations), as if they were independent samples; it ignores the
pairing, so it misses differences of a few hundredths of the range that the paired test
finds (:mod:`valuesim.analysis.paired`). Labelled ``unpaired`` wherever it is shown.

SciPy does the tests (``scipy.stats.mannwhitneyu``, ``permutation_test``, ``bootstrap``)
and the BH step (``scipy.stats.false_discovery_control``); the tests check the numbers
against statsmodels' ``multipletests(method="fdr_bh")``. A pair whose p-value is
undefined (an empty group, no shared cell) gets NaN and stays out of the correction, so
it cannot change the other pairs' adjusted p-values.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from scipy import stats

from valuesim.analysis import paired

PAIRED, MANN_WHITNEY = "paired", "mann-whitney"
TESTS = (PAIRED, MANN_WHITNEY)
#: the ``test`` column of tests.csv
TEST_NAMES = {PAIRED: "paired, clustered by question (sign-flip)", MANN_WHITNEY: "Mann-Whitney U (unpaired)"}
#: resamples of the paired difference's bootstrap interval
BOOTSTRAP = 2000
# (upper bound of the BH-adjusted p-value, mark): the paper's "**** denotes p < 10^-4"
STARS = ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (0.05, "*"))
# n1, n2: cells in each box; n_cells, n_questions, n_unmatched: the paired test's shared
# cells, their questions, and cells only one box scores (null for Mann-Whitney); diff:
# a - b (paired: mean over questions of the per-question mean difference; unpaired: the
# difference of the boxes' means); ci_lo/ci_hi: the paired difference's 95% interval
# (questions resampled); U: Mann-Whitney's statistic of a (null for the paired test)
TEST_SCHEMA = {
    "pair": pl.Utf8, "a": pl.Utf8, "b": pl.Utf8, "test": pl.Utf8, "n1": pl.Int64, "n2": pl.Int64,
    "n_cells": pl.Int64, "n_questions": pl.Int64, "n_unmatched": pl.Int64, "diff": pl.Float64,
    "ci_lo": pl.Float64, "ci_hi": pl.Float64, "U": pl.Float64, "p": pl.Float64, "p_BH": pl.Float64,
    "stars": pl.Utf8,
}


def stars(p_adjusted: float) -> str:
    """``****`` for p < 1e-4, ``***`` < 1e-3, ``**`` < 1e-2, ``*`` < 0.05, else ``ns``."""
    if not np.isfinite(p_adjusted):
        return "n/a"
    return next((mark for bound, mark in STARS if p_adjusted < bound), "ns")


def pairwise_tests(groups: Mapping[str, ArrayLike]) -> pl.DataFrame:
    """Mann-Whitney U (unpaired) for every pair of groups, in the groups' order: U is
    the first group's statistic (``n1 * n2 / 2`` when neither tends to be larger)."""
    names = list(groups)
    values = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items()}
    rows = []
    for a, b in combinations(names, 2):
        x, y = values[a], values[b]
        u, p, diff = np.nan, np.nan, np.nan
        if x.size and y.size:
            res = stats.mannwhitneyu(x, y, alternative="two-sided")
            u, p, diff = float(res.statistic), float(res.pvalue), float(x.mean() - y.mean())
        rows.append({"pair": f"{a} vs {b}", "a": a, "b": b, "test": TEST_NAMES[MANN_WHITNEY],
                     "n1": int(x.size), "n2": int(y.size), "diff": diff, "U": u, "p": p})
    return _corrected(rows)


def paired_pairwise_tests(boxes: Mapping[str, pl.DataFrame], metric: str, seed: int = 0) -> pl.DataFrame:
    """The paired test clustered by question for every pair of boxes, in the boxes'
    order: ``boxes`` are cells (model, method, country, question and ``metric``)."""
    rows = []
    for a, b in combinations(list(boxes), 2):
        res = paired.paired_test(boxes[a], boxes[b], metric, n_resamples=BOOTSTRAP, seed=seed,
                                 units=("model", "method", "country"))
        rows.append({"pair": f"{a} vs {b}", "a": a, "b": b, "test": TEST_NAMES[PAIRED],
                     "n1": boxes[a].height, "n2": boxes[b].height, "n_cells": res.n_cells,
                     "n_questions": res.n_questions, "n_unmatched": res.n_unmatched, "diff": res.diff,
                     "ci_lo": res.ci_lo, "ci_hi": res.ci_hi, "p": res.p})
    return _corrected(rows)


def _corrected(rows: list[dict[str, object]]) -> pl.DataFrame:
    """The rows with BH-adjusted p-values over the finite ones, and their stars."""
    frame = pl.DataFrame(rows, schema={k: v for k, v in TEST_SCHEMA.items() if k not in ("p_BH", "stars")})
    p = frame["p"].to_numpy()
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = stats.false_discovery_control(p[finite], method="bh")
    return frame.with_columns(
        pl.Series("p_BH", adjusted, dtype=pl.Float64),
        pl.Series("stars", [stars(v) for v in adjusted], dtype=pl.Utf8),
    ).select(list(TEST_SCHEMA))
