"""The study's figures (paper Figures 1, 3, 4/10, 8, 9, 11) as PNG files (Figures 1B and 2
across models: ``valuesim.report.model_figures``).

Each function takes the evaluate stage's frames and a path, draws one figure and
writes it atomically (``valuesim.culturalmap.drawing.save_figure``). Matplotlib is imported lazily
with the Agg backend so the package imports without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.culturalmap.drawing import Overlay, draw_map, save_figure
from valuesim.methods import method_label

REFERENCE_ORDER = ("midpoint", "uniform", "other_countries")
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("^", "s", "D", "v", "P", "X", "*", "h")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 120})
    return plt


#: how the references are drawn on every error plot: (label, line style, colour); the
#: uniform reference has the midpoint's means, so its MAE is the midpoint's and is not drawn
REFERENCE_LINES = {
    "midpoint": ("reference: scale midpoint", "--", "#555555"),
    "other_countries": ("reference: other countries' answers", "-.", "#2E7D32"),
}


def reference_means(references: pl.DataFrame | None, column: str = "mae") -> dict[str, float]:
    """Each drawn reference's error (reference_summary.parquet or a per-country table, averaged)."""
    if references is None or references.is_empty():
        return {}
    means = dict(references.group_by("method").agg(pl.col(column).mean()).iter_rows())
    # in REFERENCE_LINES' order: group_by's order varies, and the legend must not
    return {k: float(means[k]) for k in REFERENCE_LINES if k in means}


def draw_references(ax, refs: dict[str, float], *, vertical: bool = False) -> None:
    """The references as labelled lines, and the axis stretched from 0 to include them."""
    for key, value in refs.items():
        label, style, color = REFERENCE_LINES[key]
        line = ax.axvline if vertical else ax.axhline
        line(value, ls=style, color=color, lw=1.2, label=f"{label} ({value:.3f})")
    if refs:
        top = max(refs.values())
        if vertical:
            lo, hi = ax.get_xlim()
            ax.set_xlim(min(0.0, lo), max(hi, top * 1.08))
        else:
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(0.0, lo), max(hi, top * 1.08))


def _run(model: str, method: str, n_models: int) -> str:
    """A run's name in legends: the method's label, with the model when there are several."""
    label = method_label(method)
    return label if n_models == 1 else f"{model}/{label}"


def cultural_map(
    positions: pl.DataFrame, selected: list[str], sim: pl.DataFrame, path: Path
) -> None:
    """Figure 1: human positions plus each method's simulated country positions."""
    overlays = []
    n_models = sim["model"].n_unique() if sim.height else 1
    for i, ((model, method), grp) in enumerate(sim.group_by(["model", "method"], maintain_order=True)):
        points = {c: (s, e) for c, s, e in grp.select("country", "secular", "self_expression").iter_rows()}
        label = _run(model, method, n_models)
        xy = np.array(list(points.values()))
        same = len(xy) > 1 and bool(np.ptp(xy, axis=0).max() < 1e-9)
        if same:
            # a prompt that names no country (default, generic) gives every country
            # the same answers: one point, not ten identical ones with ten lines
            points = dict([next(iter(points.items()))])
            label += " (one position: no country in the prompt)"
        overlays.append(Overlay(
            label=label, points=points, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)],
            connect=not same, label_points=not same,
        ))
    draw_map(positions, selected, overlays, path=path,
             title="Inglehart-Welzel map: humans (filled) and simulated countries (open markers, "
                   "joined to their country)")


ALL = "all"  # Figure 11's first column: the MAE over all countries


def _heatmap_runs(by_country: pl.DataFrame, order: Sequence[str] | None) -> list[tuple[str, str]]:
    """(model, method) rows: the ensemble on top, then the models in ``order`` (Figure
    2's), any other model after them by name; each model's methods by name."""
    runs = by_country.select("model", "method").unique().sort(["model", "method"]).rows()
    rank = {m: i for i, m in enumerate(["ensemble", *(order or [])])}
    return sorted(runs, key=lambda r: (rank.get(r[0], len(rank)), r[0], r[1]))


