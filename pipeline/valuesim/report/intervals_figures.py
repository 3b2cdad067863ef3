"""Figures 12-14 of the report's section "How far to trust a new answer".

12: nominal vs empirical coverage by level, per variant (Clopper-Pearson bars).
13: coverage at 90% per country and per battery, question and battery held out.
14: widths at 90% by variant, the references and the persona bootstrap beside them.
Figure 15 (the new questions with their intervals) is ``valuesim.report.intervals_new``.

Each drawing function takes the section's rows (``intervals_section.shown_rows``) and a
path, writes the PNG atomically (``save_figure``) and says whether it drew anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from valuesim.culturalmap.drawing import save_figure
from valuesim.report.intervals_table import (
    LEVEL,
    PERSONA,
    REFERENCE,
    default_variant,
    run_name,
    runs_of,
)
from valuesim.report.study_figures import PALETTE, _plt

VARIANTS = ("per_country", "pooled", "joint", "normalized")
VARIANT_COLORS = dict(zip(VARIANTS, ("#0072B2", "#D55E00", "#009E73", "#CC79A7"), strict=True))
REFERENCE_COLOR = "#777777"

CALIBRATION = (
    "Figure 12. Nominal vs empirical coverage of the prediction intervals on the study's own "
    "questions, one panel per run (the model-free references in the last), top: each question "
    "held out (LOQO), bottom: each battery held out (LOBO). Bars: Clopper-Pearson 95% intervals "
    "over (country, question) cells; thick line: the run's default variant. On the dashed "
    "diagonal the intervals cover as often as they promise; below it they are too narrow.")
BY_GROUP = (
    "Figure 13. Coverage at 90% of each run's default interval per country (A) and per battery "
    "(B): filled circles with each question held out (LOQO), open squares with its whole battery "
    "held out (LOBO); bars: Clopper-Pearson 95% intervals. Per-country LOQO coverage of a "
    "per-country threshold is close to 0.9 by construction; the LOBO points are the test of a "
    "question from a topic the study never asked.")
WIDTHS = (
    "Figure 14. Mean width at 90% (LOQO) of every interval variant as a share of the scale range "
    "(x 3: points on a 1-4 item, x 9: on a 1-10 item), with its coverage; grey: the model-free "
    "references (dashed lines across the plot) and the persona bootstrap at 95%, which is narrow "
    "because it measures simulation noise only. A run whose interval is not narrower than the "
    "other-countries line predicts a country less tightly than other countries' human answers.")
def _at(rows: pl.DataFrame, **eq: Any) -> pl.DataFrame:
    """``rows`` where each column equals its value (``level`` within 1e-9)."""
    for col, value in eq.items():
        rows = rows.filter((pl.col(col) - value).abs() < 1e-9) if col == "level" else rows.filter(
            pl.col(col) == value)
    return rows


def _errbar(ax, x: float, row: Mapping[str, Any], **style: Any) -> None:
    c = row["coverage"]
    ax.errorbar([x], [c], yerr=[[c - row["coverage_lo"]], [row["coverage_hi"] - c]], capsize=2.5,
                **style)


def calibration_plot(rows: pl.DataFrame, path: Path) -> bool:
    """Figure 12: a panel per run and validation, a line per variant across the levels."""
    overall = rows.filter((pl.col("group_type") == "overall") & (pl.col("group") == "all")
                          & pl.col("validation").is_in(["loqo", "lobo"]) & (pl.col("n_cells") > 0))
    runs = runs_of(overall)
    panels: list[tuple[str, pl.DataFrame]] = [
        (run_name(m, k, len({a for a, _ in runs})),
         overall.filter((pl.col("model") == m) & (pl.col("method") == k))) for m, k in runs]
    refs = overall.filter((pl.col("model") == REFERENCE) & pl.col("default"))
    if refs.height:
        panels.append(("references (default variant)", refs))
    if not panels:
        return False
    plt = _plt()
    lows = overall["coverage_lo"].drop_nulls()
    bottom = min(0.5, float(lows.min()) - 0.05) if lows.len() else 0.5
    fig, axes = plt.subplots(2, len(panels), figsize=(3.3 * len(panels) + 0.6, 6.6), sharex=True,
                             sharey=True, squeeze=False)
    for col, (title, sub) in enumerate(panels):
        lines = sorted(sub.select("method", "variant").unique().rows(),
                       key=lambda r: (r[0], VARIANTS.index(r[1]) if r[1] in VARIANTS else 9, r[1]))
        for row, validation in enumerate(("loqo", "lobo")):
            ax = axes[row, col]
            ax.plot([0.75, 1.0], [0.75, 1.0], color="black", ls="--", lw=0.8)
            for i, (method, variant) in enumerate(lines):
                pts = _at(sub, method=method, variant=variant, validation=validation).sort("level")
                if pts.is_empty():
                    continue
                is_ref = title.startswith("references")
                color = (PALETTE[i % len(PALETTE)] if is_ref
                         else VARIANT_COLORS.get(variant, PALETTE[(i + 4) % len(PALETTE)]))
                default = bool(pts["default"][0])
                label = (f"{method.replace('_', ' ')} ({variant})" if is_ref
                         else variant + (" (default)" if default else ""))
                dx = (i - (len(lines) - 1) / 2) * 0.006  # side by side, not on top of each other
                x = pts["level"].to_numpy() + dx
                ax.plot(x, pts["coverage"].to_numpy(), color=color, lw=2.4 if default else 1.0,
                        marker="o", ms=4, label=label if row == 0 else None)
                for xi, r in zip(x, pts.iter_rows(named=True), strict=True):
                    _errbar(ax, float(xi), r, color=color, lw=1.0, fmt="none")
            ax.set_xlim(0.76, 0.99)
            ax.set_ylim(bottom, 1.0)
            ax.set_xticks([0.8, 0.9, 0.95], ["0.80", "0.90", "0.95"])
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(title)
                ax.legend(fontsize=7.5, frameon=False, loc="lower right")
            else:
                ax.set_xlabel("nominal level")
        axes[0, 0].set_ylabel("empirical coverage, LOQO")
        axes[1, 0].set_ylabel("empirical coverage, LOBO")
    fig.suptitle("Do the prediction intervals cover as often as they promise?")
    fig.tight_layout()
    save_figure(fig, path)
    return True


def group_coverage(rows: pl.DataFrame, path: Path) -> bool:
    """Figure 13: coverage at 90% per country (A) and per battery (B), each run's default."""
    runs = runs_of(rows)
    n_models = len({m for m, _ in runs})
    shown = []
    for model, method in runs:
        variant = default_variant(rows, model, method)
        if variant is not None:
            shown.append((model, method, _at(rows, model=model, method=method, variant=variant,
                                             level=LEVEL).filter(pl.col("n_cells") > 0)))
    panels = [(t, g) for t, g in (("A. per country", "country"), ("B. per battery", "battery"))
              if any(s.filter(pl.col("group_type") == g).height for *_, s in shown)]
    if not panels:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels) + 0.6), squeeze=False)
    slots = [(i, v) for i in range(len(shown)) for v in ("loqo", "lobo")]
    for ax, (title, group_type) in zip(axes[:, 0], panels, strict=True):
        groups = sorted({g for *_, s in shown for g in s.filter(pl.col("group_type") == group_type)["group"]})
        step = 0.8 / len(slots)
        for j, (i, validation) in enumerate(slots):
            model, method, sub = shown[i]
            pts = dict((r["group"], r) for r in sub.filter(
                (pl.col("group_type") == group_type) & (pl.col("validation") == validation)
            ).iter_rows(named=True))
            color = PALETTE[i % len(PALETTE)]
            xs = [(k - 0.4 + step * (j + 0.5), pts[g]) for k, g in enumerate(groups) if g in pts]
            for n, (x, r) in enumerate(xs):
                label = (f"{run_name(model, method, n_models)}, {validation.upper()}"
                         if n == 0 else None)
                _errbar(ax, x, r, color=color, lw=0.9, fmt="o" if validation == "loqo" else "s", ms=4,
                        mfc=color if validation == "loqo" else "white", label=label)
        ax.axhline(LEVEL, color="black", ls="--", lw=0.8)
        ax.set_xticks(range(len(groups)), [g.replace("_", " ") for g in groups],
                      rotation=25 if group_type == "battery" else 0,
                      ha="right" if group_type == "battery" else "center", fontsize=8.5)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("coverage at 0.90")
        ax.set_title(title, loc="left")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, ncol=min(len(slots), 4), loc="upper center",
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight() * (1 + (len(slots) - 1) // 4)))
    save_figure(fig, path)
    return True


def widths(rows: pl.DataFrame, path: Path) -> bool:
    """Figure 14: mean width at 90% (LOQO) per run and variant, references and the
    persona bootstrap (95%) beside them; coverage written at each bar."""
    overall = rows.filter((pl.col("group_type") == "overall") & (pl.col("group") == "all"))
    runs = runs_of(overall)
    n_models = len({m for m, _ in runs})
    bars: list[tuple[str, dict[str, Any], str]] = []
    for i, (model, method) in enumerate(runs):
        sub = overall.filter((pl.col("model") == model) & (pl.col("method") == method))
        for variant in sorted(sub["variant"].unique(), key=lambda v: VARIANTS.index(v) if v in VARIANTS else 9):
            persona = variant == PERSONA
            hit = _at(sub, variant=variant, level=0.95 if persona else LEVEL,
                      validation="none" if persona else "loqo")
            if hit.height:
                r = hit.row(0, named=True)
                name = "persona bootstrap (95%)" if persona else variant + (" (default)" if r["default"] else "")
                bars.append((f"{run_name(model, method, n_models)}: {name}", r,
                             REFERENCE_COLOR if persona else PALETTE[i % len(PALETTE)]))
    refs = _at(overall.filter(pl.col("model") == REFERENCE), level=LEVEL, validation="loqo").sort("method")
    lines = []
    for r in refs.filter(pl.col("default")).iter_rows(named=True):
        bars.append((f"reference: {r['method'].replace('_', ' ')} ({r['variant']})", r, REFERENCE_COLOR))
        lines.append((r["method"].replace("_", " "), r["width_norm"]))
    bars = [b for b in bars if b[1]["width_norm"] is not None]
    if not bars:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.36 * len(bars) + 1.6))
    y = np.arange(len(bars))[::-1]
    for yi, (_, r, color) in zip(y, bars, strict=True):
        w = r["width_norm"]
        ax.barh(yi, w, color=color, alpha=0.85, height=0.7)
        ax.text(w + 0.01, yi, f"{w:.2f} ({w * 3:.1f} / {w * 9:.1f} pts), coverage {r['coverage']:.2f}",
                va="center", fontsize=7.5, zorder=3,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85})
    for name, w in lines:
        ax.axvline(w, color="black", ls="--", lw=0.8)
        ax.text(w, len(bars) - 0.3, f" {name}", fontsize=7.5, va="bottom", rotation=0)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
    ax.set_xlim(0, 1.45)
    ax.set_ylim(-0.6, len(bars) + 0.3)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel("mean interval width / scale range (1.0: the whole scale)")
    ax.set_title("How wide is the 90% prediction interval?", loc="left")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_figure(fig, path)
    return True
