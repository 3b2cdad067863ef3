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
returned unchanged, T = ∞ is uniform on the support (tilted to keep the mean: the
maximum-entropy distribution on the support with the same mean,
:func:`maximum_entropy_with_mean`), and
T = 0 is the limit T → 0⁺: plain scaling puts all mass on the mode(s), the
mean-preserving tilt puts it on the (at most two) answers that maximize Σ q_k log p_k
under the mean constraint, i.e. the "argmax within the mean constraint".

The leave-one-question-out temperature fit lives in :func:`fit_temperature_loqo`; it
searches the grid and the T = ∞ limit, and :func:`identification` says whether the
objective pins T down or keeps falling to the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
# Column sums of exp(base + β·r) outside this range are redone max-shifted.
_SUM_MIN, _SUM_MAX = 1e-250, 1e250
# Brackets are clamped to ±1e300, so b ∓ 2·_FAR is always outside them.
_FAR = 2e300
# Below this |β| a bracket of floating-point width (4·eps·max(1, |β|)) already
# means |f| <= width · max f' = width / 4 < _MEAN_TOL (up to |β| ~ 450), so the
# width test is only evaluated past it.
_WIDE = 100.0
# Rows per block: small enough that a block's (K, rows) buffers stay in cache
# (4096 measured best among 2000-16000 on the 1M x 10 benchmark).
_CHUNK = 4096
#: rows tilted together as one block (the stacked objective packs questions up to it)
BLOCK_ROWS = _CHUNK


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


@dataclass(frozen=True, eq=False)
class _Workspace:
    """Scale values and scratch buffers shared by all blocks of one call.

    Reusing them matters: fresh temporaries of 128 KB and more (a block, its
    power sums) are mmap-ed by the allocator, i.e. new pages from the kernel each
    time; those page faults were a quarter of the run time.
    """

    r: FloatArray  # scale values rescaled to [0, 1]
    gap: float  # smallest distance between two of them
    powers: FloatArray  # (4, K): 1, r, r², r³ — all power sums in one product
    raw: FloatArray  # (K, columns): the input block, then its logits
    w: FloatArray  # (K, columns): unnormalized tilted weights
    q: FloatArray  # (K, columns): the result
    sums: FloatArray  # (4, columns): power sums of w
    moments: FloatArray  # (3, columns): E[r], E[r²], E[r³]

    @classmethod
    def create(cls, r: FloatArray, gap: float, columns: int) -> _Workspace:
        k = r.size
        powers = np.stack([np.ones_like(r), r, r * r, r * r * r])
        blocks = (np.empty((k, columns)) for _ in range(3))
        return cls(r, gap, powers, *blocks, np.empty((4, columns)), np.empty((3, columns)))

    def cut(self, columns: int) -> _Workspace:
        """The same buffers, narrowed to the first ``columns`` columns."""
        buffers = (self.raw, self.w, self.q, self.sums, self.moments)
        return _Workspace(self.r, self.gap, self.powers, *(a[:, :columns] for a in buffers))


def _power_sums(
    powers: FloatArray, w: FloatArray, calls: NDArray[np.intp] | None, out: FloatArray | None = None
) -> FloatArray:
    """``powers @ w``; with ``calls`` (the stacked call of each column), a column that is
    its call's only one is redone as a one-column product, as that call alone would
    compute it: BLAS sums a lone column in another order than a column of a matrix
    (matrices of two and more columns give every column the same bits wherever it is)."""
    mom = np.matmul(powers, w, out=out)
    if calls is not None and w.shape[1] > 1:
        sizes = np.bincount(calls)
        for c in np.flatnonzero(sizes[calls] == 1):
            mom[:, c] = np.matmul(powers, np.ascontiguousarray(w[:, c:c + 1]))[:, 0]
    return mom


