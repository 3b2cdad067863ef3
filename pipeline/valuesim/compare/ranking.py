"""The experiments ranked by their headline error, each against the best.

One row per experiment of the panel whose boxes are single experiments (the one
panel of a one-param sweep, the combined panel of a several-param sweep): its mean
per-cell error over the compared methods' cells (the run MAE when the metric is
``mae`` and every country has the same questions), that mean's 95% interval from a
bootstrap resampling questions (a question's cells move together across countries, so
questions are the units, as in the paired test), and its difference to the best
experiment with the interval, BH-adjusted p-value and mark of that pair's test in the
panel's test table: the numbers of ``tests.csv`` and the figure's brackets, turned
to read "this minus the best".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from valuesim.compare.figures import Box, Panel
from valuesim.compare.significance import BOOTSTRAP

RANKING_SCHEMA = {
    "rank": pl.Int64, "experiment": pl.Utf8, "n_cells": pl.Int64, "n_questions": pl.Int64,
    "mean": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64, "best": pl.Boolean,
    "diff_to_best": pl.Float64, "diff_ci_lo": pl.Float64, "diff_ci_hi": pl.Float64,
    "p_BH": pl.Float64, "stars": pl.Utf8,
}


@dataclass(frozen=True)
class Ranking:
    keys: tuple[str, ...]  # the params the experiment labels give values of
    rows: pl.DataFrame  # RANKING_SCHEMA (+ mean_<method> with several methods), best first
    n_pairs: int  # the BH family: the panel's pairs


def experiment_panel(panels: Sequence[Panel]) -> Panel:
    """The panel with one box per experiment: the only one, or the combined last one."""
    return panels[0] if len(panels) == 1 else panels[-1]


def _mean_ci(box: Box, metric: str, seed: int = 0) -> tuple[float, float, float, int]:
    """The box's mean per-cell error, its 95% interval resampling questions (each drawn
    question brings all its cells: a ratio of sums, so unequal cell counts per question
    weigh as in the mean) and the number of questions."""
    assert box.cells is not None
    per_q = (box.cells.group_by("question").agg(pl.col(metric).sum().alias("s"), pl.len().alias("n"))
             .sort("question"))
    sums, counts = per_q["s"].to_numpy().astype(np.float64), per_q["n"].to_numpy().astype(np.float64)
    mean = float(sums.sum() / counts.sum())
    if per_q.height < 2:
        return mean, mean, mean, per_q.height
    res = stats.bootstrap(
        (sums, counts), lambda s, n, axis=-1: s.sum(axis=axis) / n.sum(axis=axis), paired=True,
        vectorized=True, n_resamples=BOOTSTRAP, method="percentile", rng=np.random.default_rng(seed),
    )
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high), per_q.height


def ranking(panels: Sequence[Panel], metric: str) -> Ranking:
    panel = experiment_panel(panels)
    stats_ = {b.label: _mean_ci(b, metric) for b in panel.boxes}
    order = sorted(panel.boxes, key=lambda b: (stats_[b.label][0], b.label))
    best = order[0].label
    tests = {(r["a"], r["b"]): r for r in panel.tests.iter_rows(named=True)}
    rows = []
    for rank, box in enumerate(order, start=1):
        mean, lo, hi, n_q = stats_[box.label]
        row = {"rank": rank, "experiment": box.label, "n_cells": int(box.values.size), "n_questions": n_q,
               "mean": mean, "ci_lo": lo, "ci_hi": hi, "best": box.label == best,
               "diff_to_best": None, "diff_ci_lo": None, "diff_ci_hi": None, "p_BH": None, "stars": None}
        if box.label != best:
            if (box.label, best) in tests:  # a - b is already this minus the best
                t = tests[(box.label, best)]
                diff, d_lo, d_hi = t["diff"], t["ci_lo"], t["ci_hi"]
            else:
                t = tests[(best, box.label)]
                diff = None if t["diff"] is None else -t["diff"]
                d_lo = None if t["ci_hi"] is None else -t["ci_hi"]
                d_hi = None if t["ci_lo"] is None else -t["ci_lo"]
            row.update(diff_to_best=diff, diff_ci_lo=d_lo, diff_ci_hi=d_hi, p_BH=t["p_BH"], stars=t["stars"])
        rows.append(row)
    frame = pl.DataFrame(rows, schema=RANKING_SCHEMA)
    methods = sorted({m for b in panel.boxes for m in b.by_method})
    if len(methods) > 1:  # the figure's per-method boxes, as numbers (ranking.csv and the page)
        means = {b.label: b.by_method for b in order}
        frame = frame.with_columns(
            pl.Series(f"mean_{m}", [float(np.mean(means[label][m])) if m in means[label] else None
                                    for label in frame["experiment"]], dtype=pl.Float64)
            for m in methods
        )
    return Ranking(keys=panel.keys, rows=frame, n_pairs=panel.tests.height)
