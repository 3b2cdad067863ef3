"""Paired comparisons clustered by question: the default test between methods, between
a method and a reference, and between experiments (``valuesim compare``).

Two methods (or two experiments) score the *same* (country, question) cells, so their
errors are paired; and the paired differences of one question move together across
countries (on the demo run, generic vs country prompting: intraclass correlation 0.40
of the per-cell differences within questions). Both facts decide the test:

* an unpaired test (Mann-Whitney U on the two sets of cell errors, the paper's test) is
  blind to the pairing: a cell's error varies far more between cells (SD ~0.17 of the
  range) than between methods, so a difference of 0.01 of the range goes unseen
  (simulated on the demo's structure: power ~0.1 at 320 cells);
* a paired test over cells (Wilcoxon signed-rank on the 320 cell differences) treats
  the ten countries of a question as ten independent draws when they are about four
  times fewer (design effect 1 + 9 x 0.40): it rejects a true null about a third of
  the time at the nominal 5%.

So the unit is the question, the unit a claim about "questions in general" must
generalize over. For each question the differences a - b are averaged over the
countries both sides score (a cell only one side scores is left out and counted); the
test is a **sign-flip permutation test** on those per-question means (under the null
each question's mean difference is symmetric about 0): ``scipy.stats.permutation_test``
with one sample and ``permutation_type="samples"``, exact (all 2^Q sign patterns) when
2^Q is at most the number of resamples, else Monte Carlo with a fixed seed. The
difference's 95% interval is a percentile **cluster bootstrap over questions**
(``scipy.stats.bootstrap`` on the per-question means: questions are resampled with
their countries attached; countries are held fixed). p-values of the comparisons
shown together are corrected by **Benjamini-Hochberg** (statsmodels
``multipletests(method="fdr_bh")``).

The questions are weighted equally; with every country scoring every question (the
pipeline's cells) the mean difference equals the difference of the run MAEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from statsmodels.stats.multitest import multipletests

from valuesim.analysis.metrics import bootstrap_ci

TEST_NAME = "sign-flip permutation over questions (country-averaged paired differences)"
RESAMPLED = "questions"  # what the difference's bootstrap interval resamples
#: sign patterns drawn when 2^Q is larger (the test is exact below that)
PERMUTATIONS = 99_999  # two-sided p down to 2e-5, so the paper's **** (p < 1e-4) can be reached
BATCH = 10_000  # sign patterns per vectorized call: SciPy is much slower with all at once
CLUSTER = "question"
UNITS = ("country",)


@dataclass(frozen=True)
class QuestionDifferences:
    """The per-question mean differences a - b over the cells both sides score."""

    questions: list[str]
    diffs: NDArray[np.float64]  # one per question, in ``questions``' order
    mean_a: float  # mean over questions of a's per-question mean (matched cells only)
    mean_b: float
    n_cells: int  # cells both sides score
    n_unmatched: int  # cells only one side scores: left out


@dataclass(frozen=True)
class PairedResult:
    n_questions: int
    n_cells: int
    n_unmatched: int
    mean_a: float
    mean_b: float
    diff: float  # mean over questions of the per-question mean of a - b
    ci_lo: float  # percentile cluster bootstrap over questions
    ci_hi: float
    p: float  # two-sided sign-flip permutation test over questions

    def row(self) -> dict[str, float | int]:
        return asdict(self)


def _side(frame: pl.DataFrame, value: str, keys: Sequence[str]) -> pl.DataFrame:
    """One value per key: a key scored more than once (a box pooling experiments that
    share cells) counts with its mean."""
    return (frame.select(*keys, pl.col(value).cast(pl.Float64))
            .filter(pl.col(value).is_not_null() & pl.col(value).is_finite())
            .sort(list(keys)).group_by(list(keys), maintain_order=True).agg(pl.col(value).mean()))


def question_differences(
    a: pl.DataFrame, b: pl.DataFrame, value: str = "mae", *, cluster: str = CLUSTER,
    units: Sequence[str] = UNITS,
) -> QuestionDifferences:
    """Pair ``a`` and ``b`` on ``(cluster, *units)`` and average a - b per cluster.

    ``units``: the columns that, with the cluster, name a cell (country; in
    ``valuesim compare`` also model and method). Cells only one side scores (or with a
    missing value) are left out and counted in ``n_unmatched``.
    """
    keys = [cluster, *units]
    left, right = _side(a, value, keys), _side(b, value, keys)
    # sorted before every mean: the join's and group_by's row order vary from run to run,
    # and a float sum in another order differs in the last bits (DVC hashes the table)
    both = left.join(right, on=keys, how="inner", suffix="__b").sort(keys)
    per_q = (both.group_by(cluster, maintain_order=True)
             .agg(pl.col(value).mean().alias("a"), pl.col(f"{value}__b").mean().alias("b"))
             .sort(cluster))
    a_q, b_q = per_q["a"].to_numpy().astype(np.float64), per_q["b"].to_numpy().astype(np.float64)
    return QuestionDifferences(
        questions=[str(q) for q in per_q[cluster].to_list()], diffs=a_q - b_q,
        mean_a=float(a_q.mean()) if a_q.size else float("nan"),
        mean_b=float(b_q.mean()) if b_q.size else float("nan"), n_cells=both.height,
        n_unmatched=left.height + right.height - 2 * both.height,
    )


def sign_flip_p(diffs: ArrayLike, n_resamples: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value of the mean of ``diffs`` under random sign flips (SciPy's
    ``permutation_test``, one sample, ``permutation_type="samples"``): exact when
    2^len(diffs) <= ``n_resamples``, else Monte Carlo from ``seed``. NaN for no
    differences; 1 when every difference is 0."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return float("nan")
    if not np.any(d):
        return 1.0
    res = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
        alternative="two-sided", rng=np.random.default_rng(seed), batch=BATCH,
    )
    return float(res.pvalue)


def paired_test(
    a: pl.DataFrame, b: pl.DataFrame, value: str = "mae", *, n_resamples: int = 1000, seed: int = 0,
    permutations: int = PERMUTATIONS, units: Sequence[str] = UNITS,
) -> PairedResult:
    """a vs b on the cells both score: the mean per-question difference a - b, its 95%
    percentile bootstrap interval resampling questions (``n_resamples``), and the
    two-sided sign-flip p-value over questions (``permutations``)."""
    q = question_differences(a, b, value, units=units)
    lo, hi = bootstrap_ci(q.diffs, n_resamples, seed)
    return PairedResult(
        n_questions=q.diffs.size, n_cells=q.n_cells, n_unmatched=q.n_unmatched,
        mean_a=q.mean_a, mean_b=q.mean_b, diff=float(np.mean(q.diffs)) if q.diffs.size else float("nan"),
        ci_lo=lo, ci_hi=hi, p=sign_flip_p(q.diffs, permutations, seed),
    )


def bh(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (statsmodels); a NaN p-value (no cells to
    compare) stays NaN and out of the family, so it changes no other value."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="fdr_bh")[1]
    return out


TABLE_SCHEMA = {
    "model": pl.Utf8, "a": pl.Utf8, "b": pl.Utf8, "vs_reference": pl.Boolean,
    "n_questions": pl.Int64, "n_cells": pl.Int64, "n_unmatched": pl.Int64,
    "mean_a": pl.Float64, "mean_b": pl.Float64, "diff": pl.Float64, "ci_lo": pl.Float64,
    "ci_hi": pl.Float64, "p": pl.Float64, "p_bh": pl.Float64, "better": pl.Utf8,
    "test": pl.Utf8, "ci_resamples": pl.Utf8,
}


def paired_table(
    cells: pl.DataFrame, references: pl.DataFrame | None = None, value: str = "mae", *,
    n_resamples: int = 1000, seed: int = 0, permutations: int = PERMUTATIONS,
) -> pl.DataFrame:
    """The evaluate stage's paired_tests.parquet: per model, every pair of methods
    (a before b by name) and every method (a) against every reference (b), each on the
    cells both score. ``diff`` = mean_a - mean_b (negative: a has the lower error);
    ``better``: the side with the lower mean (None on a tie); ``p_bh``:
    Benjamini-Hochberg over all the rows of one model."""
    rows: list[dict[str, object]] = []
    refs = references if references is not None else pl.DataFrame(schema=cells.schema)
    ref_names = sorted(set(refs["method"].to_list()))
    for (model,), grp in cells.group_by(["model"], maintain_order=True):
        methods = sorted(set(grp["method"].to_list()))
        pairs = [(x, y, False) for x, y in combinations(methods, 2)] + [(x, y, True) for x in methods for y in ref_names]
        found = []
        for x, y, vs_ref in pairs:
            other = refs if vs_ref else grp
            res = paired_test(grp.filter(pl.col("method") == x), other.filter(pl.col("method") == y), value,
                              n_resamples=n_resamples, seed=seed, permutations=permutations)
            better = x if res.diff < 0 else y if res.diff > 0 else None
            found.append({"model": model, "a": x, "b": y, "vs_reference": vs_ref, **res.row(),
                          "better": better, "test": TEST_NAME, "ci_resamples": RESAMPLED})
        adjusted = bh([r["p"] for r in found])
        rows += [{**r, "p_bh": float(q)} for r, q in zip(found, adjusted, strict=True)]
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)
