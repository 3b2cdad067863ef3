"""The map as one computation: fit, score, place, select (shared by stage and CLI)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from valuesim.survey.bank import QuestionBank
from valuesim.survey.country_selection import Selection, select_countries
from valuesim.survey.inglehart_welzel import IWTransform, fit, positions


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
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the outputs are ordinary files
    try:
        result.transform.save(tmp / "transform.json")
        result.positions.write_csv(tmp / "positions.csv", float_precision=6)
        (tmp / "selected_countries.json").write_text(
            json.dumps(result.selection.to_dict(), indent=2) + "\n"
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_plot_data(result: CulturalMap, path: str | Path) -> None:
    """The DVC scatter-plot data: one row per country, flagged when selected."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    chosen = set(result.selection.countries)
    frame = result.positions.select(
        "country", "self_expression", "secular",
        pl.col("country").is_in(list(chosen)).alias("selected"),
    )
    tmp = p.with_name(f".{p.name}.tmp")
    frame.write_csv(tmp, float_precision=6)
    tmp.replace(p)
