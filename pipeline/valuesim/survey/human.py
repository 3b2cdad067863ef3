"""Weighted human answer distributions per (country, question).

For each country and item: the ``W_WEIGHT``-weighted share of every admissible answer
among the respondents who gave a substantive answer (zero shares included, so every
distribution covers the item's whole scale), the weighted mean of the codes (null for
a nominal or binary item, whose codes only name its options), the
number of substantive answers ``n``, Kish's effective sample size
``n_eff = (sum w)^2 / sum w^2`` and the share of respondents with no substantive
answer (unweighted: the paper's missing-data filter counts responses).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from valuesim.errors import DataError
from valuesim.survey.bank import Item, QuestionBank

DISTRIBUTION_SCHEMA = {
    "country": pl.Utf8,
    "question": pl.Utf8,
    "code": pl.Int64,
    "share": pl.Float64,
}
SUMMARY_SCHEMA = {
    "country": pl.Utf8,
    "question": pl.Utf8,
    "mean": pl.Float64,
    "n": pl.Int64,
    "n_eff": pl.Float64,
    "missing_share": pl.Float64,
}


def default_items(bank: QuestionBank) -> list[Item]:
    """Targets and persona items: what the study compares and maps."""
    seen: dict[str, Item] = {}
    for item in (*bank.targets, *bank.persona_items):
        seen.setdefault(item.id, item)
    return list(seen.values())


def human_distributions(
    respondents: pl.DataFrame,
    bank: QuestionBank | None,
    items: Sequence[Item] | None = None,
    countries: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(distributions, summary) frames; see the module docstring and paths.HUMAN_*."""
    if items is None and bank is None:
        raise ValueError("human_distributions needs the question bank or the items")
    chosen = list(items) if items is not None else default_items(bank)  # type: ignore[arg-type]
    numeric = [i.id for i in chosen if i.numeric]
    if numeric:
        raise DataError(f"items {', '.join(numeric)} are numeric and have no answer distribution")
    absent = [i.id for i in chosen if i.id not in respondents.columns]
    if absent:
        raise DataError(
            f"respondents lack item columns {', '.join(absent)}; rerun the extract stage"
        )
    frame = respondents
    if countries is not None:
        have = set(frame.get_column("country").unique().to_list())
        unknown = [c for c in countries if c not in have]
        if unknown:
            raise DataError(
                f"countries {', '.join(unknown)} have no respondents; available: {', '.join(sorted(have))}"
            )
        frame = frame.filter(pl.col("country").is_in(list(countries)))

    ids = [i.id for i in chosen]
    long = frame.select("country", "weight", *ids).unpivot(
        index=["country", "weight"], variable_name="question", value_name="code"
    )
    totals = long.group_by("country", "question").agg(
        rows=pl.len(),
        n=pl.col("code").is_not_null().sum().cast(pl.Int64),
        w=pl.col("weight").filter(pl.col("code").is_not_null()).sum(),
        w2=(pl.col("weight") ** 2).filter(pl.col("code").is_not_null()).sum(),
        wx=(pl.col("weight") * pl.col("code")).filter(pl.col("code").is_not_null()).sum(),
    )
    # a nominal or binary item's codes only name its options: no mean (valuesim.survey.question_types)
    unordered = [i.id for i in chosen if i.type != "ordinal"]
    summary = totals.select(
        "country",
        "question",
        mean=pl.when((pl.col("n") > 0) & ~pl.col("question").is_in(unordered)).then(pl.col("wx") / pl.col("w")),
        n="n",
        n_eff=pl.when(pl.col("n") > 0).then(pl.col("w") ** 2 / pl.col("w2")).otherwise(0.0),
        missing_share=1 - pl.col("n") / pl.col("rows"),
    ).sort("country", "question")

    grid = pl.DataFrame(
        [(i.id, a.code) for i in chosen for a in i.answers],
        schema={"question": pl.Utf8, "code": pl.Int64},
        orient="row",
    )
    answered = totals.filter(pl.col("n") > 0).select("country", "question", "w")
    weights = (
        long.drop_nulls("code")
        .group_by("country", "question", "code")
        .agg(wk=pl.col("weight").sum())
    )
    distributions = (
        answered.join(grid, on="question")
        .join(weights, on=["country", "question", "code"], how="left")
        .select("country", "question", "code", share=pl.col("wk").fill_null(0.0) / pl.col("w"))
        .sort("country", "question", "code")
    )
    order = {q: k for k, q in enumerate(ids)}
    return (
        _in_bank_order(distributions, order).cast(DISTRIBUTION_SCHEMA),  # type: ignore[arg-type]
        _in_bank_order(summary, order).cast(SUMMARY_SCHEMA),  # type: ignore[arg-type]
    )


def _in_bank_order(frame: pl.DataFrame, order: dict[str, int]) -> pl.DataFrame:
    key = pl.col("question").replace_strict(order, return_dtype=pl.Int64)
    by = ["country", key] + (["code"] if "code" in frame.columns else [])
    return frame.sort(by)


def as_records(distributions: pl.DataFrame, summary: pl.DataFrame) -> list[dict[str, object]]:
    """One object per (country, question): the CLI's JSON shape."""
    shares: dict[tuple[str, str], dict[str, float]] = {}
    for row in distributions.iter_rows(named=True):
        shares.setdefault((row["country"], row["question"]), {})[str(row["code"])] = row["share"]
    return [
        {
            "country": row["country"],
            "question": row["question"],
            "mean": row["mean"],
            "distribution": shares.get((row["country"], row["question"]), {}),
            "n": row["n"],
            "missing_share": row["missing_share"],
        }
        for row in summary.iter_rows(named=True)
    ]