def _solve_tilt(
    base: FloatArray, target: FloatArray, ws: _Workspace, calls: NDArray[np.intp] | None = None
) -> FloatArray:
    """softmax(base + β r) per column with β such that its mean is ``target``.

    ``base`` is the (K, n) block of scaled log-probabilities minus each column's
    maximum (so <= 0, exactly 0 at the mode, -inf off the support); r is rescaled
    to [0, 1]. Returns the tilted block in ``ws.q`` (valid until the next block).

    A safeguarded Halley/Newton-bisection (Numerical Recipes' ``rtsafe``) over all
    columns at once. We write it out rather than call ``scipy.optimize.newton``
    with arrays because that routine has no bracket: for peaked rows
    f'(β) = Var_q(r) underflows towards 0 and a bare step jumps far out, then
    crawls back. Here f(β) = E_q[r] - target is increasing (f' is a variance), so a
    bracket [lo, hi] with f(lo) < 0 < f(hi) is known analytically; a step that
    leaves it, or that would not halve the step before last, is replaced by
    bisection, so the worst case is bisection speed. f'' is the third cumulant:
    Halley's cubic convergence for one more power sum (4 evaluations, the first at
    β = 0, instead of 7-8 for Newton on typical rows).

    The cost is the passes over the (K, n) block, so each evaluation is exactly
    three (β·r, + base, exp) plus one (4, K) @ (K, n) product for all power
    sums; a column's result is stored from the evaluation that solved it (no
    final re-evaluation), and the block is compacted to the unsolved columns once
    at least half are done (gathering costs more than recomputing a few).

    ``calls`` (non-decreasing, one per column) says which of several stacked calls
    each column came from (:func:`mean_preserving_tilt`'s ``sizes``): every decision
    that looks at more than one column (compaction, the width test, stopping) is then
    taken per call, and lone columns are summed as alone (:func:`_power_sums`), so each
    column follows, bit for bit, the path it would follow in its own call.
    """
    r, gap, powers = ws.r, ws.gap, ws.powers
    n = base.shape[1]
    rc = r[:, None]
    spread = -base.min(axis=0)
    if np.all(np.isfinite(spread)):  # full support: the usual case, no masks needed
        r_top, r_bot = r.max(), r.min()
    else:
        support = np.isfinite(base)
        r_top = np.where(support, rc, -np.inf).max(axis=0)
        r_bot = np.where(support, rc, np.inf).min(axis=0)
        spread = -np.where(support, base, np.inf).min(axis=0)
    log_k = np.log(max(base.shape[0] - 1, 1))
    eps = 4 * np.finfo(np.float64).eps
    q = ws.q
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        # E_q[r] >= r_top - (K-1) exp(spread - β·gap) for β > 0, so that β makes f > 0;
        # symmetrically below. The bound assumes β > 0 (resp. < 0), hence the clamps at ±1.
        hi = (spread + log_k - np.log(r_top - target)) / gap + 1.0
        lo = -(spread + log_k - np.log(target - r_bot)) / gap - 1.0
        hi = np.where(np.isfinite(hi), np.maximum(hi, 1.0), 1e300)
        lo = np.where(np.isfinite(lo), np.minimum(lo, -1.0), -1e300)
        dx_old = hi - lo
        b = np.zeros(n)
        # exp(base + β·r) needs no per-column anchor: base <= 0 is 0 at the mode and
        # r is in [0, 1], so every sum lies in [exp(-|β|), K·exp(|β|)]; only
        # |β| in the hundreds leaves the safe range, and such columns are redone
        # shifted by their own maximum.
        w = np.exp(base, out=ws.w)  # the evaluation at β = 0
        idx: NDArray[np.intp] | None = None  # unsolved columns once compacted; None = all
        if calls is not None:
            idx = np.arange(n)
        base_a = base
        for it in range(_MAX_ITER + 1):
            mom = _power_sums(powers, w, calls, out=ws.sums if idx is None else None)
            s = mom[0]
            if not (s.min() > _SUM_MIN and s.max() < _SUM_MAX):
                bad = ~((s > _SUM_MIN) & (s < _SUM_MAX))
                z = base_a[:, bad] + rc * b[bad]
                z = np.exp(z - z.max(axis=0))
                w[:, bad] = z
                mom[:, bad] = _power_sums(powers, z, None if calls is None else calls[bad])
            inv = 1.0 / s
            m1, m2, m3 = np.multiply(mom[1:], inv, out=ws.moments if idx is None else None)
            f = m1 - target
            # lo = b where f < 0, hi = b where f > 0 (b lies inside the bracket), written
            # branch-free: the signs are random per column, and masked updates
            # mispredict so often that they were the slowest n-vector operations.
            sign = np.sign(f)
            lo = np.fmax(lo, b - (sign + 1.0) * _FAR)
            hi = np.fmin(hi, b + (1.0 - sign) * _FAR)
            done = np.abs(f) <= _MEAN_TOL
            # A bracket that shrank to floating-point width is as solved as it gets.
            # (Below |β| = _WIDE that width already implies |f| <= _MEAN_TOL, since
            # f' = Var_q(r) <= 1/4, so the test is only needed past it.)
            if b.max() > _WIDE or b.min() < -_WIDE:
                narrow = (hi - lo) <= eps * np.maximum(1.0, np.abs(b))
                if calls is not None:  # only in the calls that have such a column
                    narrow &= np.bincount(calls, weights=np.abs(b) > _WIDE)[calls] > 0
                done |= narrow
            if calls is None:
                n_done = np.count_nonzero(done)
                if n_done == done.size or it == _MAX_ITER:
                    break
                compact = done if n_done * 2 >= done.size else None
            else:
                if it == _MAX_ITER:
                    break
                # per call, as each would alone: a call whose columns are all done
                # stops; one with at least half done drops its done columns
                n_done = np.bincount(calls, weights=done)
                size = np.bincount(calls)
                ends = (n_done * 2 >= size)[calls] & done
                if ends.all():
                    break
                compact = ends if ends.any() else None
            m1_sq = m1 * m1
            var = m2 - m1_sq
            k3 = m3 - m1 * (3.0 * m2 - 2.0 * m1_sq)
            h = f / var
            delta = h / (1.0 - 0.5 * k3 * h / var)
            new = b - delta
            # NaN steps fail both comparisons, so they count as leaving the bracket.
            bad = ~((new > lo) & (new < hi)) | (np.abs(delta) > 0.5 * np.abs(dx_old))
            if bad.any():
                np.copyto(new, 0.5 * (lo + hi), where=bad)
            dx_old = new - b
            if done.any():
                np.copyto(new, b, where=done)
            b = new
            if compact is not None:
                if idx is None:
                    np.multiply(w, inv, out=q)  # everything now; unsolved columns are redone
                else:
                    q[:, idx[compact]] = w[:, compact] * inv[compact]
                keep = ~compact
                idx = np.flatnonzero(keep) if idx is None else idx[keep]
                base_a = base[:, idx]
                target, lo, hi, dx_old, b = target[keep], lo[keep], hi[keep], dx_old[keep], b[keep]
                if calls is not None:
                    calls = calls[keep]
                w = np.empty_like(base_a)
            np.multiply(rc, b, out=w)
            w += base_a
            np.exp(w, out=w)
    if idx is None:
        return np.multiply(w, inv, out=q)
    q[:, idx] = w * inv
    return q


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


