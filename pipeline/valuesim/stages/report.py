"""`valuesim stage report`: figures (reports/figures/study/*.png) and reports/index.html.

Reads the evaluate, calibrate, map and extract outputs, draws the figures into a new
figure directory and writes the page. The words are ``valuesim.report.captions``,
the tables ``valuesim.report.tables``, the findings ``valuesim.report.findings``; the
sections after the figures are ``valuesim.report.unordered_section`` (nominal and
binary targets, when the study has any), ``valuesim.report.new_questions`` and
``valuesim.report.intervals_section``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import yaml

from valuesim import artifacts
from valuesim.config import Params
from valuesim.culturalmap.sampled_respondents import independence_bias
from valuesim.errors import OutputError
from valuesim.paths import (
    CALIBRATED,
    EVAL,
    EXTRACT_META,
    FIGURES,
    HUMAN_DISTRIBUTIONS,
    MAP_POSITIONS,
    METRICS,
    NEW_QUESTIONS,
    REPORT_HTML,
    SHAPLEY,
)
from valuesim.report import captions, run_provenance
from valuesim.report import model_figures as mf
from valuesim.report import study_figures as figs
from valuesim.report.calibration_figure import CAPTION as CALIBRATION_CAPTION
from valuesim.report.calibration_figure import calibration_objective, has_curves
from valuesim.report.findings import country_spread, findings, temperature_edge_findings
from valuesim.report.html_page import Figure, Opening, page, table
from valuesim.report.intervals_section import intervals_section
from valuesim.report.map_text import map_position_findings
from valuesim.report.model_figures import model_order
from valuesim.report.new_questions import new_questions_section
from valuesim.report.scoreboard import scoreboard, scoreboard_html
from valuesim.report.shapley_figure import shapley_figure
from valuesim.report.tables import (
    curve_runs,
    floor_table,
    paired_tests_table,
    results_table,
    shown_params,
    temperature_table,
)
from valuesim.report.unordered_section import unordered_section
from valuesim.report.verdict import checks_table, model_wide_notes, verdict_html

STUDY_FIGURES = FIGURES / "study"


def _optional(path: Path) -> pl.DataFrame | None:
    """An evaluate table that older runs may lack (Figure 1B's): None when absent."""
    return artifacts.read_parquet(path, "evaluate") if path.exists() else None


def _draw(params: Params, out: Path) -> tuple[list[Figure], list[str]]:
    """Every figure into ``out``, with its caption, and the notes on the cultural map.
    Every error plot draws the references (scale midpoint, other countries) as lines."""
    cells = artifacts.read_parquet(EVAL / "cells.parquet", "evaluate")
    by_country = artifacts.read_parquet(EVAL / "by_country.parquet", "evaluate")
    wilcoxon = artifacts.read_parquet(EVAL / "wilcoxon.parquet", "evaluate")
    temperature = artifacts.read_parquet(EVAL / "temperature.parquet", "evaluate")
    sample_sizes = artifacts.read_parquet(EVAL / "sample_size.parquet", "evaluate")
    per_q = artifacts.read_parquet(EVAL / "per_question.parquet", "evaluate")
    sim_pos = artifacts.read_parquet(EVAL / "map_positions.parquet", "evaluate")
    notes: list[str] = []
    made: list[Figure] = []

    if MAP_POSITIONS.exists():
        positions = artifacts.read_csv(MAP_POSITIONS, "map")
        selected = artifacts.selected_countries()
        figs.cultural_map(positions, selected, sim_pos, out / "cultural_map.png")
        made.append(Figure(out / "cultural_map.png", captions.map_caption(sim_pos)))
        notes += captions.map_notes(params, sim_pos)
    ref_by_country = artifacts.read_parquet(EVAL / "reference_by_country.parquet", "evaluate")
    refs = figs.reference_means(artifacts.read_parquet(EVAL / "reference_summary.parquet", "evaluate"))
    floor = artifacts.read_parquet(EVAL / "actual_answer_floor.parquet", "evaluate")
    persona_floor = artifacts.read_parquet(EVAL / "persona_information_floor.parquet", "evaluate")
    models = [m for m in params.simulate.models if m in set(cells["model"].to_list())]
    order = model_order(models, params.models)
    sample = _optional(EVAL / "map_sample.parquet")
    humans = _optional(EVAL / "map_humans.parquet")
    if sample is not None and humans is not None and sample.height and humans.height:
        # the humans drawn item by item like the model respondents (older runs lack them)
        independent = _optional(EVAL / "map_humans_independent.parquet")
        bias = independence_bias(humans, independent) if independent is not None and independent.height else None
        mf.sampled_map(humans, sample, order, out / "sampled_map.png", independent)
        made.append(Figure(out / "sampled_map.png", captions.sampled_map(sample, params.analysis.seed, bias)))
    notes += captions.missing_figures(params, len(order), sample, humans)
    if len(order) > 1:
        mf.mae_by_model(by_country, order, params.models, out / "mae_by_model.png", refs)
        made.append(Figure(out / "mae_by_model.png", captions.MAE_BY_MODEL))
    else:
        figs.mae_by_country(by_country, out / "mae_by_country.png", ref_by_country)
        made.append(Figure(out / "mae_by_country.png", captions.MAE_BY_COUNTRY))
    figs.mae_heatmap(by_country, wilcoxon, out / "mae_heatmap.png", ref_by_country, order)
    made.append(Figure(out / "mae_heatmap.png", captions.MAE_HEATMAP))
    figs.nvar_boxplots(cells, out / "normalized_variance.png")
    made.append(Figure(out / "normalized_variance.png", captions.NORMALIZED_VARIANCE))
    figs.temperature_curves(temperature, out / "temperature.png")
    made.append(Figure(out / "temperature.png", captions.TEMPERATURE))
    temps = artifacts.read_json(CALIBRATED / "temperatures.json", "calibrate", keys=("temperatures",))["temperatures"]
    if has_curves(temps):  # Figure 9B: the fit's own objective, up to T = infinity
        calibration_objective(temps, out / "calibration_objective.png")
        made.append(Figure(out / "calibration_objective.png", CALIBRATION_CAPTION))
    curve = curve_runs(sample_sizes)
    if curve.height:
        figs.sample_size_curve(curve, out / "sample_size.png", floor, persona_floor, refs)
        made.append(Figure(out / "sample_size.png", captions.SAMPLE_SIZE))
    axes = captions.per_question_axes([c for c in per_q.columns if c not in ("model", "question")])
    if axes is not None:
        y, x = axes
        figs.per_question(per_q, y, x, out / "per_question.png", refs)
        made.append(Figure(out / "per_question.png", captions.per_question(y, x, len(order))))
    shapley = shapley_figure(SHAPLEY, out)  # only when analysis.shapley was on
    if shapley is not None:
        made.append(shapley)
    return made, notes


def run(params: Params, **_: object) -> None:
    meta = artifacts.read_json(EXTRACT_META, "extract")
    summary = artifacts.read_parquet(EVAL / "summary.parquet", "evaluate")
    wilcoxon = artifacts.read_parquet(EVAL / "wilcoxon.parquet", "evaluate")
    population = artifacts.read_parquet(CALIBRATED / "population.parquet", "calibrate")
    human = artifacts.read_parquet(HUMAN_DISTRIBUTIONS, "human")
    temps_json = artifacts.read_json(CALIBRATED / "temperatures.json", "calibrate", keys=("temperatures",))
    temps = temps_json["temperatures"]
    ref_summary = artifacts.read_parquet(EVAL / "reference_summary.parquet", "evaluate")
    split_half = artifacts.read_json(METRICS, "evaluate").get("split_half")
    synthetic = bool(meta.get("synthetic"))

    # the figures go to a new directory and the page to a temporary file; both take
    # their places together once both are written (a full or read-only reports/ leaves
    # the old figures and page), and the page embeds the figures from there
    with artifacts.output_set() as outputs:
        out = outputs.directory(STUDY_FIGURES)
        made, notes = _draw(params, out)
        spread, human_sd = country_spread(population, human)
        names = captions.model_names(params)
        paired = _optional(EVAL / "paired_tests.parquet")
        found = findings(summary, wilcoxon, spread, human_sd, synthetic, names, ref_summary, split_half, paired)
        grid = temps_json.get("grid") or {}
        if grid:
            edges = temperature_edge_findings(temps, grid["min"], grid["max"], names)
            found = captions.insert_before_closing(found, edges, synthetic)
        if MAP_POSITIONS.exists():  # where the map places the simulated countries, from this run
            placed = map_position_findings(artifacts.read_csv(MAP_POSITIONS, "map"),
                                           artifacts.read_parquet(EVAL / "map_positions.parquet", "evaluate"),
                                           names)
            found = captions.insert_before_closing(found, placed, synthetic)
        # only when the study has nominal or binary targets: otherwise the page is unchanged
        nominal = unordered_section(EVAL)
        # only when data.new_questions asked something: otherwise the page is unchanged
        new = new_questions_section(NEW_QUESTIONS, temps, params, out)
        # always there: a run evaluated before intervals existed gets one line saying so
        trust = intervals_section(EVAL, NEW_QUESTIONS, out, bool(params.data.new_questions))
        board = scoreboard(summary, ref_summary, paired)
        opening = Opening(
            verdict=verdict_html(board, paired, temps, names, synthetic),
            scoreboard=scoreboard_html(board, captions.SCOREBOARD_NOTE),
            checks=table(checks_table(board, paired, spread, human_sd, temps)),
            notes=model_wide_notes(summary, names, paired, split_half),
        )
        floors = floor_table(artifacts.read_parquet(EVAL / "actual_answer_floor.parquet", "evaluate"), split_half,
                             artifacts.read_parquet(EVAL / "persona_information_floor.parquet", "evaluate"))
        text = page(
            title="valuesim study report", findings=found, provenance=captions.provenance(meta),
            params_yaml=yaml.safe_dump(shown_params(params), sort_keys=False), notes=notes,
            caveats=captions.CAVEATS,
            tables=[(captions.RESULTS_HEADING, table(results_table(summary, ref_summary))),
                    *([(captions.PAIRED_HEADING, table(paired_tests_table(paired)))] if paired is not None else []),
                    (captions.FLOORS_HEADING, table(floors)),
                    (captions.TEMPERATURES_HEADING, table(temperature_table(temps)))],
            figures=made, sections=[s for s in (nominal, new, trust) if s is not None], opening=opening,
        )
        artifacts.write_text(REPORT_HTML, text)
    # outside DVC's outputs and the page's output set: the page stays byte-identical, and a
    # footer that cannot be written costs the footer, not the report
    try:
        run_provenance.write(params)
    except (OSError, OutputError) as err:
        print(f"report: no provenance footer ({err})")
