"""Prediction-powered inference (PPI++) for a population mean from a small human pilot.

A pilot of ``n`` respondents gives human answers ``Y`` and the model's predictions
``Yhat`` for the same people (each value persona *is* a respondent); ``N`` more
respondents give predictions ``Yhat_u`` only. PPI++ (Angelopoulos, Duchi and Zrnic,
arXiv 2311.01453) estimates the mean as

    theta = lam * mean_u(w_u * Yhat_u) + mean(w * (Y - lam * Yhat))

which is unbiased for every ``lam`` (the pilot corrects the model's bias), and chooses
``lam`` to make the interval shortest: ``lam = 0`` is the classical mean of the pilot,
``lam = 1`` plain PPI. The interval is valid whatever the model's quality; a useless
model gets ``lam`` near 0 and the classical width.

The estimator and the choice of ``lam`` are :mod:`ppi_py`'s (PyPI ``ppi-python``, the
reference implementation; imported lazily: it pulls numba and scikit-learn). Weights are
normalised as ppi_py normalises them (``w / w.sum() * n``, mean 1), so both means are
weighted (Hajek) means. One deliberate difference: ppi_py's ``ppi_mean_ci`` takes the
standard error of the *uncentred* weighted values ``w * (Y - lam * Yhat)``, which with
unequal weights counts the spread of the weights themselves as noise (on a 1-10 item with
WVS weights of sd 0.9 that roughly doubles the variance). We pass it each part centred at
its own estimate, which gives the delta-method (linearised) variance of the two weighted
means::

    var = var(w * ((Y - lam * Yhat) - r)) / n + lam^2 * var(w_u * (Yhat_u - m_u)) / N
    r = mean(w * (Y - lam * Yhat)),  m_u = mean(w_u * Yhat_u)      (population variances)

With equal weights centring changes nothing and the interval is ppi_py's to the last
digit (tests/analysis/test_ppi.py checks both).

The optimal ``lam`` for a mean in closed form (ppi_py's ``_calc_lam_glm`` with an
identity Hessian; gradients at the ``lam = 1`` estimate ``t1``)::

    g = w * (Y - t1), h = w * (Yhat - t1), h_u = w_u * (Yhat_u - t1)
    lam = cov_pop(g, h) / ((1 + n / N) * var_sample(h ++ h_u)), clipped to [0, 1]

Effective sample size: the pilot size at which the classical interval would be as wide
as the PPI one, ``n * (classical width / PPI width)^2``. At the optimal ``lam`` it is
``n / (1 - rho^2 * N / (n + N))`` with ``rho`` the PPI correlation (Pearson's
correlation of ``Y`` and ``Yhat`` in the pilot; Broska, Howes and van Loon, "The mixed
subjects design", 2025), the formula :func:`pilot_size` inverts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

from valuesim.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class PPIResult:
    """PPI++ and the classical (pilot-only) estimate of one mean, at ``level``."""

    estimate: float
    low: float
    high: float
    classical_estimate: float
    classical_low: float
    classical_high: float
    lam: float  # 0: the model is ignored; 1: trusted as much as plain PPI trusts it
    effective_n: float  # pilot size the classical interval would need for the PPI width
    correlation: float  # weighted Pearson correlation of Y and Yhat in the pilot (nan if constant)
    n: int
    n_unlabeled: int
    level: float

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def classical_width(self) -> float:
        return self.classical_high - self.classical_low


def _vector(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name} has missing or non-finite values; drop those respondents first")
    return a


def normalized_weights(w: ArrayLike | None, n: int, name: str) -> NDArray[np.float64]:
    """``w / w.sum() * n`` (mean 1), ppi_py's normalisation; ones when ``w`` is None."""
    if w is None:
        return np.ones(n)
    a = _vector(w, name)
    if a.shape[0] != n:
        raise ConfigError(f"{name} has {a.shape[0]} weights for {n} respondents")
    if np.any(a <= 0):
        raise ConfigError(f"{name} has weights <= 0; survey weights must be positive")
    return a / a.sum() * n


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ConfigError(f"level {level}: give a confidence level between 0 and 1, e.g. 0.9")
    return float(level)


