"""The report's "New questions" section: the items of ``data.new_questions``.

Made from the new_questions stage's output (``data/new_questions``) and each run's
overall temperature (``data/calibrated/temperatures.json``). One figure per item
(a panel per country, a bar per method: calibrated shares, raw shares as ticks) and
one table (expected answer with its bootstrap interval, normalized variance raw and
calibrated, coverage); a nominal or binary item's table has the share of every option
and the modal answer instead, raw (:mod:`valuesim.survey.question_types`), and with
``order: rotate`` the share given to the option listed first; a multi item's options
(asked as one Yes/No item each) are grouped under it, a column per option with the
share selecting it. These items have no human answers: nothing is compared or
scored, and the section says so. Without new questions there is no section at all,
so the page is byte-identical to a study that never had the setting.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from valuesim import artifacts
from valuesim.config import Params
from valuesim.methods import method_label
from valuesim.report.html_page import Figure, figure_html, table

HEADING = "New questions (not evaluated)"
CAPTION = (
    "Simulated answers to the items of data.new_questions ({files}). These items have no "
    "human answers in this study: nothing here is compared with people, scored or part of "
    "any metric above, and a WVS item listed in a question file is shown as asked, without "
    "its human distribution. Calibrated shares use each run's temperature fitted on the "
    "WVS items (overall T of data/calibrated/temperatures.json), which is out of sample for "
    "these items; the tilt keeps each persona's expected answer, so the expected answer and "
    "its 95% bootstrap interval over personas are those of the raw answers. That interval "
    "is simulation noise only; where the population's answer lies is the 90% prediction "
    "interval (section \"How far to trust a new answer\")."
)
UNORDERED_CAPTION = (
    " Nominal and binary items ({items}) have unordered options: they are shown as the share "
    "of each option and the modal answer, with no expected answer, variance or interval, and "
    "are not calibrated (a tilt that keeps the expected code means nothing for unordered "
    "options, and on two options changes nothing); their bars are the raw shares."
)
MULTI_CAPTION = (
    " Multi items (select all that apply: {items}) are asked as one Yes/No item per option "
    "({example}): their tables and figures show the share selecting each option (the share of "
    "Yes), raw; the shares need not sum to 100%."
)
FIRST_LISTED_CAPTION = (
    " Items with order: rotate ({items}) list their options rotated by one place per persona; "
    "\"listed first\" is the mean share the personas gave whichever option their prompt listed "
    "first: 1/n for n options means no order effect, more a primacy effect (the model favours "
    "the first option it reads), less a recency effect."
)
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _runs(directory: Path) -> list[tuple[str, str]]:
    return sorted((p.parent.parent.name, p.parent.name)
                  for p in directory.glob("*/*/population.parquet"))


def load_new_questions(
    directory: Path, temperatures: Mapping[str, Mapping[str, Any]], params: Params
) -> tuple[list[dict[str, Any]], list[str], pl.DataFrame]:
    """The items, the question files and one row per (model, method, country, item)
    with raw and calibrated columns; no items (or no directory): empty."""
    from valuesim.asking import calibrated_population

    items_file = directory / "questions.json"
    if not items_file.exists():
        return [], [], pl.DataFrame()
    meta = artifacts.read_json(items_file, "new_questions", keys=("questions",))
    items = list(meta["questions"])
    if not items:
        return [], [], pl.DataFrame()
    frames = []
    for model, method in _runs(directory):
        run_dir = directory / model / method
        raw = artifacts.read_parquet(run_dir / "population.parquet", "new_questions")
        if raw.is_empty():
            continue
        t = (temperatures.get(f"{model}/{method}") or {}).get("overall")
        if t is None:
            cal = raw.with_columns(pl.lit(None, dtype=pl.Float64).alias("temperature"))
        else:
            answers = artifacts.read_parquet(run_dir / "answers.parquet", "new_questions")
            cal = calibrated_population(answers, raw, float(t), params)
        if "first_listed_share" not in raw.columns:  # written before the column existed
            raw = raw.with_columns(pl.lit(None, dtype=pl.Float64).alias("first_listed_share"))
        frames.append(raw.with_columns(
            pl.col("probs").alias("probs_raw"), pl.col("normalized_variance").alias("nvar_raw"),
            cal["probs"].alias("probs_cal"), cal["normalized_variance"].alias("nvar_cal"),
            cal["temperature"].alias("T"),
        ))
    rows = pl.concat(frames) if frames else pl.DataFrame()
    return items, [str(f) for f in meta.get("files", [])], rows


def item_table(rows: pl.DataFrame) -> pl.DataFrame:
    """One item's rows for display: country x run."""
    several = rows["model"].n_unique() > 1
    def span(lo: float | None, hi: float | None) -> str:
        return "" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"

    pred = [span(lo, hi) for lo, hi in rows.select("pred_low", "pred_high").iter_rows()]
    # one prompt per country (methods without personas) has no persona-to-persona spread:
    # an "interval" [x, x] would claim a precision nobody measured
    persona = [span(lo, hi) if (n or 0) > 1 else "one prompt: none"
               for lo, hi, n in rows.select("persona_ci_low", "persona_ci_high", "n_personas").iter_rows()]
    return rows.with_columns(
        pl.Series("prediction (90%)", pred, dtype=pl.Utf8),
        pl.Series("persona 95% (simulation noise)", persona, dtype=pl.Utf8),
    ).select(
        "country",
        (pl.format("{}/{}", "model", "method") if several else pl.col("method")).alias("run"),
        pl.col("expected"),
        pl.col("prediction (90%)"),
        pl.col("persona 95% (simulation noise)"),
        pl.col("nvar_raw").alias("nvar raw"), pl.col("nvar_cal").alias("nvar calibrated"),
        pl.col("T"), pl.col("mean_coverage").alias("coverage"),
        pl.col("n_personas").alias("personas"),
    )


