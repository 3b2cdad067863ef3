from __future__ import annotations

from itertools import combinations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import polars as pl
import pytest

from valuesim.culturalmap.drawing import X_LABEL, Y_LABEL, Overlay, draw_map
from valuesim.culturalmap.zones import ZONES, zone_of
from valuesim.survey.countries import COUNTRY_NAMES


@pytest.fixture(scope="module")
def crowded() -> pl.DataFrame:
    # 50 countries, half of them packed into a tight core (like the map's middle):
    # left where they are, their labels overlap about 20 times
    rng = np.random.default_rng(0)
    names = sorted(COUNTRY_NAMES)[:50]
    spread = np.where(np.arange(50) < 25, 0.15, 1.0)
    self_expression = rng.normal(0, 1, 50) * spread
    secular = rng.normal(0, 1, 50) * spread
    return pl.DataFrame({"country": names, "secular": secular, "self_expression": self_expression})


def _label_overlaps(fig) -> int:
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts if len(t.get_text()) == 3]
    return sum(a.overlaps(b) for a, b in combinations(boxes, 2))


def test_every_country_labelled_and_labels_apart(crowded):
    fig = draw_map(crowded, ["ARG", "AUS"], zones=False)
    labels = sorted(t.get_text() for t in fig.axes[0].texts if len(t.get_text()) == 3)
    assert labels == sorted(crowded["country"].to_list())
    assert _label_overlaps(fig) <= 2
    ax = fig.axes[0]
    assert ax.get_xlabel() == X_LABEL
    assert "Self-expression" in X_LABEL
    assert ax.get_ylabel() == Y_LABEL
    assert "Secular-rational" in Y_LABEL


def test_overlay_and_zones_and_png(tmp_path, crowded):
    path = tmp_path / "fig" / "map.png"
    overlay = Overlay("model A", {"ARG": (1.0, 2.0), "AUS": (0.0, -1.0)}, marker="s")
    fig = draw_map(crowded, ["ARG"], [overlay], zones=True, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["selected countries", "model A"]
    # overlay points sit at (self_expression, secular)
    offsets = fig.axes[0].collections[-1].get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), [[2.0, 1.0], [-1.0, 0.0]])
    zone_labels = {t.get_text() for t in fig.axes[0].texts} & set(ZONES)
    assert "Latin America" in zone_labels  # ARG, BOL, BRA, CHL, COL... are in the sample
    assert not list(tmp_path.glob("fig/.*tmp"))


def test_zones_cover_the_default_countries():
    for c in ("JPN", "TWN", "PRI", "COL", "JOR", "ROU", "ZWE", "NZL", "DEU", "AUS"):
        assert zone_of(c) is not None
    assert zone_of("XXX") is None


def test_overlay_points_far_off_the_human_map_stay_in_view_and_are_labelled(crowded):
    far = Overlay("model B", {"ARG": (9.0, -7.0), "AUS": (8.5, -6.5)}, label_points=True)
    fig = draw_map(crowded, ["ARG", "AUS"], [far], zones=False)
    ax = fig.axes[0]
    (x0, _), (_, y1) = ax.get_xlim(), ax.get_ylim()
    # not clipped at the edge of the human positions
    assert x0 < -7.0
    assert y1 > 9.0
    coloured = [t.get_text() for t in ax.texts if t.get_color() == far.color]
    assert sorted(coloured) == ["ARG", "AUS"]
    # a connected overlay draws one line per country with a human position
    assert len(ax.lines) - 2 == 2  # minus the two axis lines at zero
