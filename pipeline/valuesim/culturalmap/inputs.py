"""Input checks and weighted country means for the Inglehart-Welzel map.

Kept apart from the transform so that the fit, the scoring and the country
positions all read respondents through the same checks: a missing item column, a
non-positive weight or a code outside an item's scale is a clear :class:`DataError`
here rather than a silent NaN three functions later.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank

DIMENSIONS: tuple[str, ...] = ("secular", "self_expression")


def dimension_items(bank: QuestionBank) -> dict[str, list[str]]:
    """The bank's IW items per dimension, in bank order."""
    out: dict[str, list[str]] = {d: [] for d in DIMENSIONS}
    for item in bank.items:
        if item.dimension is not None:
            out[item.dimension].append(item.id)
    for dim, items in out.items():
        if len(items) < 2:
            raise DataError(
                f"the question bank has {len(items)} item(s) with dimension: {dim}; "
                "the Inglehart-Welzel map needs its five items per dimension (data/questions/wvs7.yaml)"
            )
    return out


def check_respondents(
    respondents: pl.DataFrame, items: Sequence[str], bank: QuestionBank | None = None
) -> None:
    """Raise DataError unless ``respondents`` has what scoring needs."""
    need = ["country", "weight", *items]
    missing = [c for c in need if c not in respondents.columns]
    if missing:
        raise DataError(
            f"respondents lack column(s) {', '.join(missing)} needed for the Inglehart-Welzel map; "
            "re-run the extract stage with a question bank that has the ten persona items"
        )
    if respondents.height == 0:
        raise DataError("no respondents to place on the map; check data.source and the country list")
    bad_w = respondents.filter(pl.col("weight").is_null() | (pl.col("weight") <= 0)).height
    if bad_w:
        raise DataError(
            f"{bad_w} respondent(s) have a missing or non-positive weight; weights must be > 0"
        )
    if bank is None:
        return
    for item_id in items:
        codes = bank.item(item_id).codes
        off = respondents.filter(
            pl.col(item_id).is_not_null() & ~pl.col(item_id).is_in(codes)
        )
        if off.height:
            value = off[item_id][0]
            raise DataError(
                f"item {item_id} has code {value} outside its scale {codes[0]}..{codes[-1]} "
                f"({off.height} answer(s)); missing answers must be null, not codes"
            )


def item_matrix(respondents: pl.DataFrame, items: Sequence[str]) -> np.ndarray:
    """Respondents x items as float, NaN where the answer is missing."""
    return (
        respondents.select([pl.col(i).cast(pl.Float64) for i in items])
        .fill_null(np.nan)
        .to_numpy()
    )


def country_item_means(
    respondents: pl.DataFrame, items: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Weighted mean of each item per country over the respondents who answered it.

    Returns (countries sorted, means [country x item] with NaN where no respondent
    of the country answered the item, answered counts [country x item]).
    """
    exprs = []
    for i in items:
        answered = pl.col(i).is_not_null()
        wsum = pl.col("weight").filter(answered).sum()
        exprs.append(
            pl.when(wsum > 0)
            .then((pl.col(i).cast(pl.Float64) * pl.col("weight")).filter(answered).sum() / wsum)
            .otherwise(None)
            .alias(i)
        )
        exprs.append(answered.sum().alias(f"__n_{i}"))
    agg = respondents.group_by("country").agg(exprs).sort("country")
    means = agg.select(list(items)).cast(pl.Float64).fill_null(np.nan).to_numpy()
    counts = agg.select([f"__n_{i}" for i in items]).to_numpy()
    return agg["country"].to_list(), means, counts
