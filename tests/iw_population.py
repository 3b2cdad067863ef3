"""A made-up population for map tests: no WVS rows, just latent positions -> codes.

Each country gets latent (secular, self_expression) positions; each respondent adds
noise; each item's code moves with its axis in the Inglehart-Welzel direction
(valuesim.survey.inglehart_welzel.EXPECTED_DIRECTION) and is clipped to its scale.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from valuesim.survey.bank import QuestionBank
from valuesim.survey.inglehart_welzel import EXPECTED_DIRECTION

ISO3 = (
    "JPN", "TWN", "PRI", "COL", "JOR", "ROU", "ZWE", "NZL", "DEU", "AUS", "EGY", "PAK",
    "KOR", "MEX", "RUS", "NGA",
)


def make_population(
    bank: QuestionBank,
    *,
    n_countries: int = 12,
    n: int = 150,
    seed: int = 0,
    missing: float = 0.0,
    weighted: bool = True,
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    countries = ISO3[:n_countries]
    latent = {c: rng.normal(0, 1, size=2) for c in countries}
    frames = []
    for c in countries:
        cols: dict[str, object] = {
            "country": [c] * n,
            "respondent_id": [f"{c}-synthetic-{i:05d}" for i in range(n)],
            "weight": (rng.uniform(0.4, 2.0, n) if weighted else np.ones(n)).tolist(),
        }
        person = latent[c][None, :] + rng.normal(0, 0.8, size=(n, 2))
        for item in bank.items:
            if item.dimension is None:
                continue
            axis = 0 if item.dimension == "secular" else 1
            lo, hi = item.min, item.max
            mid, half = (lo + hi) / 2, (hi - lo) / 2
            raw = mid + EXPECTED_DIRECTION[item.id] * half * 0.45 * person[:, axis]
            raw = raw + rng.normal(0, 0.25 * half + 0.3, n)
            codes = np.clip(np.rint(raw), lo, hi).astype(np.int64)
            codes = [int(v) if v in item.codes else lo for v in codes]
            drop = rng.random(n) < missing
            cols[item.id] = [None if d else v for v, d in zip(codes, drop, strict=True)]
        frames.append(
            pl.DataFrame(cols).with_columns(
                [pl.col(i.id).cast(pl.Int64) for i in bank.items if i.dimension is not None]
            )
        )
    return pl.concat(frames)
