"""Figures across models: Figure 1B (sampled respondents over the human density) and
Figure 2 (MAE per model and country), with the model order both share.

Matplotlib is imported lazily (``study_figures._plt``) so the package imports without
a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.config import ModelSpec
from valuesim.culturalmap.drawing import save_figure
from valuesim.methods import method_label
from valuesim.report.study_figures import MARKERS, PALETTE, _plt, draw_references

ENSEMBLE = "ensemble"  # the model name of the evaluate stage's ensemble rows
COUNTRY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf")


def model_order(models: Sequence[str], specs: Mapping[str, ModelSpec]) -> list[str]:
    """The paper's Figure 2 order: proprietary models (``open: false``) left of open ones
    (``open: true``), then those that do not say; within a group by decreasing
    ``size_b``, models without one after those with one; ties and the rest by name.
    With neither field set anywhere this is name order."""
    def key(name: str) -> tuple[int, float, str]:
        spec = specs.get(name)
        is_open = None if spec is None else spec.open
        size = None if spec is None else spec.size_b
        group = 0 if is_open is False else 1 if is_open else 2
        return group, -size if size is not None else float("inf"), name

    return sorted(dict.fromkeys(models), key=key)


def _group_label(name: str, specs: Mapping[str, ModelSpec]) -> str:
    spec = specs.get(name)
    if spec is None:
        return name
    size = f"{spec.size_b:g}B" if spec.size_b is not None else "size ?"
    kind = {True: "open", False: "proprietary", None: ""}[spec.open]
    return f"{name}\n({size}{', ' + kind if kind else ''})"


def mae_by_model(by_country: pl.DataFrame, order: Sequence[str], specs: Mapping[str, ModelSpec],
                 path: Path, references: dict[str, float] | None = None) -> None:
    """Figure 2: one panel per method; models along x in ``order``; a colored line per
    country and the black cross-country mean. The ensemble is not a model here."""
    plt = _plt()
    data = by_country.filter(pl.col("model").is_in(list(order)))
    methods = sorted(set(data["method"].to_list()))
    countries = sorted(set(data["country"].to_list()))
    fig, axes = plt.subplots(1, len(methods), figsize=(max(6, (1.0 + 0.7 * len(order)) * len(methods)), 4.6),
                             sharey=True, squeeze=False)
    x = np.arange(len(order))
    for ax, method in zip(axes[0], methods, strict=True):
        sub = data.filter(pl.col("method") == method)
        grid = np.full((len(countries), len(order)), np.nan)
        for model, country, mae in sub.select("model", "country", "mae").iter_rows():
            grid[countries.index(country), list(order).index(model)] = mae
        for i, country in enumerate(countries):
            ax.plot(x, grid[i], marker="o", ms=4, lw=1, alpha=0.8,
                    color=COUNTRY_COLORS[i % len(COUNTRY_COLORS)], label=country)
        mean = np.array([np.nanmean(col) if np.isfinite(col).any() else np.nan for col in grid.T])
        ax.plot(x, mean, marker="s", color="black", lw=2.2, label="mean over countries")
        groups = [(specs[m].open if m in specs else None) for m in order]
        for k in range(1, len(order)):
            if groups[k] != groups[k - 1]:  # proprietary | open | unknown
                ax.axvline(k - 0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(x, [_group_label(m, specs) for m in order], rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(method_label(method))
        ax.grid(alpha=0.3)
        draw_references(ax, references or {})
    axes[0, 0].set_ylabel("MAE (normalized by range)")
    axes[0, -1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("MAE per model and country (models by decreasing size; proprietary left of open)")
    fig.tight_layout()
    save_figure(fig, path)


def _density(ax, humans: pl.DataFrame, lim: tuple[float, float, float, float], *, lines: bool = False) -> None:
    """Weighted Gaussian KDE of the human respondents' positions: shaded, or as dashed
    contour lines (``lines``, the humans drawn item by item)."""
    from scipy.stats import gaussian_kde

    xy = humans.select("self_expression", "secular").to_numpy().T
    if xy.shape[1] < 3 or np.linalg.matrix_rank(np.cov(xy)) < 2:
        if not lines:
            ax.scatter(xy[0], xy[1], s=4, color="grey", alpha=0.3)
        return
    kde = gaussian_kde(xy, weights=humans["weight"].to_numpy())
    gx, gy = np.meshgrid(np.linspace(lim[0], lim[1], 120), np.linspace(lim[2], lim[3], 120))
    z = kde(np.vstack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    if lines:
        ax.contour(gx, gy, z, levels=5, colors="black", linestyles="dashed", linewidths=0.8)
    else:
        ax.contourf(gx, gy, z, levels=8, cmap="Greys", alpha=0.75)


def sampled_map(humans: pl.DataFrame, sample: pl.DataFrame, order: Sequence[str], path: Path,
                independent: pl.DataFrame | None = None) -> None:
    """Figure 1B: a row per model (in ``order``), a panel per country; the human density
    shaded (as they answered: context), the human respondents drawn item by item as the
    model respondents are (``independent``, the like-for-like reference) as dashed
    contours, each method's sampled respondents as markers (overlapping ones pile up)."""
    plt = _plt()
    countries = sorted(set(humans["country"].to_list()) | set(sample["country"].to_list()))
    models = [m for m in order if m in set(sample["model"].to_list())]
    methods = sorted(set(sample["method"].to_list()))
    both = pl.concat([humans.select("self_expression", "secular"), sample.select("self_expression", "secular")])
    lo = both.quantile(0.005).row(0)
    hi = both.quantile(0.995).row(0)
    pad = [(h - low) * 0.08 + 0.1 for low, h in zip(lo, hi, strict=True)]
    lim = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    fig, axes = plt.subplots(len(models), len(countries), figsize=(3.4 * len(countries), 3.3 * len(models)),
                             sharex=True, sharey=True, squeeze=False)
    for r, model in enumerate(models):
        for c, country in enumerate(countries):
            ax = axes[r, c]
            _density(ax, humans.filter(pl.col("country") == country), lim)
            if independent is not None and independent.height:
                _density(ax, independent.filter(pl.col("country") == country), lim, lines=True)
            for k, method in enumerate(methods):
                pts = sample.filter((pl.col("model") == model) & (pl.col("method") == method)
                                    & (pl.col("country") == country))
                ax.scatter(pts["self_expression"].to_numpy(), pts["secular"].to_numpy(), s=9,
                           marker=MARKERS[k % len(MARKERS)], facecolors="none", linewidths=0.6,
                           color=PALETTE[k % len(PALETTE)], alpha=0.35,
                           label=f"{method_label(method)} ({pts.height:,})")
            ax.set_xlim(lim[0], lim[1])
            ax.set_ylim(lim[2], lim[3])
            ax.set_title(country if len(models) == 1 else f"{country} · {model}", fontsize=10)
            if r == len(models) - 1:
                ax.set_xlabel("survival ← → self-expression")
            if c == 0:
                ax.set_ylabel("traditional ← → secular")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    labels = [lab.split(" (")[0] for lab in labels]
    if independent is not None and independent.height:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", ls="--", lw=0.8))
        labels.append("humans drawn item by item (like for like)")
    legend = fig.legend(handles, labels, loc="lower center",
                        ncol=max(1, len(labels)), frameon=False, bbox_to_anchor=(0.5, -0.02))
    for h in legend.legend_handles:
        h.set_alpha(1.0)
    fig.suptitle("Sampled model respondents (markers) over the human respondents' density (shading: as "
                 "they answered; dashed: drawn item by item)" if independent is not None and independent.height
                 else "Sampled model respondents (markers) over the human respondents' density (shading)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, path)
