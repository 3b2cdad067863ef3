"""The synthetic demo population generated from the shipped aggregates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures.paths import ROOT
from valuesim.errors import ConfigError, DataError
from valuesim.survey.bank import Answer, Item, QuestionBank
from valuesim.survey.demo.aggregates import BinnedMarginal, CategoricalMarginal, DemoAggregates
from valuesim.survey.demo.copula import discretize, expected_score_correlation
from valuesim.survey.demo.population import fit, generate, load_aggregates, sample

SHIPPED = ROOT / "data/demo/aggregates.json"
COUNTRIES = ["JPN", "DEU", "ZWE"]
N = 3000


@pytest.fixture(scope="module")
def agg() -> DemoAggregates:
    return load_aggregates(SHIPPED)


@pytest.fixture(scope="module")
def population(bank: QuestionBank) -> pl.DataFrame:
    return generate(SHIPPED, bank, N, seed=7, countries=COUNTRIES)


def _latent(agg: DemoAggregates, iso: str, a: str, b: str) -> float:
    i, j = sorted((agg.items.index(a), agg.items.index(b)))
    p = len(agg.items)
    # strict upper triangle, row-major
    k = i * p - i * (i + 1) // 2 + (j - i - 1)
    return agg.countries[iso].correlation[k]


def test_frame_follows_the_respondents_contract(population: pl.DataFrame, bank: QuestionBank):
    assert population.columns == ["country", "respondent_id", "weight", *(i.id for i in bank.items)]
    assert population.schema["country"] == pl.Utf8
    assert population.schema["respondent_id"] == pl.Utf8
    assert population.schema["weight"] == pl.Float64
    assert all(population.schema[i.id] == pl.Int64 for i in bank.items)
    assert population.height == N * len(COUNTRIES)
    assert population.get_column("respondent_id").is_unique().all()
    assert population.get_column("respondent_id").to_list()[:2] == [
        "JPN-demo-000001",
        "JPN-demo-000002",
    ]
    assert (population.get_column("weight") == 1.0).all()
    for item in bank.items:
        values = population.get_column(item.id).drop_nulls()
        if item.numeric:
            assert values.min() >= 15
            assert values.max() <= 100
        else:
            assert set(values.unique().to_list()) <= set(item.codes), item.id


def test_marginals_match_the_aggregates(
    population: pl.DataFrame, agg: DemoAggregates, bank: QuestionBank
):
    worst = 0.0
    for iso in COUNTRIES:
        rows = population.filter(pl.col("country") == iso)
        for item in bank.items:
            m = agg.countries[iso].marginals[item.id]
            values = rows.get_column(item.id).drop_nulls().to_numpy()
            if m is None:
                assert len(values) == 0
                continue
            expected = np.asarray(m.probs) / sum(m.probs)
            if isinstance(m, CategoricalMarginal):
                observed = np.asarray([(values == c).mean() for c in m.codes])
            else:
                observed = np.asarray(
                    [((values >= lo) & (values <= hi)).mean() for lo, hi in m.bins]
                )
            # five standard errors of a share, plus the file's 4-decimal rounding
            bound = 5 * np.sqrt(expected * (1 - expected) / len(values)) + 1e-3
            assert np.all(np.abs(observed - expected) <= bound), (iso, item.id)
            worst = max(worst, float(np.abs(observed - expected).max()))
    assert worst > 0  # sampled, not copied


def test_missing_shares_are_reproduced(population: pl.DataFrame, agg: DemoAggregates):
    for iso in COUNTRIES:
        rows = population.filter(pl.col("country") == iso)
        for item, share in agg.countries[iso].missing.items():
            if item not in rows.columns:
                continue
            # exactly round(share * n) answers are blanked out
            assert rows.get_column(item).null_count() == round(share * N), (iso, item)


def test_missing_counts_add_up_by_reason(bank: QuestionBank):
    s = sample(SHIPPED, bank, 500, seed=3, countries=["JPN", "COL"])
    nulls = {
        (iso, item.id): s.respondents.filter(pl.col("country") == iso)
        .get_column(item.id)
        .null_count()
        for iso in ("JPN", "COL")
        for item in bank.items
    }
    counted = s.missing_counts.group_by("country", "item").agg(pl.col("n").sum())
    assert dict(
        zip(zip(counted["country"], counted["item"], strict=True), counted["n"], strict=True)
    ) == {k: v for k, v in nulls.items() if v > 0}
    assert set(s.missing_counts.get_column("reason").unique()) <= {
        "dont_know",
        "no_answer",
        "not_applicable",
        "not_asked",
        "missing",
    }
    assert (s.missing_counts.get_column("n") > 0).all()


@pytest.mark.parametrize("iso", ["JPN", "DEU"])
def test_religiosity_correlation_is_preserved(
    population: pl.DataFrame, agg: DemoAggregates, iso: str
):
    # Q164 importance of God (10 = very important) vs Q6 importance of religion
    # (1 = very important): strongly negative where religiosity varies (not in ZWE,
    # where nearly everyone gives the top answer to both)
    latent = _latent(agg, iso, "Q164", "Q6")
    assert latent < -0.3
    rows = population.filter(pl.col("country") == iso).drop_nulls(["Q164", "Q6"])
    spearman = rows.select(pl.corr("Q164", "Q6", method="spearman")).item()
    assert np.sign(spearman) == np.sign(latent)
    # the normal-score correlation the copula implies for these two marginals
    m164 = agg.countries[iso].marginals["Q164"]
    m6 = agg.countries[iso].marginals["Q6"]
    assert m164 is not None
    assert m6 is not None
    implied = expected_score_correlation(latent, discretize(m164.probs), discretize(m6.probs))
    assert abs(spearman - implied) < 0.06


def test_refitting_a_large_sample_recovers_the_aggregates(agg: DemoAggregates, bank: QuestionBank):
    big = generate(SHIPPED, bank, 20000, seed=11, countries=["TWN"])
    refit = fit(big, bank).countries["TWN"]
    original = agg.countries["TWN"]
    for item in agg.items:
        a, b = original.marginals[item], refit.marginals[item]
        if a is None:
            assert b is None
            continue
        assert b is not None
        if isinstance(a, BinnedMarginal):
            continue  # the refit's bins start at the sample's minimum age
        assert np.abs(np.asarray(a.probs) - np.asarray(b.probs)).max() < 0.015, item
    diff = np.abs(np.asarray(original.correlation) - np.asarray(refit.correlation))
    assert diff.mean() < 0.02
    assert diff.max() < 0.1


def test_same_seed_same_population_other_seed_differs(bank: QuestionBank):
    a = generate(SHIPPED, bank, 200, seed=5, countries=["JPN", "TWN"])
    b = generate(SHIPPED, bank, 200, seed=5, countries=["JPN", "TWN"])
    c = generate(SHIPPED, bank, 200, seed=6, countries=["JPN", "TWN"])
    assert a.equals(b)
    assert not a.equals(c)
    # a country's rows do not depend on which other countries are generated with it
    alone = generate(SHIPPED, bank, 200, seed=5, countries=["TWN"])
    assert alone.equals(a.filter(pl.col("country") == "TWN"))


def test_all_countries_by_default(agg: DemoAggregates, bank: QuestionBank):
    frame = generate(agg, bank, 5, seed=0)
    assert frame.get_column("country").unique().sort().to_list() == sorted(agg.countries)


def test_unknown_country_is_a_data_error(bank: QuestionBank):
    with pytest.raises(DataError, match=r"no demo aggregates for countries \['XXX'\]"):
        generate(SHIPPED, bank, 10, seed=0, countries=["JPN", "XXX"])


def test_missing_file_is_a_data_error(tmp_path: Path, bank: QuestionBank):
    with pytest.raises(DataError, match="not found"):
        generate(tmp_path / "nope.json", bank, 10, seed=0)


def _broken(tmp_path: Path, edit) -> Path:
    data = json.loads(SHIPPED.read_text())
    edit(data)
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(data))
    return p


def _set(path: list, value):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _set(["synthetic_demo"], False),
        _set(["format"], "something-else/9"),
        _set(["countries", "JPN", "correlation"], [0.1, 0.2]),
        _set(["countries", "JPN", "marginals", "Q6", "probs"], [0.5, 0.5, 0.5, 0.5]),
        _set(["countries", "JPN", "missing", "Q6"], 1.5),
        _set(["countries", "JPN", "rows"], [[1, 2, 3]]),
        _set(["countries", "JPN", "marginals", "Q262"], {"codes": [1, 2], "probs": [0.5, 0.5]}),
        _set(["countries"], {}),
    ],
    ids=[
        "not-synthetic",
        "format",
        "corr-length",
        "probs-sum",
        "missing-share",
        "extra-key",
        "age-not-binned",
        "no-countries",
    ],
)
def test_malformed_aggregates_are_a_data_error(tmp_path: Path, bank: QuestionBank, edit):
    with pytest.raises(DataError, match="malformed"):
        generate(_broken(tmp_path, edit), bank, 10, seed=0)


def test_invalid_json_is_a_data_error(tmp_path: Path, bank: QuestionBank):
    p = tmp_path / "bad.json"
    p.write_text('{"synthetic_demo": true,')
    with pytest.raises(DataError, match="malformed"):
        generate(p, bank, 10, seed=0)


def test_bank_item_without_aggregates_is_a_data_error(bank: QuestionBank):
    extra = Item(
        id="Q999",
        roles=["target"],
        label="new",
        text="A new question?",
        answers=[Answer(code=1, label="yes"), Answer(code=2, label="no")],
    )
    bigger = QuestionBank(version="x", source="x", items=[*bank.items, extra])
    with pytest.raises(DataError, match=r"lack bank items \['Q999'\]"):
        generate(SHIPPED, bigger, 10, seed=0)


def test_bank_codes_that_disagree_are_a_data_error(bank: QuestionBank):
    items = [
        i.model_copy(update={"answers": i.answers[:2]}) if i.id == "Q6" else i for i in bank.items
    ]
    with pytest.raises(DataError, match="Q6 have codes"):
        generate(SHIPPED, QuestionBank(version="x", source="x", items=items), 10, seed=0)


@pytest.mark.parametrize(("n", "seed"), [(0, 0), (-5, 0), (10, -1)])
def test_bad_sizes_and_seeds_are_config_errors(bank: QuestionBank, n: int, seed: int):
    with pytest.raises(ConfigError):
        generate(SHIPPED, bank, n, seed=seed, countries=["JPN"])
