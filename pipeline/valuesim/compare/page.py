"""The comparison's HTML page (``index.html``), built from the study report's helpers:
self-contained, figures embedded, so it can be mailed or archived."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.compare.figures import Panel, per_method
from valuesim.compare.ranking import Ranking
from valuesim.compare.reference_lines import Reference
from valuesim.compare.significance import MANN_WHITNEY, PAIRED
from valuesim.methods import method_label
from valuesim.report.html_page import Figure, page, table

#: how each test is named in captions, table headings and findings
TEST_WORDS = {
    PAIRED: "paired test clustered by question (two-sided sign-flip permutation test over questions "
            "on the cells both boxes score)",
    MANN_WHITNEY: "unpaired two-sided Mann-Whitney U (the paper's test; ignores that the boxes share cells)",
}


def caption(panel: Panel, metric: str, drawn: int, hue_method: bool, test: str = PAIRED,
            references: Sequence[Reference] = ()) -> str:
    """What a panel shows, in the paper's words where it is one of the paper's figures."""
    shown = _shown(metric)
    what = (f"Each box is the per-cell {shown} (one cell: a model, method, country and question) "
            f"of the experiments with that {panel.keys[0]}")
    if len(panel.keys) > 1:
        what = (f"Each box is one experiment's per-cell {shown}, grouped by {panel.keys[0]} and "
                + (f"labelled with its {', '.join(panel.keys[1:])} under the slot"
                   if per_method(panel, hue_method) else f"coloured by {', '.join(panel.keys[1:])}"))
    several = len({m for b in panel.boxes for m in b.by_method}) > 1
    pooled = ("; one box per method, side by side; diamond: the mean" if per_method(panel, hue_method)
              else "; methods pooled; diamond: the mean" if several else "; diamond: the mean")
    if references:
        pooled += ("; horizontal lines: the references (dashed) and floors (dotted) scored on the same "
                   "cells: " + ", ".join(f"{r.label} {r.value:.3f}" for r in references))
    which = ("every pair" if drawn == panel.tests.height
             else f"the {drawn} significant pairs of {panel.tests.height}")
    tests = (f"; brackets: {which}, Benjamini-Hochberg-corrected {TEST_WORDS[test]} "
             "(**** p < 1e-4, *** < 1e-3, ** < 1e-2, * < 0.05, ns)" if drawn
             else "; the pairwise tests are in the test table")
    paper = f"{panel.paper} of the paper. " if panel.paper else ""
    return f"{paper}{what}{pooled}{tests}. File: {panel.file}."


def ranking_rows(ranked: Ranking) -> pl.DataFrame:
    """The ranking as the page shows it (the table the command prints)."""
    return ranked.rows.select(
        "rank", "experiment", "n_cells", "mean", "ci_lo", "ci_hi",
        pl.when(pl.col("best")).then(pl.lit("best"))
        .otherwise(pl.col("diff_to_best").map_elements(lambda v: f"{v:+.4f}", return_dtype=pl.Utf8))
        .alias("diff_to_best"),
        "diff_ci_lo", "diff_ci_hi",
        pl.col("p_BH").map_elements(lambda v: f"{v:.3g}", return_dtype=pl.Utf8).alias("p_BH"),
        "stars", pl.col("^mean_.*$"),
    )


def ranking_finding(ranked: Ranking, metric: str) -> str:
    """The table's headline: the best experiment and how many others differ from it."""
    rows = ranked.rows
    best = rows.row(0, named=True)
    others = rows.filter(~pl.col("best"))
    differ = others.filter(pl.col("p_BH") < 0.05).height
    return (f"Lowest mean {_shown(metric)}: {best['experiment']} ({best['mean']:.4f}, 95% CI "
            f"{best['ci_lo']:.4f}-{best['ci_hi']:.4f}); {differ} of {others.height} others differ "
            "from it at BH-adjusted p < 0.05 (ranking.csv)")


def _shown(metric: str) -> str:
    return "MAE" if metric == "mae" else metric