def _anchored(logits: FloatArray) -> FloatArray:
    """Logits minus each column's maximum: exactly 0 at the mode(s), <= 0 elsewhere."""
    return logits - logits.max(axis=0)


def _tilt_block(
    cols: FloatArray, t: FloatArray, ws: _Workspace, calls: NDArray[np.intp] | None = None
) -> FloatArray:
    """Tilt one (K, n) block of normalized distributions (any row, any T)."""
    r = ws.r
    if calls is None:
        target = r @ cols
    else:  # per call: BLAS sums a column of this vector-matrix product by its place
        ends = np.cumsum(np.bincount(calls))
        starts = np.concatenate([[0], ends[:-1]])
        target = np.concatenate([
            r @ np.ascontiguousarray(cols[:, a:e]) for a, e in zip(starts, ends, strict=True)
        ])
    logp = _log(cols)
    n_support = np.count_nonzero(cols, axis=0)
    # T = 1 is the identity (β = 0 solves it exactly); one support point cannot move.
    todo = (n_support > 1) & (t != 1)
    zero = todo & (t == 0)
    pos = todo & ~zero
    if np.all(pos):
        return _solve_tilt(_anchored(_scaled_log(logp, t)), target, ws, calls)
    out = cols.copy()
    if np.any(pos):
        base = _anchored(_scaled_log(logp[:, pos], t[pos]))
        sub = None if calls is None else calls[pos]
        out[:, pos] = _solve_tilt(base, target[pos], ws.cut(base.shape[1]), sub)
    if np.any(zero):
        out[:, zero] = _tilt_limit(logp[:, zero].T, r, target[zero]).T
    return out


