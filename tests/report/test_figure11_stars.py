"""Figure 11's star: a method better than every other method in a country after the
Benjamini-Hochberg correction of the per-country Wilcoxon tests (``p_bh``), never on
the uncorrected p-value."""

from __future__ import annotations

import polars as pl

from valuesim.analysis.scores import wilcoxon_table
from valuesim.report.study_figures import _significantly_best


def _rows(p_value: float, p_bh: float | None) -> pl.DataFrame:
    rows = [{"model": "m", "country": "A", "method_a": "country", "method_b": "value", "n": 8,
             "statistic": 1.0, "p_value": p_value, "better": "value", "vs_reference": False, "p_bh": p_bh},
            # a reference row: never part of "better than every other method"
            {"model": "m", "country": "A", "method_a": "value", "method_b": "midpoint", "n": 8,
             "statistic": 1.0, "p_value": 0.9, "better": "midpoint", "vs_reference": True, "p_bh": 0.9}]
    return pl.DataFrame(rows, schema_overrides={"p_bh": pl.Float64})


def test_the_star_needs_the_corrected_p_value() -> None:
    assert _significantly_best(_rows(0.01, 0.03), "m", "A", "value")
    # significant uncorrected, not after BH: no star
    assert not _significantly_best(_rows(0.01, 0.2), "m", "A", "value")
    # an older table without corrected p-values: no star rather than an uncorrected one
    assert not _significantly_best(_rows(0.01, 0.03).drop("p_bh"), "m", "A", "value")


def test_the_evaluate_table_corrects_over_countries_before_the_star() -> None:
    # value beats country in all 8 questions of A (Wilcoxon p = 0.0078) and in none of the
    # other 19 countries: alone p < 0.05, but one of 20 tests after BH is 20 x 0.0078 > 0.05
    questions = [f"Q{i}" for i in range(8)]
    rows = []
    for k in range(20):
        country = f"C{k:02d}"
        for i, q in enumerate(questions):
            gap = 0.05 + i / 100 if k == 0 else (0.01 if i % 2 else -0.01) * (1 + i)
            rows += [{"model": "m", "country": country, "method": "value", "question": q, "mae": 0.2},
                     {"model": "m", "country": country, "method": "country", "question": q, "mae": 0.2 + gap}]
    table = wilcoxon_table(pl.DataFrame(rows))
    first = table.filter(pl.col("country") == "C00").row(0, named=True)
    assert first["p_value"] < 0.05
    assert first["p_bh"] > 0.05
    assert not _significantly_best(table, "m", "C00", "value")
