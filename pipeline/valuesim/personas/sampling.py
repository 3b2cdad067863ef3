"""Which respondents become personas.

For each country, ``n`` respondents are drawn with probability proportional to their
design weight, without replacement (numpy's ``Generator.choice(p=..., replace=False)``:
successive sampling, where each draw picks among the respondents not yet drawn with
probability proportional to weight). With equal weights this is a simple random
sample; with unequal weights heavier respondents are more likely to be drawn.

Determinism: each country gets its own random stream seeded by ``(seed, crc32(ISO3))``,
and respondents are put in ``respondent_id`` order before drawing, so the sample does
not depend on row order in the input or on which other countries are selected.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from valuesim.errors import DataError


def country_rng(seed: int, country: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(country.encode())])


def sample_respondents(
    respondents: pl.DataFrame, countries: Sequence[str], n_per_country: int, seed: int
) -> pl.DataFrame:
    """``n_per_country`` respondents per country (all of them where there are fewer:
    see :func:`shortfall_warnings`), in draw order, with a ``draw`` column (0, 1, ...)
    per country."""
    for col in ("country", "respondent_id", "weight"):
        if col not in respondents.columns:
            raise DataError(f"respondents have no {col!r} column; rerun the extract stage")
    parts = []
    for country in countries:
        pool = respondents.filter(pl.col("country") == country).sort("respondent_id")
        if pool.height == 0:
            raise DataError(
                f"no respondents for selected country {country}; "
                "check countries.select against the extracted data"
            )
        weights = pool["weight"].to_numpy().astype(np.float64)
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise DataError(
                f"respondents of {country} have missing or non-positive weights; "
                "weights must be > 0 (rerun the extract stage)"
            )
        k = min(n_per_country, pool.height)
        idx = country_rng(seed, country).choice(
            pool.height, size=k, replace=False, p=weights / weights.sum()
        )
        parts.append(pool[idx.tolist()].with_columns(pl.Series("draw", range(k), dtype=pl.Int64)))
    return pl.concat(parts, how="vertical")


def shortfall_warnings(sample: pl.DataFrame, n_per_country: int) -> list[str]:
    """One line per country of ``sample`` that has fewer than ``n_per_country`` personas.

    sample_respondents takes every respondent of such a country rather than failing
    (the study still runs), so the stage says so instead of capping silently.
    """
    counts = sample.group_by("country").len().sort("country")
    return [
        f"{country} has {k} respondents, fewer than personas.n_per_country ({n_per_country}); "
        f"using all {k}"
        for country, k in counts.iter_rows()
        if k < n_per_country
    ]
