"""The map as one computation: fit, score, place, select (shared by stage and CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from valuesim import artifacts
from valuesim.culturalmap.country_selection import Selection, select_countries
from valuesim.culturalmap.transform import IWTransform, fit, positions
from valuesim.survey.bank import QuestionBank


@dataclass(frozen=True)
class CulturalMap:
    transform: IWTransform
    positions: pl.DataFrame  # country, secular, self_expression, se_*, n, n_*, n_eff
    selection: Selection


def build_map(
    respondents: pl.DataFrame,
    bank: QuestionBank,
    *,
    min_items: int,
    select: Sequence[str] | Literal["hull"],
    extra: Sequence[str] = (),
) -> CulturalMap:
    """Fit on every country in ``respondents`` (each counts once), then select."""
    transform = fit(respondents, bank, min_items=min_items)
    pos = positions(transform.score(respondents))
    return CulturalMap(transform, pos, select_countries(pos, select, extra))


def resample_respondents(respondents: pl.DataFrame, seed: int) -> pl.DataFrame:
    """A bootstrap replicate: respondents drawn with replacement within each country."""
    rng = np.random.default_rng(seed)
    country = respondents["country"].to_numpy()
    idx = [
        rng.choice(rows, size=len(rows), replace=True)
        for c in np.unique(country)
        for rows in [np.flatnonzero(country == c)]
    ]
    return respondents[np.concatenate(idx)]


def write_map_dir(result: CulturalMap, out_dir: str | Path) -> None:
    """Write transform.json, positions.csv and selected_countries.json all at once:
    into a temporary sibling folder, renamed over ``out_dir`` only when complete."""
    with artifacts.atomic_dir(Path(out_dir)) as tmp:
        result.transform.save(tmp / "transform.json")
        _write_csv(result.positions, tmp / "positions.csv")
        artifacts.write_json(result.selection.to_dict(), tmp / "selected_countries.json")


def write_plot_data(result: CulturalMap, path: str | Path) -> None:
    """The DVC scatter-plot data: one row per country, flagged when selected."""
    chosen = set(result.selection.countries)
    frame = result.positions.select(
        "country", "self_expression", "secular",
        pl.col("country").is_in(list(chosen)).alias("selected"),
    )
    _write_csv(frame, Path(path))


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    """Six decimals: enough for a map position, and stable across platforms' float printing."""
    artifacts.write_atomic(path, lambda tmp: frame.write_csv(tmp, float_precision=6), mode=0o644)
