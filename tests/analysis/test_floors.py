"""The noise floors against closed forms: the actual-answer floor, the
persona-information floor (and its cross-fitted ridge), split-half as sampling noise.

Every population here is built so that the floor has an exact or a textbook value:
draws without replacement from a pool with exactly half "1"s are hypergeometric
(scipy.stats.hypergeom), and a mean of N answers is close to normal for moderate N.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import hypergeom
from sklearn.linear_model import Ridge

from valuesim.analysis import references as ref
from valuesim.analysis.evaluation import noise_floors
from valuesim.analysis.persona_information import (
    PENALTIES,
    PersonaFeatures,
    crossfit_ridge,
    design_matrix,
    method_features,
    persona_expectations,
)
from valuesim.config import AnalysisParams
from valuesim.survey.bank import load_bank

M = 2000  # respondents of the constructed country


def human_of(respondents: pl.DataFrame, scales: dict[str, list[int]]) -> pl.DataFrame:
    """The long human frame (country, question, code, share): weighted answer shares,
    every code of the scale listed."""
    rows = []
    for (country,), grp in respondents.group_by(["country"]):
        for q, codes in scales.items():
            seen = grp.filter(pl.col(q).is_not_null())
            total = float(seen["weight"].sum())
            for c in codes:
                rows.append((country, q, c, float(seen.filter(pl.col(q) == c)["weight"].sum()) / total))
    return pl.DataFrame(rows, schema=ref.LONG_SCHEMA, orient="row")


@pytest.fixture(scope="module")
def halves() -> pl.DataFrame:
    """One country, M respondents: persona item P1 is 1 for exactly half of them; Q2
    copies it (fully informative persona); Q1 = P1 + a coin balanced within each P1
    group (E[Q1 | P1] = P1 + 0.5, half the information); P2 is unrelated to both."""
    rng = np.random.default_rng(7)
    p1 = rng.permutation(np.repeat([1, 2], M // 2))
    coin = np.empty(M, dtype=np.int64)
    for v in (1, 2):  # exactly balanced within each persona group
        idx = np.flatnonzero(p1 == v)
        coin[idx] = rng.permutation(np.repeat([0, 1], idx.size // 2))
    return pl.DataFrame({
        "country": ["AAA"] * M, "respondent_id": [f"r{i:05d}" for i in range(M)], "weight": [1.0] * M,
        "P1": p1, "P2": rng.integers(1, 4, M), "Q1": p1 + coin, "Q2": p1,
    })


SCALES = {"Q1": [1, 2, 3], "Q2": [1, 2]}


def hypergeometric_mad(n: int) -> tuple[float, float]:
    """E and SD of |k/n - 1/2| for k ~ hypergeom(M, M/2, n): the mean share of "2"
    among n draws without replacement from the constructed pool."""
    k = np.arange(n + 1)
    pmf = hypergeom(M, M // 2, n).pmf(k)
    dev = np.abs(k / n - 0.5)
    mean = float(pmf @ dev)
    return mean, math.sqrt(float(pmf @ dev**2) - mean**2)


REPEATS = 600


@pytest.mark.parametrize("n", [1, 4])
def test_floors_match_the_hypergeometric_closed_form(halves: pl.DataFrame, n: int) -> None:
    """Q2 is P1 itself: actual answers and a perfect simulator agree, and both errors
    are E|k/n - 1/2| exactly. Q1 carries half of P1 (range 2): a perfect simulator's
    error is half that, while N respondents' own answers err more."""
    human = human_of(halves, SCALES)
    expected, sd = hypergeometric_mad(n)
    # four standard errors of a mean over REPEATS draws, plus what the fitted expectations
    # may be off by (Q2's: the ridge penalty's shrinkage only; Q1's: a fold's coin mean)
    tol = 4 * sd / math.sqrt(REPEATS) + 0.002
    actual = ref.spread(ref.actual_answer_floor(halves, human, ["AAA"], ["Q2"], [n], REPEATS, 0))
    assert actual["mae"][0] == pytest.approx(expected, abs=tol)
    exp = persona_expectations(halves, ["AAA"], ["Q1", "Q2"], SCALES, PersonaFeatures(("P1",)), seed=0)
    persona = ref.persona_information_floor(exp, halves, human, ["AAA"], ["Q2"], [n], REPEATS, 0)
    assert ref.spread(persona)["mae"][0] == pytest.approx(expected, abs=tol)
    half_info = ref.persona_information_floor(exp, halves, human, ["AAA"], ["Q1"], [n], REPEATS, 0)
    assert ref.spread(half_info)["mae"][0] == pytest.approx(expected / 2, abs=tol / 2 + 0.01)
    if n > 1:  # (one answer or one expectation both miss by 0.25 here; past that, answers err more)
        own_answers = ref.spread(ref.actual_answer_floor(halves, human, ["AAA"], ["Q1"], [n], REPEATS, 0))
        assert own_answers["mae"][0] > ref.spread(half_info)["mae"][0] + tol


