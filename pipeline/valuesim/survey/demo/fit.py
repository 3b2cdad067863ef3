"""Fit the demo aggregates from real respondents (`valuesim demo fit`).

Input is the extracted respondents frame (see ``valuesim.survey.readers``); output is
a :class:`DemoAggregates` holding, per country, weighted answer shares, missing
shares and the Gaussian-copula correlation matrix — aggregates only, no rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from valuesim.errors import DataError
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.demo.aggregates import (
    FORMAT,
    BinnedMarginal,
    CategoricalMarginal,
    CountryAggregates,
    DemoAggregates,
)
from valuesim.survey.demo.copula import (
    discretize,
    latent_correlation,
    nearest_correlation,
    weighted_pairwise_correlation,
)
from valuesim.survey.readers import CITATION

# Numeric items (age) are fitted as shares of 5-year bins, sampled uniformly within a bin.
BIN_WIDTH = 5
PROB_DECIMALS = 4
CORR_DECIMALS = 3  # sampling error of a correlation at n ~ 1200 is ~0.03
DESCRIPTION = (
    "SYNTHETIC DEMO POPULATION AGGREGATES. Per-country weighted answer shares, missing "
    "shares and Gaussian-copula latent correlations fitted on WVS-7; no respondent-level "
    "data. Populations generated from this file are synthetic, not survey data."
)
METHOD = (
    "Gaussian copula: weighted marginals over substantive codes; latent correlations "
    "from weighted pairwise-complete normal-score correlations inverted through the "
    "discretization bridge, projected to the nearest positive-definite matrix; "
    "missing answers masked completely at random at each item's weighted missing share."
)


def fit(
    respondents: pl.DataFrame,
    bank: QuestionBank,
    *,
    missing_counts: pl.DataFrame | None = None,
    countries: Sequence[str] | None = None,
    source: str = "WVS-7",
    fitted: dt.date | None = None,
) -> DemoAggregates:
    """Fit per-country aggregates for every bank item.

    ``missing_counts`` (country, item, reason, n), when given, records how each item's
    missing answers split by reason, so that generated data can report reasons too.
    """
    items = list(bank.items)
    _check_columns(respondents, items)
    present = respondents.get_column("country").unique().sort().to_list()
    chosen = list(countries) if countries is not None else present
    unknown = sorted(set(chosen) - set(present))
    if unknown:
        raise DataError(
            f"countries {unknown} are not in the respondents; available: {', '.join(present)}"
        )
    if not chosen:
        raise DataError("no respondents to fit the demo aggregates from")
    fitted_countries = {
        iso: _fit_country(
            respondents.filter(pl.col("country") == iso),
            items,
            _reason_shares(missing_counts, iso),
        )
        for iso in chosen
    }
    return DemoAggregates(
        synthetic_demo=True,
        format=FORMAT,
        description=DESCRIPTION,
        source=source,
        citation=CITATION,
        fitted=(fitted or dt.date.today()).isoformat(),
        bank_version=bank.version,
        method=METHOD,
        items=[i.id for i in items],
        numeric_items=[i.id for i in items if i.numeric],
        countries=fitted_countries,
    )


def _check_columns(respondents: pl.DataFrame, items: list[Item]) -> None:
    needed = ["country", "weight", *(i.id for i in items)]
    missing = [c for c in needed if c not in respondents.columns]
    if missing:
        raise DataError(
            f"respondents lack columns {missing}; read them with valuesim.survey.readers"
        )


def _fit_country(
    frame: pl.DataFrame, items: list[Item], reasons: dict[str, dict[str, float]]
) -> CountryAggregates:
    w = frame.get_column("weight").cast(pl.Float64).to_numpy()
    if not np.all(np.isfinite(w) & (w > 0)):
        raise DataError("respondent weights must be positive and finite")
    n = len(w)
    scores = np.zeros((n, len(items)))
    observed = np.zeros((n, len(items)), dtype=bool)
    discretizations = []
    marginals: dict[str, CategoricalMarginal | BinnedMarginal | None] = {}
    missing: dict[str, float] = {}
    for j, item in enumerate(items):
        values = frame.get_column(item.id).cast(pl.Float64).to_numpy()
        ok = ~np.isnan(values)
        missing[item.id] = round(float(w[~ok].sum() / w.sum()), PROB_DECIMALS)
        if not ok.any():
            marginals[item.id] = None
            discretizations.append(None)
            continue
        category, marginal, probs = (
            _binned(values, ok, w, item) if item.numeric else _categorical(values, ok, w, item)
        )
        marginals[item.id] = marginal
        d = discretize(probs)
        # map each answered respondent's category to its normal score
        lookup = np.full(len(probs), np.nan)
        lookup[d.categories] = d.scores
        scores[ok, j] = lookup[category[ok]]
        observed[:, j] = ok
        discretizations.append(d)
    corr, _ = weighted_pairwise_correlation(scores, observed, w)
    latent = nearest_correlation(latent_correlation(corr, discretizations))
    upper = latent[np.triu_indices(len(items), k=1)]
    return CountryAggregates(
        n=n,
        marginals=marginals,
        missing=missing,
        missing_reasons={k: v for k, v in reasons.items() if missing.get(k, 0) > 0},
        correlation=[round(float(r), CORR_DECIMALS) for r in upper],
    )


def _categorical(
    values: np.ndarray, ok: np.ndarray, w: np.ndarray, item: Item
) -> tuple[np.ndarray, CategoricalMarginal, np.ndarray]:
    codes = np.asarray(item.codes)
    category = np.zeros(len(values), dtype=np.int64)
    category[ok] = np.searchsorted(codes, values[ok])
    bad = ok & ((category >= len(codes)) | (codes[np.minimum(category, len(codes) - 1)] != values))
    if bad.any():
        raise DataError(
            f"item {item.id} has codes {sorted({int(v) for v in values[bad]})} outside the "
            "bank's answers; the respondents frame must hold substantive codes only"
        )
    probs = np.bincount(category[ok], weights=w[ok], minlength=len(codes))
    probs /= probs.sum()
    marginal = CategoricalMarginal(codes=item.codes, probs=_round_probs(probs))
    return category, marginal, probs


def _binned(
    values: np.ndarray, ok: np.ndarray, w: np.ndarray, item: Item
) -> tuple[np.ndarray, BinnedMarginal, np.ndarray]:
    lo, hi = int(values[ok].min()), int(values[ok].max())
    starts = [lo, *range((lo // BIN_WIDTH + 1) * BIN_WIDTH, hi + 1, BIN_WIDTH)]
    bins = [(s, min(e - 1, hi)) for s, e in zip(starts, [*starts[1:], hi + 1], strict=True)]
    category = np.zeros(len(values), dtype=np.int64)
    category[ok] = np.searchsorted(np.asarray(starts), values[ok], side="right") - 1
    probs = np.bincount(category[ok], weights=w[ok], minlength=len(bins))
    probs /= probs.sum()
    return category, BinnedMarginal(bins=bins, probs=_round_probs(probs)), probs


def _round_probs(probs: np.ndarray) -> list[float]:
    return [round(float(p), PROB_DECIMALS) for p in probs]


def _reason_shares(missing_counts: pl.DataFrame | None, iso: str) -> dict[str, dict[str, float]]:
    if missing_counts is None or missing_counts.is_empty():
        return {}
    rows = missing_counts.filter((pl.col("country") == iso) & (pl.col("n") > 0))
    out: dict[str, dict[str, float]] = {}
    for (item,), group in rows.group_by(["item"], maintain_order=True):
        total = group.get_column("n").sum()
        out[str(item)] = {
            str(r): round(float(k) / total, PROB_DECIMALS)
            for r, k in zip(group.get_column("reason"), group.get_column("n"), strict=True)
        }
    return out
