"""The calibration transforms: property tests (hypothesis), exact edges, LOQO recovery."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import brentq, minimize

from valuesim.calibration.tilt import (
    LIMIT,
    fit_temperature_loqo,
    identification,
    maximum_entropy_with_mean,
    mean_preserving_tilt,
    temperature_grid,
    temperature_scale,
)
from valuesim.errors import DataError


@st.composite
def distributions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 11))
    n = draw(st.integers(1, 6))
    raw = draw(arrays(np.float64, (n, k), elements=st.floats(0, 1)))
    # zero entries and one-hot rows on purpose
    zero_mask = draw(arrays(np.bool_, (n, k)))
    raw = np.where(zero_mask, 0.0, raw)
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    start = draw(st.integers(-5, 5))
    step = draw(st.sampled_from([1.0, 0.5, 2.0]))
    return raw / raw.sum(axis=1, keepdims=True), start + step * np.arange(k)


temperatures = st.one_of(st.floats(0.05, 20.0), st.sampled_from([0.0, 1.0, np.inf, 1e-3, 1e3]))


@settings(max_examples=300, deadline=None)
@given(distributions(), temperatures)
def test_tilt_preserves_mean_and_is_a_distribution(dist, t):
    p, r = dist
    q = mean_preserving_tilt(p, r, t)
    assert q.shape == p.shape
    assert np.all(q >= 0)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(q @ r, p @ r, rtol=0, atol=1e-9)
    assert np.all(q[p == 0] == 0)  # zeros stay zero
    one_hot = np.count_nonzero(p, axis=1) == 1
    np.testing.assert_array_equal(q[one_hot], p[one_hot])


@settings(max_examples=200, deadline=None)
@given(distributions(), temperatures)
def test_temperature_scale_is_a_distribution(dist, t):
    p, _ = dist
    q = temperature_scale(p, t)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(q[p == 0] == 0)


def _brentq_tilt(p: np.ndarray, r: np.ndarray, t: float) -> np.ndarray:
    """Independent reference: one row, scipy's brentq on β."""
    s = p > 0
    logits = np.log(p[s]) / t

    def q_of(b: float) -> np.ndarray:
        z = logits + b * r[s]
        w = np.exp(z - z.max())
        return w / w.sum()

    b = brentq(lambda b: q_of(b) @ r[s] - p @ r, -500, 500, xtol=1e-14)
    out = np.zeros_like(p)
    out[s] = q_of(b)
    return out


@pytest.mark.parametrize("t", [0.3, 0.8, 1.7, 5.0])
def test_tilt_matches_independent_root_finding(t):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(10) * 0.7, size=50)
    r = np.arange(1.0, 11.0)
    q = mean_preserving_tilt(p, r, t)
    ref = np.stack([_brentq_tilt(row, r, t) for row in p])
    np.testing.assert_allclose(q, ref, atol=1e-9)


def test_temperature_scale_formula_and_edges():
    p = np.array([0.1, 0.0, 0.3, 0.6])
    np.testing.assert_allclose(temperature_scale(p, 0.5), p**2 / (p**2).sum())
    np.testing.assert_array_equal(temperature_scale(p, 0.0), [0, 0, 0, 1])
    np.testing.assert_allclose(temperature_scale(p, np.inf), [1 / 3, 0, 1 / 3, 1 / 3])
    np.testing.assert_allclose(temperature_scale([0.5, 0.5, 0], 0.0), [0.5, 0.5, 0])


def test_tilt_identity_at_t1_and_limits():
    p = np.array([0.1, 0.2, 0.7])
    r = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(mean_preserving_tilt(p, r, 1.0), p)
    # T -> 0: the log-p upper hull between r=1 and r=3 (r=2 lies below it)
    np.testing.assert_allclose(mean_preserving_tilt(p, r, 0.0), [0.2, 0.0, 0.8], atol=1e-12)
    np.testing.assert_allclose(mean_preserving_tilt(p, r, 1e-4), [0.2, 0.0, 0.8], atol=1e-6)
    # T = inf: the max-entropy distribution with that mean (an exponential family in r)
    q = mean_preserving_tilt(p, r, np.inf)
    ratio = q[1:] / q[:-1]
    assert ratio[0] == pytest.approx(ratio[1])
    # mean at the edge of the scale: only one-hot distributions reach it
    np.testing.assert_array_equal(mean_preserving_tilt([0, 0, 1.0], r, 3.0), [0, 0, 1.0])


