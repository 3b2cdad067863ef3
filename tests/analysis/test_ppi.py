"""PPI++ for a mean (valuesim.analysis.ppi): the formulas by hand, ppi_py itself, planted
and useless predictors, and the pilot-size planner (`valuesim plan --pilot-corr`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest

from tests.fixtures.cli import run_cli
from valuesim.analysis.ppi import pilot_size, ppi_mean, ppi_width
from valuesim.errors import ConfigError

Z90 = NormalDist().inv_cdf(0.95)  # two-sided 0.9


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _var_pop(xs: list[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)


def test_ppi_equals_a_hand_computation_on_a_small_weighted_example() -> None:
    y = [1.0, 3.0, 2.0, 4.0, 2.0]
    yhat = [1.5, 2.5, 2.0, 3.5, 2.5]
    yhat_u = [2.0, 3.0, 1.5, 2.5, 3.5, 2.0]
    w_raw = [1.0, 2.0, 0.5, 1.5, 1.0]
    wu_raw = [1.0, 1.0, 2.0, 0.5, 1.0, 1.5]
    n, big_n = len(y), len(yhat_u)
    # weights normalised to mean 1 (ppi_py's normalisation)
    w = [x / sum(w_raw) * n for x in w_raw]
    wu = [x / sum(wu_raw) * big_n for x in wu_raw]
    # lam: gradients at the lam = 1 estimate t1; population covariance over the
    # pilot, sample variance of all predictions' gradients, times (1 + n/N); clipped
    t1 = _mean([a * b for a, b in zip(wu, yhat_u, strict=True)]) + _mean(
        [a * (b - c) for a, b, c in zip(w, y, yhat, strict=True)])
    g = [a * (b - t1) for a, b in zip(w, y, strict=True)]
    h = [a * (b - t1) for a, b in zip(w, yhat, strict=True)]
    hu = [a * (b - t1) for a, b in zip(wu, yhat_u, strict=True)]
    cov = _mean([(a - _mean(g)) * (b - _mean(h)) for a, b in zip(g, h, strict=True)])
    allh = h + hu
    var = sum((x - _mean(allh)) ** 2 for x in allh) / (len(allh) - 1)
    lam = min(max(cov / ((1 + n / big_n) * var), 0.0), 1.0)
    # point estimate: lam * weighted mean of the unlabeled predictions + weighted mean
    # of the rectifier Y - lam * Yhat
    m_u = _mean([a * b for a, b in zip(wu, yhat_u, strict=True)])
    rect = [b - lam * c for b, c in zip(y, yhat, strict=True)]
    r = _mean([a * b for a, b in zip(w, rect, strict=True)])
    theta = lam * m_u + r
    # variance: each weighted mean linearised around its own value
    v = (_var_pop([a * (b - r) for a, b in zip(w, rect, strict=True)]) / n
         + lam**2 * _var_pop([a * (b - m_u) for a, b in zip(wu, yhat_u, strict=True)]) / big_n)
    half = Z90 * math.sqrt(v)
    ybar = _mean([a * b for a, b in zip(w, y, strict=True)])
    c_half = Z90 * math.sqrt(_var_pop([a * (b - ybar) for a, b in zip(w, y, strict=True)]) / n)

    res = ppi_mean(y, yhat, yhat_u, w_raw, wu_raw, level=0.9)
    assert 0 < lam < 1  # the example exercises the tuning, not a clip
    assert res.lam == pytest.approx(lam, rel=1e-12)
    assert res.estimate == pytest.approx(theta, rel=1e-12)
    assert (res.low, res.high) == pytest.approx((theta - half, theta + half), rel=1e-9)
    assert res.classical_estimate == pytest.approx(ybar, rel=1e-12)
    assert (res.classical_low, res.classical_high) == pytest.approx((ybar - c_half, ybar + c_half), rel=1e-9)
    assert res.effective_n == pytest.approx(n * (c_half / half) ** 2, rel=1e-9)
    # weighted Pearson correlation of Y and Yhat in the pilot
    my, mh = _mean([a * b for a, b in zip(w, y, strict=True)]), _mean([a * b for a, b in zip(w, yhat, strict=True)])
    sxy = _mean([a * (b - my) * (c - mh) for a, b, c in zip(w, y, yhat, strict=True)])
    sxx = _mean([a * (b - my) ** 2 for a, b in zip(w, y, strict=True)])
    syy = _mean([a * (c - mh) ** 2 for a, c in zip(w, yhat, strict=True)])
    assert res.correlation == pytest.approx(sxy / math.sqrt(sxx * syy), rel=1e-12)
    assert (res.n, res.n_unlabeled, res.level) == (5, 6, 0.9)


def test_equal_weights_give_ppi_py_s_own_interval_and_lambda() -> None:
    import ppi_py
    from ppi_py.ppi import _calc_lam_glm

    rng = np.random.default_rng(3)
    y = rng.integers(1, 11, 80).astype(float)
    yhat = y + rng.normal(0.8, 1.5, 80)
    yhat_u = rng.integers(1, 11, 900) + rng.normal(0.8, 1.5, 900)
    for level in (0.8, 0.9, 0.95):
        res = ppi_mean(y, yhat, yhat_u, level=level)
        low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=1 - level)
        c_low, c_high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=1 - level, lam=0)
        assert (res.low, res.high) == pytest.approx((low[0], high[0]), rel=1e-12)
        assert (res.classical_low, res.classical_high) == pytest.approx((c_low[0], c_high[0]), rel=1e-12)
    assert res.estimate == pytest.approx(float(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u)[0]))
    t1 = yhat_u.mean() + (y - yhat).mean()
    lam = _calc_lam_glm(y - t1, yhat - t1, yhat_u - t1, np.eye(1), clip=True)
    assert res.lam == pytest.approx(float(lam), rel=1e-12)


def test_with_weights_the_estimate_and_lambda_are_ppi_py_s_and_only_the_variance_is_centred() -> None:
    import ppi_py

    rng = np.random.default_rng(4)
    y = rng.integers(1, 11, 60).astype(float)
    yhat = y + rng.normal(1.0, 2.0, 60)
    yhat_u = rng.integers(1, 11, 500) + rng.normal(1.0, 2.0, 500)
    w, w_u = rng.uniform(0.2, 5, 60), rng.uniform(0.2, 5, 500)
    res = ppi_mean(y, yhat, yhat_u, w, w_u)
    assert res.estimate == pytest.approx(
        float(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, w=w, w_unlabeled=w_u)[0]), rel=1e-12)
    # ppi_py's uncentred standard error also counts the spread of the weights on a
    # 1-10 scale: the centred (delta-method) interval is narrower here
    low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.1, lam=res.lam, w=w, w_unlabeled=w_u)
    assert res.width < float(high[0] - low[0])
    c_low, c_high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.1, lam=0, w=w)
    assert res.classical_width < float(c_high[0] - c_low[0])


@pytest.mark.parametrize("noise_sd", [0.5, 1.0])
def test_a_planted_predictor_shrinks_the_width_to_the_effective_n_the_formula_predicts(
    noise_sd: float,
) -> None:
    # Y ~ N(0, 1), Yhat = Y + N(0, s^2): rho^2 = 1 / (1 + s^2), and PPI++ at the optimal
    # lam is worth n / (1 - rho^2 N / (n + N)) pilot respondents. lam is estimated from
    # the pilot (ppi_py's estimate has sd ~ 0.08 at n = 200), which costs a share of the
    # gain that shrinks as 1/n: about 3-4% of the effective n at n = 200 and rho^2 = 0.8,
    # under 1% at n = 1,000
    rng = np.random.default_rng(int(noise_sd * 10))
    n, big_n, repeats = 1_000, 50_000, 60
    rho2 = 1 / (1 + noise_sd**2)
    predicted = n / (1 - rho2 * big_n / (n + big_n))
    effective, widths, ratios = [], [], []
    for _ in range(repeats):
        y = rng.normal(0, 1, n)
        y_u = rng.normal(0, 1, big_n)
        res = ppi_mean(y, y + rng.normal(0, noise_sd, n), y_u + rng.normal(0, noise_sd, big_n))
        effective.append(res.effective_n)
        widths.append(res.width)
        ratios.append(res.width / res.classical_width)
    assert np.mean(effective) == pytest.approx(predicted, rel=0.04)
    # the width is that of a classical interval from `predicted` respondents (sd 1)
    assert np.mean(widths) == pytest.approx(2 * Z90 / math.sqrt(predicted), rel=0.03)
    assert np.mean(ratios) == pytest.approx(math.sqrt(n / predicted), rel=0.03)


def test_a_useless_predictor_keeps_the_classical_width() -> None:
    rng = np.random.default_rng(7)
    n, big_n = 100, 2_000
    ratios, lams = [], []
    for _ in range(200):
        y = rng.integers(1, 5, n).astype(float)
        res = ppi_mean(y, rng.integers(1, 5, n).astype(float), rng.integers(1, 5, big_n).astype(float))
        ratios.append(res.width / res.classical_width)
        lams.append(res.lam)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)
    assert np.mean(lams) < 0.1  # clipped at 0 about half of the time


def test_constant_predictions_fall_back_to_the_classical_interval() -> None:
    y = np.arange(12, dtype=float) % 4
    res = ppi_mean(y, np.full(12, 2.0), np.full(50, 2.0))
    assert res.lam == 0
    assert (res.low, res.high) == pytest.approx((res.classical_low, res.classical_high))
    assert math.isnan(res.correlation)


@pytest.mark.parametrize(("args", "message"), [
    ({"level": 1.2}, "level 1.2"),
    ({"yhat": [1.0, 2.0]}, "3 answers but 2 predictions"),
    ({"w": [1.0, 0.0, 1.0]}, "weights <= 0"),
    ({"y": [1.0, float("nan"), 2.0]}, "non-finite"),
])
def test_bad_arguments_fail_in_one_line(args: dict[str, object], message: str) -> None:
    kw: dict[str, object] = {"y": [1.0, 2.0, 3.0], "yhat": [1.0, 2.0, 2.5], "yhat_unlabeled": [1.0, 2.0, 3.0],
                             **args}
    with pytest.raises(ConfigError, match=message):
        ppi_mean(**kw)  # type: ignore[arg-type]


def test_pilot_size_equals_a_hand_computation() -> None:
    # classical: W = 2 z sd / sqrt(n)  ->  n = (2 * 1.6449 * 0.5 / 0.1)^2 = 270.55 -> 271
    # PPI++, unlimited unlabeled: n = 270.55 * (1 - 0.6^2) = 173.15 -> 174
    plan = pilot_size(0.6, 0.1, sd=0.5, level=0.9)
    assert (plan.n_classical, plan.n_ppi) == (271, 174)
    # N = 1000: a = (0.1 / (2 * 1.6449 * 0.5))^2 = 0.0036962; a n^2 + (a N - 1) n - N (1 - rho^2) = 0
    # n = (-2.6962 + sqrt(2.6962^2 + 4 * 3.6962 * 0.64)) / (2 * 0.0036962) = 188.6 -> 189
    plan = pilot_size(0.6, 0.1, sd=0.5, level=0.9, n_unlabeled=1000)
    assert plan.n_ppi == 189
    assert ppi_width(189, 0.6, 0.5, 0.9, 1000) <= 0.1 < ppi_width(188, 0.6, 0.5, 0.9, 1000)
    # scale points: sd 2.5 points, width 0.5 points is the same question as 0.5 / 0.1
    assert pilot_size(0.6, 0.5, sd=2.5).n_ppi == 174
    # no correlation: the model is worth nothing
    zero = pilot_size(0.0, 0.1)
    assert zero.n_ppi == zero.n_classical
    with pytest.raises(ConfigError, match="strictly between -1 and 1"):
        pilot_size(1.0, 0.1)


def test_plan_command_answers_how_many_humans(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["plan", "--pilot-corr", "0.6", "--target-width", "0.1", "--json"], capsys)
    assert code == 0
    got = json.loads(out)
    assert (got["n_ppi"], got["n_classical"], got["n_unlabeled"]) == (174, 271, None)
    code, out, _ = run_cli(["plan", "--pilot-corr", "0.6", "--target-width", "0.1",
                            "--n-unlabeled", "1000", "--level", "0.9"], capsys)
    assert code == 0
    assert "pilot with PPI++: 189 respondents" in out
    assert "classical:        271 respondents" in out
    code, _, err = run_cli(["plan", "--pilot-corr", "0.6"], capsys)
    assert code == 2
    assert err.strip() == "error: pilot planning needs both --pilot-corr R and --target-width W"


def test_importing_the_module_does_not_import_ppi_py() -> None:
    code = "import sys, valuesim.analysis.ppi\nassert 'ppi_py' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)
