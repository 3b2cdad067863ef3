"""Gaussian-copula arithmetic for the synthetic demo population.

Every item (ordinal answers, or age in bins) is modelled as a standard-normal latent
variable cut at thresholds that reproduce its marginal. The copula parameter is the
latent correlation matrix. We estimate it by *moment matching*: the weighted
pairwise-complete correlation of normal scores observed in the survey is inverted
through the exact "bridge" from latent correlation to the normal-score correlation
of the discretized variables. Plain normal-score correlations are attenuated by the
discretization (a yes/no item can never reach 1), so without the bridge the
generated population would come out visibly less correlated than the real one.

The bridge uses Hoeffding's covariance identity for step functions:
Cov(s(X), t(Y)) = sum_ij ds_i dt_j [Phi2(a_i, b_j; rho) - Phi(a_i) Phi(b_j)], and
d/drho Phi2(a, b; rho) = phi2(a, b; rho), so each term is an integral over rho of
the bivariate normal density, tabulated here once on a grid shared by all pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

# Latent correlations are capped here: beyond it the bivariate density is too spiky
# for the grid and no WVS item pair comes close.
RHO_MAX = 0.99
_GRID = np.linspace(-RHO_MAX, RHO_MAX, 793)  # step 0.0025, contains 0 at index 396
_ZERO = len(_GRID) // 2
_MIN_EIGENVALUE = 1e-3


@dataclass(frozen=True)
class Discretization:
    """An item's latent cut points and the jumps of its normal scores between them.

    ``scores[k]`` is the normal score of the k-th category with positive probability
    (the latent mean of that slice); ``thresholds``/``jumps`` have one entry fewer.
    """

    categories: np.ndarray  # indices (into the item's category list) with p > 0
    scores: np.ndarray
    thresholds: np.ndarray
    jumps: np.ndarray
    mean: float
    sd: float


def discretize(probs: Sequence[float]) -> Discretization:
    """Cut points and normal scores for a categorical marginal (need not be normalized)."""
    p = np.asarray(probs, dtype=float)
    keep = np.flatnonzero(p > 0)
    q = p[keep] / p[keep].sum()
    cum = np.cumsum(q)
    cum[-1] = 1.0
    lower = np.concatenate([[0.0], cum[:-1]])
    # mid-quantile normal scores: robust, monotone and finite for every category
    scores = ndtri((lower + cum) / 2)
    thresholds = ndtri(cum[:-1])
    mean = float(q @ scores)
    sd = float(np.sqrt(max(q @ scores**2 - mean**2, 0.0)))
    return Discretization(keep, scores, thresholds, np.diff(scores), mean, sd)


def weighted_pairwise_correlation(
    scores: np.ndarray, observed: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Pearson correlations on pairwise-complete rows, with pair weight sums.

    ``scores`` is n x p (any value where not observed), ``observed`` an n x p boolean
    mask. Returns (correlations, weight of the rows both items answered); pairs with
    no variance in their common rows get correlation 0.
    """
    m = observed.astype(float)
    z = np.where(observed, scores, 0.0)
    wm = m * weights[:, None]
    s0 = wm.T @ m  # sum of w over rows where both observed
    s1 = (wm * z).T @ m  # sum of w z_j over common rows (row item j, column item k)
    s2 = (wm * z * z).T @ m
    sxy = (wm * z).T @ z
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_j = s1 / s0
        mean_k = s1.T / s0
        cov = sxy / s0 - mean_j * mean_k
        var_j = s2 / s0 - mean_j**2
        var_k = s2.T / s0 - mean_k**2
        corr = cov / np.sqrt(var_j * var_k)
    corr = np.where(np.isfinite(corr) & (var_j > 1e-12) & (var_k > 1e-12), corr, 0.0)
    corr = np.clip((corr + corr.T) / 2, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return corr, s0


def _bridge_tables(items: Sequence[Discretization | None]) -> np.ndarray:
    """Normal-score covariance on the rho grid, for every pair: a p x p x G array.

    Items are grouped by their number of thresholds so that the inner tensor has no
    padding; a few dozen items over ~800 grid points take well under a second.
    """
    p = len(items)
    out = np.zeros((p, p, len(_GRID)))
    groups: dict[int, list[int]] = {}
    for i, d in enumerate(items):
        if d is not None and len(d.thresholds) > 0:
            groups.setdefault(len(d.thresholds), []).append(i)
    keys = sorted(groups)
    one_minus = 1.0 - _GRID**2
    norm = 1.0 / (2 * np.pi * np.sqrt(one_minus))
    for gi, ka in enumerate(keys):
        ia = groups[ka]
        a = np.stack([items[i].thresholds for i in ia])  # type: ignore[union-attr]
        da = np.stack([items[i].jumps for i in ia])  # type: ignore[union-attr]
        for kb in keys[gi:]:
            ib = groups[kb]
            b = np.stack([items[i].thresholds for i in ib])  # type: ignore[union-attr]
            db = np.stack([items[i].jumps for i in ib])  # type: ignore[union-attr]
            aa = a[:, None, :, None]
            bb = b[None, :, None, :]
            sq = aa**2 + bb**2
            cross = aa * bb
            weight = da[:, None, :, None] * db[None, :, None, :]
            dens = np.empty((len(ia), len(ib), len(_GRID)))
            for g, r in enumerate(_GRID):
                e = np.exp(-(sq - 2 * r * cross) / (2 * one_minus[g])) * norm[g]
                dens[:, :, g] = (weight * e).sum(axis=(2, 3))
            # cumulative trapezoid from rho = 0 in both directions
            steps = (dens[:, :, 1:] + dens[:, :, :-1]) / 2 * np.diff(_GRID)
            cum = np.concatenate([np.zeros((*dens.shape[:2], 1)), np.cumsum(steps, axis=2)], axis=2)
            cum -= cum[:, :, _ZERO : _ZERO + 1]
            out[np.ix_(ia, ib)] = cum
            out[np.ix_(ib, ia)] = cum.transpose(1, 0, 2)
    return out


def latent_correlation(
    observed_corr: np.ndarray, items: Sequence[Discretization | None]
) -> np.ndarray:
    """Invert the bridge: the latent correlations whose discretization reproduces
    ``observed_corr`` (normal-score correlations). Items that are ``None`` (never
    answered) or constant get zero correlation with everything."""
    p = len(items)
    tables = _bridge_tables(items)
    latent = np.eye(p)
    for i in range(p):
        di = items[i]
        if di is None or di.sd == 0:
            continue
        for j in range(i + 1, p):
            dj = items[j]
            if dj is None or dj.sd == 0:
                continue
            target = observed_corr[i, j] * di.sd * dj.sd
            # monotone in rho (the integrand is a positive density), so interp inverts it;
            # targets beyond what the discretization allows are clipped to +-RHO_MAX
            rho = float(np.interp(target, tables[i, j], _GRID))
            latent[i, j] = latent[j, i] = rho
    return latent


def nearest_correlation(corr: np.ndarray, min_eigenvalue: float = _MIN_EIGENVALUE) -> np.ndarray:
    """Project a symmetric matrix with unit diagonal to a positive-definite correlation
    matrix (eigenvalue clipping and rescaling, repeated until it holds).

    Pairwise estimates are not jointly consistent, so the raw matrix can be
    indefinite; Cholesky needs a strictly positive floor.
    """
    c = (corr + corr.T) / 2
    for _ in range(100):
        vals, vecs = np.linalg.eigh(c)
        if vals.min() >= min_eigenvalue * 0.999:
            break
        c = (vecs * np.maximum(vals, min_eigenvalue)) @ vecs.T
        d = np.sqrt(np.diag(c))
        c = c / d[:, None] / d[None, :]
        c = (c + c.T) / 2
    np.fill_diagonal(c, 1.0)
    return c


def cholesky_factor(corr: np.ndarray) -> np.ndarray:
    """Cholesky factor of a correlation matrix, projecting it first when rounding in
    the stored file has made it (barely) indefinite."""
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        return np.linalg.cholesky(nearest_correlation(corr))


def expected_score_correlation(latent: float, x: Discretization, y: Discretization) -> float:
    """The normal-score correlation that latent correlation ``latent`` produces
    (the forward bridge; used to check the fit)."""
    table = _bridge_tables([x, y])[0, 1]
    return float(np.interp(latent, _GRID, table)) / (x.sd * y.sd)