def test_persona_expectations_recover_the_conditional_mean(halves: pl.DataFrame) -> None:
    exp = persona_expectations(halves, ["AAA"], ["Q1", "Q2"], SCALES, PersonaFeatures(("P1",)), seed=0)
    p1 = halves.sort("respondent_id")["P1"].to_numpy()
    # scaled: E[Q1 | P1] = (P1 + 0.5 - 1) / 2, E[Q2 | P1] = P1 - 1
    # (up to the fold fits' noise: a coin mean over ~800 training answers, SD ~0.009)
    assert exp.values[:, 0] == pytest.approx((p1 - 0.5) / 2, abs=0.03)
    assert exp.values[:, 1] == pytest.approx(p1 - 1.0, abs=0.01)
    r2 = dict(zip(exp.r2["question"], exp.r2["r2"], strict=True))
    # Var(E[Q1|P1]) / Var(Q1) = 0.25 / 0.5 on the 1-3 scale; Q2 is determined
    assert r2["Q1"] == pytest.approx(0.5, abs=0.02)
    assert r2["Q2"] == pytest.approx(1.0, abs=1e-3)


def test_an_uninformative_persona_has_almost_no_floor(halves: pl.DataFrame) -> None:
    """P2 says nothing about Q2: a perfect simulator of P2-personas answers the
    country mean whatever the persona, so its error is only the fit's noise."""
    human = human_of(halves, SCALES)
    exp = persona_expectations(halves, ["AAA"], ["Q2"], SCALES, PersonaFeatures(("P2",)), seed=0)
    persona = ref.spread(ref.persona_information_floor(exp, halves, human, ["AAA"], ["Q2"], [4], 50, 0))
    actual = ref.spread(ref.actual_answer_floor(halves, human, ["AAA"], ["Q2"], [4], 50, 0))
    assert persona["mae"][0] < 0.05 * actual["mae"][0]


def test_without_the_country_the_floor_keeps_the_country_gap() -> None:
    """Two countries whose answers differ by 0.2 of the range and a persona item
    unrelated to them: a persona that names the country has a floor near 0, one that
    does not (the _nonat methods) misses each country's mean by about half the gap."""
    rng = np.random.default_rng(3)
    frames = []
    for country, shift in (("AAA", 0), ("BBB", 1)):
        q = rng.permutation(np.repeat([1, 2, 3, 4, 5, 6], 200)) if shift == 0 else \
            rng.permutation(np.repeat([2, 3, 4, 5, 6, 6], 200))
        frames.append(pl.DataFrame({
            "country": [country] * 1200, "respondent_id": [f"{country}{i:04d}" for i in range(1200)],
            "weight": [1.0] * 1200, "P1": rng.integers(1, 3, 1200), "Q1": q}))
    resp = pl.concat(frames)
    scales = {"Q1": [1, 2, 3, 4, 5, 6]}
    human = human_of(resp, scales)
    means = ref.scaled_means(human, ["AAA", "BBB"], ["Q1"])[:, 0]
    gap = float(means[1] - means[0])
    named = persona_expectations(resp, ["AAA", "BBB"], ["Q1"], scales, PersonaFeatures(("P1",)), seed=0)
    blind = persona_expectations(resp, ["AAA", "BBB"], ["Q1"], scales,
                                 PersonaFeatures(("P1",), names_country=False), seed=0)
    f_named = ref.spread(ref.persona_information_floor(named, resp, human, ["AAA", "BBB"], ["Q1"], [6], 30, 0))
    f_blind = ref.spread(ref.persona_information_floor(blind, resp, human, ["AAA", "BBB"], ["Q1"], [6], 30, 0))
    assert f_named["mae"][0] < 0.01
    assert f_blind["mae"][0] == pytest.approx(gap / 2, rel=0.1)