def unordered_table(item: Mapping[str, Any], rows: pl.DataFrame) -> pl.DataFrame:
    """A nominal or binary item's rows for display: the share of every option (for a
    binary item the first is its summary) and the modal answer, with its label."""
    several = rows["model"].n_unique() > 1
    answers = list(item["answers"])
    columns = [f"{a['code']}={a['label']}" for a in answers]
    shares: list[list[float | None]] = [[] for _ in answers]
    modes = []
    for probs in rows["probs_raw"].to_list():
        for k in range(len(answers)):
            shares[k].append(None if probs is None else float(probs[k]))
        if probs is None:
            modes.append("")
            continue
        top = max(range(len(probs)), key=probs.__getitem__)
        modes.append(f"{answers[top]['code']} {answers[top]['label']} ({probs[top]:.0%})")
    # order: rotate: the share personas gave the option their prompt listed first
    first = [pl.col("first_listed_share").alias("listed first")] if item.get("order") == "rotate" else []
    return rows.with_columns(
        *[pl.Series(name, col, dtype=pl.Float64) for name, col in zip(columns, shares, strict=True)],
        pl.Series("mode", modes, dtype=pl.Utf8),
    ).select(
        "country",
        (pl.format("{}/{}", "model", "method") if several else pl.col("method")).alias("run"),
        *columns, "mode", *first, pl.col("mean_coverage").alias("coverage"),
        pl.col("n_personas").alias("personas"),
    )


def multi_rows(item: Mapping[str, Any], rows: pl.DataFrame) -> pl.DataFrame:
    """A multi item's rows, one per (country, run) as for any item: ``probs_raw`` (and
    ``probs_cal``) the share selecting each option, in option order (the "Yes" of each
    option's row, ``asked_as``); coverage the options' mean, personas their fewest."""
    asked = list(item["asked_as"])
    out = []
    for (country, model, method), group in rows.filter(pl.col("question").is_in(asked)).group_by(
            ["country", "model", "method"], maintain_order=True):
        by_id = {r["question"]: r for r in group.iter_rows(named=True)}
        found = [by_id.get(q) for q in asked]
        selected = [None if r is None or r["probs_raw"] is None else float(r["probs_raw"][0])
                    for r in found]
        coverage = [r["mean_coverage"] for r in found if r is not None and r["mean_coverage"] is not None]
        out.append({
            "country": country, "model": model, "method": method,
            # an option nobody answered has no share: the whole item has no bars then
            "probs_raw": None if None in selected else selected, "probs_cal": None,
            "mean_coverage": sum(coverage) / len(coverage) if coverage else None,
            "n_personas": min((r["n_personas"] for r in found if r is not None), default=0),
        })
    return pl.DataFrame(out, schema={
        "country": pl.Utf8(), "model": pl.Utf8(), "method": pl.Utf8(),
        "probs_raw": pl.List(pl.Float64()), "probs_cal": pl.List(pl.Float64()),
        "mean_coverage": pl.Float64(), "n_personas": pl.Int64()})


def multi_table(item: Mapping[str, Any], rows: pl.DataFrame) -> pl.DataFrame:
    """A multi item's :func:`multi_rows` for display: the share selecting each option."""
    several = rows["model"].n_unique() > 1
    answers = list(item["answers"])
    columns = [f"{a['code']}={a['label']}" for a in answers]
    shares = [[None if p is None else float(p[k]) for p in rows["probs_raw"].to_list()]
              for k in range(len(answers))]
    return rows.with_columns(
        *[pl.Series(name, col, dtype=pl.Float64) for name, col in zip(columns, shares, strict=True)],
    ).select(
        "country",
        (pl.format("{}/{}", "model", "method") if several else pl.col("method")).alias("run"),
        *columns, pl.col("mean_coverage").alias("coverage"), pl.col("n_personas").alias("personas"),
    )


