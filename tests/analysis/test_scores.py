"""valuesim.analysis.scores: per-cell scores, their means and metrics.json.

Every expected number is computed here from its definition (SciPy's Wasserstein
distance, plain NumPy moments, SciPy's tests), not with valuesim.analysis.metrics.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from valuesim.analysis.scores import (
    SCORE_SCHEMA,
    by_country,
    coverage_summary,
    method_tests,
    metrics_json,
    score_cells,
    summary,
    wilcoxon_table,
)
from valuesim.errors import DataError

POP_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "codes": pl.List(pl.Int64), "probs_raw": pl.List(pl.Float64), "probs_cal": pl.List(pl.Float64),
    "temperature": pl.Float64, "probs_plain": pl.List(pl.Float64),
}
HUMAN = {
    ("A", "Q1"): {1: 0.5, 2: 0.5},
    ("B", "Q1"): {1: 0.2, 2: 0.8},
    ("A", "Q2"): {0: 0.1, 5: 0.2, 10: 0.7},
}
CODES = {"Q1": [1, 2], "Q2": [0, 5, 10]}


def human_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [{"country": c, "question": q, "code": k, "share": s}
         for (c, q), shares in HUMAN.items() for k, s in shares.items()],
        schema={"country": pl.Utf8, "question": pl.Utf8, "code": pl.Int64, "share": pl.Float64},
    )


def population() -> pl.DataFrame:
    rows = [
        ("m", "value", "B", "Q1", [0.9, 0.1], [0.6, 0.4], 2.0, [0.7, 0.3]),
        ("m", "value", "A", "Q1", [0.3, 0.7], [0.5, 0.5], 1.5, [0.4, 0.6]),
        ("m", "value", "A", "Q2", [0.0, 1.0, 0.0], [0.3, 0.4, 0.3], 3.0, [0.2, 0.6, 0.2]),
        ("m", "country", "A", "Q1", [1.0, 0.0], [1.0, 0.0], 1.0, [0.8, 0.2]),
    ]
    return pl.DataFrame([
        {"model": m, "method": k, "country": c, "question": q, "codes": CODES[q],
         "probs_raw": raw, "probs_cal": cal, "temperature": t, "probs_plain": plain}
        for m, k, c, q, raw, cal, t, plain in rows
    ], schema=POP_SCHEMA)


def mae(p: list[float], h: list[float], codes: list[int]) -> float:
    c = np.asarray(codes, dtype=float)
    return abs(float(np.dot(p, c)) - float(np.dot(h, c))) / (c[-1] - c[0])


def w1(p: list[float], h: list[float], codes: list[int]) -> float:
    c = np.asarray(codes, dtype=float)
    return stats.wasserstein_distance(c, c, p, h) / (c[-1] - c[0])


def nvar(p: list[float], codes: list[int]) -> float:
    c = np.asarray(codes, dtype=float)
    mean = float(np.dot(p, c))
    var = float(np.dot(p, (c - mean) ** 2))
    return var / ((c[-1] - c[0]) ** 2 / 4)


def test_score_cells_against_the_definitions() -> None:
    cells = score_cells(population(), human_frame())
    assert cells.columns == list(SCORE_SCHEMA)
    # sorted by model, method, country, question
    assert cells.select("method", "country", "question").rows() == [
        ("country", "A", "Q1"), ("value", "A", "Q1"), ("value", "A", "Q2"), ("value", "B", "Q1"),
    ]
    source = {(r["method"], r["country"], r["question"]): r for r in population().iter_rows(named=True)}
    for row in cells.iter_rows(named=True):
        src = source[(row["method"], row["country"], row["question"])]
        codes = CODES[row["question"]]
        h = [HUMAN[(row["country"], row["question"])].get(k, 0.0) for k in codes]
        assert row["temperature"] == src["temperature"]
        assert row["mae"] == pytest.approx(mae(src["probs_raw"], h, codes))
        assert row["mae_cal"] == pytest.approx(mae(src["probs_cal"], h, codes))
        assert row["mae_plain"] == pytest.approx(mae(src["probs_plain"], h, codes))
        assert row["wasserstein"] == pytest.approx(w1(src["probs_raw"], h, codes))
        assert row["wasserstein_cal"] == pytest.approx(w1(src["probs_cal"], h, codes))
        assert row["wasserstein_plain"] == pytest.approx(w1(src["probs_plain"], h, codes))
        assert row["nvar"] == pytest.approx(nvar(src["probs_raw"], codes))
        assert row["nvar_cal"] == pytest.approx(nvar(src["probs_cal"], codes))
        assert row["nvar_plain"] == pytest.approx(nvar(src["probs_plain"], codes))
        assert row["nvar_human"] == pytest.approx(nvar(h, codes))


def test_score_cells_worked_example() -> None:
    """One cell by hand: value/A/Q2, raw all on 5, human 0.1/0.2/0.7 on 0/5/10."""
    cells = score_cells(population(), human_frame())
    row = cells.filter((pl.col("method") == "value") & (pl.col("question") == "Q2")).row(0, named=True)
    # human mean 8, predicted 5: |5 - 8| / 10
    assert row["mae"] == pytest.approx(0.3)
    # CDFs at 0 and 5: pred (0, 1), human (0.1, 0.3): (0.1 * 5 + 0.7 * 5) / 10
    assert row["wasserstein"] == pytest.approx(0.4)
    assert row["nvar"] == pytest.approx(0.0)
    # human variance 0.1*64 + 0.2*9 + 0.7*4 = 11, / (100 / 4)
    assert row["nvar_human"] == pytest.approx(0.44)


def test_score_cells_rejects_an_empty_population() -> None:
    with pytest.raises(DataError, match=r"population\.parquet is empty"):
        score_cells(population().head(0), human_frame())


def cells_frame() -> pl.DataFrame:
    """Per-cell scores where country A has three questions and country B one, so the
    mean of per-country means differs from the mean over cells."""
    rows = []
    for method, base in (("value", 0.0), ("country", 0.1)):
        for country, values in (("A", [0.1, 0.2, 0.6]), ("B", [0.5])):
            for i, v in enumerate(values):
                rows.append({"model": "m", "method": method, "country": country, "question": f"Q{i}",
                             **{c: v + base for c in SCORE_SCHEMA if SCORE_SCHEMA[c] == pl.Float64}})
    return pl.DataFrame(rows).select(list(SCORE_SCHEMA))


def test_by_country_means_over_questions() -> None:
    table = by_country(cells_frame())
    got = {(r["method"], r["country"]): (r["mae"], r["wasserstein_cal"], r["n_questions"])
           for r in table.iter_rows(named=True)}
    assert got[("value", "A")] == (pytest.approx(0.3), pytest.approx(0.3), 3)
    assert got[("value", "B")] == (pytest.approx(0.5), pytest.approx(0.5), 1)
    assert got[("country", "A")][0] == pytest.approx(0.4)
    assert table.select("method", "country").rows() == [("country", "A"), ("country", "B"),
                                                         ("value", "A"), ("value", "B")]


def test_summary_weighs_every_country_the_same() -> None:
    table = summary(cells_frame(), n_resamples=200, seed=0)
    value = table.filter(pl.col("method") == "value").row(0, named=True)
    # (mean over A's questions 0.3 + B's 0.5) / 2, not the cell mean 0.35
    assert value["mae"] == pytest.approx(0.4)
    assert value["nvar_cal"] == pytest.approx(0.4)
    assert value["n_countries"] == 2
    assert value["mae_lo"] <= value["mae"] <= value["mae_hi"]
    assert value["mae_lo"] >= 0.3 - 1e-12
    assert value["mae_hi"] <= 0.5 + 1e-12
    assert table["method"].to_list() == ["country", "value"]


def test_summary_interval_collapses_when_countries_agree() -> None:
    cells = cells_frame().with_columns(pl.lit(0.25).alias("mae"))
    row = summary(cells, n_resamples=50, seed=1).row(0, named=True)
    assert (row["mae"], row["mae_lo"], row["mae_hi"]) == (pytest.approx(0.25),) * 3


def test_coverage_summary() -> None:
    cov = [i / 100 for i in range(101)]
    frame = pl.DataFrame({
        "coverage": [*cov[:-1], None],  # a null coverage counts as 0
        "flag": ["no_coverage" if i % 4 == 0 else None for i in range(101)],
        "answer_rule": ["first_token"] * 50 + ["answer_eot"] * 51,
    })
    plain = pl.DataFrame({"coverage": [0.2, 0.4]})
    table = coverage_summary({("m", "value"): frame, ("m", "country"): plain})
    assert table["method"].to_list() == ["country", "value"]
    country, value = table.rows(named=True)
    expected = [*cov[:-1], 0.0]
    assert value["coverage_mean"] == pytest.approx(sum(expected) / 101)
    # 5th percentile of 0.00, 0.00, 0.01, ..., 0.99 with linear interpolation: rank 5 -> 0.04
    assert value["coverage_p5"] == pytest.approx(0.04)
    assert value["flagged_share"] == pytest.approx(26 / 101)
    assert value["answer_rule"] == "answer_eot,first_token"
    assert country["coverage_mean"] == pytest.approx(0.3)
    assert country["flagged_share"] == 0.0
    assert country["answer_rule"] == "answer_eot"


def test_metrics_json_keys_rounding_and_references() -> None:
    summ = pl.DataFrame({
        "model": ["m", "reference"], "method": ["value", "midpoint"],
        **{k: [0.1234567, float("nan")] for k in ("mae", "mae_cal", "wasserstein", "wasserstein_cal",
                                                  "mae_plain", "wasserstein_plain", "nvar", "nvar_cal")},
    })
    countries = pl.DataFrame({
        "model": ["m", "m", "reference"], "method": ["value", "value", "midpoint"],
        "country": ["A", "B", "A"], "mae": [0.1, 0.2, 0.3], "wasserstein_cal": [0.01, 0.02, 0.03],
        "nvar_human": [0.4, 0.6, 9.0],
    })
    coverage = pl.DataFrame({"model": ["m"], "method": ["value"], "coverage_mean": [0.987654321],
                             "coverage_p5": [0.5]})
    out = metrics_json(summ, countries, coverage, floors={"m/value": {"n": 40.0, "mae": 0.0512345}},
                       split_half={"mae": 0.0200001}, persona_floors={"m/value": {"n": 40, "mae": 0.0123456}},
                       normal_floors={40: 0.0498765})
    assert out["mae"] == {"m/value": 0.1235, "reference/midpoint": None}  # 4 decimals
    assert set(out) >= {"mae", "mae_cal", "wasserstein", "wasserstein_cal", "mae_plain",
                        "wasserstein_plain", "nvar", "nvar_cal", "nvar_human", "coverage",
                        "actual_answer_floor", "persona_information_floor", "split_half",
                        "human_sampling_noise", "by_country"}
    # the human normalized variance is the mean over the methods' rows, references left out
    assert out["nvar_human"] == pytest.approx(0.5)
    assert out["coverage"] == {"m/value": {"mean": 0.9877, "p5": 0.5}}
    assert out["actual_answer_floor"] == {"m/value": {"n": 40, "mae": 0.0512, "mae_normal": 0.0499}}
    assert isinstance(out["actual_answer_floor"]["m/value"]["n"], int)
    assert out["persona_information_floor"] == {"m/value": {"n": 40, "mae": 0.0123}}
    assert out["split_half"] == {"mae": 0.02}
    assert out["human_sampling_noise"] == {"mae": 0.01}  # split-half / 2
    assert out["by_country"] == {
        "m/value": {"A": {"mae": 0.1, "wasserstein_cal": 0.01}, "B": {"mae": 0.2, "wasserstein_cal": 0.02}},
        "reference/midpoint": {"A": {"mae": 0.3, "wasserstein_cal": 0.03}},
    }


def test_metrics_json_leaves_optional_sections_out() -> None:
    summ = pl.DataFrame({"model": ["m"], "method": ["value"],
                         **{k: [0.1] for k in ("mae", "mae_cal", "wasserstein", "wasserstein_cal",
                                               "mae_plain", "wasserstein_plain", "nvar", "nvar_cal")}})
    countries = pl.DataFrame({"model": ["m"], "method": ["value"], "country": ["A"], "mae": [0.1],
                              "wasserstein_cal": [0.1], "nvar_human": [0.5]})
    out = metrics_json(summ, countries)
    assert not {"coverage", "actual_answer_floor", "persona_information_floor", "split_half",
                "human_sampling_noise"} & set(out)


def paired_cells() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Eight questions in one country: value always beats country by a varying margin,
    and the midpoint reference is worse than both."""
    value = [0.10, 0.12, 0.08, 0.15, 0.11, 0.09, 0.14, 0.13]
    country = [v + d for v, d in zip(value, [0.05, 0.07, 0.02, 0.09, 0.04, 0.03, 0.08, 0.06], strict=True)]
    midpoint = [v + 0.3 + i / 100 for i, v in enumerate(value)]
    cells = pl.DataFrame({
        "model": ["m"] * 16, "country": ["A"] * 16, "method": ["value"] * 8 + ["country"] * 8,
        "question": [f"Q{i}" for i in range(8)] * 2, "mae": value + country,
    })
    refs = pl.DataFrame({"country": ["A"] * 8, "method": ["midpoint"] * 8,
                         "question": [f"Q{i}" for i in range(8)], "mae": midpoint})
    return cells, refs


