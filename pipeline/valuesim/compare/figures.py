"""The comparison's box plots: one per varying param, and one over all of them.

A *panel* is one figure: its boxes (groups of per-cell errors) and the BH-corrected
tests between them (:mod:`valuesim.compare.significance`: paired and clustered by
question by default, the paper's unpaired Mann-Whitney U on request). With one varying param (a guidance sweep) there is one panel,
a box per value: the paper's Figure 5. With several (descriptor generator and
variant: the paper's Figure 6) each param gets its own panel, pooled over the others,
and one more panel has a box per experiment, clustered by the first param's value
and coloured by the others'.

Where several methods are compared, each slot holds one box per method, coloured by
method (``--pool-methods`` pools them into one box): the methods' error levels differ
(on the demo, value personas 0.29 against country prompting 0.26), so a pooled box's
spread would be mostly the gap between methods, not the setting's effect. The tests and
brackets stay one per pair of slots: they pair the slots' cells method by method (the
paired test matches model, method, country and question), so they ask whether the
setting changes the error across the methods shown. Horizontal lines mark the
references and floors (:mod:`valuesim.compare.reference_lines`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.compare.reference_lines import Reference
from valuesim.compare.significance import PAIRED, paired_pairwise_tests, pairwise_tests
from valuesim.culturalmap.drawing import save_figure
from valuesim.methods import method_label

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#999999")
# Brackets for every pair up to this many pairs (5 boxes); beyond, only the significant
# ones if they are this few, else none (the test table has every pair).
ANNOTATE_MAX_PAIRS = 10
# The paper's figures, by the params they vary (Figure 6: anything under descriptors.)
PAPER_FIGURES = (("prompts.guidance", "Figure 5"), ("descriptors.", "Figure 6"))


@dataclass(frozen=True)
class Box:
    label: str  # shown on the axis and in the test table
    cluster: str  # the first param's value: boxes of one cluster sit together
    hue: str  # the other params' values (the colour); "" for a one-param panel
    values: np.ndarray
    by_method: dict[str, np.ndarray] = field(default_factory=dict)
    cells: pl.DataFrame | None = None  # model, method, country, question, metric: the paired test's input


@dataclass(frozen=True)
class Panel:
    keys: tuple[str, ...]
    file: str
    boxes: list[Box]
    tests: pl.DataFrame
    metric: str = "mae"

    @property
    def paper(self) -> str | None:
        """"Figure 5" / "Figure 6" when the panel is one of the paper's cases (MAE only)."""
        if self.metric != "mae":
            return None
        for prefix, name in PAPER_FIGURES:
            if all(k == prefix or (prefix.endswith(".") and k.startswith(prefix)) for k in self.keys):
                return name
        return None


# A file name's slug: long enough for any params key; a longer one (keys come from the
# experiments' params.yaml) is cut and told apart by a digest, never an OS error.
_SLUG_MAX = 120


def file_name(metric: str, keys: Sequence[str]) -> str:
    """``mae_by_prompts_guidance.png``; ``_x_`` joins the params of a combined panel."""
    slug = "_x_".join(re.sub(r"[^A-Za-z0-9]+", "_", k).strip("_") for k in keys)
    if len(slug) > _SLUG_MAX:
        slug = f"{slug[: _SLUG_MAX - 13]}_{hashlib.sha256(slug.encode()).hexdigest()[:12]}"
    return f"{re.sub(r'[^A-Za-z0-9]+', '_', metric)[:_SLUG_MAX]}_by_{slug}.png"


def _box(frame: pl.DataFrame, metric: str, label: str, cluster: str, hue: str) -> Box:
    methods = {m: g[metric].to_numpy() for (m,), g in frame.group_by(["method"], maintain_order=True)}
    return Box(label=label, cluster=cluster, hue=hue, values=frame[metric].to_numpy(),
               by_method=dict(sorted(methods.items())),
               cells=frame.select("model", "method", "country", "question", metric))