def _fast_inverse_temperature(t: FloatArray) -> FloatArray | None:
    """1/T where every T is an ordinary temperature (0 < T < inf, T != 1, 1/T finite).

    None sends the block to :func:`_tilt_block`, which handles the edges.
    """
    with np.errstate(divide="ignore", over="ignore"):
        inv_t = 1.0 / t
    if np.isfinite(inv_t).all() and (inv_t > 0).all() and (t != 1).all():
        return inv_t
    return None


def _fast_sums(raw: FloatArray, powers: FloatArray) -> FloatArray | None:
    """Σ p and Σ r p per column of a (K, n) block that can take the fast path, else None."""
    if raw.shape[0] < 2 or not raw.min() > 0:  # NaN fails the comparison too
        return None
    sums = powers[:2] @ raw
    if not np.isfinite(sums).all():  # inf entries or an overflowing total
        return None
    return sums


def takes_fast_path(p: ArrayLike, values: ArrayLike) -> bool:
    """Whether :func:`mean_preserving_tilt` tilts these (n, K) rows, as one block
    (n <= :data:`BLOCK_ROWS`) at a temperature other than 0, 1 and inf, with its fast
    arithmetic. Rows stacked from several calls give every call's result bitwise only
    when all of them take the same path (:mod:`valuesim.calibration.objective`)."""
    arr = _as_array(p)
    r, gap = _rescaled_values(values, arr.shape[-1])
    raw = np.ascontiguousarray(arr.reshape(-1, arr.shape[-1]).T)
    return _fast_sums(raw, _Workspace.create(r, gap, 0).powers) is not None


def _tilt_block_fast(
    raw: FloatArray, inv_t: FloatArray | float, ws: _Workspace, calls: NDArray[np.intp] | None = None
) -> FloatArray | None:
    """The common block in fewer passes: all entries > 0 (T checked by the caller).

    ``raw`` is the (K, n) block as given (not normalized); it is overwritten only
    once the block qualifies; ``inv_t`` is 1/T (a scalar or one per column). Returns
    None when the block has zeros or bad values: the caller then takes
    :func:`_tilt_block`, which checks and handles every case. Normalizing is
    skipped (scaling a column does not change its tilt; only the target needs the
    total), and the mode is divided out before the log, so the anchored logits
    take one log pass and are exactly 0 at the mode.
    """
    sums = _fast_sums(raw, ws.powers)
    if sums is None:
        return None
    base = np.divide(raw, raw.max(axis=0), out=raw)
    np.log(base, out=base)
    base *= inv_t
    return _solve_tilt(base, sums[1] / sums[0], ws, calls)


def _stacked_calls(sizes: Sequence[int], rows: int) -> NDArray[np.intp]:
    """The call of each row for ``mean_preserving_tilt(..., sizes=sizes)``."""
    n = np.asarray(sizes, dtype=np.intp)
    if n.ndim != 1 or n.sum() != rows or rows > _CHUNK or (n.size and n.min() < 2):
        raise ValueError(
            f"sizes must split the {rows} rows into calls of at least 2 rows, {_CHUNK} rows in all at most"
        )
    return np.repeat(np.arange(n.size), n)


def _check_one_path(raw: FloatArray, powers: FloatArray, calls: NDArray[np.intp]) -> None:
    """Stacked calls that take the general path: none of them may take the fast path
    alone (its arithmetic differs in the last bits)."""
    ends = np.cumsum(np.bincount(calls))
    for i, (a, e) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
        if _fast_sums(np.ascontiguousarray(raw[:, a:e]), powers) is not None:
            raise ValueError(
                f"stacked call {i} has every probability > 0 and others do not: the tilt takes "
                "another path for each; stack them apart (takes_fast_path)"
            )