def test_wilcoxon_table_between_methods_and_against_references() -> None:
    cells, refs = paired_cells()
    table = wilcoxon_table(cells, refs)
    between = table.filter(~pl.col("vs_reference"))
    assert between.height == 1
    row = between.row(0, named=True)
    # pairs are in sorted order: country vs value
    assert (row["method_a"], row["method_b"], row["better"], row["n"]) == ("country", "value", "value", 8)
    v = cells.filter(pl.col("method") == "value")["mae"].to_numpy()
    c = cells.filter(pl.col("method") == "country")["mae"].to_numpy()
    assert row["p_value"] == pytest.approx(stats.wilcoxon(c, v).pvalue)

    vs_ref = table.filter(pl.col("vs_reference")).sort("method_a")
    assert vs_ref.select("method_a", "method_b", "better").rows() == [
        ("country", "midpoint", "country"), ("value", "midpoint", "value"),
    ]
    m = refs["mae"].to_numpy()
    assert vs_ref.row(1, named=True)["p_value"] == pytest.approx(stats.wilcoxon(v, m).pvalue)
    # p_bh: Benjamini-Hochberg over every row of the model (pairs and references)
    np.testing.assert_allclose(table["p_bh"].to_numpy(),
                               multipletests(table["p_value"].to_numpy(), method="fdr_bh")[1], rtol=1e-12)


def test_wilcoxon_table_without_references() -> None:
    cells, _ = paired_cells()
    table = wilcoxon_table(cells)
    assert table.height == 1
    assert table["vs_reference"].to_list() == [False]


def test_method_tests_mann_whitney_with_bh() -> None:
    cells, _ = paired_cells()
    table = method_tests(cells)
    assert table.height == 1
    row = table.row(0, named=True)
    v = cells.filter(pl.col("method") == "value")["mae"].to_numpy()
    c = cells.filter(pl.col("method") == "country")["mae"].to_numpy()
    assert (row["a"], row["b"], row["model"]) == ("country", "value", "m")
    p = stats.mannwhitneyu(c, v, alternative="two-sided").pvalue
    assert row["p_value"] == pytest.approx(p)
    assert row["p_adjusted"] == pytest.approx(p)  # one comparison: BH changes nothing
    assert row["test"].startswith("Mann-Whitney U, unpaired")