def mae_heatmap(
    by_country: pl.DataFrame, wilcoxon: pl.DataFrame, path: Path,
    references: pl.DataFrame | None = None, order: Sequence[str] | None = None,
) -> None:
    """Figure 11: MAE per country x (model, method), with a first column "all" (the
    mean over countries). Bold = best method for that (model, country), * = better than
    every other method at BH-adjusted p < 0.05 (per-country Wilcoxon, ``p_bh``; not for "all"). Model ``ensemble`` rows
    (two or more models) come first; models follow in ``order``. Reference rows
    (``references``, model "reference") sit below a line, in italics, and never take
    the bold or the star: they are what the methods are read against."""
    plt = _plt()
    n_models = by_country["model"].n_unique()
    runs = _heatmap_runs(by_country, order)
    n_methods = len(runs)
    refs = references if references is not None else pl.DataFrame(schema=by_country.schema)
    ref_runs = [("reference", m) for m in REFERENCE_ORDER if m in set(refs["method"].to_list())]
    table = pl.concat([by_country.select("model", "method", "country", "mae"),
                       refs.select("model", "method", "country", "mae")])
    # columns in ascending MAE of generic prompting, as in the paper (else the first method)
    methods = [k for _, k in runs]
    first = by_country.filter(pl.col("method") == ("generic" if "generic" in methods else methods[0]))
    countries = first.group_by("country").agg(pl.col("mae").mean()).sort(["mae", "country"])["country"].to_list()
    columns = [ALL, *countries]
    rows = [*runs, *ref_runs]
    grid = np.full((len(rows), len(columns)), np.nan)
    for r, (model, method) in enumerate(rows):
        sub = dict(table.filter((pl.col("model") == model) & (pl.col("method") == method))
                   .select("country", "mae").iter_rows())
        grid[r, 1:] = [sub.get(c, np.nan) for c in countries]
        # every country weighs the same, as in the summary's MAE
        grid[r, 0] = float(np.mean(list(sub.values()))) if sub else np.nan
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(columns) + 3), 0.55 * len(rows) + 2))
    im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    for r, (model, method) in enumerate(rows):
        for c, country in enumerate(columns):
            v = grid[r, c]
            if np.isnan(v):
                continue
            if r >= n_methods:
                best = sig = False
            else:
                same = [i for i, (m, _) in enumerate(runs) if m == model]
                best = np.nanargmin(grid[same, c]) == same.index(r)
                sig = best and c > 0 and _significantly_best(wilcoxon, model, country, method)
            ax.text(c, r, f"{v:.3f}{'*' if sig else ''}", ha="center", va="center", fontsize=8.5,
                    weight="bold" if best else "normal", style="italic" if r >= n_methods else "normal",
                    color="white" if v > np.nanmean(grid) else "black")
    for r in range(1, n_methods):
        if runs[r][0] != runs[r - 1][0]:  # between models
            ax.axhline(r - 0.5, color="white", lw=1.5)
    if ref_runs:
        ax.axhline(n_methods - 0.5, color="white", lw=3)
    ax.axvline(0.5, color="white", lw=3)
    ax.set_xticks(range(len(columns)), ["all countries", *countries])
    labels = [_run(m, k, n_models) for m, k in runs] + [f"reference: {k}" for _, k in ref_runs]
    ax.set_yticks(range(len(rows)), labels)
    ax.set_title("MAE by country and method (bold: best method; *: BH-adjusted p<0.05 vs every other method)")
    fig.colorbar(im, ax=ax, label="MAE (normalized by range)", shrink=0.8)
    fig.tight_layout()
    save_figure(fig, path)


def _significantly_best(wilcoxon: pl.DataFrame, model: str, country: str, method: str) -> bool:
    if "vs_reference" in wilcoxon.columns:
        wilcoxon = wilcoxon.filter(~pl.col("vs_reference"))
    rows = wilcoxon.filter(
        (pl.col("model") == model) & (pl.col("country") == country)
        & ((pl.col("method_a") == method) | (pl.col("method_b") == method))
    )
    if rows.is_empty():
        return False
    p = rows["p_bh"] if "p_bh" in rows.columns else None  # an older table: no correction, no star
    return p is not None and bool(((rows["better"] == method) & (p < 0.05)).all())


