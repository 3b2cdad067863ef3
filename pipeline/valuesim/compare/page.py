"""The comparison's HTML page (``index.html``), built from the study report's helpers:
self-contained, figures embedded, so it can be mailed or archived."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.compare.figures import Panel
from valuesim.methods import method_label
from valuesim.report.html_page import Figure, page, table


def caption(panel: Panel, metric: str, drawn: int, hue_method: bool) -> str:
    """What a panel shows, in the paper's words where it is one of the paper's figures."""
    shown = _shown(metric)
    what = (f"Each box is the per-cell {shown} (one cell: a model, method, country and question) "
            f"of the experiments with that {panel.keys[0]}")
    if len(panel.keys) > 1:
        what = (f"Each box is one experiment's per-cell {shown}, grouped by {panel.keys[0]} and "
                f"coloured by {', '.join(panel.keys[1:])}")
    pooled = "; methods side by side" if hue_method else "; methods pooled; diamond: the mean"
    which = ("every pair" if drawn == panel.tests.height
             else f"the {drawn} significant pairs of {panel.tests.height}")
    tests = (f"; brackets: {which}, Benjamini-Hochberg-corrected two-sided Mann-Whitney U "
             "(**** p < 1e-4, *** < 1e-3, ** < 1e-2, * < 0.05, ns)" if drawn
             else "; the pairwise tests are in the test table")
    paper = f"{panel.paper} of the paper. " if panel.paper else ""
    return f"{paper}{what}{pooled}{tests}. File: {panel.file}."


def _shown(metric: str) -> str:
    return "MAE" if metric == "mae" else metric


def _test_rows(tests: pl.DataFrame) -> pl.DataFrame:
    """The test table as the page shows it: p-values in scientific notation (most
    are far below what four decimals show), no repeated group columns."""
    return tests.select(
        "figure", "pair", "n1", "n2", "U",
        *(pl.col(c).map_elements(lambda v: f"{v:.3g}", return_dtype=pl.Utf8).alias(c) for c in ("p", "p_BH")),
        "stars",
    )


def findings(panels: Sequence[Panel], metric: str) -> list[str]:
    lines = []
    for p in panels:
        medians = sorted((float(np.median(b.values)), b.label) for b in p.boxes)
        sig = p.tests.filter(pl.col("p_BH") < 0.05).height
        lines.append(
            f"{' x '.join(p.keys)}: lowest median {_shown(metric)} {medians[0][1]} ({medians[0][0]:.4f}), "
            f"highest {medians[-1][1]} ({medians[-1][0]:.4f}); {sig} of {p.tests.height} pairs differ "
            "at BH-adjusted p < 0.05"
        )
    return lines


def render(
    *, panels: Sequence[Panel], drawn: Mapping[str, int], folder: Path, metric: str, hue_method: bool,
    experiments: pl.DataFrame, tests: pl.DataFrame, shared: Mapping[str, str], methods: Sequence[str],
    left_out: Sequence[str], notes: Sequence[str],
) -> str:
    caveats = [
        "Mann-Whitney U treats two boxes as independent samples, as the paper does; the boxes "
        "hold the same (model, country, question) cells under different settings, so a paired "
        "test would have more power.",
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
        findings=findings(panels, metric),
        provenance=provenance,
        params_yaml="\n".join(f"{k}: {v}" for k, v in shared.items()),
        tables=[("Experiments (labelled by the params that differ)", table(experiments, 4)),
                ("Mann-Whitney U tests (two-sided, BH-corrected per figure; tests.csv)", table(_test_rows(tests), 1))],
        figures=[Figure(folder / p.file, caption(p, metric, drawn[p.file], hue_method)) for p in panels],
        caveats=caveats,
        notes=list(notes),
    )
