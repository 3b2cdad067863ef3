"""Split-conformal prediction intervals for a question nobody has asked.

The persona bootstrap of ``valuesim ask`` measures simulation noise only. What a reader
of a new answer needs is how far the model's country mean is from the population's,
and the study knows that for every kept target question: the score of a cell
(country c, question q) is

    s(c, q) = |simulated mean - weighted human mean| / range   (range = hi - lo)

on the 0-1 scale. Questions are the exchangeability unit (a new item is a new
question, not a new country), so every threshold is an order statistic over
questions and every check holds out whole questions (or whole batteries). With K
exchangeable scores the ceil((K+1)·level)-th smallest covers a new one with
probability >= level (Vovk et al.; Angelopoulos and Bates 2021, section 1); when that
rank exceeds K no finite threshold is valid and the interval is the whole scale.

Variants (each fitted per (model, method, kind, number of personas, level)):

* ``per_country``: one threshold per country from that country's K scores;
* ``pooled``: one threshold from every (country, question) score (not exchangeable by
  question: the audit found per-country coverage 0.75-0.97 with it);
* ``joint``: the score of a question is its largest score over countries; one
  threshold covers every country of a new item at once (simultaneous);
* ``normalized``: per country, on s / d where d = max(persona SD / range, 0.01) is a
  difficulty known before the humans answer (how much the personas disagree); the
  interval is pred -/+ threshold * d * range.

Arrays are (..., C, Q): leading axes are independent replicates (the property tests
vectorise over them), NaN marks a cell that does not exist (a question dropped in a
country). Everything here is NumPy; the tables are :mod:`valuesim.analysis.interval_tables`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from valuesim.errors import DataError

FloatArray = NDArray[np.float64]
Variant = Literal["per_country", "pooled", "joint", "normalized"]
VARIANTS: tuple[Variant, ...] = ("per_country", "pooled", "joint", "normalized")
# variants with one threshold for every country (interval_fits.parquet country "*")
SHARED_VARIANTS: tuple[Variant, ...] = ("pooled", "joint")
LEVELS: tuple[float, ...] = (0.8, 0.9, 0.95)
# below 1% of the range a persona SD says nothing about the residual (one persona,
# or personas that agree): the floor keeps s / d finite and the interval non-empty
DIFFICULTY_FLOOR = 0.01


def conformal_rank(n: ArrayLike, level: float) -> NDArray[np.int64]:
    """ceil((n + 1) · level), the 1-based rank of the conformal quantile of n scores.

    Rounded to 9 decimals first: (K + 1) · level is often an integer that floating
    point writes as 27.000000000000004, whose ceiling would be one rank too many.
    """
    if not 0.0 < level < 1.0:
        raise DataError(f"level {level} is not between 0 and 1; use e.g. 0.9")
    x = (np.asarray(n, dtype=np.float64) + 1.0) * level
    return np.ceil(np.round(x, 9)).astype(np.int64)


def conformal_quantile(scores: ArrayLike, level: float, axis: int = -1) -> FloatArray:
    """The ceil((K+1)·level)-th smallest of the K non-NaN scores along ``axis``;
    ``inf`` where that rank exceeds K (then no finite threshold is valid)."""
    a = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    n = np.sum(~np.isnan(a), axis=-1)
    k = conformal_rank(n, level)
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.inf)
    ordered = np.sort(a, axis=-1)  # NaN sorts last
    idx = np.clip(k - 1, 0, a.shape[-1] - 1)
    value = np.take_along_axis(ordered, idx[..., None], axis=-1)[..., 0]
    return np.where(k <= n, value, np.inf)


def difficulty(expected_answers: ArrayLike, scale_range: float) -> float:
    """d = max(SD of the personas' expected answers / range, 0.01), the normalized
    variant's difficulty of one cell (sample SD, ddof 1, as ask's ``persona_sd``; one
    persona has no spread and gets the floor)."""
    x = np.asarray(expected_answers, dtype=np.float64)
    x = x[np.isfinite(x)]
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    return max(sd / float(scale_range), DIFFICULTY_FLOOR)


def cell_seed(seed: int, country: str, question: str) -> int:
    """The persona bootstrap's seed for one cell, as ``valuesim.asking`` seeds it
    (tests check the two agree), so the evaluate stage reproduces ask's interval."""
    return zlib.crc32(f"{seed}:{country}:{question}".encode())


