"""Temperature scaling and mean-preserving exponential tilting (paper section 4.4).

Every function works on arrays of distributions at once: the last axis is the
answer options, all leading axes are independent distributions. Both transforms
work in log space so that very peaked distributions and extreme temperatures
neither overflow nor lose their zeros:

* ``temperature_scale(p, T)``: p_k^(1/T), renormalized (eq. 1).
* ``mean_preserving_tilt(p, values, T)``: q_k ∝ p_k^(1/T) exp(β r_k) with β solved
  per distribution so that Σ r_k q_k = Σ r_k p_k.

Edges are exact rather than approximate: answers with zero probability stay at
zero (the transforms only reweight the support), a one-hot distribution is
returned unchanged, T = ∞ is uniform on the support (tilted to keep the mean), and
T = 0 is the limit T → 0⁺: plain scaling puts all mass on the mode(s), the
mean-preserving tilt puts it on the (at most two) answers that maximize Σ q_k log p_k
under the mean constraint, i.e. the "argmax within the mean constraint".

The leave-one-question-out temperature fit lives in :func:`fit_temperature_loqo`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from valuesim.errors import DataError

FloatArray = NDArray[np.float64]

# |E_q[r'] - E_p[r']| on the [0, 1]-rescaled scale at which β counts as solved;
# 1e-13 of the range keeps the mean to ~1e-12 on a 1-10 scale (contract: 1e-9).
_MEAN_TOL = 1e-13
_MAX_ITER = 200
# Rows per block: small enough that a block's (rows, K) temporaries stay in cache.
_CHUNK = 4096


def _check_distributions(arr: FloatArray) -> None:
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError("distributions must be finite and non-negative; check the probs column")


def _normalized(cols: FloatArray) -> FloatArray:
    """(K, n) answer-major block, each column rescaled to sum to 1."""
    _check_distributions(cols)
    total = cols.sum(axis=0)
    if np.any(total <= 0):
        raise DataError("a distribution sums to zero; drop rows without any probability mass first")
    return cols / total


def _as_array(p: ArrayLike) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] < 1:
        raise DataError("distributions need a last axis of answer probabilities; pass an (..., K) array")
    return arr


def _as_temperature(t: ArrayLike, batch_shape: tuple[int, ...]) -> FloatArray:
    arr = np.asarray(t, dtype=np.float64)
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise DataError("temperature must be >= 0 (0 = argmax limit, inf = flat); got a negative or NaN value")
    try:
        return np.broadcast_to(arr, batch_shape).reshape(-1)
    except ValueError:
        raise DataError(
            f"temperature of shape {arr.shape} does not broadcast to the {batch_shape} distributions"
        ) from None


# The hot path works on answer-major (K, n) blocks: reductions over K = 10 answers
# along a short contiguous last axis are several times slower in NumPy than
# element-wise reductions over the leading axis.


def _log(p: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def _scaled_log(logp: FloatArray, t: FloatArray) -> FloatArray:
    """log p / T on the support, -inf off it; T = inf gives a flat support. (K, n)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = logp / t
    # -inf / inf is NaN and finite / inf is -0: both cases are fixed here.
    out[np.isnan(out)] = -np.inf
    return out


def _softmax(logits: FloatArray) -> FloatArray:
    z = logits - logits.max(axis=0)
    np.exp(z, out=z)
    z /= z.sum(axis=0)
    return z


def _blocks(n: int) -> list[slice]:
    return [slice(s, s + _CHUNK) for s in range(0, n, _CHUNK)]


def temperature_scale(p: ArrayLike, t: ArrayLike) -> FloatArray:
    """Plain temperature scaling p_k^(1/T) / Σ_j p_j^(1/T) (paper eq. 1).

    ``t`` is a scalar or broadcasts to the batch shape ``p.shape[:-1]``. T = 0 splits
    the mass evenly over the mode(s); T = inf is uniform over the support.
    """
    arr = _as_array(p)
    k = arr.shape[-1]
    t_flat = _as_temperature(t, arr.shape[:-1])
    flat = arr.reshape(-1, k)
    out = np.empty_like(flat)
    for sl in _blocks(flat.shape[0]):
        cols = _normalized(flat[sl].T)
        tt = t_flat[sl]
        q = _softmax(_scaled_log(_log(cols), np.where(tt == 0, 1.0, tt)))
        zero = tt == 0
        if np.any(zero):
            pz = cols[:, zero]
            modes = (pz == pz.max(axis=0)).astype(np.float64)
            q[:, zero] = modes / modes.sum(axis=0)
        out[sl] = q.T
    return out.reshape(arr.shape)


