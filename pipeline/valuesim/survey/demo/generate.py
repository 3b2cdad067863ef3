"""Sample a SYNTHETIC respondents frame from the shipped demo aggregates.

Per country: draw latent normals with the stored copula correlation, map each item
through its marginal's inverse CDF, then blank out exactly round(share * n) answers
per item at random (at the item's missing share). Every country has its own random
stream derived from (seed, country), so a country's rows do not depend on which
other countries are generated alongside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import ndtr

from valuesim.config import MAX_DEMO_RESPONDENTS
from valuesim.errors import ConfigError, DataError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.demo.aggregates import (
    BinnedMarginal,
    CategoricalMarginal,
    CountryAggregates,
    DemoAggregates,
    load_aggregates,
)
from valuesim.survey.demo.copula import cholesky_factor


@dataclass(frozen=True)
class DemoSample:
    """A synthetic population in the extract contract's shape."""

    respondents: pl.DataFrame  # country, respondent_id, weight, <bank items> (Int64)
    missing_counts: pl.DataFrame  # country, item, reason, n


def generate(
    aggregates_path: str | Path | DemoAggregates,
    bank: QuestionBank,
    n_per_country: int,
    seed: int,
    countries: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The synthetic respondents frame (weight 1.0, ids like ``JPN-demo-000001``)."""
    return sample(aggregates_path, bank, n_per_country, seed, countries).respondents


def sample(
    aggregates_path: str | Path | DemoAggregates,
    bank: QuestionBank,
    n_per_country: int,
    seed: int,
    countries: Sequence[str] | None = None,
) -> DemoSample:
    """Like :func:`generate`, plus the missing answers counted by reason."""
    agg = (
        aggregates_path
        if isinstance(aggregates_path, DemoAggregates)
        else load_aggregates(aggregates_path)
    )
    if not 0 < n_per_country <= MAX_DEMO_RESPONDENTS:
        raise ConfigError(
            f"n_per_country must be 1 to {MAX_DEMO_RESPONDENTS:,} (demo respondents per "
            f"country), got {n_per_country:,}"
        )
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    chosen = _countries(agg, countries)
    item_ids = _check_bank(agg, bank)
    frames, counts = [], []
    for iso in chosen:
        f, c = _sample_country(agg, iso, item_ids, n_per_country, seed)
        frames.append(f)
        counts.extend(c)
    missing = pl.DataFrame(
        counts,
        schema={"country": pl.Utf8, "item": pl.Utf8, "reason": pl.Utf8, "n": pl.Int64},
        orient="row",
    )
    return DemoSample(pl.concat(frames, how="vertical"), missing)


def _countries(agg: DemoAggregates, countries: Sequence[str] | None) -> list[str]:
    if countries is None:
        return list(agg.countries)
    chosen = list(dict.fromkeys(countries))
    unknown = [c for c in chosen if c not in agg.countries]
    if unknown:
        raise DataError(
            f"no demo aggregates for countries {unknown}; available: "
            f"{', '.join(agg.countries)} (or fit them with `valuesim demo fit`)"
        )
    if not chosen:
        raise ConfigError("no countries selected for the demo population")
    return chosen


def _check_bank(agg: DemoAggregates, bank: QuestionBank) -> list[str]:
    ids = [i.id for i in bank.items]
    absent = [i for i in ids if i not in agg.items]
    if absent:
        raise DataError(
            f"demo aggregates lack bank items {absent}; refit them with "
            "`valuesim demo fit --source DIR` for this question bank"
        )
    for iso, c in agg.countries.items():
        for item in bank.items:
            m = c.marginals[item.id]
            if isinstance(m, CategoricalMarginal) and not set(m.codes) <= set(item.codes):
                raise DataError(
                    f"demo aggregates for {iso}/{item.id} have codes {m.codes} but the bank "
                    f"allows {item.codes}; refit with `valuesim demo fit`"
                )
            if m is not None and isinstance(m, BinnedMarginal) != item.numeric:
                raise DataError(
                    f"demo aggregates for {iso}/{item.id} do not match the bank's item type; "
                    "refit with `valuesim demo fit`"
                )
    return ids


def _correlation(agg: DemoAggregates, c: CountryAggregates, item_ids: list[str]) -> np.ndarray:
    p = len(agg.items)
    full = np.eye(p)
    iu = np.triu_indices(p, k=1)
    full[iu] = c.correlation
    full[(iu[1], iu[0])] = c.correlation
    pos = [agg.items.index(i) for i in item_ids]
    return full[np.ix_(pos, pos)]


def _sample_country(
    agg: DemoAggregates, iso: str, item_ids: list[str], n: int, seed: int
) -> tuple[pl.DataFrame, list[tuple[str, str, str, int]]]:
    c = agg.countries[iso]
    # one stream per (seed, country): independent of the other countries chosen
    rng = np.random.default_rng([seed, int.from_bytes(iso.encode(), "big")])
    latent = (
        rng.standard_normal((n, len(item_ids))) @ cholesky_factor(_correlation(agg, c, item_ids)).T
    )
    uniform = ndtr(latent)
    within_bin = rng.random((n, len(item_ids)))
    columns: dict[str, pl.Series] = {}
    counts: list[tuple[str, str, str, int]] = []
    for j, item in enumerate(item_ids):
        values = _inverse_cdf(c.marginals[item], uniform[:, j], within_bin[:, j])
        order = rng.permutation(n)
        k = round(c.missing[item] * n)
        mask = np.zeros(n, dtype=bool)
        mask[order[:k]] = True
        for reason, count in _split(k, c.missing_reasons.get(item, {})):
            counts.append((iso, item, reason, count))
        columns[item] = pl.Series(item, values, dtype=pl.Int64).scatter(np.flatnonzero(mask), None)
    frame = pl.DataFrame(
        [
            pl.Series("country", [iso] * n, dtype=pl.Utf8),
            pl.Series("respondent_id", [f"{iso}-demo-{i:06d}" for i in range(1, n + 1)]),
            pl.Series("weight", np.ones(n), dtype=pl.Float64),
            *columns.values(),
        ]
    )
    return frame, counts


def _inverse_cdf(
    marginal: CategoricalMarginal | BinnedMarginal | None, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    if marginal is None:  # never answered here: every value is masked as missing anyway
        return np.zeros(len(u), dtype=np.int64)
    probs = np.asarray(marginal.probs, dtype=float)
    cum = np.cumsum(probs / probs.sum())
    idx = np.minimum(np.searchsorted(cum, u, side="right"), len(probs) - 1)
    if isinstance(marginal, CategoricalMarginal):
        return np.asarray(marginal.codes, dtype=np.int64)[idx]
    lo = np.asarray([b[0] for b in marginal.bins])[idx]
    hi = np.asarray([b[1] for b in marginal.bins])[idx]
    return lo + np.floor(v * (hi - lo + 1)).astype(np.int64)


def _split(k: int, shares: dict[str, float]) -> list[tuple[str, int]]:
    """Split k missing answers by reason with largest-remainder rounding."""
    if k == 0:
        return []
    if not shares:
        return [("missing", k)]
    reasons = list(shares)
    raw = np.asarray([shares[r] for r in reasons], dtype=float)
    raw = raw / raw.sum() * k
    base = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - base), kind="stable")[: k - base.sum()]:
        base[i] += 1
    return [(r, int(b)) for r, b in zip(reasons, base, strict=True) if b > 0]