def _masked(scores: FloatArray, use: NDArray[np.bool_] | None) -> FloatArray:
    return scores if use is None else np.where(use, scores, np.nan)


def _column_max(x: FloatArray) -> FloatArray:
    """Max over countries (axis -2) ignoring NaN; NaN where a question has no cell
    (np.nanmax would warn on an all-NaN column)."""
    filled = np.where(np.isnan(x), -np.inf, x).max(axis=-2)
    return np.where(np.isneginf(filled), np.nan, filled)


def fit_thresholds(
    scores: ArrayLike, variant: Variant, level: float,
    difficulties: ArrayLike | None = None, use: ArrayLike | None = None,
) -> FloatArray:
    """Thresholds (..., C) fitted on the questions where ``use`` (Q,) is True (all
    when None): one per country, the same value repeated for pooled and joint.

    ``scores`` and ``difficulties`` are (..., C, Q); the normalized variant needs
    difficulties and its threshold is in units of d.
    """
    s = np.asarray(scores, dtype=np.float64)
    mask = None if use is None else np.asarray(use, dtype=bool)
    x = _masked(s, mask)
    n_countries = s.shape[-2]
    if variant == "per_country":
        return conformal_quantile(x, level)
    if variant == "normalized":
        if difficulties is None:
            raise DataError("the normalized variant needs each cell's difficulty (persona methods only)")
        return conformal_quantile(x / np.asarray(difficulties, dtype=np.float64), level)
    if variant == "pooled":
        t = conformal_quantile(x.reshape(*x.shape[:-2], -1), level)
    elif variant == "joint":
        t = conformal_quantile(_column_max(x), level)
    else:
        raise DataError(f"unknown interval variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return np.repeat(t[..., None], n_countries, axis=-1)


def heldout_thresholds(
    scores: ArrayLike, variant: Variant, level: float, groups: Sequence[str] | ArrayLike,
    difficulties: ArrayLike | None = None,
) -> FloatArray:
    """(..., C, Q): each cell's threshold fitted WITHOUT every question of its group.

    ``groups`` labels the Q questions: each question its own group is
    leave-one-question-out (LOQO), batteries are leave-one-battery-out (LOBO).
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups)
    if g.shape != (s.shape[-1],):
        raise DataError(f"{g.size} group labels for {s.shape[-1]} questions")
    out = np.empty_like(s)
    for label in dict.fromkeys(g.tolist()):
        held = g == label
        t = fit_thresholds(s, variant, level, difficulties, use=~held)
        out[..., held] = t[..., None]
    return out


def half_widths(thresholds: ArrayLike, variant: Variant, difficulties: ArrayLike | None = None) -> FloatArray:
    """Normalized half-widths of the cells: the threshold, times d for normalized."""
    t = np.asarray(thresholds, dtype=np.float64)
    if variant != "normalized":
        return t
    if difficulties is None:
        raise DataError("the normalized variant needs each cell's difficulty (persona methods only)")
    d = np.asarray(difficulties, dtype=np.float64)
    # inf * d is inf (d >= 0.01): the whole scale
    return t * d


def interval(
    pred: ArrayLike, half_width: ArrayLike, lo: ArrayLike, hi: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """pred -/+ half_width * (hi - lo), clipped to [lo, hi] (inf: the whole scale)."""
    p = np.asarray(pred, dtype=np.float64)
    h = np.asarray(half_width, dtype=np.float64)
    low_end, high_end = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = high_end - low_end
    with np.errstate(invalid="ignore"):  # inf * span with span > 0 is inf; nothing else
        reach = np.where(np.isinf(h), np.inf, h * span)
    return np.maximum(low_end, p - reach), np.minimum(high_end, p + reach)


def covered(scores: ArrayLike, half_width: ArrayLike) -> NDArray[np.bool_]:
    """Whether each cell's interval holds the human mean: s <= half-width (the human
    mean is on the scale, so clipping never uncovers it)."""
    return np.asarray(scores, dtype=np.float64) <= np.asarray(half_width, dtype=np.float64)


def clipped_width(
    pred: ArrayLike, half_width: ArrayLike, lo: ArrayLike, hi: ArrayLike,
) -> FloatArray:
    """Full width of each clipped interval in scale points."""
    low, high = interval(pred, half_width, lo, hi)
    return high - low