def test_the_actual_answer_floor_matches_its_normal_approximation() -> None:
    """E|ybar_N - mu| ~ sqrt(2/pi) sigma / sqrt(N) on a 10-point question at N = 40; the
    same formula at the wrong N (2N, a factor 1/sqrt(2) off) fails the check."""
    rng = np.random.default_rng(11)
    probs = np.array([0.05, 0.02, 0.05, 0.08, 0.2, 0.15, 0.15, 0.15, 0.05, 0.1])
    m = 5000
    resp = pl.DataFrame({"country": ["AAA"] * m, "respondent_id": [f"r{i:05d}" for i in range(m)],
                         "weight": [1.0] * m, "Q1": rng.choice(np.arange(1, 11), size=m, p=probs)})
    human = human_of(resp, {"Q1": list(range(1, 11))})
    sim = ref.spread(ref.actual_answer_floor(resp, human, ["AAA"], ["Q1"], [40], 1000, 0))
    normal = ref.actual_answer_floor_normal(resp, human, ["AAA"], ["Q1"], 40)
    y = (resp["Q1"].to_numpy() - 1) / 9
    assert normal == pytest.approx(math.sqrt(2 / math.pi) * y.std() / math.sqrt(40) * math.sqrt((m - 40) / (m - 1)))
    assert sim["mae"][0] == pytest.approx(normal, rel=0.08)
    wrong = ref.actual_answer_floor_normal(resp, human, ["AAA"], ["Q1"], 80)
    assert sim["mae"][0] != pytest.approx(wrong, rel=0.08)


def test_split_half_is_twice_the_full_samples_sampling_noise() -> None:
    """The error of a full sample of M against its population is
    E|ybar_M - mu| ~ sqrt(2/pi) sigma / sqrt(M); split-half MAE is twice that, and the
    human sampling noise (split-half / SPLIT_HALF_FACTOR) is that."""
    rng = np.random.default_rng(5)
    probs = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    m = 4000
    resp = pl.DataFrame({"country": ["AAA"] * m, "respondent_id": [f"r{i:05d}" for i in range(m)],
                         "weight": [1.0] * m, "Q1": rng.choice(np.arange(1, 6), size=m, p=probs)})
    human = human_of(resp, {"Q1": [1, 2, 3, 4, 5]})
    halves = ref.spread(ref.split_half(resp, human, ["AAA"], ["Q1"], 400, 0)).row(0, named=True)
    r = np.arange(5) / 4
    sigma = math.sqrt(float(probs @ r**2 - (probs @ r) ** 2))
    full_sample_error = math.sqrt(2 / math.pi) * sigma / math.sqrt(m)
    noise = ref.human_sampling_noise(halves)
    assert ref.SPLIT_HALF_FACTOR == 2.0
    assert noise["mae"] == pytest.approx(full_sample_error, rel=0.1)
    assert halves["mae"] == pytest.approx(2 * full_sample_error, rel=0.1)
    assert halves["mae"] != pytest.approx(full_sample_error, rel=0.5)  # the raw split-half is not it


def test_crossfit_ridge_is_sklearns_ridge_on_each_fold() -> None:
    rng = np.random.default_rng(2)
    n, p = 300, 6
    x = (rng.random((n, p)) < 0.4).astype(float)
    y = x @ rng.normal(size=p) * 0.1 + rng.normal(size=n) * 0.2
    y[rng.choice(n, 25, replace=False)] = np.nan  # not answered: not fitted on, still predicted
    w = rng.uniform(0.5, 2.0, n)
    fold = rng.permutation(n) % 5
    pred, penalty = crossfit_ridge(x, y, w, fold)
    alpha = penalty * float(w[~np.isnan(y)].sum())
    for k in range(5):
        train = (fold != k) & ~np.isnan(y)
        model = Ridge(alpha=alpha).fit(x[train], y[train], sample_weight=w[train])
        assert pred[fold == k] == pytest.approx(model.predict(x[fold == k]), abs=1e-9)