def panels(cells: pl.DataFrame, keys: Sequence[str], metric: str, test: str = PAIRED) -> list[Panel]:
    """``cells``: every experiment's cells with one column per varying param (``keys``);
    ``test``: ``paired`` (clustered by question) or ``mann-whitney`` (unpaired)."""
    out = []
    for key in keys:
        boxes = [_box(g, metric, value, value, "")
                 for (value,), g in cells.group_by([key], maintain_order=True)]
        # lowest median first: the best value reads off the left end, as in Figure 5
        boxes.sort(key=lambda b: (float(np.median(b.values)), b.label))
        out.append(_panel((key,), boxes, metric, test))
    if len(keys) > 1:
        rest = list(keys[1:])
        combos = cells.select(*keys).unique().sort(list(keys)).rows()
        boxes = []
        for combo in combos:
            sub = cells.filter(pl.all_horizontal(pl.col(k) == v for k, v in zip(keys, combo, strict=True)))
            # the legend's title names the keys; with one key the value alone reads best
            hue = (str(combo[1]) if len(rest) == 1
                   else ", ".join(f"{k}={v}" for k, v in zip(rest, combo[1:], strict=True)))
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
            boxes.append(_box(sub, metric, label, combo[0], hue))
        out.append(_panel(tuple(keys), boxes, metric, test))
    return out


def _panel(keys: tuple[str, ...], boxes: list[Box], metric: str, test: str = PAIRED) -> Panel:
    tests = (paired_pairwise_tests({b.label: b.cells for b in boxes if b.cells is not None}, metric)
             if test == PAIRED else pairwise_tests({b.label: b.values for b in boxes}))
    return Panel(keys=keys, file=file_name(metric, keys), boxes=boxes, tests=tests, metric=metric)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 120})
    return plt


def _positions(boxes: Sequence[Box]) -> list[float]:
    """x of each box: clusters one unit apart, boxes inside a cluster 0.8 wide in all."""
    xs, x, previous = [], -1.0, None
    sizes = {c: sum(b.cluster == c for b in boxes) for c in {b.cluster for b in boxes}}
    inside = 0
    for b in boxes:
        if b.cluster != previous:
            x, inside, previous = x + 1.0, 0, b.cluster
        n = sizes[b.cluster]
        xs.append(x + (inside - (n - 1) / 2) * (0.8 / n))
        inside += 1
    return xs


def _brackets(ax, panel: Panel, xs: Sequence[float], top: float, span: float) -> int:
    """Significance brackets over the boxes; returns how many were drawn."""
    tests = panel.tests
    if tests.height > ANNOTATE_MAX_PAIRS:
        tests = tests.filter(pl.col("stars").is_in(["*", "**", "***", "****"]))
        if tests.height > ANNOTATE_MAX_PAIRS:
            return 0
    where = {b.label: x for b, x in zip(panel.boxes, xs, strict=True)}
    # shorter brackets lower, so they nest instead of crossing
    rows = sorted(tests.iter_rows(named=True), key=lambda r: abs(where[r["a"]] - where[r["b"]]))
    step = 0.07 * span
    for i, row in enumerate(rows):
        x1, x2 = sorted((where[row["a"]], where[row["b"]]))
        y = top + step * (i + 0.6)
        ax.plot([x1, x1, x2, x2], [y, y + step * 0.3, y + step * 0.3, y], lw=0.9, color="#333")
        ax.text((x1 + x2) / 2, y + step * 0.32, row["stars"], ha="center", va="bottom", fontsize=8)
    return len(rows)


# the reference lines: a model-free prediction dashed, a floor dotted; muted colours,
# one per line, so the legend tells lines of one kind apart and the boxes still lead
REFERENCE_STYLE = {"reference": "--", "floor": ":"}
LINE_COLORS = ("#444444", "#8C564B", "#7F7F7F", "#17BECF", "#BCBD22", "#9467BD")


def per_method(panel: Panel, hue_method: bool) -> bool:
    """Whether the panel draws one box per method: asked for and more than one method
    (with one method a box is that method's, and colour can keep telling params apart)."""
    return hue_method and len({m for b in panel.boxes for m in b.by_method}) > 1


