"""Fitting the calibration to one (model, method): LOQO recovery and the output rows.

Persona distributions are the human ones sharpened by a known power (mean kept), so
tilting every persona at that temperature gives the human distributions back: the
fit must find it, and the calibrated rows must then equal the human ones.

The second half checks the same functions against a reference tilt written here, one
SciPy root find (brentq on the mean constraint) per persona, independent of the
vectorized solver in valuesim.calibration.tilt, on personas that differ within a
country; Wasserstein distances there come from scipy.stats.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import optimize, stats

from tests.fixtures.study_data import sharpen
from valuesim.analysis.blocks import QuestionBlock
from valuesim.calibration.fit import (
    POPULATION_SCHEMA,
    calibrated_population,
    fit_loqo,
    fit_summary,
    population_rows,
    wasserstein_by_question,
)
from valuesim.calibration.tilt import LoqoFit, temperature_grid, temperature_scale
from valuesim.errors import DataError

TRUE_T = 2.0
COUNTRIES = ("AAA", "BBB")
PERSONAS = 3  # per country, all sharpened alike


def _block(question: str, codes: list[int], seed: int) -> QuestionBlock:
    rng = np.random.default_rng(seed)
    human = rng.dirichlet(np.full(len(codes), 2.0), size=len(COUNTRIES))
    probs = np.stack([sharpen(h, codes, TRUE_T) for h in human for _ in range(PERSONAS)])
    return QuestionBlock(
        question=question,
        codes=tuple(codes),
        countries=COUNTRIES,
        persona_ids=tuple(f"{c}-{i}" for c in COUNTRIES for i in range(PERSONAS)),
        probs=probs,
        country_index=np.repeat(np.arange(len(COUNTRIES)), PERSONAS),
        human=human,
    )


@pytest.fixture(scope="module")
def blocks() -> list[QuestionBlock]:
    return [_block("Q1", list(range(1, 11)), 1), _block("Q2", [1, 2, 3, 4], 2), _block("Q3", [0, 1, 2], 3)]


def test_loqo_fit_recovers_the_sharpening_temperature(blocks: list[QuestionBlock]) -> None:
    fit = fit_loqo(blocks, temperature_grid(0.5, 6.0, 12))
    assert fit.questions == ("Q1", "Q2", "Q3")
    assert fit.temperatures == pytest.approx([TRUE_T] * 3, rel=1e-3)
    assert fit.overall == pytest.approx(TRUE_T, rel=1e-3)


def test_calibrated_population_gives_back_the_humans_and_keeps_means(
    blocks: list[QuestionBlock],
) -> None:
    for b in blocks:
        cal = calibrated_population(b, TRUE_T)
        raw = b.aggregate(b.probs)
        np.testing.assert_allclose(cal, b.human, atol=1e-9)
        np.testing.assert_allclose(cal @ b.values, raw @ b.values, atol=1e-9)
        plain = calibrated_population(b, TRUE_T, mean_preserving=False)
        np.testing.assert_allclose(plain, b.aggregate(temperature_scale(b.probs, TRUE_T)))


def test_population_rows_have_the_contract_columns_and_fitted_values(
    blocks: list[QuestionBlock],
) -> None:
    grid = temperature_grid(0.5, 6.0, 12)
    fit, plain = fit_loqo(blocks, grid), fit_loqo(blocks, grid, mean_preserving=False)
    rows = population_rows("tiny", "value", blocks, fit, plain)
    assert rows.columns == list(POPULATION_SCHEMA)
    assert rows.height == len(blocks) * len(COUNTRIES)
    first = rows.row(0, named=True)
    assert (first["model"], first["method"], first["country"], first["question"]) == (
        "tiny", "value", "AAA", "Q1",
    )
    assert first["temperature"] == fit.temperatures[0]
    assert first["temperature_plain"] == plain.temperatures[0]
    assert first["probs_cal"] == pytest.approx(blocks[0].human[0].tolist(), abs=1e-6)
    assert first["probs_raw"] == pytest.approx(blocks[0].aggregate(blocks[0].probs)[0].tolist())


def test_fit_summary_rounds_to_six_places(blocks: list[QuestionBlock]) -> None:
    fit = fit_loqo(blocks, temperature_grid(0.5, 6.0, 12))
    summary = fit_summary(fit)
    assert set(summary) == {"overall", "loqo", "loqo_median", "identified", "edge", "monotone", "loqo_at_limit",
                            "curve"}
    assert summary["identified"] is True
    assert summary["edge"] is None
    assert summary["loqo_at_limit"] == 0
    # the curve: each finite grid T and the limit, the all-questions mean distance
    assert summary["curve"]["t"] == [round(float(t), 6) for t in temperature_grid(0.5, 6.0, 12)]
    assert summary["curve"]["objective"] == [round(float(v), 8) for v in fit.grid_objective[:-1].mean(axis=1)]
    assert summary["curve"]["objective_limit"] == round(float(fit.grid_objective[-1].mean()), 8)
    assert summary["loqo"] == {
        q: round(float(t), 6) for q, t in zip(fit.questions, fit.temperatures, strict=True)
    }
    assert summary["overall"] == round(fit.overall, 6)
    assert summary["loqo_median"] == round(float(np.median(fit.temperatures)), 6)


# --- against a reference tilt, with personas that differ within a country -------------


def reference_tilt(p: np.ndarray, values: np.ndarray, t: float) -> np.ndarray:
    """q ∝ p^(1/T) exp(β r) with β such that q has the mean of p (one brentq per row)."""
    out = []
    for row in np.atleast_2d(p):
        target = float(row @ values)
        base = row ** (1.0 / t)

        def tilted(beta: float, base: np.ndarray = base) -> np.ndarray:
            w = base * np.exp(beta * (values - values.mean()))
            return w / w.sum()

        beta = optimize.brentq(lambda b, tilted=tilted, target=target: tilted(b) @ values - target,
                               -50.0, 50.0, xtol=1e-14)
        out.append(tilted(beta))
    return np.asarray(out)


def reference_plain(p: np.ndarray, t: float) -> np.ndarray:
    q = p ** (1.0 / t)
    return q / q.sum(axis=-1, keepdims=True)


def make_block(question: str, probs: np.ndarray, country_index: list[int], human: np.ndarray,
               codes: tuple[int, ...]) -> QuestionBlock:
    n_countries = human.shape[0]
    return QuestionBlock(
        question=question, codes=codes, countries=tuple("ABCDEFG"[:n_countries]),
        persona_ids=tuple(f"{question}-{i}" for i in range(len(probs))), probs=np.asarray(probs),
        country_index=np.asarray(country_index, dtype=np.int64), human=np.asarray(human),
    )


@pytest.fixture
def random_block() -> QuestionBlock:
    rng = np.random.default_rng(2)
    return make_block("Q", rng.dirichlet(np.ones(5), size=6), [0, 1, 0, 1, 1, 0],
                      rng.dirichlet(np.ones(5), size=2), (1, 2, 3, 4, 5))


@pytest.mark.parametrize("t", [0.5, 1.0, 2.5])
def test_calibrated_population_tilts_each_persona_then_averages(random_block: QuestionBlock, t: float) -> None:
    b = random_block
    q = reference_tilt(b.probs, b.values, t)
    expected = np.stack([q[[0, 2, 5]].mean(axis=0), q[[1, 3, 4]].mean(axis=0)])
    np.testing.assert_allclose(calibrated_population(b, t), expected, atol=1e-9)
    # the tilt keeps every persona's mean, so each country's mean too
    np.testing.assert_allclose(calibrated_population(b, t) @ b.values,
                               b.aggregate(b.probs) @ b.values, atol=1e-9)


def test_calibrated_population_plain_scaling_against_the_reference(random_block: QuestionBlock) -> None:
    b = random_block
    q = reference_plain(b.probs, 2.0)
    expected = np.stack([q[[0, 2, 5]].mean(axis=0), q[[1, 3, 4]].mean(axis=0)])
    np.testing.assert_allclose(calibrated_population(b, 2.0, mean_preserving=False), expected, atol=1e-12)


def test_wasserstein_by_question_is_the_country_mean_of_w1(random_block: QuestionBlock) -> None:
    b = random_block
    other = make_block("R", b.probs[:, ::-1], list(b.country_index), b.human, b.codes)
    got = wasserstein_by_question([b, other], 1.5)
    assert got.shape == (2,)
    for blk, value in zip([b, other], got, strict=True):
        pop = reference_tilt(blk.probs, blk.values, 1.5)
        pop = np.stack([pop[blk.country_index == i].mean(axis=0) for i in range(2)])
        w = [stats.wasserstein_distance(blk.values, blk.values, pop[i], blk.human[i]) / 4 for i in range(2)]
        assert value == pytest.approx(np.mean(w), abs=1e-9)


def sharpened_study(t0: float, *, mean_preserving: bool) -> list[QuestionBlock]:
    """Three questions whose personas are their own truth sharpened at ``t0``; the
    human distribution is the mean of the truths, so calibrating at 1/t0 is exact."""
    rng = np.random.default_rng(7)
    blocks = []
    for q, k in (("Q1", 4), ("Q2", 5), ("Q3", 7)):
        values = np.arange(1, k + 1, dtype=float)
        truth = rng.dirichlet(np.full(k, 3.0), size=6)
        index = [0, 0, 0, 1, 1, 1]
        human = np.stack([truth[:3].mean(axis=0), truth[3:].mean(axis=0)])
        personas = reference_tilt(truth, values, t0) if mean_preserving else reference_plain(truth, t0)
        blocks.append(make_block(q, personas, index, human, tuple(range(1, k + 1))))
    return blocks


@pytest.mark.parametrize("mean_preserving", [True, False])
def test_fit_loqo_recovers_a_planted_temperature_with_distinct_personas(mean_preserving: bool) -> None:
    blocks = sharpened_study(0.5, mean_preserving=mean_preserving)
    grid = temperature_grid(0.25, 8.0, 11)  # log-spaced: 2.0 is a grid point
    fit = fit_loqo(blocks, grid, mean_preserving=mean_preserving)
    assert fit.questions == ("Q1", "Q2", "Q3")
    np.testing.assert_allclose(fit.temperatures, 2.0, rtol=1e-3)
    assert fit.overall == pytest.approx(2.0, rel=1e-3)
    np.testing.assert_allclose(fit.objective, 0.0, atol=1e-6)
    assert fit.grid_objective.shape == (12, 3)  # the grid and the T -> infinity limit
    assert np.isinf(fit.grid[-1])


def test_fit_loqo_needs_two_questions() -> None:
    blocks = sharpened_study(0.5, mean_preserving=True)[:1]
    with pytest.raises(DataError, match="at least two questions"):
        fit_loqo(blocks, temperature_grid(0.5, 2.0, 5))


def test_population_rows_apply_each_questions_own_temperature() -> None:
    blocks = sharpened_study(0.5, mean_preserving=True)[:2]
    fit = LoqoFit(("Q1", "Q2"), np.array([2.0, 1.0]), np.zeros(2), np.ones(3), np.zeros((3, 2)), 1.5)
    flat = LoqoFit(("Q1", "Q2"), np.array([0.8, 3.0]), np.zeros(2), np.ones(3), np.zeros((3, 2)), 1.2)
    rows = population_rows("m", "value", blocks, fit, flat)
    assert rows.schema == pl.Schema(POPULATION_SCHEMA)
    assert rows.height == 4
    assert rows.select("country", "question").rows() == [("A", "Q1"), ("B", "Q1"), ("A", "Q2"), ("B", "Q2")]
    q1, q2 = blocks
    for r in rows.iter_rows(named=True):
        b = q1 if r["question"] == "Q1" else q2
        i = b.countries.index(r["country"])
        members = b.country_index == i
        assert r["model"] == "m"
        assert r["method"] == "value"
        assert r["codes"] == list(b.codes)
        np.testing.assert_allclose(r["probs_raw"], b.probs[members].mean(axis=0))
        t, tp = (2.0, 0.8) if r["question"] == "Q1" else (1.0, 3.0)
        assert (r["temperature"], r["temperature_plain"]) == (t, tp)
        np.testing.assert_allclose(
            r["probs_cal"], reference_tilt(b.probs[members], b.values, t).mean(axis=0), atol=1e-9
        )
        np.testing.assert_allclose(
            r["probs_plain"], reference_plain(b.probs[members], tp).mean(axis=0), atol=1e-12
        )
    # Q1 was sharpened at 0.5 and is calibrated at 2: the human distribution comes back
    np.testing.assert_allclose(np.asarray(rows["probs_cal"][0]), q1.human[0], atol=1e-8)


def test_fit_summary_of_known_temperatures() -> None:
    fit = LoqoFit(("Q1", "Q2", "Q3"), np.array([1.23456789, 2.0, 0.5]), np.zeros(3), np.ones(3),
                  np.zeros((3, 3)), 1.0000004)
    summary = fit_summary(fit)
    assert {k: summary[k] for k in ("overall", "loqo", "loqo_median")} == {
        "overall": 1.0,
        "loqo": {"Q1": 1.234568, "Q2": 2.0, "Q3": 0.5},
        "loqo_median": 1.234568,
    }


def test_fit_summary_keeps_an_infinite_temperature_and_says_it_is_not_identified() -> None:
    grid = np.array([0.5, 1.0, 2.0, np.inf])
    falling = np.array([[0.4, 0.5], [0.3, 0.4], [0.25, 0.35], [0.2, 0.3]])  # (grid, question)
    fit = LoqoFit(("Q1", "Q2"), np.array([np.inf, 2.0]), np.zeros(2), grid, falling, np.inf)
    summary = fit_summary(fit)
    assert summary["overall"] == np.inf
    assert summary["loqo"] == {"Q1": np.inf, "Q2": 2.0}
    assert (summary["identified"], summary["edge"], summary["monotone"]) == (False, "infinity", True)
    assert summary["loqo_at_limit"] == 1
    assert summary["curve"] == {"t": [0.5, 1.0, 2.0], "objective": [0.45, 0.35, 0.3], "objective_limit": 0.25}