def test_the_penalty_is_the_generalized_cross_validation_minimum() -> None:
    """Against GCV computed from the explicit hat matrix of every penalty."""
    rng = np.random.default_rng(4)
    n, p = 200, 8
    x = (rng.random((n, p)) < 0.5).astype(float)
    for scale in (0.0, 0.05, 1.0):  # no signal, weak, strong: different penalties win
        y = x @ rng.normal(size=p) * scale + rng.normal(size=n)
        w = rng.uniform(0.5, 2.0, n)
        _, chosen = crossfit_ridge(x, y, w, rng.permutation(n) % 5)
        xm, ym = w @ x / w.sum(), w @ y / w.sum()
        xc, yc = x - xm, y - ym
        scores = []
        for pen in PENALTIES:
            a = pen * w.sum()
            inv = np.linalg.inv(xc.T @ (w[:, None] * xc) + a * np.eye(p))
            beta = inv @ xc.T @ (w * yc)
            hat = np.sqrt(w)[:, None] * xc @ inv @ xc.T * np.sqrt(w)[None, :]
            rss = float(w @ (yc - xc @ beta) ** 2)
            scores.append(rss / (1 - (np.trace(hat) + 1) / n) ** 2)
        assert chosen == PENALTIES[int(np.argmin(scores))]


def test_design_matrix_codes_items_one_hot_with_missing_and_numeric() -> None:
    frame = pl.DataFrame({"A": [1, 2, None, 2], "B": [20.0, 60.0, 40.0, None]})
    x = design_matrix(frame, PersonaFeatures(("A", "B"), numeric=("B",)))
    assert x.tolist() == [[1, 0, 0, 0.0, 0], [0, 1, 0, 1.0, 0], [0, 0, 1, 0.5, 0], [0, 1, 0, 0.5, 1]]


def test_method_features_follow_the_bank_and_the_method() -> None:
    bank = load_bank("data/questions/wvs7.yaml")
    value = method_features("value", bank)
    assert value is not None
    assert value.items == tuple(i.id for i in bank.persona_items)
    assert value.names_country
    nonat = method_features("fewshot_nonat", bank)
    assert nonat is not None
    assert nonat.items == value.items
    assert not nonat.names_country
    socio = method_features("sociodemographic", bank)
    assert socio is not None
    assert "Q262" in socio.numeric
    assert set(socio.items) == {i.id for i in bank.sociodemographic}
    assert method_features("country", bank) is None


def test_noise_floors_gives_each_persona_run_its_methods_floor(halves: pl.DataFrame) -> None:
    human = human_of(halves, SCALES)
    an = AnalysisParams(sample_sizes=[1, 2], subsample_repeats=20, bootstrap=10)
    floors = noise_floors(halves, human, ["AAA"], ["Q1", "Q2"], {("m", "value"): 4, ("m", "fewshot"): 2},
                          {"value": PersonaFeatures(("P1",)), "generic": PersonaFeatures(("P2",))}, an)
    assert set(floors.persona["method"]) == {"value"}  # fewshot has no features, generic no run
    assert sorted(set(floors.persona["n"])) == [1, 2, 4]
    assert set(floors.persona_runs) == {"m/value"}
    assert floors.persona_runs["m/value"]["n"] == 4
    assert set(floors.runs) == {"m/value", "m/fewshot"}
    # a persona that states P1 explains part of every answer: its floor lies below N answers'
    assert floors.persona_runs["m/value"]["mae"] < floors.runs["m/value"]["mae"]
    assert set(floors.normal) == {2, 4}
    # P1 explains half of Q1's variance and all of Q2's: mean out-of-fold R-squared ~0.75
    assert floors.persona_runs["m/value"]["r2"] == pytest.approx(0.75, abs=0.02)
