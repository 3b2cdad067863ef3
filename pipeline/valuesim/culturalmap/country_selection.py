"""Which countries the study simulates: an explicit list, or the map's convex hull.

The paper picks countries on the convex hull of the Inglehart-Welzel map, so that
the study spans the map's extremes (section 4). ``hull`` reproduces that on the
data at hand; the default explicit list (``config.DEFAULT_COUNTRIES``) is the
paper's ten with substitutes where WVS-7 has no file (README, "The Inglehart-Welzel cultural map").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from scipy.spatial import ConvexHull, QhullError

from valuesim.culturalmap.inputs import DIMENSIONS
from valuesim.errors import DataError


@dataclass(frozen=True)
class Selection:
    countries: list[str]
    how: Literal["list", "hull"]
    extra: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"countries": self.countries, "how": self.how, "extra": self.extra}


def hull_countries(positions: pl.DataFrame) -> list[str]:
    """Countries at the vertices of the convex hull, counter-clockwise from the
    most traditional one (scipy.spatial.ConvexHull, i.e. Qhull)."""
    pts = positions.select(DIMENSIONS).drop_nulls()
    if pts.height < 3:
        raise DataError(
            f"the convex hull needs at least 3 placed countries, the map has {pts.height}; "
            "use an explicit countries.select list"
        )
    names = positions.drop_nulls(list(DIMENSIONS))["country"].to_list()
    xy = pts.to_numpy()
    try:
        hull = ConvexHull(xy)
    except QhullError as exc:
        raise DataError(
            "the country positions are collinear, so they have no convex hull; "
            "use an explicit countries.select list"
        ) from exc
    vertices = list(hull.vertices)  # counter-clockwise for 2-D input
    start = int(np.argmin([xy[v, 0] for v in vertices]))
    return [names[v] for v in vertices[start:] + vertices[:start]]


def select_countries(
    positions: pl.DataFrame, select: Sequence[str] | Literal["hull"], extra: Sequence[str] = ()
) -> Selection:
    """Resolve ``countries.select`` / ``countries.extra`` against the placed countries."""
    present = set(positions["country"].to_list())
    wanted = [*([] if select == "hull" else list(select)), *extra]
    absent = [c for c in wanted if c not in present]
    if absent:
        raise DataError(
            f"countries {', '.join(absent)} are not on the map (no respondents in the data); "
            f"pick from {', '.join(sorted(present))} (countries.select / extra in params.yaml)"
        )
    if select == "hull":
        base = hull_countries(positions)
        how: Literal["list", "hull"] = "hull"
    else:
        base = list(dict.fromkeys(select))
        how = "list"
    chosen = list(dict.fromkeys([*base, *extra]))
    return Selection(countries=chosen, how=how, extra=list(extra))
