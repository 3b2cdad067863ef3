"""Two-sided Mann-Whitney U tests between every pair of boxes, Benjamini-Hochberg
corrected over the pairs of one figure (the paper's Figure 6 annotations).

SciPy does both steps (``scipy.stats.mannwhitneyu``, ``scipy.stats.false_discovery_control``);
the tests check the numbers against statsmodels' ``multipletests(method="fdr_bh")``.
A pair whose p-value is undefined (an empty group) gets NaN and stays out of the
correction, so it cannot change the other pairs' adjusted p-values.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from scipy import stats

# (upper bound of the BH-adjusted p-value, mark): the paper's "**** denotes p < 10^-4"
STARS = ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (0.05, "*"))
TEST_SCHEMA = {
    "pair": pl.Utf8, "a": pl.Utf8, "b": pl.Utf8, "n1": pl.Int64, "n2": pl.Int64,
    "U": pl.Float64, "p": pl.Float64, "p_BH": pl.Float64, "stars": pl.Utf8,
}


def stars(p_adjusted: float) -> str:
    """``****`` for p < 1e-4, ``***`` < 1e-3, ``**`` < 1e-2, ``*`` < 0.05, else ``ns``."""
    if not np.isfinite(p_adjusted):
        return "n/a"
    return next((mark for bound, mark in STARS if p_adjusted < bound), "ns")


def pairwise_tests(groups: Mapping[str, ArrayLike]) -> pl.DataFrame:
    """One row per pair of groups, in the groups' order: U is the first group's
    statistic (``n1 * n2 / 2`` when neither tends to be larger)."""
    names = list(groups)
    values = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items()}
    rows = []
    for a, b in combinations(names, 2):
        x, y = values[a], values[b]
        u, p = np.nan, np.nan
        if x.size and y.size:
            res = stats.mannwhitneyu(x, y, alternative="two-sided")
            u, p = float(res.statistic), float(res.pvalue)
        rows.append({"pair": f"{a} vs {b}", "a": a, "b": b, "n1": int(x.size), "n2": int(y.size),
                     "U": u, "p": p})
    frame = pl.DataFrame(rows, schema={k: TEST_SCHEMA[k] for k in ("pair", "a", "b", "n1", "n2", "U", "p")})
    p = frame["p"].to_numpy()
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = stats.false_discovery_control(p[finite], method="bh")
    return frame.with_columns(
        pl.Series("p_BH", adjusted, dtype=pl.Float64),
        pl.Series("stars", [stars(v) for v in adjusted], dtype=pl.Utf8),
    ).select(list(TEST_SCHEMA))
