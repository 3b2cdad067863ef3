"""Scores of simulated against human answer distributions (paper section 4.6).

Distributions are (..., K) arrays over the K answer values of one scale; every
score is normalized by the scale's range so that 1-4 and 1-10 questions compare:

* ``abs_error``: |E_pred[r] - E_human[r]| / range; its mean over questions is the MAE.
* ``normalized_variance``: Var[r] / (range² / 4), the largest variance a
  distribution on [min, max] can have (half the mass at each end).
* ``wasserstein``: 1-Wasserstein distance on the answer values / range.

The statistical tests wrap SciPy and statsmodels rather than re-implement them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from statsmodels.stats.multitest import multipletests

from valuesim.errors import DataError

FloatArray = NDArray[np.float64]


def _values(values: ArrayLike) -> tuple[FloatArray, float]:
    r = np.asarray(values, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or np.any(np.diff(r) <= 0):
        raise DataError("answer values must be at least two strictly increasing numbers")
    return r, float(r[-1] - r[0])


def expected(p: ArrayLike, values: ArrayLike) -> FloatArray:
    r, _ = _values(values)
    return np.asarray(p, dtype=np.float64) @ r


def variance(p: ArrayLike, values: ArrayLike) -> FloatArray:
    r, _ = _values(values)
    arr = np.asarray(p, dtype=np.float64)
    m = arr @ r
    return np.maximum(arr @ (r * r) - m * m, 0.0)


def normalized_variance(p: ArrayLike, values: ArrayLike) -> FloatArray:
    _, span = _values(values)
    return variance(p, values) / (span * span / 4.0)


def abs_error(pred: ArrayLike, human: ArrayLike, values: ArrayLike) -> FloatArray:
    _, span = _values(values)
    return np.abs(expected(pred, values) - expected(human, values)) / span


def wasserstein(pred: ArrayLike, human: ArrayLike, values: ArrayLike) -> FloatArray:
    """W1 between distributions on the same support: Σ |F_p - F_h| Δr, / range."""
    r, span = _values(values)
    a = np.cumsum(np.asarray(pred, dtype=np.float64), axis=-1)[..., :-1]
    b = np.cumsum(np.asarray(human, dtype=np.float64), axis=-1)[..., :-1]
    return np.abs(a - b) @ np.diff(r) / span


# ---------------------------------------------------------------------------
# Frames with list columns (codes, probs) <-> dense arrays, one scale at a time


def dense(frame: pl.DataFrame, probs_col: str) -> tuple[tuple[int, ...], FloatArray]:
    """Stack a frame whose rows share one ``codes`` list into an (n, K) array."""
    codes = frame["codes"].to_list()
    first = tuple(codes[0])
    if any(tuple(c) != first for c in codes):
        raise DataError("rows of one question have different answer codes; re-run simulate")
    arr = np.asarray(frame[probs_col].to_list(), dtype=np.float64)
    if arr.shape != (frame.height, len(first)):
        raise DataError(f"{probs_col} lists do not match the codes lists; re-run simulate")
    return first, arr


def human_arrays(
    human: pl.DataFrame, keys: pl.DataFrame, codes: Sequence[int]
) -> FloatArray:
    """Human shares for each (country, question) row of ``keys`` on ``codes``.

    ``human`` is data/human/distributions.parquet (country, question, code, share);
    codes absent from it have share 0. A human code outside ``codes`` or a row
    without any human answers is a contract violation.
    """
    index = {c: i for i, c in enumerate(codes)}
    sub = human.join(keys.select("country", "question").unique(), on=["country", "question"])
    bad = sub.filter(~pl.col("code").is_in(list(codes)))
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(
            f"human answer code {row['code']} of {row['question']} is not an answer option; "
            "check the question bank against data/human"
        )
    pairs = list(zip(keys["country"].to_list(), keys["question"].to_list(), strict=True))
    unique = {k: i for i, k in enumerate(dict.fromkeys(pairs))}
    table = np.zeros((len(unique), len(codes)))
    for country, question, code, share in sub.select(
        "country", "question", "code", "share"
    ).iter_rows():
        table[unique[(country, question)], index[code]] += share
    out = table[[unique[k] for k in pairs]] if pairs else table
    total = out.sum(axis=1)
    if np.any(total <= 0):
        i = int(np.argmin(total))
        raise DataError(
            f"no human answers for {keys['country'][i]} {keys['question'][i]}; "
            "re-run the human stage for the selected countries"
        )
    return out / total[:, None]


# ---------------------------------------------------------------------------
# Statistics


def bootstrap_ci(
    x: ArrayLike, n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (SciPy); a single value has no interval."""
    arr = np.asarray(x, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    res = stats.bootstrap(
        (arr,), np.mean, n_resamples=n_resamples, confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_methods(errors: pl.DataFrame) -> pl.DataFrame:
    """Wilcoxon signed-rank across questions for every method pair per (model, country).

    ``errors``: model, country, method, question, value. Returns model, country,
    method_a, method_b, n, statistic, p_value, better (the method with the lower
    mean; None on a tie).
    """
    rows: list[dict[str, object]] = []
    for (model, country), grp in errors.group_by(["model", "country"], maintain_order=True):
        wide = grp.pivot(on="method", index="question", values="value").drop_nulls()
        methods = [c for c in wide.columns if c != "question"]
        for a, b in combinations(sorted(methods), 2):
            x, y = wide[a].to_numpy(), wide[b].to_numpy()
            diff = x - y
            if np.count_nonzero(diff) == 0:
                stat, p = float("nan"), 1.0
            else:
                res = stats.wilcoxon(x, y, zero_method="wilcox")
                stat, p = float(res.statistic), float(res.pvalue)
            mean_a, mean_b = float(x.mean()), float(y.mean())
            better = a if mean_a < mean_b else b if mean_b < mean_a else None
            rows.append({
                "model": model, "country": country, "method_a": a, "method_b": b,
                "n": len(x), "statistic": stat, "p_value": p, "better": better,
            })
    schema = {
        "model": pl.Utf8, "country": pl.Utf8, "method_a": pl.Utf8, "method_b": pl.Utf8,
        "n": pl.Int64, "statistic": pl.Float64, "p_value": pl.Float64, "better": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def mann_whitney_bh(groups: Mapping[str, ArrayLike], alpha: float = 0.05) -> pl.DataFrame:
    """Two-sided Mann-Whitney U for every pair of groups, Benjamini-Hochberg corrected."""
    names = sorted(groups)
    pairs = list(combinations(names, 2))
    schema = {
        "a": pl.Utf8, "b": pl.Utf8, "statistic": pl.Float64, "p_value": pl.Float64,
        "p_adjusted": pl.Float64, "significant": pl.Boolean,
    }
    if not pairs:
        return pl.DataFrame(schema=schema)
    stat, pvals = [], []
    for a, b in pairs:
        res = stats.mannwhitneyu(
            np.asarray(groups[a], dtype=np.float64), np.asarray(groups[b], dtype=np.float64),
            alternative="two-sided",
        )
        stat.append(float(res.statistic))
        pvals.append(float(res.pvalue))
    reject, adjusted, _, _ = multipletests(pvals, alpha=alpha, method="fdr_bh")
    return pl.DataFrame({
        "a": [a for a, _ in pairs], "b": [b for _, b in pairs], "statistic": stat,
        "p_value": pvals, "p_adjusted": adjusted.tolist(), "significant": reject.tolist(),
    }, schema=schema)
