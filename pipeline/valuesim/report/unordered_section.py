"""The report's section on nominal and binary target items (total variation, Jensen-Shannon).

Only when the study has such items (evaluate then writes data/eval/unordered_*.parquet):
a study of ordinal items gets no section and the page it had before.
"""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from valuesim import artifacts
from valuesim.report.html_page import table

HEADING = "Nominal and binary items"
CAPTION = (
    "These target items have unordered options, so they have no mean answer: they are left "
    "out of the MAE, the Wasserstein distance, the variances, the calibration (their shares "
    "are raw), the tests and the prediction intervals above. Each (country, item) compares "
    "the simulated shares (the mean of the personas' distributions) with the weighted human "
    "shares by the total variation distance TV (half the summed absolute differences of "
    "the shares: the most any set of options gains or loses) and the Jensen-Shannon "
    "distance JS (base 2); both are 0 for equal distributions and 1 for disjoint ones. "
    "References: every option equally likely (uniform) and the pooled respondents of the "
    "other countries. For a binary item TV is the difference in the share of the first "
    "option; Δ first is its sign (simulated minus human)."
)


def _pct(label: str | None, share: float | None) -> str:
    return "" if label is None or share is None else f"{label} ({share:.0%})"


def _run(model: str, method: str) -> str:
    return f"{model}/{method}"


def summary_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Per run and reference: mean TV and JS over countries with their 95% intervals."""
    return summary.select(
        pl.concat_str(["model", "method"], separator="/").alias("run"),
        pl.col("tv").alias("TV"),
        pl.format("{} to {}", pl.col("tv_lo").round(3), pl.col("tv_hi").round(3)).alias("TV 95%"),
        pl.col("js").alias("JS"),
        pl.format("{} to {}", pl.col("js_lo").round(3), pl.col("js_hi").round(3)).alias("JS 95%"),
        pl.col("n_countries").alias("countries"), pl.col("n_questions").alias("items"),
    )


def item_table(cells: pl.DataFrame, binary: bool) -> pl.DataFrame:
    """One row per (country, run): both modal answers by label, TV and JS."""
    rows = []
    for r in cells.sort(["country", "model", "method"]).iter_rows(named=True):
        row = {
            "country": r["country"], "run": _run(r["model"], r["method"]),
            "people's mode": _pct(r["mode_human_label"], r["mode_human_share"]),
            "simulated mode": _pct(r["mode_sim_label"], r["mode_sim_share"]),
            "TV": r["tv"], "JS": r["js"],
        }
        if binary:
            row["Δ first"] = r["share_first_diff"]
        rows.append(row)
    return pl.DataFrame(rows)


def unordered_section(eval_dir: Path) -> tuple[str, str] | None:
    """The section's heading and HTML; None when the study has no nominal or binary target."""
    path = eval_dir / "unordered_cells.parquet"
    if not path.exists():
        return None
    cells = artifacts.read_parquet(path, "evaluate")
    if cells.is_empty():
        return None
    refs = artifacts.read_parquet(eval_dir / "unordered_reference_cells.parquet", "evaluate")
    summary = artifacts.read_parquet(eval_dir / "unordered_summary.parquet", "evaluate")
    both = pl.concat([cells, refs]).sort("question")
    parts = [f"<p class='caveat'>{html.escape(CAPTION)}</p>", table(summary_table(summary))]
    for (question, kind), grp in both.group_by(["question", "type"], maintain_order=True):
        parts.append(f"<h3>{html.escape(str(question))} ({html.escape(str(kind))})</h3>")
        parts.append(table(item_table(grp, kind == "binary")))
    return HEADING, "".join(parts)