def _test_rows(tests: pl.DataFrame, test: str = PAIRED) -> pl.DataFrame:
    """The test table as the page shows it: p-values in scientific notation (most
    are far below what four decimals show), no repeated group columns, only the
    chosen test's columns."""
    shown = (("n_cells", "n_questions", "n_unmatched", "diff", "ci_lo", "ci_hi") if test == PAIRED
             else ("n1", "n2", "diff", "U"))
    return tests.select(
        "figure", "pair", *shown,
        *(pl.col(c).map_elements(lambda v: f"{v:.3g}", return_dtype=pl.Utf8).alias(c) for c in ("p", "p_BH")),
        "stars",
    )


def findings(panels: Sequence[Panel], metric: str, test: str = PAIRED) -> list[str]:
    lines = []
    for p in panels:
        medians = sorted((float(np.median(b.values)), b.label) for b in p.boxes)
        sig = p.tests.filter(pl.col("p_BH") < 0.05).height
        lines.append(
            f"{' x '.join(p.keys)}: lowest median {_shown(metric)} {medians[0][1]} ({medians[0][0]:.4f}), "
            f"highest {medians[-1][1]} ({medians[-1][0]:.4f}); {sig} of {p.tests.height} pairs differ "
            f"at BH-adjusted p < 0.05 ({'paired, clustered by question' if test == PAIRED else 'Mann-Whitney U, unpaired'})"
        )
    return lines


def render(
    *, panels: Sequence[Panel], drawn: Mapping[str, int], folder: Path, metric: str, hue_method: bool,
    experiments: pl.DataFrame, tests: pl.DataFrame, shared: Mapping[str, str], methods: Sequence[str],
    left_out: Sequence[str], notes: Sequence[str], test: str = PAIRED, ranking: Ranking | None = None,
    references: Sequence[Reference] = (),
) -> str:
    caveats = [
        ("The tests pair the boxes on the (model, method, country, question) cells both score "
         "(a box pooling several experiments gives a cell the mean over them; cells only one box "
         "scores are left out, n_unmatched). Per question the differences are averaged over "
         "the shared cells, and the test and the 95% interval of the mean difference (a - b; "
         "bootstrap resampling questions) treat the questions as the independent units, since "
         "a question's cells move together across countries." if test == PAIRED else
         "Mann-Whitney U treats two boxes as independent samples, as the paper does; the boxes "
         "hold the same (model, country, question) cells under different settings, so it is "
         "unpaired and misses small differences the default paired test (clustered by question) "
         "finds: rerun without --test mann-whitney for it."),
        "The Benjamini-Hochberg correction runs over the pairs of one figure.",
    ]
    if metric == "mae":
        caveats.append("Per-cell MAE is the absolute error of the predicted mean answer divided by "
                       "the scale's range; its mean over a run's cells is the run's MAE when every "
                       "country has the same questions.")
    if left_out:
        caveats.append(
            f"Methods whose per-cell errors are the same in every experiment were left out: "
            f"{', '.join(method_label(m) for m in left_out)} (the varying params do not reach "
            "their prompts); pass --method to choose methods yourself."
        )
    provenance = (f"{experiments.height} experiments, read from their data/eval/cells.parquet "
                  f"and params.yaml; methods compared: {', '.join(method_label(m) for m in methods)}.")
    return page(
        title="Comparison of experiments",
        findings=[*([ranking_finding(ranking, metric)] if ranking else []), *findings(panels, metric, test)],
        provenance=provenance,
        params_yaml="\n".join(f"{k}: {v}" for k, v in shared.items()),
        tables=[*([(f"Ranking by mean {_shown(metric)} (ranking.csv; the table `valuesim compare` prints): "
                    "95% intervals resample questions; diff_to_best and its interval and p_BH are the "
                    "pair's test against the best", table(ranking_rows(ranking), 4))] if ranking else []),
                ("Experiments (labelled by the params that differ)", table(experiments, 4)),
                (f"Tests: {TEST_WORDS[test]}, BH-corrected per figure (tests.csv)", table(_test_rows(tests, test), 4))],
        figures=[Figure(folder / p.file, caption(p, metric, drawn[p.file], hue_method, test, references))
                 for p in panels],
        caveats=caveats,
        notes=list(notes),
    )