def mae_by_country(by_country: pl.DataFrame, path: Path, references: pl.DataFrame | None = None) -> None:
    """Figure 2 style: MAE of each method per country, with the cross-country mean;
    ``references`` (reference_by_country.parquet) drawn per country as grey lines."""
    plt = _plt()
    n_models = by_country["model"].n_unique()
    countries = sorted(by_country["country"].unique().to_list())
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(countries) + 3), 4.5))
    for i, ((model, method), grp) in enumerate(by_country.group_by(["model", "method"], maintain_order=True)):
        vals = dict(grp.select("country", "mae").iter_rows())
        y = [vals.get(c, np.nan) for c in countries]
        ax.plot(countries, y, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)],
                label=f"{_run(model, method, n_models)} (mean {np.nanmean(y):.3f})")
    if references is not None and references.height:
        for key, (label, style, color) in REFERENCE_LINES.items():
            vals = dict(references.filter(pl.col("method") == key).select("country", "mae").iter_rows())
            y = [vals.get(c, np.nan) for c in countries]
            if np.isfinite(y).any():
                ax.plot(countries, y, ls=style, color=color, lw=1.2, label=f"{label} (mean {np.nanmean(y):.3f})")
        ax.set_ylim(0, ax.get_ylim()[1])
    ax.set_ylabel("MAE (normalized by range)")
    ax.set_title("MAE by method per country")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def nvar_boxplots(cells: pl.DataFrame, path: Path) -> None:
    """Figures 4/10: normalized variance by method vs human, before and after calibration."""
    plt = _plt()
    n_models = cells["model"].n_unique()
    runs = cells.select("model", "method").unique(maintain_order=True).sort(["model", "method"]).rows()
    human = cells.filter((pl.col("model") == runs[0][0]) & (pl.col("method") == runs[0][1]))["nvar_human"]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(runs) + 4), 4.5), sharey=True)
    for ax, col, title in zip(axes, ("nvar", "nvar_cal"), ("A. model output", "B. after mean-preserving calibration"), strict=True):
        data = [human.to_numpy()] + [
            cells.filter((pl.col("model") == m) & (pl.col("method") == k))[col].to_numpy() for m, k in runs
        ]
        labels = ["human"] + [_run(m, k, n_models) for m, k in runs]
        bp = ax.boxplot(data, patch_artist=True, widths=0.6)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
        for i, box in enumerate(bp["boxes"]):
            box.set_facecolor("#DDDDDD" if i == 0 else PALETTE[(i - 1) % len(PALETTE)])
            box.set_alpha(0.7)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("normalized variance (var / max var)")
    fig.suptitle("Response diversity per (country, question)")
    fig.tight_layout()
    save_figure(fig, path)


def temperature_curves(temperature: pl.DataFrame, path: Path) -> None:
    """Figure 9: MAE and Wasserstein vs T, plain (A, B) and mean-preserving (C, D)."""
    plt = _plt()
    n_models = temperature["model"].n_unique()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    panels = [("plain", "mae", "A. MAE, plain scaling"), ("plain", "wasserstein", "B. Wasserstein, plain scaling"),
              ("mean_preserving", "mae", "C. MAE, mean-preserving"),
              ("mean_preserving", "wasserstein", "D. Wasserstein, mean-preserving")]
    for ax, (scaling, col, title) in zip(axes.flat, panels, strict=True):
        sub = temperature.filter(pl.col("scaling") == scaling)
        for i, ((model, method), grp) in enumerate(sub.group_by(["model", "method"], maintain_order=True)):
            grp = grp.sort("temperature")
            t = grp["temperature"].to_numpy()
            color = PALETTE[i % len(PALETTE)]
            ax.plot(t, grp[col].to_numpy(), color=color, label=_run(model, method, n_models))
            ax.fill_between(t, grp[f"{col}_lo"].to_numpy(), grp[f"{col}_hi"].to_numpy(), color=color, alpha=0.15)
        ax.axvline(1.0, color="black", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_ylabel("MAE" if col == "mae" else "Wasserstein (normalized)")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("temperature T")
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)


