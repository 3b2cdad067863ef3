"""Figure 7 (per-item Shapley heatmap): drawn when the shapley stage wrote values."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from valuesim.analysis.shapley import ESTIMATES_SCHEMA
from valuesim.report.shapley_figure import shapley_figure

ITEMS = [("Q164", "Importance of God"), ("Q57", "Trust"), ("Q46", "Happiness")]


def estimates(models: list[str]) -> pl.DataFrame:
    rows = [
        {"model": m, "country": c, "item": i, "label": label,
         "shapley": (k - 1) * 0.01 * (1 + j) * (1 if m == models[0] else -1), "se": 0.002,
         "n_permutations": 8}
        for m in models for j, c in enumerate(["JPN", "DEU", "COL"]) for k, (i, label) in enumerate(ITEMS)
    ]
    return pl.DataFrame(rows, schema=ESTIMATES_SCHEMA)


@pytest.mark.parametrize("models", [["smollm2"], ["smollm2", "other"]])
def test_heatmap_is_drawn_from_the_stage_output(tmp_path: Path, models: list[str]) -> None:
    source = tmp_path / "shapley"
    source.mkdir()
    estimates(models).write_parquet(source / "shapley.parquet")
    fig = shapley_figure(source, tmp_path / "figures")
    assert fig is not None
    assert fig.path == tmp_path / "figures" / "shapley.png"
    assert fig.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Figure 7" in fig.caption
    assert "8 sampled" in fig.caption
    assert not list((tmp_path / "figures").glob(".*.tmp"))


def test_no_figure_when_the_stage_was_off(tmp_path: Path) -> None:
    source = tmp_path / "shapley"
    source.mkdir()
    (source / "disabled.json").write_text('{"enabled": false}')
    assert shapley_figure(source, tmp_path / "figures") is None
    assert shapley_figure(tmp_path / "absent", tmp_path / "figures") is None
    assert not (tmp_path / "figures").exists()
