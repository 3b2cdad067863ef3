"""The report's section "How far to trust a new answer", rendered from small frames of
the intervals.parquet schema (docs: /work/plan_issue20.md; the evaluate stage writes
the real table) and from new-question outputs with and without prediction intervals."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import beta

from valuesim.analysis.interval_tables import FIT_SCHEMA, INTERVAL_SCHEMA
from valuesim.report.intervals_section import HEADING, MISSING, intervals_section
from valuesim.report.intervals_table import coverage_table, shown_rows, worth_asking

COUNTRIES = ("DEU", "JPN")
BATTERIES = ("ethical_values", "social_values")
QUESTIONS = 20  # held-out questions per run: 40 cells


def _cp(k: int, n: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def _row(model: str, method: str, kind: str, variant: str, level: float, validation: str,
         group_type: str, group: str, n: int, k: int, width: float, default: bool,
         n_personas: int = 6) -> dict[str, object]:
    lo, hi = _cp(k, n)
    return {"model": model, "method": method, "kind": kind, "variant": variant, "level": level,
            "validation": validation, "group_type": group_type, "group": group, "n_cells": n,
            "n_covered": k, "coverage": k / n, "coverage_lo": lo, "coverage_hi": hi,
            "width_norm": width, "width_points": width * 4.5,
            "simultaneous": (k - 3) / n if group_type == "overall" else None,
            "n_personas": n_personas, "default": default}


def intervals(other_width: float = 0.45, midpoint_width: float = 0.87) -> pl.DataFrame:
    """Two runs (generic, value) with three variants (per_country the default), both
    kinds, two N, levels 0.8/0.9/0.95, LOQO and LOBO, overall/country/battery groups,
    the persona bootstrap, and the two references (pooled, their default)."""
    rows = []
    runs = [("tiny", "generic", 0.70), ("tiny", "value", 0.60)]
    groups = [("overall", "all", 2 * QUESTIONS)] + [("country", c, QUESTIONS) for c in COUNTRIES] + [
        ("battery", b, QUESTIONS) for b in BATTERIES]
    for model, method, base in runs:
        for kind, shift in (("raw", 0.01), ("calibrated", 0.0)):
            for n_personas, more in ((6, 0.0), (3, 0.05)):
                for v, variant in enumerate(("per_country", "pooled", "joint")):
                    for level in (0.8, 0.9, 0.95):
                        for validation, drop in (("loqo", 0), ("lobo", 4)):
                            for group_type, group, n in groups:
                                k = min(n, round(n * level) + (1 if method == "value" else 0) - drop
                                        * n // (2 * QUESTIONS))
                                width = base + 0.1 * v + (level - 0.9) + shift + more
                                rows.append(_row(model, method, kind, variant, level, validation,
                                                 group_type, group, n, k, round(width, 4),
                                                 variant == "per_country", n_personas))
            for n_personas in (6, 3):
                covered = 1 if method == "value" else 0
                rows.append(_row(model, method, kind, "persona_bootstrap", 0.95, "none", "overall",
                                 "all", 2 * QUESTIONS, covered, 0.012 if method == "value" else 0.0,
                                 False, n_personas))
    for ref, width in (("midpoint", midpoint_width), ("other_countries", other_width)):
        for level in (0.8, 0.9, 0.95):
            for validation in ("loqo", "lobo"):
                rows.append(_row("reference", ref, "raw", "pooled", level, validation, "overall",
                                 "all", 2 * QUESTIONS, round(2 * QUESTIONS * level), width, True, 0))
    return pl.DataFrame(rows, schema=INTERVAL_SCHEMA, orient="row")


def _render(tmp_path: Path, frame: pl.DataFrame | None, new_dir: Path | None = None) -> str:
    eval_dir = tmp_path / "data" / "eval"  # the project root is tmp_path
    eval_dir.mkdir(parents=True, exist_ok=True)
    if frame is not None:
        frame.write_parquet(eval_dir / "intervals.parquet")
    out = tmp_path / "figures"
    out.mkdir(exist_ok=True)
    heading, body = intervals_section(eval_dir, new_dir or tmp_path / "none", out)
    assert heading == HEADING == "How far to trust a new answer"
    return body


def test_the_section_renders_from_schema_correct_frames(tmp_path: Path) -> None:
    body = _render(tmp_path, intervals())
    # the persona bootstrap's measured coverage, from the table (1 of 40 + 0 of 40)
    assert "covers the human mean in 1 of 80 cells (1.2%) at nominal 95%" in body
    assert "generic 0 of 40, width 0.000; value 1 of 40, width 0.012" in body
    for name in ("intervals_calibration", "intervals_by_group", "intervals_widths"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
    assert body.count("data:image/png;base64,") == 3
    for n in (12, 13, 14):
        assert f"Figure {n}." in body
    assert "exchangeable" in body
    assert "LOBO" in body


def test_the_table_shows_the_default_variant_the_references_and_the_persona_bootstrap() -> None:
    rows = shown_rows(intervals())
    # calibrated kind, the run's own N (6), not raw and not N = 3
    assert set(rows.filter(pl.col("model") != "reference")["kind"]) == {"calibrated"}
    assert set(rows.filter(pl.col("model") != "reference")["n_personas"]) == {6}
    shown = coverage_table(rows)
    assert shown.select("run", "interval", "level").rows() == [
        ("generic", "per_country (default)", 0.8), ("generic", "per_country (default)", 0.9),
        ("generic", "per_country (default)", 0.95), ("generic", "persona bootstrap", 0.95),
        ("value", "per_country (default)", 0.8), ("value", "per_country (default)", 0.9),
        ("value", "per_country (default)", 0.95), ("value", "persona bootstrap", 0.95),
        ("reference: midpoint", "pooled (default)", 0.9),
        ("reference: other countries", "pooled (default)", 0.9),
    ]
    value = shown.filter((pl.col("run") == "value") & (pl.col("level") == 0.9)).row(0, named=True)
    assert value["width / range"] == pytest.approx(0.60)
    assert value["width, 1-4 item"] == pytest.approx(0.60 * 3)
    assert value["width, 1-10 item"] == pytest.approx(0.60 * 9)
    assert value["N"] == 6
    assert value["cells"] == 40
    assert value["LOBO coverage"].startswith("0.825 [")  # 33 of 40
    assert shown.filter(pl.col("interval") == "persona bootstrap")["LOBO coverage"].to_list() == ["", ""]


def test_the_numbers_shown_are_the_tables(tmp_path: Path) -> None:
    frame = intervals()
    body = _render(tmp_path, frame)
    cells = re.findall(r"<td>([^<]*)</td>", body)
    overall = shown_rows(frame).filter((pl.col("group_type") == "overall") & pl.col("default")
                                       & (pl.col("validation") == "loqo"))
    for r in overall.iter_rows(named=True):
        assert f"{r['coverage']:.3f} [{r['coverage_lo']:.3f}, {r['coverage_hi']:.3f}]" in cells
        if r["model"] != "reference":
            assert f"{r['width_norm']:.3f}" in cells
            assert f"{r['width_norm'] * 3:.3f}" in cells
            assert f"{r['width_norm'] * 9:.3f}" in cells
    ref = overall.filter((pl.col("method") == "other_countries") & (pl.col("level") == 0.9)).row(0, named=True)
    assert f"{ref['width_norm']:.3f}" in cells
    # the raw kind and the smaller N are not what the table shows
    raw = frame.filter((pl.col("kind") == "raw") & (pl.col("model") == "tiny") & (pl.col("n_personas") == 6)
                       & (pl.col("variant") == "per_country") & (pl.col("level") == 0.9)
                       & (pl.col("group_type") == "overall") & (pl.col("validation") == "loqo"))
    assert f"{raw['width_norm'][0]:.3f}" not in cells


def test_worth_asking_flips_with_the_reference_width(tmp_path: Path) -> None:
    narrower_ref = worth_asking(shown_rows(intervals(other_width=0.45)))
    wider_ref = worth_asking(shown_rows(intervals(other_width=0.80)))
    assert [s.split(":")[0] for s in narrower_ref] == ["generic", "value"]
    # value's 90% width is 0.60: wider than 0.45, narrower than 0.80
    assert "0.600 of the range wide" in narrower_ref[1]
    assert "not narrower than the other-countries reference's 0.450" in narrower_ref[1]
    assert "narrower than the other-countries reference's 0.800" in wider_ref[1]
    assert "so it is worth asking" in wider_ref[1]
    assert "worth asking" not in narrower_ref[1]
    # generic (0.70) stays wider than 0.45 and narrower than 0.80, as its table says
    assert "not narrower" in narrower_ref[0]
    assert "so it is worth asking" in wider_ref[0]
    # a run no narrower than the midpoint is said to be not worth asking at all
    poor = worth_asking(shown_rows(intervals(midpoint_width=0.65)))
    assert "not worth asking for a country's mean" in poor[0]  # generic 0.70 >= 0.65
    assert "It is narrower than the scale midpoint's 0.650, which needs no data." in poor[1]  # 0.60 < 0.65
    assert "not worth asking" not in poor[1]
    page = _render(tmp_path, intervals(other_width=0.80))
    assert html.escape(wider_ref[1]) in page


def test_coverage_below_nominal_is_said(tmp_path: Path) -> None:
    frame = intervals().with_columns(
        pl.when((pl.col("method") == "value") & (pl.col("variant") == "per_country"))
        .then(pl.col("coverage_hi") - 0.2).otherwise(pl.col("coverage_hi")).alias("coverage_hi"))
    said = worth_asking(shown_rows(frame))
    assert "below the nominal 0.90" in said[1]
    assert "below the nominal" not in said[0]


def test_a_run_without_intervals_says_so_in_one_line(tmp_path: Path) -> None:
    body = _render(tmp_path, None)
    assert body == f"<p class='note'>{html.escape(MISSING)}</p>"
    assert body.count("\n") == 0
    assert not any((tmp_path / "figures").iterdir())


def test_missing_references_and_persona_rows_are_named(tmp_path: Path) -> None:
    frame = intervals().filter((pl.col("model") != "reference") & (pl.col("variant") != "persona_bootstrap"))
    body = _render(tmp_path, frame)
    assert "no persona-bootstrap rows" in body
    assert "no other-countries reference in intervals.parquet to compare with" in body
    assert body.count("data:image/png;base64,") == 3


ITEMS = [
    {"id": "AI_TRUST", "label": "Trust in AI decisions", "text": "Trust AI?",
     "answers": [{"code": 1, "label": "A great deal of confidence"}, {"code": 2, "label": "Quite a lot"},
                 {"code": 3, "label": "Not very much"}, {"code": 4, "label": "None at all"}]},
    {"id": "CLIMATE_TAX", "label": "Higher taxes for climate", "text": "How willing?",
     "answers": [{"code": c, "label": {0: "Not at all willing", 10: "Completely willing"}.get(c, str(c))}
                 for c in range(11)]},
]


def _write_new(directory: Path, with_prediction: bool) -> None:
    (directory).mkdir(parents=True, exist_ok=True)
    (directory / "questions.json").write_text(json.dumps({"questions": ITEMS, "files": ["q.yaml"]}))
    rng = np.random.default_rng(0)
    for method in ("generic", "value"):
        rows = []
        for c in COUNTRIES:
            for item in ITEMS:
                codes = [a["code"] for a in item["answers"]]
                lo, hi = min(codes), max(codes)
                e = float(rng.uniform(lo + 0.5, hi - 0.5))
                row = {"model": "tiny", "method": method, "country": c, "question": item["id"],
                       "expected": e}
                if with_prediction:
                    half = 0.3 * (hi - lo)
                    row |= {"persona_ci_low": e - 0.05, "persona_ci_high": e + 0.05,
                            "pred_low": max(lo, e - half), "pred_high": min(hi, e + half), "pred_level": 0.9,
                            "pred_source": f"tiny/{method} N=6 per_country, 20 questions, LOQO coverage "
                                           "0.90 at 0.9, data/eval/interval_fits.parquet"}
                else:  # the stage's output before issue 20
                    row |= {"ci_low": e - 0.05, "ci_high": e + 0.05, "codes": codes, "n_personas": 6}
                rows.append(row)
        out = directory / "tiny" / method
        out.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).write_parquet(out / "population.parquet")


def test_new_questions_are_drawn_with_their_prediction_intervals(tmp_path: Path) -> None:
    _write_new(tmp_path / "new", with_prediction=True)
    body = _render(tmp_path, intervals(), tmp_path / "new")
    assert "The new questions with their prediction intervals" in body
    assert body.count("data:image/png;base64,") == 3 + len(ITEMS)
    for item in ITEMS:
        assert (tmp_path / "figures" / f"intervals_new_{item['id']}.png").stat().st_size > 0
        assert f"Figure 15 ({item['id']})." in body
    assert "tiny/value N=6 per_country, 20 questions, LOQO coverage 0.90 at 0.9" in body
    assert "no pred_low/pred_high" not in body


def test_new_questions_without_prediction_or_fit_still_draw_and_say_why(tmp_path: Path) -> None:
    _write_new(tmp_path / "new", with_prediction=False)
    body = _render(tmp_path, intervals(), tmp_path / "new")
    assert "there is no interval fit of these runs" in body
    assert body.count("data:image/png;base64,") == 3 + len(ITEMS)
    assert "No prediction interval: no fit of these runs" in body


def test_new_questions_without_prediction_columns_get_the_study_fit(tmp_path: Path) -> None:
    """An output written before the stage added pred_*: the study's fit applied here."""
    _write_new(tmp_path / "new", with_prediction=False)
    fits = pl.DataFrame([
        {"model": "tiny", "method": method, "kind": kind, "variant": "per_country", "level": level,
         "n_personas": 6, "country": c, "threshold": 0.25, "n_questions": QUESTIONS,
         "loqo_coverage": 0.9, "lobo_coverage": 0.8, "default": True}
        for method in ("generic", "value") for kind in ("raw", "calibrated")
        for level in (0.8, 0.9, 0.95) for c in COUNTRIES], schema=FIT_SCHEMA, orient="row")
    (tmp_path / "data/eval").mkdir(parents=True)
    fits.write_parquet(tmp_path / "data/eval/interval_fits.parquet")
    from valuesim.report.intervals_new import load_new_answers

    _, rows = load_new_answers(tmp_path / "new", tmp_path)
    tax = rows.filter(pl.col("question") == "CLIMATE_TAX")
    for r in tax.iter_rows(named=True):  # expected -/+ 0.25 * 10, clipped to [0, 10]
        assert r["pred_low"] == pytest.approx(max(0.0, r["expected"] - 2.5))
        assert r["pred_high"] == pytest.approx(min(10.0, r["expected"] + 2.5))
        assert r["pred_level"] == 0.9
    body = _render(tmp_path, intervals(), tmp_path / "new")
    assert "there is no interval fit" not in body
    assert "tiny/value N=6 per_country, 20 questions, LOQO coverage 0.90, LOBO 0.80 at 0.9" in body


def test_the_section_is_byte_identical_run_to_run(tmp_path: Path) -> None:
    _write_new(tmp_path / "new", with_prediction=True)
    made = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        body = _render(tmp_path / name, intervals(), tmp_path / "new")
        figures = {p.name: p.read_bytes() for p in sorted((tmp_path / name / "figures").iterdir())}
        made.append((body, figures))
    assert made[0] == made[1]
    assert len(made[0][1]) == 3 + len(ITEMS)
