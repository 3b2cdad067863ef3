"""The end-to-end planted check: a provider with KNOWN log-probabilities through
extract -> human -> descriptors -> personas -> simulate -> calibrate -> evaluate ->
report, every output compared with what was planted, in closed form.

tests/fixtures/planted_e2e.py builds the study and says exactly what is planted; the
provider is tests/fixtures/planted_provider.py (a token-level table, read by the
pipeline's own answer-rule code). The ``check_*`` functions below are the check; each
raises AssertionError naming what broke. ``test_planted_study`` runs them all on the
study; the fault tests inject the faults of issue 21's Done-when into copies of it and
show the check failing:

* LOQO fits on the held-out question (:func:`test_fault_loqo_sees_the_held_out_question`),
* the answer rule is switched (:func:`test_fault_answer_rule_switched`, every other rule),
* the clustered paired test is replaced by Mann-Whitney
  (:func:`test_fault_mann_whitney_instead_of_the_clustered_test`).

:func:`test_clustered_test_level_and_power` measures, over cheap repeats of the
planted structure (no pipeline run), the clustered test's false-positive rate (near the
nominal 5%) and power at 0.01, against Mann-Whitney's power and a cell-paired
Wilcoxon's false-positive rate.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from tests.fixtures import planted_e2e as pe
from tests.fixtures.planted_e2e import (
    COUNTRIES,
    INFORMATIVE,
    MODEL,
    QUESTIONS,
    TEMPERATURE,
    A,
    B,
    C,
    Project,
)
from valuesim.analysis.metric_precision import DEFAULT_ATOL as METRIC_ATOL

ALPHA = 0.05
T_RTOL = 1e-3  # the fit refines T to 1e-4 in log T


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pe.planted_plugin(tmp_path_factory.mktemp("site")):
        yield


@pytest.fixture(scope="module")
def study(plugin: None, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return pe.planted_project(tmp_path_factory.mktemp("planted_e2e") / "study")


def _values(project: Project, q: str) -> np.ndarray:
    return np.asarray(project.codes[q], dtype=np.float64)


def _span(project: Project, q: str) -> float:
    r = _values(project, q)
    return float(r[-1] - r[0])


def _mu(project: Project, c: str, q: str) -> float:
    return float(project.human[(c, q)] @ _values(project, q))


# ---- closed forms -------------------------------------------------------------------------


def rule_distribution(v: np.ndarray, c: float, answers: Sequence[str], rule: str) -> tuple[np.ndarray, float]:
    """What ``rule`` reads off the planted token model of a row planted as (v, c) under
    answer_start (tests/fixtures/planted_e2e.py's docstring): probabilities and coverage."""
    m = c * np.asarray(v, dtype=np.float64)
    i1 = answers.index("1") if "1" in answers else None
    i10 = answers.index("10") if "10" in answers else None
    coverage = None
    if rule == "leading_integer" and i1 is not None:
        m[i1] *= 1 - pe.D  # "15" is no answer
    elif rule == "answer_eot":
        m *= 1 - pe.E  # "k." is no finished reply
        if i1 is not None:
            m[i1] *= 1 - pe.D
    elif rule == "first_token":
        coverage = c  # each first token counted once
        if i10 is not None:
            m[i1] = m[i10] = c * (v[i1] + v[i10])
    elif rule != "answer_start":
        raise ValueError(rule)
    return m / m.sum(), float(m.sum()) if coverage is None else coverage


def planted_population(project: Project, method: str, country: str, question: str) -> np.ndarray:
    rows = [p.probs for (m, _, q), p in project.rows.items() if m == method and q == question and p.country == country]
    return np.mean(rows, axis=0)


def expected_loqo(question: str) -> float | None:
    """The held-out fit of an informative question sees only the other one."""
    if question not in INFORMATIVE:
        return None
    (other,) = (q for q in INFORMATIVE if q != question)
    return INFORMATIVE[other]


def exact_answer_floor(respondents: pl.DataFrame, project: Project, n: int) -> tuple[float, float]:
    """E over simple random samples of n respondents per country (every weight is 1) of
    the mean over countries of the mean over questions of |ybar_n - mu| / range (a
    question none of the n answered is left out of that draw's mean, as the floor does).

    n <= 2: every sample enumerated (exact). Larger n: per cell, the multivariate
    hypergeometric law of the draw over the answer codes and "no answer", given that
    someone answered; the per-country mean is then exact up to the chance that a cell
    has no answer at all, which is returned (the largest over cells)."""
    per_country, worst_absent = [], 0.0
    for c in COUNTRIES:
        pool = respondents.filter(pl.col("country") == c)
        ys = {q: pool[q].cast(pl.Float64).fill_null(math.nan).to_numpy() for q in QUESTIONS}
        if n <= 2:
            draws = np.array(list(itertools.combinations(range(pool.height), n)))
            errs = []
            for q in QUESTIONS:
                y = ys[q][draws]
                answered = (~np.isnan(y)).sum(axis=1)
                with np.errstate(invalid="ignore"):
                    ybar = np.nansum(y, axis=1) / answered
                errs.append(np.abs(ybar - _mu(project, c, q)) / _span(project, q))
            with np.errstate(invalid="ignore"):
                per_draw = np.nanmean(np.stack(errs), axis=0)
            per_country.append(float(per_draw.mean()))
            continue
        errs = []
        for q in QUESTIONS:
            r, y = _values(project, q), ys[q]
            counts = [int(np.sum(y == code)) for code in r] + [int(np.isnan(y).sum())]
            acc = present = 0.0
            for draw in itertools.combinations_with_replacement(range(len(counts)), n):
                a = np.bincount(draw, minlength=len(counts))
                p = math.prod(math.comb(k, j) for k, j in zip(counts, a, strict=True)) / math.comb(pool.height, n)
                answered = a[:-1].sum()
                if p == 0 or answered == 0:
                    continue
                acc += p * abs(float(a[:-1] @ r) / answered - _mu(project, c, q)) / _span(project, q)
                present += p
            worst_absent = max(worst_absent, 1 - present)
            errs.append(acc / present)
        per_country.append(float(np.mean(errs)))
    return float(np.mean(per_country)), worst_absent


def normal_split_half(respondents: pl.DataFrame, project: Project) -> float:
    """E|ybar_A - ybar_B| / range for a random split of a cell's M answers into halves:
    ybar_A - ybar_B = 2 (ybar_A - ybar) has SD 2 sigma / sqrt(M - 1) (sigma the answers'
    SD, drawing half of the M without replacement), so sqrt(2/pi) 2 sigma / sqrt(M - 1)
    by the normal approximation; averaged over questions, then countries."""
    per_country = []
    for c in COUNTRIES:
        pool = respondents.filter(pl.col("country") == c)
        errs = []
        for q in QUESTIONS:
            y = pool[q].drop_nulls().to_numpy().astype(np.float64)
            errs.append(math.sqrt(2 / math.pi) * 2 * y.std() / math.sqrt(len(y) - 1) / _span(project, q))
        per_country.append(np.mean(errs))
    return float(np.mean(per_country))


# ---- the check ----------------------------------------------------------------------------


def check_human(project: Project) -> None:
    """The human stage's distributions are the respondents' answer shares."""
    dist = project.read("data/human/distributions.parquet")
    for (c, q), h in project.human.items():
        got = dist.filter((pl.col("country") == c) & (pl.col("question") == q)).sort("code")
        assert got["code"].to_list() == project.codes[q]
        np.testing.assert_allclose(got["share"].to_numpy(), h, atol=1e-12, err_msg=f"human {c}/{q}")


def check_answers(project: Project, rule: str = "answer_start") -> None:
    """Every simulated row is what ``rule`` reads off its planted token model (answer
    rule and coverage < 1 exercised on every row); the reported mean coverage too."""
    metrics = project.json("reports/metrics.json") if (project.root / "reports/metrics.json").exists() else None
    for method in pe.METHODS:
        answers = project.read(f"data/simulated/{MODEL}/{method}/answers.parquet")
        assert answers.height == sum(1 for m, _, _ in project.rows if m == method)
        covs = []
        for pid, q, probs, cov in answers.select("persona_id", "question", "probs", "coverage").iter_rows():
            planted = project.rows[(method, pid, q)]
            want, want_cov = rule_distribution(planted.probs, planted.coverage, [str(x) for x in project.codes[q]],
                                               rule)
            assert np.allclose(probs, want, atol=1e-9, rtol=0), (
                f"answer rule: {method} {pid} {q} recorded {np.round(probs, 4).tolist()}, but {rule} reads "
                f"{np.round(want, 4).tolist()} off the planted log-probabilities")
            assert cov == pytest.approx(want_cov, abs=1e-9), f"answer rule: {method} {pid} {q} coverage"
            covs.append(want_cov)
        assert max(covs) < 1.0
        if metrics is not None and rule == "answer_start":
            assert metrics["coverage"][f"{MODEL}/{method}"]["mean"] == pytest.approx(np.mean(covs), abs=METRIC_ATOL)


def check_cells(project: Project) -> None:
    """The raw population is the mean of the planted persona distributions; every cell's
    MAE is |its mean - the human mean| / range (A, B, C: exactly their planted b), and
    calibration keeps it (the tilt preserves every persona's mean)."""
    pop = project.read("data/calibrated/population.parquet")
    cells = project.read("data/eval/cells.parquet").filter(pl.col("model") == MODEL)
    assert cells.height == len(pe.METHODS) * len(COUNTRIES) * len(QUESTIONS)
    raw = {(m, c, q): np.asarray(p) for m, c, q, p in pop.select("method", "country", "question", "probs_raw").iter_rows()}
    for method, c, q, mae, mae_cal in cells.select("method", "country", "question", "mae", "mae_cal").iter_rows():
        want_pop = planted_population(project, method, c, q)
        want = abs(float(want_pop @ _values(project, q)) - _mu(project, c, q)) / _span(project, q)
        if method in project.bias:
            assert want == pytest.approx(project.bias[method][(c, q)], abs=1e-8)
        assert mae == pytest.approx(want, abs=1e-8), f"MAE of {method} {c}/{q}: {mae} != planted {want}"
        assert mae_cal == pytest.approx(want, abs=1e-8), f"calibrated MAE of {method} {c}/{q}"
        assert np.allclose(raw[(method, c, q)], want_pop, atol=1e-9), f"population {method} {c}/{q}"


def check_temperatures(project: Project) -> None:
    """Leave-one-question-out: without Q48 only Q171 informs the fit (T = its T*), and
    the other way round; every other held-out question sees both (the all-questions T)."""
    fit = project.json("data/calibrated/temperatures.json")["temperatures"][f"{MODEL}/{TEMPERATURE}"]
    loqo = fit["loqo"]
    assert sorted(loqo) == sorted(QUESTIONS)
    for q in INFORMATIVE:
        want = expected_loqo(q)
        assert loqo[q] == pytest.approx(want, rel=T_RTOL), (
            f"leave-one-question-out T of {q} is {loqo[q]}, not {want}: the fit without {q} sees only the "
            f"other informative question (T* = {want}); it has seen {q} itself (T* = {INFORMATIVE[q]})")
    assert min(INFORMATIVE.values()) * (1 - T_RTOL) <= fit["overall"] <= max(INFORMATIVE.values()) * (1 + T_RTOL)
    for q in QUESTIONS:
        if q not in INFORMATIVE:
            assert loqo[q] == pytest.approx(fit["overall"], rel=T_RTOL), f"leave-one-question-out T of {q}"
    assert fit["identified"]


def check_calibrated(project: Project) -> None:
    """The calibrated value population, closed form: each persona planted as the truth
    sharpened for T*_q and calibrated at the held-out T is the truth tilted at power
    T*_q / T (same mean); one-hot personas cannot move."""
    pop = project.read("data/calibrated/population.parquet").filter(pl.col("method") == TEMPERATURE)
    for c, q, raw, cal in pop.select("country", "question", "probs_raw", "probs_cal").iter_rows():
        if q not in INFORMATIVE:
            assert np.allclose(cal, raw, atol=1e-12), f"calibrated one-hot value {c}/{q} moved"
            continue
        r, power = _values(project, q), INFORMATIVE[q] / expected_loqo(q)
        want = np.mean([pe.tilt(t, r, float(t @ r), power=power) for t in project.truth[(c, q)]], axis=0)
        assert np.allclose(cal, want, atol=1e-4), (
            f"leave-one-question-out: calibrated value {c}/{q} is not the truth tilted at power {power:.3f}")


def _pair(project: Project, a: str, b: str) -> dict:
    rows = project.read("data/eval/paired_tests.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("a") == a) & (pl.col("b") == b))
    assert rows.height == 1
    return rows.row(0, named=True)


def _planted_diff(project: Project, a: str, b: str) -> float:
    """Mean over questions of the country-mean of b_a - b_b: the paired difference planted."""
    return float(np.mean([np.mean([project.bias[a][(c, q)] - project.bias[b][(c, q)] for c in COUNTRIES])
                          for q in QUESTIONS]))


def check_paired(project: Project) -> None:
    """B = A + 0.01 (clustered by question) is detected by the paired test, BH-adjusted;
    A's null twin C is not. Differences and intervals as planted."""
    ab = _pair(project, A, B)  # names sort: country < fewshot < sociodemographic
    assert ab["diff"] == pytest.approx(_planted_diff(project, A, B), abs=1e-9)
    assert ab["n_questions"] == len(QUESTIONS)
    assert ab["n_cells"] == len(QUESTIONS) * len(COUNTRIES)
    assert ab["ci_lo"] <= ab["diff"] <= ab["ci_hi"] < 0
    assert ab["better"] == A
    assert ab["p_bh"] < ALPHA, (
        f"the planted 0.01 difference {B} - {A} was not detected: p = {ab['p']:.3g}, p_BH = {ab['p_bh']:.3g}")
    ac = _pair(project, A, C)
    assert ac["diff"] == pytest.approx(_planted_diff(project, A, C), abs=1e-9)
    assert ac["p"] >= ALPHA, f"the null twin {C} of {A} was detected: p = {ac['p']:.3g}"
    assert ac["ci_lo"] <= 0 <= ac["ci_hi"]


def check_references(project: Project, respondents: pl.DataFrame) -> None:
    """midpoint, uniform and other countries against their closed forms."""
    ref = project.read("data/eval/reference_cells.parquet")
    got = {(m, c, q): v for m, c, q, v in ref.select("method", "country", "question", "mae").iter_rows()}
    assert len(got) == 3 * len(COUNTRIES) * len(QUESTIONS)
    for c in COUNTRIES:
        others = respondents.filter(pl.col("country").is_in([o for o in COUNTRIES if o != c]))
        for q in QUESTIONS:
            r, span, mu = _values(project, q), _span(project, q), _mu(project, c, q)
            pooled = others[q].drop_nulls().to_numpy().astype(np.float64).mean()  # every weight is 1
            want = {"midpoint": abs((r[0] + r[-1]) / 2 - mu) / span, "uniform": abs(r.mean() - mu) / span,
                    "other_countries": abs(pooled - mu) / span}
            for m, w in want.items():
                assert got[(m, c, q)] == pytest.approx(w, abs=1e-12), f"reference {m} {c}/{q}"


def check_floors(project: Project, respondents: pl.DataFrame) -> None:
    """The actual-answer floor at every n against its exact expectation (multivariate
    hypergeometric draws), split-half against its normal closed form, each within four
    Monte Carlo standard errors of the run's resamples (+2% for the normal
    approximation)."""
    floor = project.read("data/eval/actual_answer_floor.parquet")
    for n in sorted(set(floor["n"].to_list())):
        per_rep = floor.filter(pl.col("n") == n).group_by("repeat").agg(pl.col("mae").mean())["mae"]
        se = float(per_rep.std()) / math.sqrt(per_rep.len())
        want, absent = exact_answer_floor(respondents, project, n)
        assert absent < 1e-2
        assert abs(float(per_rep.mean()) - want) <= 4 * se, (
            f"actual-answer floor at n = {n}: {per_rep.mean():.5f} vs exact {want:.5f} (SE {se:.5f})")
    halves = project.read("data/eval/split_half.parquet").group_by("repeat").agg(pl.col("mae").mean())["mae"]
    se = float(halves.std()) / math.sqrt(halves.len())
    want = normal_split_half(respondents, project)
    assert abs(float(halves.mean()) - want) <= 4 * se + 0.02 * want, (
        f"split-half {halves.mean():.5f} vs closed form {want:.5f} (SE {se:.5f})")


def check_report(project: Project) -> None:
    page = html.unescape((project.root / "reports/index.html").read_text())
    ab = _pair(project, A, B)
    assert f"{A} - {B} {ab['diff']:+.3f}" in page
    assert f"p_BH = {ab['p_bh']:.2g}" in page


# ---- the planted study ----------------------------------------------------------------------


def test_planted_study(study: Project):
    """Every output as planted: human shares; every simulated row and its coverage
    under answer_start; populations, MAEs (raw and calibrated); the held-out
    temperatures and calibrated distributions; the paired tests (0.01 detected, null
    twin not); the references; the floors and split-half; the report's sentence."""
    respondents = study.read("data/interim/respondents.parquet")
    check_human(study)
    check_answers(study)
    check_cells(study)
    check_temperatures(study)
    check_calibrated(study)
    check_paired(study)
    check_references(study, respondents)
    check_floors(study, respondents)
    check_report(study)


def test_the_plant_separates_what_the_faults_change(study: Project):
    """The plant is strong enough for the fault tests to bite: the all-questions T is
    far from one informative question's held-out T (so a fit that sees the held-out
    question moves it); every other rule reads other numbers on some rows; evaluate's
    unpaired Mann-Whitney misses the planted 0.01."""
    overall = study.json("data/calibrated/temperatures.json")["temperatures"][f"{MODEL}/{TEMPERATURE}"]["overall"]
    assert any(abs(overall - expected_loqo(q)) > 0.1 for q in INFORMATIVE)
    for rule in ("leading_integer", "answer_eot", "first_token"):
        moved = max(float(np.abs(rule_distribution(p.probs, p.coverage, [str(x) for x in study.codes[q]], rule)[0]
                                 - p.probs).max()) for (_, _, q), p in study.rows.items())
        assert moved > 0.01, rule
    mw = study.read("data/eval/mann_whitney.parquet").filter((pl.col("a") == A) & (pl.col("b") == B))
    assert mw["p_value"][0] >= ALPHA


# ---- the faults of the Done-when: each makes the check fail --------------------------------


def test_fault_loqo_sees_the_held_out_question(study: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fault: every held-out question's T is fitted with that question included."""
    from valuesim.calibration import fit

    original = fit.fit_temperature_loqo

    def leaky(*args: object, **kwargs: object) -> object:
        res = original(*args, **kwargs)
        return replace(res, temperatures=np.full_like(res.temperatures, res.overall))

    copy = study.copy(tmp_path / "leaky")
    monkeypatch.setattr(fit, "fit_temperature_loqo", leaky)
    from valuesim.stages import calibrate

    with pe.inside(copy.root):  # the fault lives in this process: fit here, not in workers
        calibrate.run(copy.params, workers=1)
    with pytest.raises(AssertionError, match="leave-one-question-out T of Q"):
        check_temperatures(copy)
    with pytest.raises(AssertionError, match="leave-one-question-out: calibrated value"):
        check_calibrated(copy)


@pytest.mark.parametrize("rule", ["leading_integer", "answer_eot", "first_token"])
def test_fault_answer_rule_switched(study: Project, tmp_path: Path, rule: str, plugin: None):
    """Fault: the run reads another answer rule. The check fails on the answers; they
    are exactly what that rule reads off the planted log-probabilities."""
    copy = study.copy(tmp_path / rule)
    params = pe.write_params(copy.root, answer_rule=rule)
    pe.run_stages(copy, ("simulate",), params)
    with pytest.raises(AssertionError, match=r"answer rule: .* but answer_start reads"):
        check_answers(copy)
    check_answers(copy, rule)
    if rule == "leading_integer":  # and downstream: the MAEs move
        pe.run_stages(copy, ("calibrate", "evaluate"), params)
        with pytest.raises(AssertionError, match="MAE of"):
            check_cells(copy)


def test_fault_mann_whitney_instead_of_the_clustered_test(
    study: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    """Fault: evaluate's paired test is replaced by Mann-Whitney U on the two methods'
    cell errors (the same differences and intervals, the unpaired p-value)."""
    from valuesim.analysis import metrics, paired

    original = paired.paired_test

    def mann_whitney(a: pl.DataFrame, b: pl.DataFrame, value: str = "mae", **kwargs: object) -> paired.PairedResult:
        res = original(a, b, value, **kwargs)
        p = metrics.mann_whitney_bh({"a": a[value].to_numpy(), "b": b[value].to_numpy()})["p_value"][0]
        return replace(res, p=float(p))

    copy = study.copy(tmp_path / "mann_whitney")
    monkeypatch.setattr(paired, "paired_test", mann_whitney)
    pe.run_stages(copy, ("evaluate",))
    with pytest.raises(AssertionError, match=r"planted 0\.01 difference .* was not detected"):
        check_paired(copy)


# ---- the clustered test's level and power, over cheap repeats -----------------------------


REPEATS = 400


def _cells(mae: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"question": [q for q in QUESTIONS for _ in COUNTRIES],
                         "country": [c for _ in QUESTIONS for c in COUNTRIES], "mae": mae})


def test_clustered_test_level_and_power():
    """Repeats of the planted structure (cell errors b ~ U(0.04, 0.20); paired
    differences with question effects and cell noise, ICC 0.4) scored by the paired
    test evaluate uses: at no difference it rejects near the nominal 5% (binomial
    bounds for 400 repeats), at 0.01 nearly always; Mann-Whitney on the same cells
    almost never sees 0.01, and a Wilcoxon over the cells, ignoring the clustering,
    rejects the null far more often than 5%."""
    from valuesim.analysis import paired

    rng = np.random.default_rng(2021)
    nq, nc = len(QUESTIONS), len(COUNTRIES)
    reject = {"null": 0, "power": 0, "mann_whitney": 0, "wilcoxon_null": 0}
    for rep in range(REPEATS):
        base = rng.uniform(*pe.BIAS_RANGE, nq * nc)
        for name, shift in (("null", 0.0), ("power", pe.DIFF)):
            noise = np.repeat(rng.normal(0, pe.SD_QUESTION, nq), nc) + rng.normal(0, pe.SD_CELL, nq * nc)
            other = base + shift + noise
            res = paired.paired_test(_cells(base), _cells(other), n_resamples=99, seed=rep)
            reject[name] += res.p < ALPHA
            if name == "power":
                reject["mann_whitney"] += stats.mannwhitneyu(base, other).pvalue < ALPHA
            else:
                reject["wilcoxon_null"] += stats.wilcoxon(other - base).pvalue < ALPHA
    rate = {k: v / REPEATS for k, v in reject.items()}
    sd = math.sqrt(ALPHA * (1 - ALPHA) / REPEATS)
    assert abs(rate["null"] - ALPHA) <= 3 * sd, rate
    assert rate["power"] >= 0.9, rate
    assert rate["mann_whitney"] <= 0.2, rate
    assert rate["wilcoxon_null"] >= ALPHA + 3 * sd, rate