def optimal_lambda(
    y: NDArray[np.float64], yhat: NDArray[np.float64], yhat_u: NDArray[np.float64],
    w: NDArray[np.float64], w_u: NDArray[np.float64],
) -> float:
    """ppi_py's power-tuned ``lam`` for a mean (weights already normalised), clipped to [0, 1]."""
    n, big_n = y.shape[0], yhat_u.shape[0]
    t1 = float(np.mean(w_u * yhat_u) + np.mean(w * (y - yhat)))  # the lam = 1 estimate
    g, h, h_u = w * (y - t1), w * (yhat - t1), w_u * (yhat_u - t1)
    cov = float(np.mean((g - g.mean()) * (h - h.mean())))
    var = float(np.var(np.concatenate([h, h_u]), ddof=1))
    if var == 0:  # predictions all equal: nothing to learn from them
        return 0.0
    return float(np.clip(cov / ((1 + n / big_n) * var), 0.0, 1.0))


def weighted_correlation(y: NDArray[np.float64], yhat: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    """Pearson's correlation of ``y`` and ``yhat`` with weights ``w``; nan when either is constant."""
    my, mh = np.average(y, weights=w), np.average(yhat, weights=w)
    cov = np.average((y - my) * (yhat - mh), weights=w)
    sy, sh = np.average((y - my) ** 2, weights=w), np.average((yhat - mh) ** 2, weights=w)
    if sy <= 0 or sh <= 0:
        return math.nan
    return float(cov / math.sqrt(sy * sh))


def ppi_mean(
    y: ArrayLike,
    yhat: ArrayLike,
    yhat_unlabeled: ArrayLike,
    w: ArrayLike | None = None,
    w_unlabeled: ArrayLike | None = None,
    level: float = 0.9,
) -> PPIResult:
    """PPI++ estimate and interval of the (weighted) mean of ``y``, with the classical one.

    ``y``, ``yhat``: the pilot's answers and the model's predictions for the same
    respondents; ``yhat_unlabeled``: predictions for respondents without answers, drawn
    from the same population; ``w``, ``w_unlabeled``: survey weights (None: equal).
    Normal-approximation intervals at ``level`` (two-sided).
    """
    import ppi_py  # lazy: numba and scikit-learn come with it

    level = check_level(level)
    y_, yhat_, yhat_u = _vector(y, "Y"), _vector(yhat, "Yhat"), _vector(yhat_unlabeled, "Yhat_unlabeled")
    n, big_n = y_.shape[0], yhat_u.shape[0]
    if yhat_.shape[0] != n:
        raise ConfigError(f"{n} answers but {yhat_.shape[0]} predictions for the pilot; pair them up")
    if n < 2 or big_n < 2:
        raise ConfigError(f"PPI needs at least 2 pilot and 2 unlabeled respondents (have {n} and {big_n})")
    w_ = normalized_weights(w, n, "pilot weights")
    w_u = normalized_weights(w_unlabeled, big_n, "unlabeled weights")
    alpha = 1 - level

    lam = optimal_lambda(y_, yhat_, yhat_u, w_, w_u)
    estimate = float(np.asarray(ppi_py.ppi_mean_pointestimate(
        y_, yhat_, yhat_u, lam=lam, w=w_, w_unlabeled=w_u)).reshape(-1)[0])
    # centre each part at its own weighted mean (module docstring): the interval comes
    # back around 0 and is shifted to the estimate
    m_u = float(np.mean(w_u * yhat_u))
    low, high = ppi_py.ppi_mean_ci(
        y_ - estimate, yhat_ - m_u, yhat_u - m_u, alpha=alpha, lam=lam, w=w_, w_unlabeled=w_u
    )
    classical = float(np.mean(w_ * y_))
    c_low, c_high = ppi_py.ppi_mean_ci(
        y_ - classical, yhat_ - m_u, yhat_u - m_u, alpha=alpha, lam=0.0, w=w_, w_unlabeled=w_u
    )
    low_f, high_f = estimate + float(np.ravel(low)[0]), estimate + float(np.ravel(high)[0])
    c_low_f, c_high_f = classical + float(np.ravel(c_low)[0]), classical + float(np.ravel(c_high)[0])
    ppi_width, c_width = high_f - low_f, c_high_f - c_low_f
    effective = n * (c_width / ppi_width) ** 2 if ppi_width > 0 else math.inf
    return PPIResult(
        estimate=estimate, low=low_f, high=high_f, classical_estimate=classical,
        classical_low=c_low_f, classical_high=c_high_f, lam=lam, effective_n=float(effective),
        correlation=weighted_correlation(y_, yhat_, w_), n=n, n_unlabeled=big_n, level=level,
    )


# -- planning a pilot -------------------------------------------------------------


@dataclass(frozen=True)
class PilotPlan:
    """How many pilot respondents give an interval of ``target_width``."""

    n_ppi: int  # pilot respondents with PPI++ at the optimal lam
    n_classical: int  # respondents for the same width without the model
    effective_n: float  # what the n_ppi pilot is worth in respondents: n_classical, about
    correlation: float
    target_width: float
    sd: float
    level: float
    n_unlabeled: float  # inf: as many model-only respondents as wanted

    def width(self, n: int) -> float:
        return ppi_width(n, self.correlation, self.sd, self.level, self.n_unlabeled)


def ppi_width(n: float, correlation: float, sd: float, level: float, n_unlabeled: float = math.inf) -> float:
    """Full width of the PPI++ interval at the optimal lam for a pilot of ``n``:
    ``2 z sd sqrt((1 - rho^2 N / (n + N)) / n)`` (``N`` infinite: ``1 - rho^2``)."""
    z = float(norm.ppf(1 - (1 - level) / 2))
    share = 1.0 if math.isinf(n_unlabeled) else n_unlabeled / (n + n_unlabeled)
    return 2 * z * sd * math.sqrt((1 - correlation**2 * share) / n)


def pilot_size(
    correlation: float, target_width: float, sd: float = 0.5, level: float = 0.9,
    n_unlabeled: float | None = None,
) -> PilotPlan:
    """The smallest pilot whose PPI++ interval at ``level`` is at most ``target_width`` wide.

    ``target_width`` and ``sd`` (the answers' standard deviation) share one unit: both
    fractions of the scale range (sd 0.5 is the largest any 0-1 answer can have, so the
    default plans for the worst case) or both scale points. ``n_unlabeled``: respondents
    with model predictions only (None: unlimited). Solves
    ``a n^2 + (a N - 1) n - N (1 - rho^2) = 0`` with ``a = (W / (2 z sd))^2`` (from
    ``W = 2 z sd sqrt((1 - rho^2 N / (n + N)) / n)``) and rounds up; the classical
    size is ``1 / a`` rounded up.
    """
    if not -1 < correlation < 1:
        raise ConfigError(f"correlation {correlation}: give a PPI correlation strictly between -1 and 1")
    if not target_width > 0 or not sd > 0:
        raise ConfigError(f"target width {target_width} and sd {sd} must both be positive")
    level = check_level(level)
    big_n = math.inf if n_unlabeled is None else float(n_unlabeled)
    if not big_n > 0:
        raise ConfigError(f"n_unlabeled {n_unlabeled}: give a positive number of respondents")
    z = float(norm.ppf(1 - (1 - level) / 2))
    a = (target_width / (2 * z * sd)) ** 2
    rho2 = correlation**2
    if math.isinf(big_n):
        exact = (1 - rho2) / a
    else:
        b = a * big_n - 1
        exact = (-b + math.sqrt(b * b + 4 * a * big_n * (1 - rho2))) / (2 * a)
    n_ppi, n_classical = _round_up(exact), _round_up(1 / a)
    # the closed form can land a hair above an integer: keep the smallest n that fits
    while n_ppi > 1 and ppi_width(n_ppi - 1, correlation, sd, level, big_n) <= target_width:
        n_ppi -= 1
    share = 1.0 if math.isinf(big_n) else big_n / (n_ppi + big_n)
    return PilotPlan(
        n_ppi=n_ppi, n_classical=n_classical, effective_n=n_ppi / (1 - rho2 * share),
        correlation=correlation, target_width=target_width, sd=sd, level=level, n_unlabeled=big_n,
    )


def _round_up(x: float) -> int:
    return max(1, math.ceil(x - 1e-9))
