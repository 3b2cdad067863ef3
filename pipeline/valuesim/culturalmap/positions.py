"""Where each simulated (model, method, country) sits on the cultural map (Figure 1).

The simulate stage keeps the answers to the map items apart (``map_answers.parquet``,
written with ``simulate.map_items``). Their expected item values, projected with the
map's own transform, give the method's position for a country; the evaluate stage
reads the inputs and writes the table this module computes.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from valuesim.culturalmap.expectations import expected_map_items
from valuesim.culturalmap.transform import IWTransform
from valuesim.errors import DataError

MAP_POSITION_SCHEMA = {"model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8,
                       "secular": pl.Float64, "self_expression": pl.Float64}


def map_positions(
    map_answers: Mapping[tuple[str, str], pl.DataFrame], transform: IWTransform | None
) -> pl.DataFrame:
    """One row per (model, method, country) placed on the map, sorted.

    ``map_answers`` holds the map-item answers of each (model, method) run that has
    them; a run without (map items off, or a method whose personas state the answers)
    has no row, and the report says which. Without a map (``transform`` None) nothing
    is placed. A country with too few usable items for an axis (all flagged) is left
    out rather than placed on partial evidence. Calibration is mean-preserving, so
    calibrated positions would be the same.
    """
    if transform is None:
        return pl.DataFrame(schema=MAP_POSITION_SCHEMA)
    rows = []
    for (model, method), answers in map_answers.items():
        expected = expected_map_items(answers)
        for (country,), grp in expected.group_by(["country"], maintain_order=True):
            try:
                secular, self_expression = transform.project_expected(
                    dict(grp.select("item", "expected").iter_rows())
                )
            except DataError:
                continue  # too few usable items for one axis: no position
            rows.append({"model": model, "method": method, "country": country,
                         "secular": secular, "self_expression": self_expression})
    return pl.DataFrame(rows, schema=MAP_POSITION_SCHEMA).sort(["model", "method", "country"])
