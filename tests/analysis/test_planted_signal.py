"""How we know the analysis works: planted signals through calibrate -> evaluate -> report.

tests/planted.py builds simulated answer tables with KNOWN distortions of the human
answer distributions of five countries (its docstring says exactly what is planted)
and runs the real calibrate, evaluate and report stages on them in a tmp project.
Each test states what the stages must recover and why it follows from the plant:

* COMPRESSED (``value``): truth personas averaging exactly to the human distribution,
  each sharpened by the mean-preserving tilt at T0 = 0.5. Tilts compose (T0 then T is
  T0·T), so calibrating at T = 1/T0 = 2 restores the truth exactly: the fitted
  temperature must be 2 for every held-out question, and the calibrated normalized
  variance must equal the human one.
* BIASED (``sociodemographic``): the same truth personas with every mean moved by 0.1
  of the scale range (0.1 ± 20%, drawn per cell): MAE exactly that in every cell.
* NOISE (``fewshot``): N = 100 respondents per country drawn as the pipeline draws
  personas, answering with their own answers: unbiased, error = sampling error at N.
  It must beat BIASED in every country (Wilcoxon across questions, p < 0.01), beat
  every reference, and score what the actual-answer floor at N = 100 says it should.
* NOISE_TWIN (``fewshot_nonat``): an independent second draw; no planted difference
  from NOISE, so the same Wilcoxon assertion must *fail* for that pair.

The demo variant (synthetic population from the shipped aggregates) runs in the unit
suite on 12 target questions (every scale length); the ``realdata`` variant reads the
real WVS-7 files (by path, into a tmp dir) and uses every kept target question.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures.planted import (
    BIASED,
    COMPRESSED,
    COUNTRIES,
    MODEL,
    NOISE,
    NOISE_TWIN,
    UNIT_QUESTIONS,
    Plant,
    PlantedStudy,
    planted_study,
)
from valuesim.analysis.metric_precision import DEFAULT_ATOL as METRIC_ATOL

TEMPERATURE_TOLERANCE = 0.10  # relative, on 1/T0
NVAR_TOLERANCE = 0.02  # absolute, normalized variance
WILCOXON_ALPHA = 0.01
FLOOR_SDS = 2.0  # |noise MAE - floor MAE| <= 2 SD of the floor over resamples


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> PlantedStudy:
    return planted_study(tmp_path_factory.mktemp("planted_demo"), COUNTRIES, Plant(questions=UNIT_QUESTIONS))


@pytest.fixture(scope="module")
def real_study(tmp_path_factory: pytest.TempPathFactory, wvs_dir: Path) -> PlantedStudy:
    return planted_study(tmp_path_factory.mktemp("planted_real"), COUNTRIES, Plant(), wvs_dir=wvs_dir)


@pytest.fixture(params=[
    pytest.param("demo_study", id="demo"),
    pytest.param("real_study", id="real", marks=pytest.mark.realdata),
])
def study(request: pytest.FixtureRequest) -> PlantedStudy:
    return request.getfixturevalue(request.param)


def _key(method: str) -> str:
    return f"{MODEL}/{method}"


def _summary(study: PlantedStudy, method: str) -> dict:
    rows = study.read("data/eval/summary.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("method") == method))
    assert rows.height == 1, f"summary.parquet has {rows.height} rows for {method}"
    return rows.row(0, named=True)


# ---- assertions (also used by the negative controls, to show they can fail) ----------


def assert_temperature_recovered(temps: dict, method: str, t0: float) -> None:
    """Every leave-one-question-out T, their median and the all-question T within
    TEMPERATURE_TOLERANCE of 1/t0."""
    want = 1.0 / t0
    entry = temps[_key(method)]
    off = {q: t for q, t in entry["loqo"].items() if abs(t - want) > TEMPERATURE_TOLERANCE * want}
    assert not off, f"{method}: LOQO temperatures not within 10% of 1/T0 = {want:.3f}: {off}"
    assert abs(entry["loqo_median"] - want) <= TEMPERATURE_TOLERANCE * want
    assert abs(entry["overall"] - want) <= TEMPERATURE_TOLERANCE * want


def assert_better_in_every_country(
    wilcoxon: pl.DataFrame, winner: str, loser: str, countries: tuple[str, ...], n_questions: int,
) -> None:
    """The pair's Wilcoxon row (per country, across questions) names ``winner`` as
    better at p < WILCOXON_ALPHA, in every country."""
    a, b = sorted((winner, loser))
    rows = wilcoxon.filter(
        (pl.col("model") == MODEL) & ~pl.col("vs_reference")
        & (pl.col("method_a") == a) & (pl.col("method_b") == b)
    ).sort("country")
    assert rows["country"].to_list() == sorted(countries)
    assert set(rows["n"].to_list()) == {n_questions}  # every kept question is a pair
    failing = {c: (better, p) for c, better, p in rows.select("country", "better", "p_value").iter_rows()
               if better != winner or not p < WILCOXON_ALPHA}
    assert not failing, f"{winner} not significantly better than {loser} in: {failing}"


def assert_within_floor(mae: float, floor: dict, what: str) -> None:
    diff = abs(mae - floor["mae"])
    assert diff <= FLOOR_SDS * floor["mae_sd"], (
        f"{what}: MAE {mae:.5f} vs actual-answer floor {floor['mae']:.5f} ± {floor['mae_sd']:.5f} "
        f"(n = {floor['n']}): {diff / floor['mae_sd']:.1f} SD apart")


# ---- 1. compression: temperature and variance -----------------------------------------


def test_compressed_method_temperature_is_recovered(study: PlantedStudy):
    """Calibrating at 1/T0 restores the truth personas exactly (tilts compose), so the
    Wasserstein objective has its zero there: every LOQO fit must land on 1/T0."""
    temps = study.json("data/calibrated/temperatures.json")["temperatures"]
    assert sorted(temps[_key(COMPRESSED)]["loqo"]) == sorted(study.kept)
    assert_temperature_recovered(temps, COMPRESSED, study.plant.t0)


def test_compressed_method_calibrated_variance_matches_humans(study: PlantedStudy):
    """At T = 1/T0 the calibrated population *is* the human distribution, so its
    normalized variance is the human one: in the summary (a mean over cells) and, the
    stronger statement, cell by cell (mean |nvar_cal - nvar_human|)."""
    s = _summary(study, COMPRESSED)
    assert abs(s["nvar_cal"] - s["nvar_human"]) <= NVAR_TOLERANCE
    cells = study.read("data/eval/cells.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("method") == COMPRESSED))
    assert cells.height == len(study.countries) * len(study.kept)
    assert (cells["nvar_cal"] - cells["nvar_human"]).abs().mean() <= NVAR_TOLERANCE


def test_compressed_method_is_recovered_exactly(study: PlantedStudy):
    """The plant is exact, so only the fit's own tolerance (a bounded search to 1e-4 in
    log T) separates the result from 1/T0 and the calibrated cells from the human ones.
    The 10% / 0.02 tolerances above are loose: they would still pass if calibration
    tilted each country's *average* instead of each persona (measured on the demo:
    T = 1.93, mean |nvar_cal - nvar_human| = 0.006); these tight ones would not."""
    want = 1.0 / study.plant.t0
    temps = study.json("data/calibrated/temperatures.json")["temperatures"][_key(COMPRESSED)]
    assert max(abs(t - want) for t in temps["loqo"].values()) <= 1e-3 * want
    cells = study.read("data/eval/cells.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("method") == COMPRESSED))
    assert (cells["nvar_cal"] - cells["nvar_human"]).abs().max() <= 1e-4
    assert cells["wasserstein_cal"].max() <= 1e-4


# ---- 2. bias vs sampling noise: MAE and Wilcoxon -----------------------------------------


def test_biased_method_scores_its_planted_bias(study: PlantedStudy):
    """Every persona mean of BIASED was moved by b * range, so every cell's MAE is
    exactly its b (before and after the mean-preserving calibration), and the summary
    MAE is their mean per country, then over countries; COMPRESSED kept the truth's
    means, so its MAE is 0."""
    cells = study.read("data/eval/cells.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("method") == BIASED))
    assert cells.height == len(study.bias)
    for c, q, mae, mae_cal in cells.select("country", "question", "mae", "mae_cal").iter_rows():
        assert mae == pytest.approx(study.bias[(c, q)], abs=1e-9)
        assert mae_cal == pytest.approx(study.bias[(c, q)], abs=1e-9)
    want = np.mean([np.mean([study.bias[(c, q)] for q in study.kept]) for c in study.countries])
    assert _summary(study, BIASED)["mae"] == pytest.approx(want, abs=1e-9)
    assert abs(want - study.plant.bias) < 0.2 * study.plant.bias
    assert _summary(study, COMPRESSED)["mae"] < 1e-9


def test_unbiased_noisy_method_beats_bias_and_references(study: PlantedStudy):
    """NOISE errs only by sampling error at N = 100 (about 0.02 of the range), BIASED by
    0.1 in every cell: NOISE has the lower MAE overall, is better in every country at
    p < 0.01 (every question's difference has the same sign; with n questions the
    smallest two-sided p is 2/2^n, so n must be at least 8), and beats the three
    references too."""
    noise = _summary(study, NOISE)["mae"]
    assert noise < _summary(study, BIASED)["mae"]
    maes = study.json("reports/metrics.json")["mae"]
    refs = {k: v for k, v in maes.items() if k.startswith("reference/")}
    assert set(refs) == {"reference/midpoint", "reference/uniform", "reference/other_countries"}
    assert all(noise < v for v in refs.values()), (noise, refs)
    # ranking: the exactly unbiased COMPRESSED (MAE 0), the two noisy unbiased draws, BIASED
    ranked = study.read("data/eval/summary.parquet").filter(pl.col("model") == MODEL).sort("mae")["method"]
    assert ranked[0] == COMPRESSED
    assert set(ranked[1:3]) == {NOISE, NOISE_TWIN}
    assert ranked[-1] == BIASED
    assert len(study.kept) >= 8, "fewer than 8 questions: p < 0.01 per country is unattainable"
    wilcoxon = study.read("data/eval/wilcoxon.parquet")
    assert_better_in_every_country(wilcoxon, NOISE, BIASED, study.countries, len(study.kept))
    assert_better_in_every_country(wilcoxon, NOISE_TWIN, BIASED, study.countries, len(study.kept))


# ---- 3. the actual-answer floor -----------------------------------------------------


def test_actual_answer_floor_matches_the_noise_method(study: PlantedStudy):
    """The floor simulates exactly what NOISE is (N respondents drawn like personas,
    answering their own answers), so NOISE's MAE is one draw from the floor's
    distribution at N = 100: within 2 SD of its mean."""
    floors = study.json("reports/metrics.json")["actual_answer_floor"]
    floor = floors[_key(NOISE)]
    assert floor["n"] == study.plant.n_noise
    assert 0 < floor["mae_sd"] < floor["mae"]
    s = _summary(study, NOISE)
    assert s["n_personas"] == study.plant.n_noise
    assert s["answer_floor_mae"] == pytest.approx(floor["mae"], abs=METRIC_ATOL)
    assert_within_floor(s["mae"], floor, NOISE)


# ---- 4. the report ------------------------------------------------------------------


def test_report_renders_with_the_references(study: PlantedStudy):
    page = (study.root / "reports/index.html").read_text()
    for text in ("midpoint", "uniform", "other_countries", "human split-half",
                 html.escape(f"actual-answer floor (n respondents' own answers), n = {study.plant.n_noise}"), *(m for m in (COMPRESSED, BIASED, NOISE))):
        assert text in page, text
    assert "data:image/png;base64," in page


# ---- negative controls: the same assertions fail where nothing is planted -------------


def test_negative_controls(study: PlantedStudy):
    """Each check above can fail:

    * the fitted T (= 2 for T0 = 0.5) is not within 10% of 1/T0' for T0' = 0.6 (1.67);
    * before calibration the compressed cells' variances are off by more than 0.02 on
      average (the compression is visible to the variance check);
    * two independent unbiased draws (NOISE vs NOISE_TWIN) are *not* significantly
      different in every country;
    * NOISE's MAE does not match the floor at the wrong N (10, the COMPRESSED run's).
    """
    temps = study.json("data/calibrated/temperatures.json")["temperatures"]
    with pytest.raises(AssertionError):
        assert_temperature_recovered(temps, COMPRESSED, 0.6)

    cells = study.read("data/eval/cells.parquet").filter(
        (pl.col("model") == MODEL) & (pl.col("method") == COMPRESSED))
    assert (cells["nvar"] - cells["nvar_human"]).abs().mean() > NVAR_TOLERANCE

    wilcoxon = study.read("data/eval/wilcoxon.parquet")
    with pytest.raises(AssertionError, match="not significantly better"):
        assert_better_in_every_country(wilcoxon, NOISE, NOISE_TWIN, study.countries, len(study.kept))

    floors = study.json("reports/metrics.json")["actual_answer_floor"]
    wrong = floors[_key(COMPRESSED)]
    assert wrong["n"] == 2 * study.plant.n_pairs
    with pytest.raises(AssertionError, match="SD apart"):
        assert_within_floor(_summary(study, NOISE)["mae"], wrong, NOISE)


def test_planted_tables_are_what_the_docstrings_say(study: PlantedStudy):
    """The plant itself, checked from the written tables: COMPRESSED personas average
    to the human mean (the tilt keeps each truth persona's mean), each BIASED persona
    sits exactly b * range from its COMPRESSED twin, on one side per cell, and NOISE
    has N personas per country answering one-hot."""
    human = study.read("data/human/distributions.parquet").with_columns(
        (pl.col("code") * pl.col("share")).alias("x")).group_by("country", "question").agg(
        pl.col("x").sum().alias("human_mean"), pl.col("code").min().alias("lo"),
        pl.col("code").max().alias("hi"))

    def persona_means(method: str) -> pl.DataFrame:
        a = study.read(f"data/simulated/{MODEL}/{method}/answers.parquet")
        mean = [float(np.dot(c, p)) for c, p in a.select("codes", "probs").iter_rows()]
        return a.select("persona_id", "country", "question").with_columns(pl.Series("mean", mean))

    both = persona_means(COMPRESSED).join(persona_means(BIASED), on=["persona_id", "country", "question"],
                                          suffix="_biased").join(human, on=["country", "question"])
    assert both.height == len(study.countries) * len(study.kept) * 2 * study.plant.n_pairs
    per_cell = both.group_by("country", "question").agg(
        pl.col("mean").mean(), pl.col("human_mean").first(),
        ((pl.col("mean_biased") - pl.col("mean")) / (pl.col("hi") - pl.col("lo"))).alias("shift"))
    np.testing.assert_allclose(per_cell["mean"], per_cell["human_mean"], atol=1e-9)
    for c, q, shifts in per_cell.select("country", "question", "shift").iter_rows():
        np.testing.assert_allclose(np.abs(shifts), study.bias[(c, q)], atol=1e-9)
        assert len(set(np.sign(shifts))) == 1

    noise = study.read(f"data/simulated/{MODEL}/{NOISE}/answers.parquet")
    per_country = noise.group_by("country").agg(pl.col("persona_id").n_unique())
    assert sorted(per_country["persona_id"].to_list()) == [study.plant.n_noise] * len(study.countries)
    probs = noise["probs"].to_list()
    assert all(max(p) == 1.0 and sum(p) == 1.0 for p in probs)
