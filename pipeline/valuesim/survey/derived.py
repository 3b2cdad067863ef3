"""WVS-7 derived indexes, computed from their source items by the official definitions.

The definitions are those of the WVS-7 Variables Report (v5.0): both indexes are
``-5`` (missing) when any source item is missing (a negative code). They work on the
*raw* codes, before missing codes become nulls, exactly as the WVS computes them.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

MISSING = -5


def autonomy_index() -> pl.Expr:
    """Y003 = (Q15 religious faith + Q17 obedience) - (Q8 independence + Q14 determination).

    The child-quality items are coded 1 = mentioned, 2 = not mentioned, so -2 means
    faith and obedience were chosen and not independence or determination (least
    autonomy), 2 the reverse.
    """
    sources = [pl.col(c) for c in ("Q8", "Q14", "Q15", "Q17")]
    complete = pl.all_horizontal([s >= 0 for s in sources])
    value = (pl.col("Q15") + pl.col("Q17")) - (pl.col("Q8") + pl.col("Q14"))
    return pl.when(complete).then(value).otherwise(MISSING).cast(pl.Int64).alias("Y003")


def postmaterialist_index() -> pl.Expr:
    """Y002 (4-item): first and second aims Q154/Q155 out of 1 order, 2 say,
    3 prices, 4 free speech. Both materialist aims (1, 3) -> 1, both post-materialist
    aims (2, 4) -> 3, any mix -> 2."""
    a, b = pl.col("Q154"), pl.col("Q155")
    materialist = ((a == 1) & (b == 3)) | ((a == 3) & (b == 1))
    postmaterialist = ((a == 2) & (b == 4)) | ((a == 4) & (b == 2))
    return (
        pl.when((a < 0) | (b < 0))
        .then(MISSING)
        .when(materialist)
        .then(1)
        .when(postmaterialist)
        .then(3)
        .otherwise(2)
        .cast(pl.Int64)
        .alias("Y002")
    )


DERIVED: dict[str, tuple[tuple[str, ...], Callable[[], pl.Expr]]] = {
    "Y003": (("Q8", "Q14", "Q15", "Q17"), autonomy_index),
    "Y002": (("Q154", "Q155"), postmaterialist_index),
}