def sample_size_curve(sample_sizes: pl.DataFrame, path: Path, floor: pl.DataFrame | None = None,
                      persona_floor: pl.DataFrame | None = None,
                      references: dict[str, float] | None = None) -> None:
    """Figure 3: MAE vs number of personas; band = range over repeated subsamples.

    ``floor`` (n, repeat, country, mae) adds the actual-answer floor: the error of n
    respondents' own answers; ``persona_floor`` (method, n, repeat, country, mae) the
    persona-information floor of each persona method: what a perfect simulator of n
    personas would score. Each with its 2.5-97.5% band over resamples.
    """
    plt = _plt()
    n_models = sample_sizes["model"].n_unique()
    per_rep = sample_sizes.group_by(["model", "method", "n", "repeat"]).agg(pl.col("mae").mean())
    stats = per_rep.group_by(["model", "method", "n"]).agg(
        pl.col("mae").mean().alias("mean"), pl.col("mae").min().alias("lo"), pl.col("mae").max().alias("hi")
    ).sort(["model", "method", "n"])
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for i, ((model, method), grp) in enumerate(stats.group_by(["model", "method"], maintain_order=True)):
        color = PALETTE[i % len(PALETTE)]
        n = grp["n"].to_numpy()
        ax.plot(n, grp["mean"].to_numpy(), marker="o", color=color, label=_run(model, method, n_models))
        ax.fill_between(n, grp["lo"].to_numpy(), grp["hi"].to_numpy(), color=color, alpha=0.15)
    sizes = sorted(stats["n"].unique().to_list())

    def band(frame: pl.DataFrame, style: str, color: str, label: str) -> None:
        f = (frame.filter(pl.col("n").is_in(sizes)).group_by(["n", "repeat"]).agg(pl.col("mae").mean())
             .group_by("n").agg(pl.col("mae").mean().alias("mean"),
                                pl.col("mae").quantile(0.025, "linear").alias("lo"),
                                pl.col("mae").quantile(0.975, "linear").alias("hi")).sort("n"))
        n = f["n"].to_numpy()
        ax.plot(n, f["mean"].to_numpy(), ls=style, marker="x", color=color, label=label)
        ax.fill_between(n, f["lo"].to_numpy(), f["hi"].to_numpy(), color=color, alpha=0.1)

    if floor is not None and floor.height:
        band(floor, "--", "black", "actual-answer floor (n respondents' own answers)")
    if persona_floor is not None and persona_floor.height:
        for (method,), grp in persona_floor.group_by(["method"], maintain_order=True):
            band(grp, ":", "dimgray", f"persona-information floor ({method}: perfect simulator of n personas)")
    draw_references(ax, references or {})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("personas sampled per country")
    ax.set_ylabel("MAE (mean over countries)")
    ax.set_title("MAE vs number of personas (band: range over random subsamples)")
    # below the axes: the floors' long labels would cover the curves inside them
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def per_question(per_q: pl.DataFrame, x_method: str, y_method: str, path: Path,
                 references: dict[str, float] | None = None) -> None:
    """Figure 8: per-question MAE of one method against another (above the diagonal:
    ``y_method`` is worse). A colored point per (model, question); with two or more
    models, black points are the mean over models per question. The ensemble (its own
    distributions, not an average of errors) is not drawn."""
    plt = _plt()
    per_q = per_q.filter(pl.col("model") != "ensemble").drop_nulls([x_method, y_method])
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for i, ((model,), grp) in enumerate(per_q.group_by(["model"], maintain_order=True)):
        ax.scatter(grp[x_method].to_numpy(), grp[y_method].to_numpy(), color=PALETTE[i % len(PALETTE)],
                   label=str(model), alpha=0.6, s=22)
    if per_q["model"].n_unique() > 1:
        mean = per_q.group_by("question").agg(pl.col(x_method).mean(), pl.col(y_method).mean())
        ax.scatter(mean[x_method].to_numpy(), mean[y_method].to_numpy(), color="black", s=26,
                   label="mean over models", zorder=3)
    refs = references or {}
    hi = max(float(np.nanmax(per_q.select(x_method, y_method).to_numpy())), *refs.values()) * 1.05
    ax.plot([0, hi], [0, hi], color="black", lw=0.8, ls="--")
    for key, value in refs.items():  # the references' mean error over all cells, on both axes
        label, style, color = REFERENCE_LINES[key]
        ax.axhline(value, ls=style, color=color, lw=1.0, label=f"{label} ({value:.3f})")
        ax.axvline(value, ls=style, color=color, lw=1.0)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    x_label, y_label = method_label(x_method), method_label(y_method)
    ax.set_xlabel(f"MAE, {x_label} prompting")
    ax.set_ylabel(f"MAE, {y_label} prompting")
    ax.set_title(f"Per-question MAE: {x_label} vs {y_label}")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
