"""The comparison's test numbers: Mann-Whitney U / Benjamini-Hochberg checked against
``scipy.stats.mannwhitneyu`` and statsmodels' ``multipletests(method="fdr_bh")``
computed independently (the package uses scipy's ``false_discovery_control``), and the
paired test's pairing of shared cells."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
import pytest
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from valuesim.compare.significance import paired_pairwise_tests, pairwise_tests, stars


def _groups() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        # a clear shift, a small one, a tie-heavy rounded group, and a near-twin of "base"
        "base": rng.beta(2, 8, 300),
        "shifted": rng.beta(2, 8, 280) + 0.08,
        "slight": rng.beta(2, 8, 310) + 0.01,
        "rounded": np.round(rng.beta(2, 8, 250), 2),
        "twin": rng.beta(2, 8, 300),
    }


def test_u_p_and_bh_match_scipy_and_statsmodels() -> None:
    groups = _groups()
    table = pairwise_tests(groups)
    pairs = list(combinations(groups, 2))
    assert table["pair"].to_list() == [f"{a} vs {b}" for a, b in pairs]
    expected_u, expected_p = [], []
    for a, b in pairs:
        res = mannwhitneyu(groups[a], groups[b], alternative="two-sided")
        expected_u.append(res.statistic)
        expected_p.append(res.pvalue)
    _, expected_bh, _, _ = multipletests(expected_p, method="fdr_bh")
    np.testing.assert_allclose(table["U"].to_numpy(), expected_u, rtol=1e-12)
    np.testing.assert_allclose(table["p"].to_numpy(), expected_p, rtol=1e-12)
    np.testing.assert_allclose(table["p_BH"].to_numpy(), expected_bh, rtol=1e-12)
    assert table["n1"].to_list() == [len(groups[a]) for a, _ in pairs]
    assert table["n2"].to_list() == [len(groups[b]) for _, b in pairs]
    # the planted differences come out as planted: the 0.08 shift is ****, the twin is not
    by_pair = dict(zip(table["pair"], table["stars"], strict=True))
    assert by_pair["base vs shifted"] == "****"
    assert by_pair["base vs twin"] == "ns"
    # BH really adjusted: some adjusted p-value is larger than its raw one
    assert (table["p_BH"] > table["p"]).any()


@pytest.mark.parametrize(
    ("p", "mark"),
    [(0.0, "****"), (0.99e-4, "****"), (1e-4, "***"), (0.99e-3, "***"), (1e-3, "**"),
     (0.0099, "**"), (0.01, "*"), (0.0499, "*"), (0.05, "ns"), (0.8, "ns"), (float("nan"), "n/a")],
)
def test_stars_follow_the_papers_thresholds(p: float, mark: str) -> None:
    assert stars(p) == mark


def test_an_empty_group_stays_out_of_the_correction() -> None:
    groups = _groups()
    full = pairwise_tests({k: groups[k] for k in ("base", "shifted", "twin")})
    with_empty = pairwise_tests({"base": groups["base"], "shifted": groups["shifted"],
                                 "twin": groups["twin"], "empty": np.array([])})
    empty_rows = with_empty.filter(with_empty["pair"].str.contains("empty"))
    assert empty_rows["p_BH"].is_nan().all()
    assert set(empty_rows["stars"].to_list()) == {"n/a"}
    kept = with_empty.filter(~with_empty["pair"].str.contains("empty"))
    np.testing.assert_allclose(kept["p_BH"].to_numpy(), full["p_BH"].to_numpy(), rtol=1e-12)


def _cells(questions: range, shift: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"model": "m", "method": "country", "country": c, "question": f"Q{q:02d}",
             "mae": float(rng.beta(2, 8)) + shift} for q in questions for c in ("JPN", "COL", "ZWE")]
    return pl.DataFrame(rows)


def test_paired_tests_pair_shared_cells_and_keep_a_pair_without_any_out_of_the_correction() -> None:
    base = _cells(range(20), 0.0, 1)
    boxes = {"base": base, "shifted": base.with_columns(pl.col("mae") + 0.02),
             "elsewhere": _cells(range(20, 30), 0.0, 2)}  # no question in common with the others
    table = paired_pairwise_tests(boxes, "mae")
    assert table["test"].to_list() == ["paired, clustered by question (sign-flip)"] * 3
    first = table.row(0, named=True)
    assert (first["pair"], first["n_cells"], first["n_questions"], first["n_unmatched"]) == (
        "base vs shifted", 60, 20, 0)
    assert first["diff"] == pytest.approx(-0.02)
    assert first["stars"] == "****"  # every question the same sign: p at its floor, 2e-5
    lone = table.filter(pl.col("pair").str.contains("elsewhere"))
    assert lone["n_cells"].to_list() == [0, 0]
    assert lone["n_unmatched"].to_list() == [90, 90]
    assert lone["p_BH"].is_nan().all()
    assert set(lone["stars"].to_list()) == {"n/a"}
    # one finite p: BH over a family of one leaves it as it is
    assert first["p_BH"] == pytest.approx(first["p"], rel=1e-12)
