"""Figure 7: per-item Shapley values across countries (the shapley stage's output).

A heatmap per model, persona items down, countries across, with a diverging
colour scale centred at 0: negative (blue) means including the item lowers the MAE,
positive (red) that it raises it. A last column and row give the mean over countries
and over items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from valuesim.artifacts import read_parquet
from valuesim.culturalmap.drawing import save_figure
from valuesim.report.html_page import Figure

CAPTION = (
    "Figure 7. Per-item Shapley values of the value persona across countries: each item's "
    "average change in MAE when its descriptor is added to the persona (over {n} sampled "
    "item orders; base: the persona with nationality only). Negative (blue): including "
    "the item lowers the MAE; positive (red): it raises it."
)


def shapley_heatmap(estimates: pl.DataFrame, path: Path) -> None:
    """Draw the heatmap(s) from data/shapley/shapley.parquet rows."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    models = estimates["model"].unique(maintain_order=True).to_list()
    countries = estimates["country"].unique(maintain_order=True).to_list()
    items = estimates.select("item", "label").unique(maintain_order=True).rows()
    grids = []
    for model in models:
        sub = {(c, i): v for c, i, v in estimates.filter(pl.col("model") == model)
               .select("country", "item", "shapley").iter_rows()}
        grid = np.array([[sub.get((c, i), np.nan) for c in countries] for i, _ in items])
        full = np.full((len(items) + 1, len(countries) + 1), np.nan)
        full[:-1, :-1] = grid
        full[:-1, -1] = np.nanmean(grid, axis=1)
        full[-1, :-1] = np.nanmean(grid, axis=0)
        grids.append(full)
    bound = max(float(np.nanmax(np.abs(np.stack(grids)))), 1e-12)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    width = max(6.0, 0.75 * (len(countries) + 1) + 3.5)
    fig, axes = plt.subplots(
        len(models), 1, figsize=(width, (0.42 * (len(items) + 1) + 1.4) * len(models)), squeeze=False
    )
    im = None
    for ax, model, grid in zip(axes[:, 0], models, grids, strict=True):
        im = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                v = grid[r, c]
                if np.isfinite(v):
                    ax.text(c, r, f"{v:+.3f}", ha="center", va="center", fontsize=7.5,
                            color="white" if abs(v) > 0.6 * bound else "black")
        ax.axhline(len(items) - 0.5, color="black", lw=1)
        ax.axvline(len(countries) - 0.5, color="black", lw=1)
        ax.set_xticks(range(len(countries) + 1), [*countries, "mean"])
        ax.set_yticks(range(len(items) + 1), [*(f"{label} ({i})" for i, label in items), "mean"])
        ax.set_title(f"Per-item Shapley values ({model})" if len(models) > 1 else "Per-item Shapley values")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="Shapley value (change in MAE)", shrink=0.8)
    save_figure(fig, path)


def shapley_figure(directory: Path, out: Path) -> Figure | None:
    """Figure 7 into ``out`` when the shapley stage produced values; None when it was off."""
    source = directory / "shapley.parquet"
    if not source.exists():
        return None
    estimates = read_parquet(source, "shapley")
    if estimates.is_empty():
        return None
    target = out / "shapley.png"
    shapley_heatmap(estimates, target)
    n = int(estimates["n_permutations"].max())  # type: ignore[arg-type]
    return Figure(target, CAPTION.format(n=n))