def test_tilt_higher_t_spreads_and_lower_t_sharpens():
    p = np.array([0.05, 0.15, 0.5, 0.2, 0.1])
    r = np.arange(5.0)
    var = lambda q: q @ r**2 - (q @ r) ** 2  # noqa: E731
    assert var(mean_preserving_tilt(p, r, 3.0)) > var(p) > var(mean_preserving_tilt(p, r, 0.4))


def test_tilt_broadcasts_temperature_per_row():
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    r = np.array([1.0, 2.0, 3.0])
    q = mean_preserving_tilt(p, r, np.array([2.0, 0.5]))
    np.testing.assert_allclose(q[0], mean_preserving_tilt(p[0], r, 2.0))
    np.testing.assert_allclose(q[1], mean_preserving_tilt(p[1], r, 0.5))


@pytest.mark.parametrize(
    ("p", "r", "t", "match"),
    [
        ([0.5, -0.1, 0.6], [1, 2, 3], 1.0, "non-negative"),
        ([0.0, 0.0], [1, 2], 1.0, "sums to zero"),
        ([0.5, 0.5], [1, 1], 1.0, "distinct"),
        ([0.5, 0.5], [1, 2, 3], 1.0, "one scale value per answer"),
        ([0.5, 0.5], [1, 2], -1.0, "temperature"),
        ([[0.5, 0.5]] * 2, [1, 2], [1.0, 2.0, 3.0], "broadcast"),
    ],
)
def test_invalid_inputs_raise(p, r, t, match):
    with pytest.raises(DataError, match=match):
        mean_preserving_tilt(p, r, t)


def test_loqo_recovers_known_temperature():
    # persona distributions are humans "sharpened" at T0: tilting them at T0 gives
    # the human distribution back, so W1 is minimal there for every question.
    rng = np.random.default_rng(3)
    t0 = 2.5
    r = np.arange(1.0, 8.0)
    humans = rng.dirichlet(np.full(7, 3.0), size=(6, 8))  # (question, country, K)
    personas = np.stack([mean_preserving_tilt(h, r, 1 / t0) for h in humans])

    def w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(np.cumsum(a - b, axis=-1)[..., :-1]).sum(axis=-1)

    def objective(t: float) -> np.ndarray:
        return np.array([w1(mean_preserving_tilt(p, r, t), h).mean()
                         for p, h in zip(personas, humans, strict=True)])

    fit = fit_temperature_loqo(objective, [f"Q{i}" for i in range(6)], temperature_grid(0.25, 8, 20))
    np.testing.assert_allclose(fit.temperatures, t0, rtol=1e-3)
    assert fit.overall == pytest.approx(t0, rel=1e-3)


def test_loqo_holds_out_each_question():
    # question 0 alone prefers T=4, the others T=1: only question 0's own fit
    # ignores it, so only its T is 1 and everyone else is pulled towards 4 a little
    def objective(t: float) -> np.ndarray:
        return np.array([(np.log(t) - np.log(4)) ** 2 * 5] + [(np.log(t)) ** 2] * 3)

    fit = fit_temperature_loqo(objective, ["a", "b", "c", "d"], temperature_grid(0.25, 8, 30))
    assert fit.temperatures[0] == pytest.approx(1.0, rel=1e-3)
    assert np.all(fit.temperatures[1:] > 1.5)


