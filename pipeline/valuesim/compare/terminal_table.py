"""The ranking as a terminal table (rich), at most :data:`WIDTH` columns wide.

``dvc exp show`` prints every metric of every run (about 30 columns, too wide for a
terminal even with ``--only-changed``); this prints the one comparison a sweep is run
for: each experiment's headline error with its interval, its difference to the best
with that difference's interval, and the BH-adjusted significance of the difference.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from valuesim.compare.ranking import Ranking
from valuesim.compare.reference_lines import Reference
from valuesim.compare.significance import PAIRED, STARS

WIDTH = 100
DASH = "-"


def _num(value: float | None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _interval(lo: float | None, hi: float | None, sign: bool = False) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return DASH
    return f"{_num(lo, sign)} to {_num(hi, sign)}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    # two decimals where they tell values apart, then three, then powers of ten (2e-05)
    return f"{value:.2f}" if value >= 0.01 else f"{value:.3f}" if value >= 1e-3 else f"{value:.0e}"


def display_label(label: str, keys: Sequence[str]) -> str:
    """``static, handwritten`` for ``descriptors.generator=static, descriptors.variant=handwritten``:
    the column heading names the params."""
    for key in keys:
        label = label.replace(f"{key}=", "")
    return label


def shown(metric: str) -> str:
    return "MAE" if metric == "mae" else metric


def table(ranking: Ranking, metric: str, methods: Sequence[str]) -> Table:
    """The ranking as a rich table: best first, the best marked, the others against it."""
    out = Table(
        title=Text(f"{shown(metric)} by experiment, lowest first (methods: {', '.join(methods)})"),
        box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left", highlight=False,
    )
    out.add_column("#", justify="right", no_wrap=True)
    out.add_column(Text(", ".join(ranking.keys)), overflow="fold", max_width=40)
    out.add_column(shown(metric), justify="right", no_wrap=True)
    out.add_column("95% CI", justify="right", no_wrap=True)
    out.add_column("vs best", justify="right", no_wrap=True)
    out.add_column("95% CI of diff", justify="right", no_wrap=True)
    out.add_column("p_BH", justify="right", no_wrap=True)
    out.add_column("sig", no_wrap=True)
    for row in ranking.rows.iter_rows(named=True):
        best = bool(row["best"])
        out.add_row(
            str(row["rank"]), Text(display_label(row["experiment"], ranking.keys)),
            _num(row["mean"]), _interval(row["ci_lo"], row["ci_hi"]),
            "best" if best else _num(row["diff_to_best"], sign=True),
            "" if best else _interval(row["diff_ci_lo"], row["diff_ci_hi"], sign=True),
            "" if best else _p(row["p_BH"]), "" if best else (row["stars"] or DASH),
        )
    return out


def legend(ranking: Ranking, test: str, references: Sequence[Reference]) -> list[str]:
    """The lines under the table: what the columns are, and the references."""
    marks = ", ".join(f"{mark} < {bound:g}" for bound, mark in STARS)
    how = ("paired on the cells both score, averaged per question; its 95% CI resamples questions"
           if test == PAIRED else "difference of means; Mann-Whitney U (unpaired), no interval")
    lines = [
        f"95% CI: of the mean, resampling questions. vs best: this minus the best ({how}). "
        f"p_BH: Benjamini-Hochberg over the figure's {ranking.n_pairs} pairs; sig: {marks}, ns.",
    ]
    if references:
        lines.append("references (same cells): " + "; ".join(f"{r.label} {r.value:.3f}" for r in references))
    return lines


def print_ranking(ranking: Ranking, metric: str, methods: Sequence[str], test: str,
                  references: Sequence[Reference], file: IO[str] | None = None) -> None:
    """Print the table and its legend, at most :data:`WIDTH` columns (fewer in a
    narrower terminal); colour only on a terminal that takes it."""
    width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    console = Console(file=file, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False)
    console.print(table(ranking, metric, methods))
    for line in legend(ranking, test, references):
        console.print(Text(line))
