"""A comparison, from read experiments to its output folder.

The folder (``reports/compare/`` by default) holds one PNG per panel, ``tests.csv``,
``experiments.csv``, ``ranking.csv`` (the table ``valuesim compare`` prints) and
``index.html``. It is built beside the target and swapped in
whole (``artifacts.atomic_dir``), so a failed comparison leaves the previous one (or
nothing) there, never a mix. Because the swap replaces the folder, a folder holding
anything compare does not write is refused rather than replaced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from valuesim import artifacts
from valuesim.compare import figures, labels
from valuesim.compare.page import render
from valuesim.compare.ranking import Ranking, ranking
from valuesim.compare.reference_lines import Reference, references
from valuesim.compare.significance import PAIRED, TEST_SCHEMA, TESTS
from valuesim.compare.sources import KEY_COLUMNS, Experiment
from valuesim.errors import ConfigError

OWN_FILES = re.compile(r"^(index\.html|tests\.csv|experiments\.csv|ranking\.csv|[A-Za-z0-9_]+_by_[A-Za-z0-9_]+\.png)$")


@dataclass(frozen=True)
class Comparison:
    out: Path
    keys: list[str]
    panels: list[figures.Panel]
    methods: list[str]
    left_out: list[str]
    warnings: list[str]
    ranking: Ranking
    references: list[Reference]
    notes: list[str]  # what the reference lines left out


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not OWN_FILES.match(p.name))
        if foreign:
            raise ConfigError(f"--out {out} holds files compare does not write ({', '.join(foreign[:3])}); "
                              "choose a new or empty folder")


def _unchanged(cells: pl.DataFrame, metric: str, method: str, names: Sequence[str]) -> bool:
    """True when the method's cells are the same in every experiment (same cells, same
    errors): the varying params do not reach its prompts, so it only dilutes the boxes."""
    per = [cells.filter((pl.col("experiment") == n) & (pl.col("method") == method))
           .sort(list(KEY_COLUMNS)) for n in names]
    first = per[0]
    return all(
        p.height == first.height
        and p.select(KEY_COLUMNS).equals(first.select(KEY_COLUMNS))
        and np.allclose(p[metric].to_numpy(), first[metric].to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
        for p in per[1:]
    )


def crossing_warnings(labelled: Sequence[dict[str, str]]) -> list[str]:
    """A warning when several params vary but not as a full grid (e.g. a guidance sweep
    and a descriptor sweep compared together): each per-param figure then pools
    experiments that also differ in the other params, so its boxes are confounded."""
    keys = list(labelled[0])
    if len(keys) < 2:
        return []
    grid = int(np.prod([len({lab[k] for lab in labelled}) for k in keys]))
    if len(labelled) >= grid:
        return []
    return [f"the experiments vary {', '.join(keys)} but cover only {len(labelled)} of their {grid} "
            "combinations, so each per-param figure pools experiments that differ in the other params "
            "too; compare each sweep on its own (e.g. `valuesim compare 'guidance-*'`)"]


def choose_methods(cells: pl.DataFrame, metric: str, names: Sequence[str],
                   wanted: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(methods compared, methods left out as unchanged)."""
    present = sorted(set(cells["method"].to_list()))
    if wanted:
        unknown = [m for m in wanted if m not in present]
        if unknown:
            raise ConfigError(f"no experiment has method(s) {', '.join(unknown)}; "
                              f"choose from {', '.join(present)}")
        return list(dict.fromkeys(wanted)), []
    left_out = [m for m in present if _unchanged(cells, metric, m, names)]
    if len(left_out) == len(present):  # nothing changes: show everything rather than nothing
        return present, []
    return [m for m in present if m not in left_out], left_out


def compare(
    experiments: Sequence[Experiment], out: Path, *, metric: str = "mae",
    methods: Sequence[str] | None = None, hue_method: bool = True, notes: Sequence[str] = (),
    test: str = PAIRED,
) -> Comparison:
    """Label ``experiments`` by their differing params, draw the panels and write the folder;
    ``test``: ``paired`` (clustered by question, the default) or ``mann-whitney`` (unpaired);
    ``hue_method``: a box per method (the default), else the methods pooled."""
    if test not in TESTS:
        raise ConfigError(f"--test {test!r} is not a test; choose {' or '.join(TESTS)}")
    out = Path(out)
    _check_out(out)
    names = [e.name for e in experiments]
    flat = [labels.flatten(e.params) for e in experiments]
    labelled = labels.experiment_labels(names, flat)
    keys = list(labelled[0])
    warnings = crossing_warnings(labelled)
    cells = pl.concat([
        e.cells.with_columns(pl.lit(e.name).alias("experiment"),
                             *(pl.lit(v).alias(k) for k, v in label.items()))
        for e, label in zip(experiments, labelled, strict=True)
    ], how="vertical_relaxed")
    chosen, left_out = choose_methods(cells, metric, names, methods)
    cells = cells.filter(pl.col("method").is_in(chosen) & pl.col(metric).is_not_null())
    panels = figures.panels(cells, keys, metric, test)
    ranked = ranking(panels, metric)
    runs = cells.select("model", "method").unique().rows()
    lines, line_notes = references(experiments, metric, runs)

    summary = cells.group_by("experiment", maintain_order=True).agg(
        pl.len().alias("n_cells"), pl.col(metric).mean().alias(f"mean_{metric}"),
        pl.col(metric).median().alias(f"median_{metric}"),
    )
    table = pl.DataFrame({
        "experiment": names, "source": [e.origin for e in experiments],
        "label": [labels.label_text(lab) for lab in labelled],
    }).join(summary, on="experiment", how="left")
    tests = pl.concat(
        [pl.DataFrame(schema={"figure": pl.Utf8, **TEST_SCHEMA})]
        + [p.tests.select(pl.lit(p.file).alias("figure"), pl.all()) for p in panels]
    )
    with artifacts.atomic_dir(out) as tmp:
        drawn = {p.file: figures.draw(p, tmp / p.file, metric, hue_method, lines) for p in panels}
        artifacts.write_csv(tests, tmp / "tests.csv")
        artifacts.write_csv(table, tmp / "experiments.csv")
        artifacts.write_csv(ranked.rows, tmp / "ranking.csv")
        artifacts.write_text(tmp / "index.html", render(
            panels=panels, drawn=drawn, folder=tmp, metric=metric, hue_method=hue_method,
            experiments=table, tests=tests, shared=labels.shared_params(flat), methods=chosen,
            left_out=left_out, notes=[*notes, *warnings, *line_notes], test=test, ranking=ranked,
            references=lines,
        ))
    return Comparison(out=out, keys=keys, panels=panels, methods=chosen, left_out=left_out,
                      warnings=warnings, ranking=ranked, references=lines, notes=line_notes)
