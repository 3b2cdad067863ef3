"""The report's section "How far to trust a new answer": the study's prediction intervals.

Made from the evaluate stage's ``data/eval/intervals.parquet`` (coverage and width of
every interval variant, validated by holding out whole questions or whole batteries)
and, for the items of ``data.new_questions``, the new_questions stage's
``data/new_questions/<model>/<method>/population.parquet`` (their ``pred_low`` /
``pred_high``). A lead paragraph, the coverage table with the persona bootstrap and the
references beside the model, one "worth asking?" sentence per run computed from the
table (``valuesim.report.intervals_table``), Figures 12-14
(``valuesim.report.intervals_figures``) and Figure 15 (``valuesim.report.intervals_new``).
A study evaluated before intervals existed gets the heading and one line saying so.
"""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from valuesim import artifacts
from valuesim.report import intervals_figures as figs
from valuesim.report import intervals_new as new
from valuesim.report.html_page import Figure, figure_html, table
from valuesim.report.intervals_table import (
    LEVEL,
    coverage_table,
    persona_sentence,
    shown_rows,
    worth_asking,
)

HEADING = "How far to trust a new answer"
INTERVALS = "intervals.parquet"
MISSING = ("No prediction intervals in this run: data/eval/intervals.parquet is absent (a study "
           "evaluated before intervals existed); re-run the evaluate stage (`dvc repro evaluate`) "
           "to add them.")
TABLE_HEADING = (
    "Coverage and width per run: the default interval at each level and the persona bootstrap, "
    "then the model-free references at {level:.0%}. Coverage: share of (country, question) cells "
    "whose held-out interval covers the human mean, with a Clopper-Pearson 95% interval; LOQO: "
    "each question held out, LOBO: each battery held out; the persona bootstrap fits nothing, "
    "so its coverage is over all cells. Width: mean full width as a share of the scale range, "
    "and in points of a 1-4 and a 1-10 item.")


def lead(rows: pl.DataFrame) -> str:
    """The section's lead paragraph (plain text)."""
    return (
        "A prediction interval here says where the population's answer to a question nobody "
        "asked is likely to lie: the model's simulated country mean, plus or minus a margin "
        "fitted on how far the same model, method and number of personas N missed the human "
        "means on this study's own questions (split conformal prediction over questions). Each "
        "check holds out whole questions: a question's interval is fitted without it (leave one "
        "question out, LOQO). The coverage it promises holds when a new question is exchangeable "
        "with the study's questions, like another draw from the same kind of items; the "
        "leave-one-battery-out rows (LOBO: every question of a questionnaire section held out "
        "together) show what happens when it is not, as for an item on a topic the study never "
        "asked. The persona-bootstrap interval (persona_ci_low/persona_ci_high) measures "
        "simulation noise only: how much the answer would move with other personas of the same "
        "model, not how far the model is from the population. " + persona_sentence(rows))


def load_intervals(eval_dir: Path) -> pl.DataFrame | None:
    """intervals.parquet, or None when the run predates it."""
    path = eval_dir / INTERVALS
    return artifacts.read_parquet(path, "evaluate") if path.exists() else None


def intervals_section(eval_dir: Path, new_dir: Path, out: Path,
                      new_questions: bool = True) -> tuple[str, str]:
    """The section's heading and HTML, Figures 12-15 drawn into ``out``.
    ``new_questions``: data.new_questions is set (draw its items' intervals)."""
    intervals = load_intervals(eval_dir)
    if intervals is None:
        return HEADING, f"<p class='note'>{html.escape(MISSING)}</p>"
    rows = shown_rows(intervals)
    parts = [f"<p>{html.escape(lead(rows))}</p>",
             f"<h3>{html.escape(TABLE_HEADING.format(level=LEVEL))}</h3>",
             table(coverage_table(rows)),
             "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in worth_asking(rows)) + "</ul>"]
    drawn = [
        (figs.calibration_plot, "intervals_calibration.png", figs.CALIBRATION),
        (figs.group_coverage, "intervals_by_group.png", figs.BY_GROUP),
        (figs.widths, "intervals_widths.png", figs.WIDTHS),
    ]
    for draw, name, caption in drawn:
        if draw(rows, out / name):
            parts.append(figure_html(Figure(out / name, caption)))
    if new_questions:
        # the project root: where the new_questions stage found data/eval/interval_fits.parquet
        parts += new_question_figures(new_dir, out, eval_dir.parent.parent)
    return HEADING, "\n".join(parts)


def new_question_figures(new_dir: Path, out: Path, project: Path) -> list[str]:
    """Figure 15 per item of data.new_questions: each run's answer per country with its
    prediction interval and its persona interval; nothing when nothing was asked."""
    items, rows = new.load_new_answers(new_dir, project)
    if not items or rows.is_empty():
        return []
    parts = [f"<h3>{html.escape('The new questions with their prediction intervals')}</h3>"]
    # nominal and binary items have no mean answer to put an interval around
    unordered = [i for i in items if i.get("type", "ordinal") != "ordinal"]
    if unordered:
        parts.append(f"<p class='note'>{html.escape(new.unordered_note(unordered))}</p>")
        items = [i for i in items if i not in unordered]
        rows = rows.filter(pl.col("question").is_in([i["id"] for i in items]))
        if rows.is_empty():
            return parts
    if rows["pred_low"].is_null().all():
        parts.append(f"<p class='note'>{html.escape(new.NO_PREDICTION)}</p>")
    for item in items:
        sub = rows.filter(pl.col("question") == item["id"])
        if sub.is_empty():
            continue
        path = out / f"intervals_new_{item['id']}.png"
        new.new_question(item, sub, path)
        parts.append(figure_html(Figure(path, new.new_question_caption(item, sub))))
    return parts
