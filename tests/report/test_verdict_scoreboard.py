"""The report's opening: the scoreboard (one frame the page and the API share), the
verdict, the checks table and figure numbering, on small frames with known answers."""

from __future__ import annotations

import polars as pl
import pytest

from valuesim.report.html_page import Figure, Opening, number_figures, page
from valuesim.report.scoreboard import scoreboard, scoreboard_display
from valuesim.report.verdict import checks_table, model_verdict, verdict_html


def _summary() -> pl.DataFrame:
    base = {"model": "m", "mae_lo": 0.0, "mae_hi": 0.0, "wasserstein": 0.3, "wasserstein_cal": 0.2,
            "nvar": 0.5, "nvar_cal": 0.3, "nvar_human": 0.3, "coverage_mean": 0.9, "coverage_p5": 0.8,
            "answer_rule": "answer_start", "mae_plain": 0.2, "wasserstein_plain": 0.2, "n_countries": 4,
            "n_personas": None, "persona_floor_mae": None, "answer_floor_mae": None}
    rows = [
        {**base, "method": "country", "mae": 0.15, "mae_lo": 0.12, "mae_hi": 0.18},
        {**base, "method": "value", "mae": 0.09, "mae_lo": 0.07, "mae_hi": 0.11, "n_personas": 6,
         "persona_floor_mae": 0.03, "answer_floor_mae": 0.08, "coverage_mean": 0.3},
    ]
    return pl.DataFrame(rows)


def _references() -> pl.DataFrame:
    return pl.DataFrame([
        {"model": "reference", "method": "midpoint", "mae": 0.2, "mae_lo": 0.18, "mae_hi": 0.22,
         "wasserstein": 0.3, "wasserstein_cal": 0.3, "nvar": 0.1, "nvar_cal": 0.1, "nvar_human": 0.3, "n_countries": 4},
        {"model": "reference", "method": "other_countries", "mae": 0.12, "mae_lo": 0.1, "mae_hi": 0.14,
         "wasserstein": 0.1, "wasserstein_cal": 0.1, "nvar": 0.3, "nvar_cal": 0.3, "nvar_human": 0.3, "n_countries": 4},
    ])


def _paired() -> pl.DataFrame:
    def t(a: str, b: str, diff: float, p_bh: float, ref: bool) -> dict:
        return {"model": "m", "a": a, "b": b, "vs_reference": ref, "diff": diff, "ci_lo": diff - 0.01,
                "ci_hi": diff + 0.01, "p": p_bh, "p_bh": p_bh, "n_questions": 10, "n_cells": 40}
    return pl.DataFrame([
        t("country", "value", 0.06, 0.01, False),
        t("value", "other_countries", -0.03, 0.02, True), t("value", "midpoint", -0.11, 0.001, True),
        t("country", "other_countries", 0.03, 0.30, True), t("country", "midpoint", -0.05, 0.04, True),
    ])


def test_scoreboard_sorts_methods_and_tests_against_the_best_reference() -> None:
    board = scoreboard(_summary(), _references(), _paired())
    methods = board.filter(pl.col("kind") == "method")
    assert methods["method"].to_list() == ["value", "country"]
    assert methods["rank"].to_list() == [1, 2]
    assert set(methods["best_reference"]) == {"other_countries"}
    assert methods["vs_best_reference_verdict"].to_list() == ["better", "no difference"]
    assert board.filter(pl.col("kind") == "reference")["mae"].to_list() == [0.12, 0.2]
    floors = board.filter(pl.col("kind") == "floor")
    assert floors["mae"].to_list() == [0.03, 0.08]
    head, detail = scoreboard_display(board)
    assert head.height == board.height
    assert "vs best reference (other countries' answers)" in head.columns
    assert head["method, reference or floor"][0] == "1. value"
    assert detail.height == 2


def test_verdict_names_the_best_method_and_the_references_it_beats() -> None:
    board = scoreboard(_summary(), _references(), _paired())
    temps = {"m/value": {"edge": "infinity"}, "m/country": {"edge": None}}
    lines = model_verdict("m", "M", board, _paired(), temps)
    assert lines[0].startswith("Best method: value")
    assert any(line.startswith("Beats other countries' answers") and "value" in line for line in lines)
    assert any(line.startswith("Beats scale midpoint") and "value, country" in line for line in lines)
    assert any("3.0 times its persona-information floor" in line for line in lines)
    assert any(line.startswith("Low coverage") and "(value)" in line for line in lines)
    assert any("not identified for 1 of 2" in line for line in lines)
    page_html = verdict_html(board, _paired(), temps, {"m": "M"}, synthetic=True)
    assert "Synthetic data" in page_html


def test_checks_table_has_one_row_per_method() -> None:
    board = scoreboard(_summary(), _references(), _paired())
    checks = checks_table(board, _paired(), {"m/country": 0.01, "m/value": 0.05}, 0.1, {})
    assert checks["method"].to_list() == ["value", "country"]
    assert checks["vs other countries' answers"][0].startswith("better")
    assert checks["coverage"][0] == "0.30 (low)"
    assert checks["tells countries apart"].to_list() == ["yes: spread 50% of the humans'", "barely: spread 10% of the humans'"]


@pytest.mark.parametrize(("caption", "expected"), [
    ("Figure 11. MAE", "<b>Figure 1.</b> <span class='tag'>(paper Figure 11)</span> MAE"),
    ("Figures 4/10. nvar", "<b>Figure 1.</b> <span class='tag'>(paper Figure 4/10)</span> nvar"),
    ("Figure 15 (AI_TRUST). x", "<b>Figure 1 (AI_TRUST).</b> x"),
    ("MAE of each", "<b>Figure 1.</b> MAE of each"),
])
def test_figures_are_numbered_in_page_order(caption: str, expected: str) -> None:
    assert number_figures(f"<figcaption>{caption}</figcaption>") == f"<figcaption>{expected}</figcaption>"


def test_the_page_opens_with_the_verdict_and_numbers_figures(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = []
    for name in ("a", "b"):
        fig.savefig(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    text = page(title="t", findings=["a finding"], provenance="p", params_yaml="x: 1", tables=[],
                figures=[Figure(paths[0], "Figure 11. first"), Figure(paths[1], "Figure 2. second")],
                caveats=["c"], opening=Opening(verdict="<p>V</p>", scoreboard="<p>S</p>", checks="<p>C</p>"))
    assert text.index("id='verdict'") < text.index("id='scoreboard'") < text.index("id='figures'")
    assert "<b>Figure 1.</b> <span class='tag'>(paper Figure 11)</span> first" in text
    assert "<b>Figure 2.</b> <span class='tag'>(paper Figure 2)</span> second" in text
    assert "<a href='#verdict'>Verdict</a>" in text
    assert "a finding" in text  # the findings in words stay, folded away
