"""Benchmark: the vectorized mean-preserving tilt against a per-row brentq loop.

``python -m valuesim.calibration.bench [--rows N] [--answers K] [--t T] [--repeat R]``
times ``mean_preserving_tilt`` on N random K-answer distributions (R runs, the
median reported and every run listed: a run that needs fresh pages from the
kernel for its N x K result can pay up to ~0.2 s more for 10^6 x 10 on some
machines, depending on their memory state) and a naive loop that solves β row by row with
``scipy.optimize.brentq`` on a subsample, and prints both and the extrapolated
speed-up. Timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import brentq

from valuesim.calibration.tilt import mean_preserving_tilt


def naive_tilt_row(p: np.ndarray, r: np.ndarray, t: float) -> np.ndarray:
    s = p > 0
    logits = np.log(p[s]) / t
    target = float(p @ r)

    def q_of(b: float) -> np.ndarray:
        z = logits + b * r[s]
        w = np.exp(z - z.max())
        return w / w.sum()

    out = np.zeros_like(p)
    if s.sum() > 1:
        b = brentq(lambda b: float(q_of(b) @ r[s]) - target, -1e3, 1e3, xtol=1e-12)
        out[s] = q_of(b)
    else:
        out[s] = 1.0
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m valuesim.calibration.bench", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--answers", type=int, default=10)
    ap.add_argument("--t", type=float, default=1.7)
    ap.add_argument("--naive-rows", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of the vectorized tilt")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    p = rng.dirichlet(np.full(args.answers, 0.5), size=args.rows)
    r = np.arange(1.0, args.answers + 1)
    mean_preserving_tilt(p[:1000], r, args.t)  # warm-up
    runs: list[float] = []
    q: np.ndarray | None = None
    for _ in range(max(args.repeat, 1)):
        q = None  # release the previous result first, as a pipeline would
        t0 = time.perf_counter()
        q = mean_preserving_tilt(p, r, args.t)
        runs.append(time.perf_counter() - t0)
    assert q is not None
    fast = float(np.median(runs))
    err = float(np.abs(q @ r - p @ r).max())
    sub = p[: args.naive_rows]
    t0 = time.perf_counter()
    ref = np.stack([naive_tilt_row(row, r, args.t) for row in sub])
    naive = (time.perf_counter() - t0) * args.rows / len(sub)
    diff = float(np.abs(ref - q[: len(sub)]).max())
    print(
        f"vectorized tilt: {args.rows:,} x {args.answers} in {fast:.3f} s, median of "
        f"{', '.join(f'{x:.3f}' for x in runs)} (max mean error {err:.1e})"
    )
    print(f"brentq loop: {naive:.1f} s extrapolated from {len(sub):,} rows (max |diff| {diff:.1e})")
    print(f"speed-up: {naive / fast:.0f}x")


if __name__ == "__main__":
    main()