def _rescaled_values(values: ArrayLike, k: int) -> tuple[FloatArray, float]:
    r = np.asarray(values, dtype=np.float64)
    if r.shape != (k,):
        raise DataError(f"values must be one scale value per answer, shape ({k},); got {r.shape}")
    if not np.all(np.isfinite(r)) or len(np.unique(r)) != k:
        raise DataError("answer values must be finite and distinct; check the answer codes")
    if k == 1:
        return np.zeros(1), 1.0
    lo, span = r.min(), r.max() - r.min()
    # β is solved on the [0, 1]-rescaled scale, so tolerances and brackets do not
    # depend on whether the answers are coded 1..4 or 0..10.
    return (r - lo) / span, float(np.diff(np.sort(r)).min() / span)


def _tilted(
    base: FloatArray, shift: FloatArray, beta: FloatArray, out: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """exp(base + β·shift) into ``out`` and its column sums.

    Columns whose sum overflows (extreme β) are redone shifted by their maximum.
    """
    np.multiply(shift, beta, out=out)
    out += base
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
        s = out.sum(axis=0)
    bad = ~(s < 1e300)
    if np.any(bad):
        z = base[:, bad] + shift[:, bad] * beta[bad]
        z = np.exp(z - z.max(axis=0))
        out[:, bad] = z
        s[bad] = z.sum(axis=0)
    return out, s


def _solve_tilt(logits: FloatArray, r: FloatArray, target: FloatArray, gap: float) -> FloatArray:
    """softmax(logits + β r) per column with β such that its mean is ``target``.

    (K, n) logits, r rescaled to [0, 1]. A safeguarded Halley/Newton-bisection
    (Numerical Recipes' ``rtsafe``) over all columns at once. We write it out
    rather than call ``scipy.optimize.newton`` with arrays because that routine has
    no bracket: for peaked rows f'(β) = Var_q(r) underflows towards 0 and a bare
    step jumps far out, then crawls back. Here f(β) = E_q[r] - target is
    increasing (f' is a variance), so a bracket [lo, hi] with f(lo) < 0 < f(hi) is
    known analytically; a step that leaves it, or that would not halve the step
    before last, is replaced by bisection, so the worst case is bisection speed.
    f'' is the third cumulant: Halley's cubic convergence for one more dot product
    (4 evaluations instead of 7-8 for Newton on typical rows). Iterations run on the
    whole cache-sized block while most columns are unsolved (recomputing solved
    columns is cheaper than gathering) and on the gathered stragglers after that.
    """
    n = logits.shape[1]
    rc = r[:, None]
    support = np.isfinite(logits)
    mode = logits.argmax(axis=0)
    base = logits - logits[mode, np.arange(n)]  # <= 0, 0 at the mode, -inf off the support
    # Anchoring β·r at the mode's value keeps the mode's term at exp(0) = 1, so the
    # normalizer never underflows and only extreme β can overflow (see _tilted).
    shift = rc - r[mode]
    r_top = np.where(support, rc, -np.inf).max(axis=0)
    r_bot = np.where(support, rc, np.inf).min(axis=0)
    spread = -np.where(support, base, np.inf).min(axis=0)
    log_k = np.log(max(logits.shape[0] - 1, 1))
    # E_q[r] >= r_top - (K-1) exp(spread - β·gap) for β > 0, so that β makes f > 0;
    # symmetrically below. The bound assumes β > 0 (resp. < 0), hence the clamps at ±1.
    with np.errstate(divide="ignore"):
        hi = (spread + log_k - np.log(r_top - target)) / gap + 1.0
        lo = -(spread + log_k - np.log(target - r_bot)) / gap - 1.0
    hi = np.where(np.isfinite(hi), np.maximum(hi, 1.0), 1e300)
    lo = np.where(np.isfinite(lo), np.minimum(lo, -1.0), -1e300)
    beta = np.zeros(n)
    dx_old = hi - lo
    r2, r3 = r * r, r * r * r
    eps = 4 * np.finfo(np.float64).eps
    idx = np.arange(n)  # columns still iterating; the a_* arrays are gathered to them
    a_base, a_shift, a_target = base, shift, target
    w = np.empty_like(base)
    for _ in range(_MAX_ITER):
        b = beta[idx]
        w_a, s = _tilted(a_base, a_shift, b, w[:, : idx.size])
        m1 = (r @ w_a) / s
        m2 = (r2 @ w_a) / s
        f = m1 - a_target
        a_lo = np.where(f < 0, b, lo[idx])
        a_hi = np.where(f > 0, b, hi[idx])
        # A bracket that shrank to floating-point width is as solved as it gets.
        done = (np.abs(f) <= _MEAN_TOL) | ((a_hi - a_lo) <= eps * np.maximum(1.0, np.abs(b)))
        var = m2 - m1 * m1
        k3 = (r3 @ w_a) / s - 3 * m1 * m2 + 2 * m1**3
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = -f / var
            step = b + newton / (1.0 + 0.5 * k3 * newton / var)
        bad = (
            ~np.isfinite(step) | (step <= a_lo) | (step >= a_hi)
            | (np.abs(step - b) > 0.5 * np.abs(dx_old[idx]))
        )
        new = np.where(bad, 0.5 * (a_lo + a_hi), step)
        lo[idx], hi[idx] = a_lo, a_hi
        dx_old[idx] = new - b
        beta[idx] = np.where(done, b, new)
        if np.all(done):
            break
        if np.count_nonzero(done) * 2 >= idx.size:
            keep = ~done
            idx = idx[keep]
            a_base, a_shift, a_target = a_base[:, keep], a_shift[:, keep], a_target[keep]
    w, s = _tilted(base, shift, beta, w)
    return w / s


def _tilt_limit(logp: FloatArray, r: FloatArray, target: FloatArray) -> FloatArray:
    """The T → 0⁺ limit of the tilt: max Σ q log p s.t. Σ q r = target, q on the support.

    A linear program whose optimum sits on one support point (when the target is a
    support value) or on two straddling it; K is small (≤ 11), so all pairs are
    tried. ``logp`` is row-major (n, K) here.
    """
    n, k = logp.shape
    m = target[:, None, None]
    ri, rj = r[None, :, None], r[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        wj = np.where(ri == rj, 1.0, (m - ri) / (rj - ri))  # weight on j
    tol = 1e-12
    feasible = (
        (wj >= -tol) & (wj <= 1 + tol) & np.isfinite(logp[:, :, None]) & np.isfinite(logp[:, None, :])
    )
    feasible &= ~np.eye(k, dtype=bool)[None] | (np.abs(m - ri) <= tol)
    wj = np.clip(wj, 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        score = (1 - wj) * logp[:, :, None] + wj * logp[:, None, :]
    score = np.where(feasible, score, -np.inf).reshape(n, k * k)
    i, j = np.divmod(score.argmax(axis=1), k)
    rows = np.arange(n)
    w_best = wj[rows, i, j]
    out = np.zeros_like(logp)
    np.add.at(out, (rows, i), 1 - w_best)
    np.add.at(out, (rows, j), w_best)
    return out


def _tilt_block(cols: FloatArray, t: FloatArray, r: FloatArray, gap: float) -> FloatArray:
    """Tilt one (K, n) block of normalized distributions."""
    target = r @ cols
    logp = _log(cols)
    n_support = np.count_nonzero(cols, axis=0)
    # T = 1 is the identity (β = 0 solves it exactly); one support point cannot move.
    todo = (n_support > 1) & (t != 1)
    zero = todo & (t == 0)
    pos = todo & ~zero
    if np.all(pos):
        return _solve_tilt(_scaled_log(logp, t), r, target, gap)
    out = cols.copy()
    if np.any(pos):
        out[:, pos] = _solve_tilt(_scaled_log(logp[:, pos], t[pos]), r, target[pos], gap)
    if np.any(zero):
        out[:, zero] = _tilt_limit(logp[:, zero].T, r, target[zero]).T
    return out


def mean_preserving_tilt(p: ArrayLike, values: ArrayLike, t: ArrayLike) -> FloatArray:
    """q_k ∝ p_k^(1/T) exp(β r_k) with β such that Σ r_k q_k = Σ r_k p_k.

    ``p``: (..., K) distributions (rescaled to sum to 1); ``values``: the K scale
    values r_k (shared by all rows); ``t``: scalar or broadcastable to
    ``p.shape[:-1]``. One-hot rows and T = 1 rows come back unchanged; zero
    entries stay zero.
    """
    arr = _as_array(p)
    k = arr.shape[-1]
    r, gap = _rescaled_values(values, k)
    t_flat = _as_temperature(t, arr.shape[:-1])
    flat = arr.reshape(-1, k)
    out = np.empty_like(flat)
    for sl in _blocks(flat.shape[0]):
        cols = _normalized(np.ascontiguousarray(flat[sl].T))
        out[sl] = _tilt_block(cols, t_flat[sl], r, gap).T
    return out.reshape(arr.shape)


# ---------------------------------------------------------------------------
# Leave-one-question-out fit


@dataclass(frozen=True)
class LoqoFit:
    """Per held-out question: the T fit on all other questions and its objective."""

    questions: tuple[str, ...]
    temperatures: FloatArray  # one per question, fit without that question
    objective: FloatArray  # mean distance over the other questions at that T
    grid: FloatArray
    grid_objective: FloatArray  # (len(grid), n_questions): per-question distance
    overall: float  # T fit on all questions together (reported, not used out of sample)


def temperature_grid(t_min: float, t_max: float, size: int) -> FloatArray:
    """Log-spaced: a temperature acts multiplicatively on log-probabilities."""
    if not (0 < t_min < t_max) or size < 3:
        raise DataError("temperature grid needs 0 < t_grid_min < t_grid_max and t_grid_size >= 3")
    return np.geomspace(t_min, t_max, size)


def _refine(
    per_question: Callable[[float], FloatArray], keep: NDArray[np.bool_], grid: FloatArray,
    grid_obj: FloatArray,
) -> tuple[float, float]:
    i = int(np.argmin(grid_obj))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]

    def objective(log_t: float) -> float:
        return float(per_question(float(np.exp(log_t)))[keep].mean())

    res = minimize_scalar(
        objective, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-4}
    )
    best_t, best_val = float(np.exp(res.x)), float(res.fun)
    # The grid point itself is a valid candidate: keep it if the refinement did worse.
    if grid_obj[i] <= best_val:
        return float(grid[i]), float(grid_obj[i])
    return best_t, best_val


def fit_temperature_loqo(
    per_question: Callable[[float], ArrayLike],
    questions: list[str] | tuple[str, ...],
    grid: FloatArray,
) -> LoqoFit:
    """Fit T leave-one-question-out.

    ``per_question(T)`` returns, for every question (in ``questions`` order), the
    distance between calibrated and human distributions averaged over countries.
    For question q, T_q minimizes the mean of that vector over all questions but q:
    first on ``grid``, then refined with a bounded scalar search between the grid
    neighbours of the grid minimum.
    """
    qs = tuple(questions)
    if len(qs) < 2:
        raise DataError("the leave-one-question-out fit needs at least two questions; keep more questions")

    def evaluate(t: float) -> FloatArray:
        v = np.asarray(per_question(t), dtype=np.float64)
        if v.shape != (len(qs),):
            raise DataError(f"objective returned shape {v.shape}, expected ({len(qs)},)")
        return v

    grid_obj = np.stack([evaluate(float(t)) for t in grid])  # (G, Q)
    temps = np.empty(len(qs))
    objs = np.empty(len(qs))
    for qi in range(len(qs)):
        keep = np.ones(len(qs), dtype=bool)
        keep[qi] = False
        temps[qi], objs[qi] = _refine(evaluate, keep, grid, grid_obj[:, keep].mean(axis=1))
    overall, _ = _refine(evaluate, np.ones(len(qs), dtype=bool), grid, grid_obj.mean(axis=1))
    return LoqoFit(qs, temps, objs, np.asarray(grid), grid_obj, overall)