def mean_preserving_tilt(
    p: ArrayLike, values: ArrayLike, t: ArrayLike, *, sizes: Sequence[int] | None = None
) -> FloatArray:
    """q_k ∝ p_k^(1/T) exp(β r_k) with β such that Σ r_k q_k = Σ r_k p_k.

    ``p``: (..., K) distributions (rescaled to sum to 1); ``values``: the K scale
    values r_k (shared by all rows); ``t``: scalar or broadcastable to
    ``p.shape[:-1]``. One-hot rows and T = 1 rows come back unchanged; zero
    entries stay zero.

    ``sizes``: the rows are several calls' (n, K) arrays stacked, of these many rows
    each, and each call's rows come back bitwise as that call alone would return them
    (the stacked calibration objective, :mod:`valuesim.calibration.objective`). That
    needs the stack to be one block (at most :data:`BLOCK_ROWS` rows), every call at
    least two rows, and every call taking the same path (:func:`takes_fast_path`).
    """
    arr = _as_array(p)
    k = arr.shape[-1]
    r, gap = _rescaled_values(values, k)
    t_flat = _as_temperature(t, arr.shape[:-1])
    flat = arr.reshape(-1, k)
    calls = None if sizes is None else _stacked_calls(sizes, flat.shape[0])
    out = np.empty_like(flat)
    workspace = _Workspace.create(r, gap, min(_CHUNK, flat.shape[0]))
    # One temperature for all rows (the usual call): check it once, multiply by a scalar.
    single = np.size(t) == 1
    inv_single = _fast_inverse_temperature(np.asarray(t, dtype=np.float64).reshape(1)) if single else None
    for sl in _blocks(flat.shape[0]):
        block = flat[sl]
        ws = workspace.cut(block.shape[0])
        raw = ws.raw
        np.copyto(raw, block.T)
        inv_t = (
            (None if inv_single is None else float(inv_single[0])) if single
            else _fast_inverse_temperature(t_flat[sl])
        )
        q = None if inv_t is None else _tilt_block_fast(raw, inv_t, ws, calls)
        if q is None:
            if calls is not None and inv_t is not None:
                _check_one_path(raw, ws.powers, calls)
            q = _tilt_block(_normalized(raw), t_flat[sl], ws, calls)
        out[sl] = q.T
    return out.reshape(arr.shape)


# ---------------------------------------------------------------------------
# Leave-one-question-out fit


#: the last point of every search: the T -> infinity limit (mean-preserving: the
#: maximum-entropy distribution with the same mean; plain: uniform on the support)
LIMIT = float("inf")


def maximum_entropy_with_mean(p: ArrayLike, values: ArrayLike) -> FloatArray:
    """The T -> infinity limit of :func:`mean_preserving_tilt`: on the support of each
    distribution, the maximum-entropy distribution with its mean, q_k ∝ exp(β r_k)
    (an exponential tilt of the uniform), β from the same solve as every other T."""
    return mean_preserving_tilt(p, values, LIMIT)


@dataclass(frozen=True)
class LoqoFit:
    """Per held-out question: the T fit on all other questions and its objective.

    ``grid`` is the search: the temperature grid and, last, the T -> infinity limit
    (:data:`LIMIT`); a fitted T may be infinite (the limit did best)."""

    questions: tuple[str, ...]
    temperatures: FloatArray  # one per question, fit without that question
    objective: FloatArray  # mean distance over the other questions at that T
    grid: FloatArray
    grid_objective: FloatArray  # (len(grid), n_questions): per-question distance
    overall: float  # T fit on all questions together (reported, not used out of sample)

    @property
    def curve(self) -> FloatArray:
        """The all-questions objective (mean distance) at each point of ``grid``."""
        return self.grid_objective.mean(axis=1)


def temperature_grid(t_min: float, t_max: float, size: int) -> FloatArray:
    """Log-spaced: a temperature acts multiplicatively on log-probabilities."""
    if not (0 < t_min < t_max) or size < 3:
        raise DataError("temperature grid needs 0 < t_grid_min < t_grid_max and t_grid_size >= 3")
    return np.geomspace(t_min, t_max, size)