def figure(panel: Panel, metric: str, hue_method: bool = True,
           references: Sequence[Reference] = ()) -> tuple[object, int]:
    """The panel's matplotlib figure and the number of significance brackets drawn.

    ``hue_method``: one box per method inside each slot (the default; a method's errors
    are not mixed with another's, whose level differs), else the methods' cells pooled
    into one box. ``references``: horizontal lines (:mod:`valuesim.compare.reference_lines`)."""
    plt = _plt()
    boxes = panel.boxes
    xs = _positions(boxes)
    methods = sorted({m for b in boxes for m in b.by_method})
    split = per_method(panel, hue_method)
    width = max(6.0, 0.75 * len(boxes) * (len(methods) if split else 1) + 2.5)
    hues = list(dict.fromkeys(b.hue for b in boxes))
    # the legend sits right of the axes: room for it, so the axes keep their width
    side = 3.2 if (split or any(hues) or references) else 0.0
    fig, ax = plt.subplots(figsize=(min(width, 16.0) + side, 5.2))
    handles: dict[str, object] = {}
    # each box's slot: the width a cluster's share of 0.8 leaves it
    slot = 0.8 / max(sum(b.cluster == c for b in boxes) for c in {b.cluster for b in boxes})
    if split:
        sub = slot / len(methods)  # one sub-box per method inside the slot
        for j, method in enumerate(methods):
            keep = [(x, b.by_method[method]) for x, b in zip(xs, boxes, strict=True) if method in b.by_method]
            where = [x + (j - (len(methods) - 1) / 2) * sub for x, _ in keep]
            art = ax.boxplot([v for _, v in keep], positions=where,
                             widths=sub * 0.85, patch_artist=True, showfliers=True, manage_ticks=False,
                             medianprops={"color": "black"})
            for patch in art["boxes"]:
                patch.set_facecolor(PALETTE[j % len(PALETTE)])
                patch.set_alpha(0.75)
                patch.set_gid(f"box:{method}")
            if art["boxes"]:
                handles[method_label(method)] = art["boxes"][0]
            for x, (_, v) in zip(where, keep, strict=True):  # the mean, which the MAE summarizes
                ax.plot([x], [float(np.mean(v))], marker="D", ms=3, color="black", zorder=3)
    else:
        art = ax.boxplot([b.values for b in boxes], positions=xs, widths=slot * 0.75,
                         patch_artist=True, showfliers=True, manage_ticks=False,
                         medianprops={"color": "black"})
        for b, patch in zip(boxes, art["boxes"], strict=True):
            color = PALETTE[hues.index(b.hue) % len(PALETTE)]
            patch.set_facecolor(color)
            patch.set_alpha(0.75)
            patch.set_gid("box:pooled")
            handles.setdefault(b.hue, patch)
        for x, b in zip(xs, boxes, strict=True):  # the mean, which the MAE summarizes
            ax.plot([x], [float(np.mean(b.values))], marker="D", ms=4, color="black", zorder=3)
    for i, ref in enumerate(references):
        line = ax.axhline(ref.value, lw=1.1, zorder=1, linestyle=REFERENCE_STYLE[ref.kind],
                          color=LINE_COLORS[i % len(LINE_COLORS)])
        line.set_gid(f"reference:{ref.label}")
        handles[f"{ref.label} ({ref.value:.3f})"] = line
    if len(panel.keys) == 1:
        clusters = [b.label for b in boxes]
        centers = xs
    elif split:  # colour tells methods apart: each slot names its other params' values
        clusters = [f"{b.cluster}\n{b.hue}" for b in boxes]
        centers = xs
    else:
        clusters = list(dict.fromkeys(b.cluster for b in boxes))
        centers = [float(np.mean([x for x, b in zip(xs, boxes, strict=True) if b.cluster == c]))
                   for c in clusters]
    crowded = sum(len(c) for c in clusters) * 7.0 > (fig.get_figwidth() - side) * 72 * 0.8  # ~7 pt a character
    ax.set_xticks(centers, clusters, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_xlabel(panel.keys[0])
    ax.set_ylabel(f"{'MAE' if metric == 'mae' else metric} per cell (normalized by range)")
    values = np.concatenate([b.values for b in boxes])
    lo, hi = float(np.min(values)), float(np.max(values))
    drawn = _brackets(ax, panel, xs, hi, max(hi - lo, 1e-9))
    if drawn:
        ax.set_ylim(top=hi + 0.07 * max(hi - lo, 1e-9) * (drawn + 1.2))
    legend = {k: v for k, v in handles.items() if k}
    if legend:
        title = "method" if split else ", ".join(panel.keys[1:])
        ax.legend(list(legend.values()), list(legend.keys()), title=title or None, fontsize=8,
                  title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    shown = "MAE" if metric == "mae" else metric
    ax.set_title(f"{panel.paper + ' (paper): ' if panel.paper else ''}{shown} by {' x '.join(panel.keys)}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig, drawn


def draw(panel: Panel, path: Path, metric: str, hue_method: bool = True,
         references: Sequence[Reference] = ()) -> int:
    """Draw one panel as a PNG (atomically); returns the number of brackets drawn."""
    fig, drawn = figure(panel, metric, hue_method, references)
    save_figure(fig, path)
    return drawn
