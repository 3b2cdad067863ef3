"""The prediction intervals' cells and tables (valuesim.analysis.interval_cells and
interval_tables), and the evaluate stage's interval outputs end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from valuesim.analysis import conformal
from valuesim.analysis.interval_cells import (
    INTERVAL_CELL_SCHEMA,
    drawn_personas,
    persona_sizes,
    reference_interval_cells,
    run_cells,
)
from valuesim.analysis.interval_tables import (
    FIT_SCHEMA,
    INTERVAL_SCHEMA,
    cell_matrix,
    choose_default,
    clopper_pearson,
    difficulty_check,
    held_out,
    interval_tables,
)
from valuesim.config import Params
from valuesim.personas.build import persona_id


@pytest.mark.parametrize(("k", "n"), [(29, 32), (7, 320), (0, 10), (10, 10), (1, 1)])
def test_clopper_pearson_is_scipys_exact_interval(k: int, n: int) -> None:
    want = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((want.low, want.high), abs=1e-12)


# -- synthetic cells -----------------------------------------------------------------

COUNTRIES = ("AAA", "BBB", "CCC")
# 12 questions in three batteries, two scale lengths
QUESTIONS = {f"Q{q}": (1, 4) if q < 8 else (1, 10) for q in range(1, 13)}
BATTERY = {q: "one" if i < 4 else "two" if i < 8 else "three" for i, q in enumerate(QUESTIONS)}


def _cells(seed: int = 0, planted: str | None = None, persona_sd: np.ndarray | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for ci, c in enumerate(COUNTRIES):
        for qi, (q, (lo, hi)) in enumerate(QUESTIONS.items()):
            human = rng.uniform(lo + 0.5, hi - 0.5)
            s = rng.uniform(0.0, 0.15)
            sim = float(np.clip(human - s * (hi - lo) * rng.choice([-1, 1]), lo, hi))
            if q == planted:  # the model answers the top of the scale, the humans the bottom
                human, sim = lo + 0.05 * (hi - lo), float(hi)
            d = None if persona_sd is None else float(persona_sd[ci, qi])
            rows.append({"model": "m", "method": "value", "kind": "raw", "n_personas": 5, "country": c,
                         "question": q, "battery": BATTERY[q], "lo": lo, "hi": hi, "n_points": hi - lo + 1,
                         "sim_mean": sim, "human_mean": human, "difficulty": d,
                         "boot_low": sim - 0.01, "boot_high": sim + 0.01})
    return pl.DataFrame(rows, schema=INTERVAL_CELL_SCHEMA)


def test_a_planted_question_is_missed_by_its_own_held_out_interval() -> None:
    m = cell_matrix(_cells(planted="Q3"))
    q = m.questions.index("Q3")
    assert np.all(m.scores[:, q] > 0.5)
    # at 0.9 a fit on all 12 questions takes the 12th smallest, the planted score itself:
    # with leakage the planted cells would be covered. Held out, 11 remain (rank 11: the
    # largest of the others); without its battery, 8 remain (rank 8 at 0.8)
    assert np.all(conformal.fit_thresholds(m.scores, "per_country", 0.9) == m.scores[:, q])
    for validation, level in (("loqo", 0.9), ("lobo", 0.8)):
        hit, _ = held_out(m, "per_country", level, validation)
        assert not hit[:, q].any()
    # the other questions stay covered as often as without the plant: it only raises
    # their thresholds, never lowers them
    hit, _ = held_out(m, "per_country", 0.8, "loqo")
    base, _ = held_out(cell_matrix(_cells()), "per_country", 0.8, "loqo")
    others = np.arange(len(m.questions)) != q
    assert np.all(hit[:, others] >= base[:, others])


def test_validation_rows_count_cells_per_group() -> None:
    cells = _cells(1)
    tables = interval_tables(cells)
    iv = tables.intervals
    assert dict(iv.schema) == INTERVAL_SCHEMA
    assert dict(tables.fits.schema) == FIT_SCHEMA
    rows = iv.filter((pl.col("variant") == "per_country") & (pl.col("level") == 0.8)
                     & (pl.col("validation") == "loqo"))
    got = {(t, g): n for t, g, n in rows.select("group_type", "group", "n_cells").iter_rows()}
    assert got == {("overall", "all"): 36, **{("country", c): 12 for c in COUNTRIES},
                   ("battery", "one"): 12, ("battery", "two"): 12, ("battery", "three"): 12,
                   ("scale_length", "4"): 21, ("scale_length", "10"): 15}
    # an independent computation of the overall row
    m = cell_matrix(cells)
    hit, width = held_out(m, "per_country", 0.8, "loqo")
    overall = rows.filter(pl.col("group_type") == "overall").row(0, named=True)
    assert overall["n_covered"] == int(hit.sum())
    lo, hi = stats.binomtest(int(hit.sum()), 36).proportion_ci(0.95, method="exact")
    assert (overall["coverage_lo"], overall["coverage_hi"]) == pytest.approx((lo, hi))
    assert overall["width_points"] == pytest.approx(width.mean())
    assert overall["width_norm"] == pytest.approx((width / (m.hi - m.lo)).mean())
    assert overall["simultaneous"] == pytest.approx(np.all(hit, axis=0).mean())
    assert rows.filter(pl.col("group_type") != "overall")["simultaneous"].is_null().all()
    # no difficulty: no normalized variant; the persona bootstrap only at 0.95, unfitted
    assert set(iv["variant"]) == {"per_country", "pooled", "joint", "persona_bootstrap"}
    boot = iv.filter(pl.col("variant") == "persona_bootstrap")
    assert set(boot["level"]) == {0.95}
    assert set(boot["validation"]) == {"none"}
    assert not boot["default"].any()


def test_fits_hold_every_country_and_the_shared_thresholds_once() -> None:
    tables = interval_tables(_cells(2))
    fits = tables.fits.filter(pl.col("level") == 0.8)
    assert sorted(fits.filter(pl.col("variant") == "per_country")["country"]) == list(COUNTRIES)
    assert fits.filter(pl.col("variant").is_in(["pooled", "joint"]))["country"].to_list() == ["*", "*"]
    assert set(fits["n_questions"]) == {12}
    m = cell_matrix(_cells(2))
    want = conformal.fit_thresholds(m.scores, "per_country", 0.8)
    got = dict(fits.filter(pl.col("variant") == "per_country").select("country", "threshold").iter_rows())
    assert [got[c] for c in m.countries] == pytest.approx(want.tolist())
    # the fits carry the overall validated coverage of their (variant, level)
    overall = tables.intervals.filter((pl.col("group_type") == "overall") & (pl.col("variant") == "pooled")
                                      & (pl.col("level") == 0.8))
    row = fits.filter(pl.col("variant") == "pooled").row(0, named=True)
    assert row["loqo_coverage"] == overall.filter(pl.col("validation") == "loqo")["coverage"][0]
    assert row["lobo_coverage"] == overall.filter(pl.col("validation") == "lobo")["coverage"][0]


def _summary(widths: dict[str, float], hi: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame([{"variant": v, "validation": "loqo", "group_type": "overall", "level": 0.9,
                          "coverage": 0.9, "coverage_hi": hi[v], "width_norm": w} for v, w in widths.items()])


def test_the_default_is_the_narrowest_valid_eligible_variant() -> None:
    summary = _summary({"per_country": 0.7, "normalized": 0.6}, {"per_country": 0.95, "normalized": 0.93})
    assert choose_default(summary, {"predictive": True})["variant"] == "normalized"
    chosen = choose_default(summary, {"predictive": False})
    assert chosen["variant"] == "per_country"
    assert "difficulty does not predict" in chosen["reason"]
    # normalized narrower but its coverage is not valid (upper bound below 0.9)
    invalid = _summary({"per_country": 0.7, "normalized": 0.6}, {"per_country": 0.95, "normalized": 0.85})
    assert choose_default(invalid, {"predictive": True})["variant"] == "per_country"
    none = _summary({"per_country": 0.7}, {"per_country": 0.8})
    fallback = choose_default(none, {"predictive": False})
    assert fallback["variant"] == "per_country"
    assert "fallback" in fallback["reason"]


def test_the_difficulty_check_needs_a_positive_significant_correlation() -> None:
    rng = np.random.default_rng(3)
    spread = rng.uniform(0.02, 0.3, size=(3, 12))
    predictive = cell_matrix(_cells(3, persona_sd=spread))
    # rebuild the cells so that the residual grows with the difficulty
    cells = _cells(3, persona_sd=spread).with_columns(
        (pl.col("human_mean") + pl.col("difficulty") * (pl.col("hi") - pl.col("lo"))).clip(
            pl.col("lo"), pl.col("hi")).alias("sim_mean"))
    assert difficulty_check(cell_matrix(cells))["predictive"]
    assert not difficulty_check(predictive)["predictive"]  # residuals drawn independently of d
    flat = cell_matrix(_cells(3, persona_sd=np.full((3, 12), 0.01)))
    assert difficulty_check(flat) == {"rho": None, "p": None, "n_cells": 36, "predictive": False}
    assert not difficulty_check(cell_matrix(_cells(3)))["predictive"]


# -- cells from persona-level answers ------------------------------------------------


def _respondents(n: int = 30) -> pl.DataFrame:
    rng = np.random.default_rng(9)
    return pl.DataFrame({
        "country": [c for c in COUNTRIES[:2] for _ in range(n)],
        "respondent_id": [f"{c}-{i:03d}" for c in COUNTRIES[:2] for i in range(n)],
        "weight": rng.uniform(0.5, 2.0, size=2 * n),
    })


def _answers(respondents: pl.DataFrame, n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Answers of the value personas of the n-draw with persona seed ``seed``, and human data."""
    rng = np.random.default_rng(11)
    drawn = drawn_personas(respondents, COUNTRIES[:2], n, seed, "value")
    rows, human = [], []
    for pid in drawn:
        country = pid.split("-")[0]
        for q in ("Q1", "Q2"):
            rows.append({"persona_id": pid, "country": country, "question": q, "codes": [1, 2, 3, 4],
                         "probs": rng.dirichlet(np.ones(4)).tolist(), "flag": ""})
    for c in COUNTRIES[:2]:
        for q in ("Q1", "Q2"):
            human += [{"country": c, "question": q, "code": k, "share": s}
                      for k, s in zip([1, 2, 3, 4], rng.dirichlet(np.ones(4)), strict=True)]
    schema = {"persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
              "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "flag": pl.Utf8}
    return pl.DataFrame(rows, schema=schema), pl.DataFrame(human)


def test_smaller_n_are_the_draws_ask_would_make_when_the_run_holds_them() -> None:
    respondents = _respondents()
    answers, _ = _answers(respondents, 8)
    present = set(answers["persona_id"].to_list())
    sizes = persona_sizes(present, respondents, COUNTRIES[:2], "value", 8, [1, 2, 3, 5, 8, 20], 0)
    want = {n for n in (1, 2, 3, 5) if set(drawn_personas(respondents, COUNTRIES[:2], n, 0, "value")) <= present}
    assert set(sizes) == want | {8}
    assert sizes[8] is not None
    # a run whose personas are another seed's draw: only N, in file order
    other = persona_sizes(present, respondents, COUNTRIES[:2], "value", 8, [1, 2, 3], 12345)
    assert 8 in other
    assert other[8] is None
    # the ids are the personas stage's
    rid = respondents.filter(pl.col("country") == "AAA")["respondent_id"][0]
    assert persona_id(rid, "value", True) == f"{rid}:value"


def test_run_cells_reproduce_ask_for_each_n() -> None:
    from valuesim.asking import cell_stats

    respondents = _respondents()
    answers, human = _answers(respondents, 6)
    params = Params.model_validate({"analysis": {"bootstrap": 300, "seed": 4}})
    cells = run_cells("m", "value", answers, human, ["Q1", "Q2"], respondents, persona_method=True,
                      run_n=6, sizes=[1, 2, 3, 6], persona_seed=0, bootstrap=300, seed=4,
                      batteries={"Q2": "migration"})
    assert dict(cells.schema) == INTERVAL_CELL_SCHEMA
    raw = cells.filter(pl.col("kind") == "raw").drop("kind")
    # calibration preserves every persona's mean: the two kinds are the same cells
    assert raw.equals(cells.filter(pl.col("kind") == "calibrated").drop("kind"))
    assert dict(raw.select("question", "battery").unique().iter_rows()) == {"Q1": "social_values",
                                                                            "Q2": "migration"}
    for n in sorted(set(raw["n_personas"])):
        drawn = drawn_personas(respondents, COUNTRIES[:2], n, 0, "value")
        for row in raw.filter(pl.col("n_personas") == n).iter_rows(named=True):
            own = answers.filter((pl.col("country") == row["country"]) & (pl.col("question") == row["question"])
                                 & pl.col("persona_id").is_in(list(drawn)))
            own = own.with_columns(pl.col("persona_id").replace_strict(drawn, return_dtype=pl.Int64)
                                   .alias("draw")).sort("draw")
            probs = np.asarray(own["probs"].to_list())
            want = cell_stats([1, 2, 3, 4], probs, None, params, row["country"], row["question"])
            assert row["sim_mean"] == pytest.approx(want["expected"], abs=1e-12)
            assert (row["boot_low"], row["boot_high"]) == pytest.approx(
                (want["persona_ci_low"], want["persona_ci_high"]), abs=1e-12)
            assert row["difficulty"] == pytest.approx(conformal.difficulty(probs @ [1, 2, 3, 4], 3.0))
            hum = human.filter((pl.col("country") == row["country"]) & (pl.col("question") == row["question"]))
            assert row["human_mean"] == pytest.approx(float((hum["code"] * hum["share"]).sum()))


def test_reference_cells_take_the_references_means() -> None:
    pred = pl.DataFrame({"country": ["AAA", "AAA"], "question": ["Q1", "Q1"], "code": [2, 3], "share": [0.5, 0.5]})
    human = pl.DataFrame({"country": ["AAA", "AAA", "BBB"], "question": ["Q1", "Q1", "Q1"], "code": [1, 4, 1],
                          "share": [0.25, 0.75, 1.0]})
    keys = pl.DataFrame({"country": ["AAA"], "question": ["Q1"]})
    cells = reference_interval_cells({"midpoint": pred, "other_countries": pred.clear()}, human, keys,
                                     {"Q1": [1, 2, 3, 4]})
    assert cells.select("model", "method", "kind", "n_personas", "lo", "hi", "n_points", "sim_mean",
                        "human_mean").rows() == [("reference", "midpoint", "raw", 0, 1, 4, 4, 2.5, 3.25)]


# -- the evaluate stage ----------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.study_data import build_study
    from valuesim.stages import calibrate, evaluate

    root = tmp_path_factory.mktemp("intervals")
    build_study(root, true_t=2.0)
    params = Params.model_validate({
        "simulate": {"methods": ["generic", "value"], "models": ["tiny"]},
        "models": {"tiny": {"provider": "transformers", "model": "embedded"}},
        "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 8},
        "analysis": {"sample_sizes": [1, 2], "subsample_repeats": 2, "bootstrap": 100},
    })
    old = Path.cwd()
    os.chdir(root)
    try:
        calibrate.run(params)
        evaluate.run(params)
    finally:
        os.chdir(old)
    return root


def test_evaluate_writes_the_interval_tables(study: Path) -> None:
    iv = pl.read_parquet(study / "data/eval/intervals.parquet")
    fits = pl.read_parquet(study / "data/eval/interval_fits.parquet")
    assert dict(iv.schema) == INTERVAL_SCHEMA
    assert dict(fits.schema) == FIT_SCHEMA
    runs = set(iv.select("model", "method", "kind", "n_personas").unique().iter_rows())
    # the fixture's persona ids are not the seed's draws: value at its N = 3 only
    assert runs == {("tiny", "generic", "raw", 1), ("tiny", "generic", "calibrated", 1),
                    ("tiny", "value", "raw", 3), ("tiny", "value", "calibrated", 3),
                    ("reference", "midpoint", "raw", 0), ("reference", "other_countries", "raw", 0)}
    # 4 questions: LOQO fits 3, too few for a finite per-question threshold at 0.8 and
    # above (pooled, with 9 cells, has one)
    loqo = iv.filter((pl.col("validation") == "loqo") & (pl.col("group_type") == "overall")
                     & pl.col("variant").is_in(["per_country", "normalized", "joint"]))
    assert set(loqo["coverage"]) == {1.0}
    assert set(loqo["width_norm"]) == {1.0}
    # fitted on all 4, finite from 0.8 only (rank ceil(5 * 0.8) = 4)
    high = fits.filter((pl.col("variant") != "pooled") & (pl.col("level") > 0.8))
    assert set(high["threshold"]) == {float("inf")}
    assert set(iv.filter(pl.col("variant") == "normalized")["method"]) == {"value"}
    # one default variant per (model, method), the same at every level, kind and N
    defaults = iv.filter(pl.col("default")).select("model", "method", "variant").unique()
    assert defaults.height == 4
    choice = json.loads((study / "data/eval/interval_choice.json").read_text())
    assert {f"{a}/{b}": v for a, b, v in defaults.iter_rows()} == {k: c["variant"] for k, c in choice.items()}


def test_evaluate_writes_the_interval_metrics(study: Path) -> None:
    m = json.loads((study / "reports/metrics.json").read_text())["interval"]
    assert set(m) == {"tiny/generic", "tiny/value", "reference/midpoint", "reference/other_countries"}
    assert m["tiny/value"]["n"] == 3
    assert set(m["tiny/value"]) == {"variant", "n", "coverage_80", "width_80", "coverage_90", "width_90",
                                    "coverage_95", "width_95", "lobo_coverage_90", "persona_bootstrap_coverage_95"}
    assert "persona_bootstrap_coverage_95" not in m["reference/midpoint"]
    assert m["tiny/value"]["coverage_90"] == 1.0
    # generic answers once per country: its persona interval is a point
    iv = pl.read_parquet(study / "data/eval/intervals.parquet")
    point = iv.filter((pl.col("method") == "generic") & (pl.col("variant") == "persona_bootstrap"))
    assert set(point["width_points"]) == {0.0}