def test_loqo_needs_two_questions():
    with pytest.raises(DataError, match="at least two questions"):
        fit_temperature_loqo(lambda t: np.array([t]), ["a"], temperature_grid(0.5, 2, 5))
    with pytest.raises(DataError, match="grid"):
        temperature_grid(2, 1, 10)


# --- the T -> infinity limit and whether T is identified --------------------------------


@pytest.mark.parametrize(("p", "r"), [
    ([0.5, 0.1, 0.1, 0.3], [1.0, 2.0, 3.0, 4.0]),
    ([0.05, 0.6, 0.2, 0.1, 0.05], [0.0, 1.0, 2.0, 5.0, 10.0]),  # uneven codes
    ([0.7, 0.0, 0.2, 0.1], [1.0, 2.0, 3.0, 4.0]),  # a zero answer: the support is 1, 3, 4
])
def test_the_limit_is_the_maximum_entropy_distribution_with_the_same_mean(p: list[float], r: list[float]) -> None:
    """Against scipy.optimize: maximize entropy on the support subject to sum 1 and the mean."""
    p_arr, r_arr = np.asarray(p), np.asarray(r)
    support = p_arr > 0
    mean = float(p_arr @ r_arr)
    rs = r_arr[support]
    res = minimize(
        lambda q: float(np.sum(q * np.log(np.clip(q, 1e-300, None)))), np.full(rs.size, 1 / rs.size),
        method="SLSQP", bounds=[(0, 1)] * rs.size, options={"ftol": 1e-14, "maxiter": 500},
        constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1}, {"type": "eq", "fun": lambda q: q @ rs - mean}],
    )
    assert res.success
    q = maximum_entropy_with_mean(p_arr, r_arr)
    assert q[~support].tolist() == [0.0] * int((~support).sum())
    np.testing.assert_allclose(q[support], res.x, atol=1e-6)
    assert q @ r_arr == pytest.approx(mean, abs=1e-12)
    # an exponential tilt of the uniform: log q is linear in r on the support
    slope = np.polyfit(rs, np.log(q[support]), 1, full=True)
    assert slope[1].size == 0 or slope[1][0] < 1e-18
    # and the limit of finite temperatures
    np.testing.assert_allclose(mean_preserving_tilt(p_arr, r_arr, 1e7), q, atol=1e-6)
    assert np.array_equal(mean_preserving_tilt(p_arr, r_arr, LIMIT), q)


def _questions(curves: list) -> tuple[list[str], object]:
    qs = [f"Q{i}" for i in range(len(curves))]
    return qs, lambda t: np.array([c(t) for c in curves])


GRID = temperature_grid(0.25, 8.0, 30)


def test_an_interior_minimum_is_identified() -> None:
    qs, objective = _questions([lambda t: (np.log(t) - np.log(2.0)) ** 2 if np.isfinite(t) else 50.0] * 3)
    fit = fit_temperature_loqo(objective, qs, GRID)
    assert fit.overall == pytest.approx(2.0, rel=1e-3)
    ident = identification(fit)
    assert ident.identified
    assert ident.edge is None


def test_an_objective_falling_to_infinity_is_not_identified() -> None:
    """The demo's case: W1 keeps falling as T grows, lowest at the limit."""
    qs, objective = _questions([lambda t, a=a: a + 1.0 / (1.0 + t) for a in (0.1, 0.2, 0.3)])
    fit = fit_temperature_loqo(objective, qs, GRID)
    assert np.isinf(fit.overall)
    assert np.isinf(fit.temperatures).all()
    assert fit.curve[-1] == pytest.approx(0.2)  # the limit is a point of the search
    ident = identification(fit)
    assert not ident.identified
    assert ident.edge == "infinity"
    assert ident.monotone
    # without the limit in the search the same objective stops at the top of the grid
    capped = fit_temperature_loqo(objective, qs, GRID, limit=False)
    assert capped.overall == pytest.approx(8.0)