def item_figure(item: Mapping[str, Any], rows: pl.DataFrame, path: Path) -> None:
    """Small multiples, one panel per country: a bar per run (calibrated shares) and a
    black tick at each raw share."""
    from valuesim.culturalmap.drawing import save_figure
    from valuesim.report.study_figures import _plt

    plt = _plt()
    countries = rows["country"].unique(maintain_order=True).to_list()
    runs = rows.select("model", "method").unique(maintain_order=True).rows()
    several = len({m for m, _ in runs}) > 1
    codes = [a["code"] for a in item["answers"]]
    # whole labels, wrapped (cut ones overlapped and lost their meaning)
    ticks = [str(a["code"]) if a["label"] == str(a["code"])
             else f"{a['code']}\n" + textwrap.fill(str(a["label"]), 12, max_lines=4, placeholder="…")
             for a in item["answers"]]
    cols = min(5, len(countries))
    nrows = -(-len(countries) // cols)
    # labelled ticks (at most 5 answers) need room for a wrapped 12-character line each
    width = max((0.65 if len(codes) <= 5 else 0.35) * len(codes) * cols, 2.6 * cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(width, 2.7 * nrows + 0.8), squeeze=False,
                             sharey=True)
    x = np.arange(len(codes))
    bar = 0.8 / max(len(runs), 1)
    for ax, country in zip(axes.flat, countries, strict=False):
        for i, (model, method) in enumerate(runs):
            sub = rows.filter((pl.col("country") == country) & (pl.col("model") == model)
                              & (pl.col("method") == method))
            if sub.is_empty() or sub["probs_raw"][0] is None:
                continue
            label = method_label(method) if not several else f"{model}/{method_label(method)}"
            pos = x - 0.4 + bar * (i + 0.5)
            cal = sub["probs_cal"][0] if sub["probs_cal"][0] is not None else sub["probs_raw"][0]
            ax.bar(pos, list(cal), width=bar, color=_PALETTE[i % len(_PALETTE)], label=label)
            ax.scatter(pos, list(sub["probs_raw"][0]), marker="_", color="black", s=40, zorder=3,
                       label="raw" if i == 0 else None)
        ax.set_title(country)
        ax.set_xticks(x, ticks if len(codes) <= 5 else [str(c) for c in codes], fontsize=7)
    for ax in list(axes.flat)[len(countries):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("share")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    kind = item.get("type", "ordinal")
    what = {"ordinal": "calibrated bars, raw ticks",
            "multi": "multi: share selecting each option, raw"}.get(kind, f"{kind}: raw shares, not calibrated")
    fig.suptitle(f"{item['id']}: {item['label']} ({what})")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)


def new_questions_section(
    directory: Path, temperatures: Mapping[str, Mapping[str, Any]], params: Params, out: Path
) -> tuple[str, str] | None:
    """The section's heading and HTML, its figures drawn into ``out``; None without
    new questions (the page then has no such section)."""
    items, files, rows = load_new_questions(directory, temperatures, params)
    if not items or rows.is_empty():
        return None
    caption = CAPTION.format(files=", ".join(files))
    unordered = [f"{i['id']}, {i['type']}" for i in items if i.get("type", "ordinal") in ("nominal", "binary")]
    if unordered:
        caption += UNORDERED_CAPTION.format(items="; ".join(unordered))
    multi = [i for i in items if i.get("type") == "multi"]
    if multi:
        caption += MULTI_CAPTION.format(items=", ".join(i["id"] for i in multi),
                                        example=", ".join(multi[0]["asked_as"][:2]) + ", ...")
    rotated = [i["id"] for i in items if i.get("order") == "rotate"]
    if rotated:
        caption += FIRST_LISTED_CAPTION.format(items=", ".join(rotated))
    parts = [f"<p class='caveat'>{html.escape(caption)}</p>"]
    for item in items:
        kind = item.get("type", "ordinal")
        sub = multi_rows(item, rows) if kind == "multi" else rows.filter(pl.col("question") == item["id"])
        if sub.is_empty():
            continue
        scale = "; ".join(f"{a['code']} = {a['label']}" for a in item["answers"]
                          if a["label"] != str(a["code"]))
        if kind == "multi":
            scale = (f"multi, select all that apply: {scale}; each option asked as Yes/No "
                     f"({', '.join(item['asked_as'])})")
        elif kind != "ordinal":
            scale = f"{kind}, unordered options: {scale}"
        parts.append(f"<h3>{html.escape(item['id'])}: {html.escape(item['label'])}</h3>"
                     f"<p><q>{html.escape(item['text'])}</q> ({html.escape(scale)})</p>")
        path = out / f"new_{item['id']}.png"
        item_figure(item, sub, path)
        if kind == "ordinal":
            parts.append(figure_html(Figure(path, (
                f"{item['id']} per country: each run's calibrated answer shares (bars) and raw "
                "shares (black ticks). Simulated only: there are no human answers to compare."))))
            parts.append(table(item_table(sub)))
        elif kind == "multi":
            parts.append(figure_html(Figure(path, (
                f"{item['id']} per country: each run's share selecting each option (bars, raw: "
                "the share of Yes when the option was asked on its own). Simulated only: there "
                "are no human answers to compare."))))
            parts.append(table(multi_table(item, sub)))
        else:
            parts.append(figure_html(Figure(path, (
                f"{item['id']} per country: each run's share of every option (bars, raw: "
                f"{kind} items are not calibrated). Simulated only: there are no human answers "
                "to compare."))))
            parts.append(table(unordered_table(item, sub)))
    return HEADING, "\n".join(parts)
