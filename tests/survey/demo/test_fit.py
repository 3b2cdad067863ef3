"""Fitting the demo aggregates: on a population with known structure, and on real files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from valuesim.errors import DataError
from valuesim.survey.bank import Answer, Item, QuestionBank
from valuesim.survey.demo.aggregates import BinnedMarginal, CategoricalMarginal
from valuesim.survey.demo.copula import nearest_correlation
from valuesim.survey.demo.population import fit, generate, write_aggregates
from valuesim.survey.readers import ExtractResult

# ---- a population drawn here from a known Gaussian copula (no survey rows) ----

TRUE_LATENT = np.array(
    [
        [1.0, 0.6, -0.4, 0.3],
        [0.6, 1.0, -0.2, 0.1],
        [-0.4, -0.2, 1.0, 0.0],
        [0.3, 0.1, 0.0, 1.0],
    ]
)
CUTS = {
    "A": [-1.5, -1.0, -0.5, 0.0, 0.3, 0.6, 0.9, 1.2, 1.6],  # 10-point scale
    "B": [0.2],  # yes/no
    "C": [-0.8, 0.1, 1.0],  # 4-point scale
}


def _item(item_id: str, n_codes: int) -> Item:
    return Item(
        id=item_id,
        roles=["target"],
        label=item_id,
        text=f"Question {item_id}?",
        answers=[Answer(code=c, label=str(c)) for c in range(1, n_codes + 1)],
    )


SMALL_BANK = QuestionBank(
    version="test",
    source="test",
    items=[
        _item("A", 10),
        _item("B", 2),
        _item("C", 4),
        Item(id="AGE", roles=["sociodemographic"], label="Age", text="Age?", numeric=True),
    ],
)


@pytest.fixture(scope="module")
def known() -> pl.DataFrame:
    rng = np.random.default_rng(42)
    n = 30000
    z = rng.standard_normal((n, 4)) @ np.linalg.cholesky(TRUE_LATENT).T
    cols: dict[str, np.ndarray] = {
        k: np.searchsorted(CUTS[k], z[:, j]) + 1 for j, k in enumerate(("A", "B", "C"))
    }
    cols["AGE"] = np.clip(np.round(47 + 17 * z[:, 3]), 18, 95).astype(int)
    frame = pl.DataFrame(
        {
            "country": ["AAA"] * n,
            "respondent_id": [f"AAA-{i}" for i in range(n)],
            "weight": rng.uniform(0.5, 2.0, n),
            **{k: pl.Series(v, dtype=pl.Int64) for k, v in cols.items()},
        }
    )
    # 10% of A and 3% of C missing completely at random
    drop_a = rng.random(n) < 0.10
    drop_c = rng.random(n) < 0.03
    return frame.with_columns(
        pl.when(pl.Series(drop_a)).then(None).otherwise(pl.col("A")).alias("A"),
        pl.when(pl.Series(drop_c)).then(None).otherwise(pl.col("C")).alias("C"),
    )


def _weighted_shares(frame: pl.DataFrame, item: str, codes: list[int]) -> np.ndarray:
    answered = frame.filter(pl.col(item).is_not_null())
    w = answered.get_column("weight").to_numpy()
    v = answered.get_column(item).to_numpy()
    return np.asarray([w[v == c].sum() for c in codes]) / w.sum()


def test_fit_recovers_known_marginals_and_latent_correlations(known: pl.DataFrame):
    agg = fit(known, SMALL_BANK, source="test", fitted=dt.date(2024, 1, 2))
    assert agg.synthetic_demo is True
    assert agg.fitted == "2024-01-02"
    assert agg.items == ["A", "B", "C", "AGE"]
    assert agg.numeric_items == ["AGE"]
    c = agg.countries["AAA"]
    assert c.n == known.height
    for item, n_codes in (("A", 10), ("B", 2), ("C", 4)):
        m = c.marginals[item]
        assert isinstance(m, CategoricalMarginal)
        expected = _weighted_shares(known, item, list(range(1, n_codes + 1)))
        np.testing.assert_allclose(m.probs, expected, atol=6e-5)
    w = known.get_column("weight").to_numpy()
    a_missing = w[known.get_column("A").is_null().to_numpy()].sum() / w.sum()
    assert c.missing["A"] == pytest.approx(a_missing, abs=6e-5)
    assert c.missing["B"] == 0
    age = c.marginals["AGE"]
    assert isinstance(age, BinnedMarginal)
    assert age.bins[0] == (18, 19)
    assert age.bins[-1] == (95, 95)
    p = 4
    latent = np.eye(p)
    latent[np.triu_indices(p, 1)] = c.correlation
    latent = latent + np.triu(latent, 1).T
    # discretization attenuates the observed correlations; the bridge undoes it
    np.testing.assert_allclose(latent, TRUE_LATENT, atol=0.04)
    observed_ab = known.drop_nulls(["A", "B"]).select(pl.corr("A", "B")).item()
    assert observed_ab < TRUE_LATENT[0, 1] - 0.05


def test_generate_reproduces_a_fitted_population(known: pl.DataFrame, tmp_path: Path):
    path = write_aggregates(fit(known, SMALL_BANK), tmp_path / "agg.json")
    synthetic = generate(path, SMALL_BANK, 30000, seed=1)
    assert synthetic.get_column("respondent_id")[0] == "AAA-demo-000001"
    for item, n_codes in (("A", 10), ("C", 4)):
        codes = list(range(1, n_codes + 1))
        np.testing.assert_allclose(
            _weighted_shares(synthetic, item, codes),
            _weighted_shares(known, item, codes),
            atol=0.012,
        )
    for a, b in (("A", "B"), ("A", "C"), ("B", "AGE")):
        real = known.drop_nulls([a, b]).select(pl.corr(a, b, method="spearman")).item()
        synth = synthetic.drop_nulls([a, b]).select(pl.corr(a, b, method="spearman")).item()
        assert synth == pytest.approx(real, abs=0.03), (a, b)


def test_write_is_atomic_and_compact(known: pl.DataFrame, tmp_path: Path):
    agg = fit(known, SMALL_BANK)
    out = write_aggregates(agg, tmp_path / "sub" / "agg.json")
    assert [p.name for p in out.parent.iterdir()] == ["agg.json"]  # no temp file left
    lines = out.read_text().splitlines()
    assert any(line.startswith('    "AAA": {') for line in lines)  # one line per country


def test_nearest_correlation_repairs_an_indefinite_matrix():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    fixed = nearest_correlation(bad)
    assert np.linalg.eigvalsh(fixed).min() > 0
    np.testing.assert_allclose(np.diag(fixed), 1.0)
    np.testing.assert_allclose(fixed, fixed.T)
    np.linalg.cholesky(fixed)


def test_missing_column_is_a_data_error(known: pl.DataFrame):
    with pytest.raises(DataError, match=r"lack columns \['C'\]"):
        fit(known.drop("C"), SMALL_BANK)


def test_unknown_country_is_a_data_error(known: pl.DataFrame):
    with pytest.raises(DataError, match=r"countries \['XXX'\] are not in the respondents"):
        fit(known, SMALL_BANK, countries=["XXX"])


def test_no_rows_is_a_data_error(known: pl.DataFrame):
    with pytest.raises(DataError, match="no respondents"):
        fit(known.clear(), SMALL_BANK)


def test_code_outside_the_bank_is_a_data_error(known: pl.DataFrame):
    broken = known.with_columns(pl.lit(11, dtype=pl.Int64).alias("A"))
    with pytest.raises(DataError, match=r"item A has codes \[11\]"):
        fit(broken, SMALL_BANK)


def test_bad_weight_is_a_data_error(known: pl.DataFrame):
    with pytest.raises(DataError, match="weights"):
        fit(known.with_columns(pl.lit(0.0).alias("weight")), SMALL_BANK)


# ---- real WVS files (skipped when absent) ----


@pytest.mark.realdata
def test_fit_on_real_files_matches_weighted_shares(
    few: ExtractResult, few_dir: Path, bank: QuestionBank
):
    agg = fit(few.respondents, bank, missing_counts=few.missing_counts, countries=["JPN", "TWN"])
    assert list(agg.countries) == ["JPN", "TWN"]
    for iso in agg.countries:
        # computed independently from the raw file: bank codes are substantive, the
        # rest (negative codes, Q254's "not a national") is missing
        raw = pl.read_csv(few_dir / f"{iso}.csv.gz", infer_schema_length=0)
        w = raw.get_column("W_WEIGHT").cast(pl.Float64).to_numpy()
        c = agg.countries[iso]
        assert c.n == raw.height
        for item in bank.items:
            if item.id not in raw.columns:
                continue  # derived and computed by the reader
            v = raw.get_column(item.id).cast(pl.Float64).to_numpy()
            if item.numeric:
                ok = v >= 0
                m = c.marginals[item.id]
                assert isinstance(m, BinnedMarginal)
                assert m.bins[0][0] == v[ok].min()
                assert m.bins[-1][1] == v[ok].max()
            else:
                ok = np.isin(v, item.codes)
                m = c.marginals[item.id]
                if not ok.any():
                    assert m is None
                    continue
                assert isinstance(m, CategoricalMarginal)
                shares = np.asarray([w[v == code].sum() for code in item.codes]) / w[ok].sum()
                np.testing.assert_allclose(m.probs, shares, atol=6e-5, err_msg=f"{iso} {item.id}")
            assert c.missing[item.id] == pytest.approx(w[~ok].sum() / w.sum(), abs=6e-5)
            if c.missing[item.id] > 0:
                assert sum(c.missing_reasons[item.id].values()) == pytest.approx(1, abs=1e-3)


@pytest.mark.realdata
def test_real_religiosity_correlation_is_deattenuated(few: ExtractResult, bank: QuestionBank):
    agg = fit(few.respondents, bank, countries=["COL", "JPN"])
    i, j = agg.items.index("Q6"), agg.items.index("Q164")
    p = len(agg.items)
    k = i * p - i * (i + 1) // 2 + (j - i - 1)
    for iso in ("COL", "JPN"):
        rows = few.respondents.filter(pl.col("country") == iso).drop_nulls(["Q6", "Q164"])
        spearman = rows.select(pl.corr("Q6", "Q164", method="spearman")).item()
        latent = agg.countries[iso].correlation[k]
        assert spearman < -0.2
        assert latent < 0
        # the latent correlation of discretized answers is at least as strong
        assert abs(latent) >= abs(spearman) - 0.02