def test_a_minimum_beyond_the_grid_is_found_not_mistaken_for_the_limit() -> None:
    qs, objective = _questions([lambda t: (np.log(t) - np.log(30.0)) ** 2 if np.isfinite(t) else 50.0] * 3)
    fit = fit_temperature_loqo(objective, qs, GRID)
    assert fit.overall == pytest.approx(30.0, rel=0.01)
    assert identification(fit).identified


def test_a_minimum_at_the_lowest_grid_point_is_a_bound() -> None:
    qs, objective = _questions([lambda t: float(np.log(t) if np.isfinite(t) else 50.0)] * 3)
    fit = fit_temperature_loqo(objective, qs, GRID)
    assert fit.overall == pytest.approx(0.25)
    ident = identification(fit)
    assert ident.edge == "lower"
    assert not ident.identified
    assert ident.monotone


def test_loqo_holds_out_each_question_at_the_limit_too() -> None:
    """Q0 alone pins T = 1 strongly; the others keep falling to the limit. Only Q0's
    own fit (without Q0) reaches the limit; every other fit sees Q0 and stays finite."""
    def q0(t: float) -> float:
        return 10.0 * (np.log(t) ** 2 if np.isfinite(t) else 25.0)

    qs, objective = _questions([q0] + [lambda t: 1.0 / (1.0 + t)] * 3)
    fit = fit_temperature_loqo(objective, qs, GRID)
    assert np.isinf(fit.temperatures[0])
    assert np.all(np.isfinite(fit.temperatures[1:]))
    assert np.all(fit.temperatures[1:] < 1.5)
    assert identification(fit).identified  # all questions together: Q0 pins it


@pytest.mark.parametrize("zeros", [False, True], ids=["all-positive", "with-zeros"])
@pytest.mark.parametrize("t", [0.02, 0.4, 1.0, 2.5, 400.0, np.inf])
def test_stacked_calls_tilt_bitwise_as_each_call_alone(zeros: bool, t: float) -> None:
    """``sizes``: calls of 2-90 rows stacked come back as each call alone, to the bit;
    T = 0.02 and 400 take β past the width test's threshold, where the solver decides
    per call, and the lone last column of a call is summed as alone."""
    rng = np.random.default_rng(11)
    values = np.array([0.0, 1, 2, 3, 5, 8, 9])
    calls = []
    for n in rng.integers(2, 90, 25):
        p = rng.dirichlet(np.full(values.size, rng.choice([0.05, 0.5, 4.0])), size=n) + (0.0 if zeros else 1e-12)
        if zeros:
            p[rng.random(p.shape) < 0.2] = 0.0
            p[:, 0] += 0.01
        calls.append(p)
    got = mean_preserving_tilt(np.concatenate(calls), values, t, sizes=[len(p) for p in calls])
    want = np.concatenate([mean_preserving_tilt(p, values, t) for p in calls])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sizes", [[3, 1], [2, 3], [4097 - 4000, 4000]])
def test_stacked_calls_must_be_one_block_of_calls_of_two_rows(sizes: list[int]) -> None:
    p = np.full((4, 3), 1 / 3) if sum(sizes) != 4097 else np.full((4097, 3), 1 / 3)
    with pytest.raises(ValueError, match="sizes must split"):
        mean_preserving_tilt(p, [1, 2, 3], 2.0, sizes=sizes)


def test_stacked_calls_on_different_paths_are_refused() -> None:
    """A call with every probability > 0 takes the fast path alone; stacked with one
    that has zeros it would take the general one and differ in the last bits."""
    rng = np.random.default_rng(2)
    positive, zeros = rng.dirichlet(np.ones(4), size=5), rng.dirichlet(np.ones(4), size=5)
    zeros[0, 1] = 0.0
    with pytest.raises(ValueError, match="stack them apart"):
        mean_preserving_tilt(np.concatenate([positive, zeros]), [1, 2, 3, 4], 2.0, sizes=[5, 5])
    # at T = inf every call takes the general path: nothing to refuse
    mean_preserving_tilt(np.concatenate([positive, zeros]), [1, 2, 3, 4], np.inf, sizes=[5, 5])
