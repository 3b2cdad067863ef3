"""The Inglehart-Welzel cultural map as a picture.

Axes follow the published map: survival vs self-expression values across,
traditional vs secular-rational values up. Every country is a point labelled with
its ISO3 code; labels are moved apart with adjustText (a deterministic, iteration-
bounded repulsion) so that they don't pile up in the crowded middle. Later stages
add model positions with :class:`Overlay` (e.g. one overlay per prompting method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from valuesim import artifacts
from valuesim.culturalmap.zones import ZONE_COLORS, ZONES

X_LABEL = "Survival  ←  values  →  Self-expression"
Y_LABEL = "Traditional  ←  values  →  Secular-rational"


@dataclass(frozen=True)
class Overlay:
    """Extra points on the map, e.g. where a model's answers put each country.

    ``points`` maps an ISO3 code to (secular, self_expression). When ``connect`` is
    true, a thin line joins each point to that country's human position; with
    ``label_points`` each point also gets its ISO3 code (in the overlay's colour), so
    that points far from their country can still be told apart.
    """

    label: str
    points: Mapping[str, tuple[float, float]]
    marker: str = "^"
    color: str = "#0072B2"
    connect: bool = True
    label_points: bool = False


def _zone_patch(xy: np.ndarray, pad: float) -> np.ndarray | None:
    """A padded outline around a zone's points: the convex hull of small circles
    around each point, so one- and two-country zones get a shape too."""
    from scipy.spatial import ConvexHull, QhullError

    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * pad
    cloud = (xy[:, None, :] + ring[None, :, :]).reshape(-1, 2)
    try:
        hull = ConvexHull(cloud)
    except QhullError:
        return None
    return cloud[hull.vertices]


def draw_map(
    positions: pl.DataFrame,
    selected: Sequence[str] = (),
    overlays: Sequence[Overlay] | None = None,
    *,
    zones: bool = True,
    title: str | None = "Inglehart-Welzel cultural map",
    path: str | Path | None = None,
):
    """Draw the map; return the matplotlib Figure (and save it when ``path`` is given).

    ``positions`` has country, secular, self_expression (the map stage's positions).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from adjustText import adjust_text
    from matplotlib import patheffects

    pos = positions.drop_nulls(["secular", "self_expression"])
    countries = pos["country"].to_list()
    x = pos["self_expression"].to_numpy()
    y = pos["secular"].to_numpy()
    chosen = set(selected)
    at = {c: (xi, yi) for c, xi, yi in zip(countries, x, y, strict=True)}

    fig, ax = plt.subplots(figsize=(11, 8.5), dpi=150)
    if zones:
        span = max(np.ptp(x), np.ptp(y), 1e-9)
        for zone, members in ZONES.items():
            pts = np.array([at[c] for c in members if c in at])
            if len(pts) == 0:
                continue
            outline = _zone_patch(pts, pad=0.06 * span)
            if outline is None:
                continue
            color = ZONE_COLORS[zone]
            ax.fill(outline[:, 0], outline[:, 1], color=color, alpha=0.10, lw=0, zorder=0)
            ax.plot(*np.vstack([outline, outline[:1]]).T, color=color, alpha=0.45, lw=0.8, zorder=0)
            top = outline[np.argmax(outline[:, 1])]
            ax.annotate(
                zone, top, xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                fontsize=8, style="italic", weight="bold", color=color, zorder=1,
                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
            )

    is_sel = np.array([c in chosen for c in countries])
    ax.scatter(x[~is_sel], y[~is_sel], s=22, c="#555555", edgecolors="white", lw=0.5, zorder=3)
    ax.scatter(
        x[is_sel], y[is_sel], s=70, c="#F5C242", edgecolors="black", lw=1.4, zorder=4,
        label="selected countries",
    )

    texts = [
        ax.text(
            xi, yi, c, fontsize=8.5 if s else 7, weight="bold" if s else "normal",
            color="black" if s else "#333333", zorder=6,
        )
        for c, xi, yi, s in zip(countries, x, y, is_sel, strict=True)
    ]
    # every plotted point, for the axis limits and for the labels to keep clear of
    all_x, all_y = [x], [y]
    for ov in overlays or ():
        pts = [(c, p) for c, p in ov.points.items()]
        if not pts:
            continue
        ox = np.array([p[1] for _, p in pts])
        oy = np.array([p[0] for _, p in pts])
        all_x.append(ox)
        all_y.append(oy)
        if ov.connect:
            for c, (sec, se) in pts:
                if c in at:
                    ax.plot([at[c][0], se], [at[c][1], sec], color=ov.color, lw=0.6, alpha=0.45, zorder=2)
        ax.scatter(ox, oy, s=55, marker=ov.marker, c="white", edgecolors=ov.color, lw=1.5,
                   zorder=5, label=ov.label)
        if ov.label_points:
            texts += [
                ax.text(se, sec, c, fontsize=6.5, color=ov.color, weight="bold", zorder=6,
                        path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])
                for c, (sec, se) in pts
            ]
    x_all, y_all = np.concatenate(all_x), np.concatenate(all_y)
    ax.set_xlabel(X_LABEL, fontsize=11)
    ax.set_ylabel(Y_LABEL, fontsize=11)
    ax.axhline(0, color="#bbbbbb", lw=0.6, zorder=0)
    ax.axvline(0, color="#bbbbbb", lw=0.6, zorder=0)
    pad_x, pad_y = 0.08 * max(np.ptp(x_all), 1e-9), 0.08 * max(np.ptp(y_all), 1e-9)
    ax.set_xlim(x_all.min() - pad_x, x_all.max() + pad_x)
    ax.set_ylim(y_all.min() - pad_y, y_all.max() + 2 * pad_y)
    ax.grid(False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=13)
    if chosen or overlays:
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    # iteration-bounded, not time-bounded: the same input gives the same picture
    adjust_text(
        texts, x=x_all, y=y_all, ax=ax, iter_lim=400, time_lim=None,
        expand=(1.15, 1.35), force_text=(0.2, 0.35), force_static=(0.15, 0.3),
        arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.5},
    )
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path: str | Path) -> None:
    """Write a PNG atomically (temp file in the same folder, then rename)."""
    import matplotlib.pyplot as plt

    try:
        artifacts.write_atomic(
            Path(path), lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"), mode=0o644
        )
    finally:
        plt.close(fig)