def _refine(
    per_question: Callable[[float], FloatArray], keep: NDArray[np.bool_], grid: FloatArray,
    grid_obj: FloatArray,
) -> tuple[float, float]:
    """The grid minimum refined by a bounded scalar search between its neighbours.

    When the minimum is the T -> infinity limit or the last finite point before it,
    the search runs in u = 1/T over [0, 1/(the finite point below)], so it reaches the
    limit (u = 0) and any finite T beyond the grid; the limit itself is kept when
    nothing finite does better. Elsewhere the search is in log T. Ties keep the grid
    point."""
    i = int(np.argmin(grid_obj))

    def mean_at(t: float) -> float:
        return float(per_question(t)[keep].mean())

    finite = int(np.count_nonzero(np.isfinite(grid)))
    if finite < len(grid) and i >= finite - 1:  # the limit, or the last finite point
        below = grid[max(finite - 2, 0)]
        res = minimize_scalar(
            lambda u: mean_at(float(1.0 / u) if u > 0 else LIMIT), bounds=(0.0, 1.0 / below),
            method="bounded", options={"xatol": 1e-4},
        )
        best_t = float(1.0 / res.x) if res.x > 0 else LIMIT
    else:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, finite - 1)]
        res = minimize_scalar(
            lambda log_t: mean_at(float(np.exp(log_t))), bounds=(np.log(lo), np.log(hi)), method="bounded",
            options={"xatol": 1e-4},
        )
        best_t = float(np.exp(res.x))
    # The grid point itself is a valid candidate: keep it if the refinement did worse.
    if grid_obj[i] <= float(res.fun):
        return float(grid[i]), float(grid_obj[i])
    return best_t, float(res.fun)


def fit_temperature_loqo(
    per_question: Callable[[float], ArrayLike],
    questions: list[str] | tuple[str, ...],
    grid: FloatArray,
    *,
    limit: bool = True,
) -> LoqoFit:
    """Fit T leave-one-question-out.

    ``per_question(T)`` returns, for every question (in ``questions`` order), the
    distance between calibrated and human distributions averaged over countries.
    For question q, T_q minimizes the mean of that vector over all questions but q:
    first on ``grid`` and, with ``limit`` (the default), on the T -> infinity limit
    appended to it, then refined with a bounded scalar search around the best point
    (:func:`_refine`). ``per_question`` must accept T = inf.
    """
    qs = tuple(questions)
    if len(qs) < 2:
        raise DataError("the leave-one-question-out fit needs at least two questions; keep more questions")

    def evaluate(t: float) -> FloatArray:
        v = np.asarray(per_question(t), dtype=np.float64)
        if v.shape != (len(qs),):
            raise DataError(f"objective returned shape {v.shape}, expected ({len(qs)},)")
        return v

    search = np.append(np.asarray(grid, dtype=np.float64), LIMIT) if limit else np.asarray(grid, dtype=np.float64)
    grid_obj = np.stack([evaluate(float(t)) for t in search])  # (G, Q)
    temps = np.empty(len(qs))
    objs = np.empty(len(qs))
    for qi in range(len(qs)):
        keep = np.ones(len(qs), dtype=bool)
        keep[qi] = False
        temps[qi], objs[qi] = _refine(evaluate, keep, search, grid_obj[:, keep].mean(axis=1))
    overall, _ = _refine(evaluate, np.ones(len(qs), dtype=bool), search, grid_obj.mean(axis=1))
    return LoqoFit(qs, temps, objs, search, grid_obj, overall)


@dataclass(frozen=True)
class Identification:
    """Whether the all-questions objective pins T down.

    ``edge``: None when its minimum is a finite T above the lowest grid point;
    ``"infinity"`` when the T -> infinity limit does best: the objective falls all the
    way up the grid to the limit, so T is not identified and the calibration acts as
    mean-preserving smoothing toward maximum entropy (plain scaling: flattening toward
    uniform); ``"lower"`` when the lowest grid point does best (the true minimum may lie
    below it: that T is a bound). ``monotone``: the objective never rises from one
    search point to the next toward the edge, across the whole search."""

    edge: str | None
    monotone: bool

    @property
    def identified(self) -> bool:
        return self.edge is None


def identification(fit: LoqoFit, *, rtol: float = 1e-12) -> Identification:
    """:class:`Identification` of a fit from its all-questions optimum and curve."""
    curve = fit.curve
    steps = np.diff(curve)
    slack = rtol * np.abs(curve[1:])
    if np.isinf(fit.overall):
        return Identification("infinity", bool(np.all(steps <= slack)))
    if fit.overall <= fit.grid[0] * (1 + 1e-9):
        return Identification("lower", bool(np.all(steps >= -slack)))
    return Identification(None, False)
