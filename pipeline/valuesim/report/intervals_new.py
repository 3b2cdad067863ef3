"""Figure 15 of the report's section "How far to trust a new answer": each item of
``data.new_questions`` as the runs answered it per country, with its prediction interval
(where the population's mean should lie, from the study's conformal fit) and its persona
interval (simulation noise only).

Reads the new_questions stage's output; an output written before the stage added
``pred_*`` gets the study's fit applied here, as the stage applies it
(``valuesim.prediction``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from valuesim import artifacts
from valuesim.culturalmap.drawing import save_figure
from valuesim.report.intervals_table import run_name
from valuesim.report.study_figures import MARKERS, PALETTE, _plt

NO_PREDICTION = (
    "The new questions have no prediction intervals: there is no interval fit of these runs "
    "(data/eval/interval_fits.parquet, from the evaluate stage), so none is claimed (no "
    "pred_low/pred_high); re-run `dvc repro evaluate new_questions` to add them.")


def unordered_note(items: list[dict[str, Any]]) -> str:
    """Why nominal and binary items have no figure here."""
    named = ", ".join(f"{i['id']} ({i['type']})" for i in items)
    return (f"{named}: unordered options have no mean answer, so no expected answer and no "
            "prediction interval; their shares per option are in the section \"New questions\".")


def _predicted(raw: pl.DataFrame, project: Path) -> pl.DataFrame:
    """A run's new-question rows with pred_* columns: the stage's own, or (an output
    written before the stage added them) the study's fit applied here, as the stage
    applies it; null where there is no fit, or the fit needs the personas' spread
    (``normalized``) and the rows lack it."""
    from valuesim.methods import get_method
    from valuesim.prediction import (
        DEFAULT_LEVEL,
        INTERVAL_FITS,
        PRED_COLUMNS,
        add_prediction_intervals,
        find_fit,
    )

    if "pred_low" in raw.columns or not (project / INTERVAL_FITS).exists():
        return raw
    model, method = str(raw["model"][0]), str(raw["method"][0])
    n = None if get_method(method).persona is None else int(raw["n_personas"].max())  # type: ignore[arg-type]
    fit, _ = find_fit(project, model, method, level=DEFAULT_LEVEL, n=n)
    if fit is not None and fit.variant == "normalized" and "persona_sd" not in raw.columns:
        fit = None
    return add_prediction_intervals(raw, fit, asked_n=n, level=DEFAULT_LEVEL).select(
        *[c for c in raw.columns if c not in PRED_COLUMNS], *PRED_COLUMNS)


def load_new_answers(directory: Path, project: Path = Path()) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """The new_questions stage's items and one row per (model, method, country, item):
    expected answer, persona interval and prediction interval (null where there is
    none; ``project``: where data/eval/interval_fits.parquet is); no items: empty."""
    items_file = directory / "questions.json"
    if not items_file.exists():
        return [], pl.DataFrame()
    items = list(artifacts.read_json(items_file, "new_questions", keys=("questions",))["questions"])
    frames = []
    for pop in sorted(directory.glob("*/*/population.parquet")):
        raw = artifacts.read_parquet(pop, "new_questions")
        if raw.is_empty():
            continue
        raw = _predicted(raw, project)
        # persona_ci_*: the bootstrap over personas; ci_*: its name before issue 20
        low, high = ("persona_ci_low", "persona_ci_high") if "persona_ci_low" in raw.columns else (
            "ci_low", "ci_high")

        def col(name: str, dtype: pl.DataType, frame: pl.DataFrame = raw) -> pl.Expr:
            return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)

        frames.append(raw.select(
            "model", "method", "country", "question", "expected", pl.col(low).alias("persona_low"),
            pl.col(high).alias("persona_high"), col("pred_low", pl.Float64()),
            col("pred_high", pl.Float64()), col("pred_level", pl.Float64()), col("pred_source", pl.Utf8())))
    return items, (pl.concat(frames) if frames else pl.DataFrame())


def _ticks(item: Mapping[str, Any], panel_in: float) -> list[str]:
    """Answer codes with their labels wrapped to the room a tick has; with many codes
    only the two ends carry a label, so neighbouring labels never overlap."""
    answers = item["answers"]
    room = max(4, int(panel_in * 72 / len(answers) / 4.2))  # characters at 7 pt
    ends = len(answers) > 5
    out = []
    for i, a in enumerate(answers):
        label = str(a["label"])
        named = label != str(a["code"]) and (not ends or i in (0, len(answers) - 1))
        # the end labels have no neighbour beyond their first line: they may run wider
        text = textwrap.fill(label, max(room, 11) if ends else room, max_lines=3, placeholder="…",
                             break_long_words=False)
        out.append(f"{a['code']}\n{text}" if named else str(a["code"]))
    return out


def new_question(item: Mapping[str, Any], rows: pl.DataFrame, path: Path) -> None:
    """Figure 15 for one item: a panel per run, a row per country; the dot is the
    simulated expected answer, the light bar the prediction interval, the dark capped
    bar the persona interval."""
    plt = _plt()
    runs = sorted(rows.select("model", "method").unique().rows())
    n_models = len({m for m, _ in runs})
    countries = sorted(rows["country"].unique().to_list())
    codes = [int(a["code"]) for a in item["answers"]]
    lo, hi = min(codes), max(codes)
    panel_in = max(3.2, min(5.0, 0.45 * len(codes)))
    fig, axes = plt.subplots(1, len(runs), figsize=(panel_in * len(runs) + 1.0, 0.42 * len(countries) + 2.2),
                             sharey=True, squeeze=False)
    ticks = _ticks(item, panel_in)
    y = {c: k for k, c in enumerate(reversed(countries))}
    for i, (ax, (model, method)) in enumerate(zip(axes[0], runs, strict=True)):
        sub = rows.filter((pl.col("model") == model) & (pl.col("method") == method))
        color = PALETTE[i % len(PALETTE)]
        for r in sub.iter_rows(named=True):
            yi = y[r["country"]]
            if r["pred_low"] is not None and r["pred_high"] is not None:
                ax.plot([r["pred_low"], r["pred_high"]], [yi, yi], color=color, alpha=0.3, lw=9,
                        solid_capstyle="butt")
            ax.plot([r["expected"]], [yi], marker=MARKERS[i % len(MARKERS)], color=color, mfc="white",
                    mew=1.5, ms=7, ls="none")
            if r["persona_low"] is not None and r["persona_high"] is not None:
                # on top of the marker: a persona interval is often narrower than the marker
                ax.errorbar([r["expected"]], [yi], xerr=[[r["expected"] - r["persona_low"]],
                                                         [r["persona_high"] - r["expected"]]],
                            color="black", capsize=4, capthick=1.2, lw=1.4, fmt="none", zorder=4)
        levels = sorted({float(v) for v in sub["pred_level"].drop_nulls()})
        what = (f"{', '.join(f'{v:.0%}' for v in levels)} prediction interval" if levels
                else "no prediction interval")
        ax.set_title(f"{run_name(model, method, n_models)}\n({what})", fontsize=9.5)
        ax.set_xlim(lo - 0.4, hi + 0.4)
        ax.set_xticks(codes, ticks, fontsize=7)
        ax.set_xlabel("answer (marker: simulated expected answer)", fontsize=8.5)
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(list(y.values()), list(y.keys()))
    axes[0, 0].set_ylim(-0.7, len(countries) - 0.3)
    title = textwrap.shorten(f"{item['id']}: {item['label']}", 90, placeholder="…")
    fig.suptitle(f"{title}\nshaded: prediction interval (study fit); black: persona interval "
                 "(simulation noise)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def new_question_caption(item: Mapping[str, Any], rows: pl.DataFrame) -> str:
    """Figure 15's caption for one item, naming the fits its intervals came from."""
    sources = sorted({str(s) for s in rows["pred_source"].drop_nulls()})
    shown = "; ".join(sources[:6]) + ("; ..." if len(sources) > 6 else "")
    fitted = (f" Prediction intervals from: {shown}." if sources else
              " No prediction interval: no fit of these runs on the study's questions.")
    return (f"Figure 15 ({item['id']}). Simulated answer per country (marker) with its prediction "
            "interval (shaded: where the population's mean is expected to lie, fitted on the study's "
            "questions, valid if this item is exchangeable with them) and its 95% persona interval "
            "(black: simulation noise only). There are no human answers to this item." + fitted)
