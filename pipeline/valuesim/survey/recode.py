"""Raw WVS codes -> substantive codes (Int64) and nulls counted by missing reason.

Missing codes are taken per variable from the question bank (i.e. the codebook),
never from the sign alone: Y003 has valid negative answers and Q254's code 5
("I am not [nationality]") is not a point on the pride scale. A negative code that
the codebook does not list for a variable (Q260 has stray -1s in v5.0) gets the
generic WVS meaning of that code (logged).
"""

from __future__ import annotations

import logging

import polars as pl

from valuesim.errors import DataError
from valuesim.survey.bank import Item, MissingReason

log = logging.getLogger(__name__)

# The WVS's generic missing codes, used only for codes a variable's codebook omits.
GENERIC_MISSING: dict[int, MissingReason] = {
    -1: "dont_know",
    -2: "no_answer",
    -3: "not_applicable",
    -4: "not_asked",
    -5: "missing",
}
REASONS: tuple[MissingReason, ...] = (
    "dont_know",
    "no_answer",
    "not_applicable",
    "not_asked",
    "missing",
)


def missing_map(item: Item, observed: set[int], where: str) -> dict[int, MissingReason]:
    """Codes of ``item`` seen in the data that mean "no substantive answer".

    Raises DataError for a non-negative code that is neither an answer nor a missing
    code: silently dropping it would bias the distribution.
    """
    mapping: dict[int, MissingReason] = dict(item.missing)
    valid = set(item.codes)
    for code in sorted(observed - valid - set(mapping)):
        if code < 0:
            reason = GENERIC_MISSING.get(code, "missing")
            log.info(
                "%s: %s code %d is not in the codebook; treating it as %s",
                where,
                item.id,
                code,
                reason,
            )
            mapping[code] = reason
        elif not item.numeric:
            raise DataError(
                f"{where}: {item.id} has code {code}, which is neither an answer nor a missing "
                f"code in the question bank; fix the file or data/questions/wvs7.yaml"
            )
    return mapping


def recode(frame: pl.DataFrame, items: list[Item], where: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replace missing codes by nulls; return (recoded frame, missing counts).

    ``frame`` has ``country`` and one Int64 column of raw codes per item. The counts
    frame has columns country, item, reason, n (only non-zero counts).
    """
    value_exprs: list[pl.Expr] = []
    reason_exprs: list[pl.Expr] = []
    for item in items:
        col = pl.col(item.id)
        observed = set(frame.get_column(item.id).drop_nulls().unique().to_list())
        mapping = missing_map(item, observed, where)
        # every observed negative code is in the mapping (missing_map), numeric items too
        is_missing = col.is_in(list(mapping)) if mapping else pl.lit(False)
        value_exprs.append(pl.when(is_missing).then(None).otherwise(col).alias(item.id))
        # a null in the source itself (an empty CSV cell) counts as "missing"
        reason_expr = pl.when(col.is_null()).then(pl.lit("missing"))
        if mapping:
            reason_expr = reason_expr.otherwise(
                col.replace_strict(mapping, default=None, return_dtype=pl.Utf8)
            )
        reason_exprs.append(reason_expr.alias(item.id))

    recoded = frame.with_columns(value_exprs)
    counts = (
        frame.select(pl.col("country"), *reason_exprs)
        .unpivot(index="country", variable_name="item", value_name="reason")
        .drop_nulls("reason")
        .group_by("country", "item", "reason")
        .agg(n=pl.len().cast(pl.Int64))
        .sort("country", "item", "reason")
    )
    return recoded, counts
