"""`valuesim stage report`: figures (reports/figures/study/*.png) and reports/index.html."""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path

import polars as pl
import yaml

from valuesim.analysis.blocks import read_json, read_parquet
from valuesim.config import Params
from valuesim.errors import DataError
from valuesim.paths import (
    CALIBRATED,
    EVAL,
    EXTRACT_META,
    FIGURES,
    HUMAN_DISTRIBUTIONS,
    MAP_POSITIONS,
    METRICS,
    REPORT_HTML,
    SELECTED_COUNTRIES,
    SHAPLEY,
)
from valuesim.report import study_figures as figs
from valuesim.report.findings import country_spread, findings, temperature_edge_findings
from valuesim.report.html_page import Figure, page, table
from valuesim.report.shapley_figure import shapley_figure

STUDY_FIGURES = FIGURES / "study"

# The paper's ethical statement and limitations, restated for readers of this report.
CAVEATS = (
    "Simulated answers are not people's answers. They must not be read as the beliefs, "
    "preferences or experiences of anyone, nor replace asking people where that is feasible "
    "or ethically required (participatory research, public consultation, high-stakes decisions).",
    "Language models can reproduce stereotypes and biases of their training data and can "
    "misrepresent populations that are underrepresented in it; errors differ between countries.",
    "Good population-level numbers do not mean that individual answers are predicted well.",
    "Small errors can matter downstream when they systematically favour one option or group; "
    "results on the World Values Survey do not carry over to other surveys, open-ended answers "
    "or behaviour without new validation.",
    "The Inglehart-Welzel items are well studied and may be easier for models to recover than "
    "less documented topics.",
)


def _provenance(meta: dict) -> str:
    counts = meta.get("countries", {})
    n = sum(int(v) for v in counts.values())
    kind = ("<b>synthetic demo population</b> generated from shipped aggregates (no real respondents)"
            if meta.get("synthetic") else "<b>real World Values Survey wave 7 respondents</b>")
    return (f"Human data: {kind}; source <code>{html.escape(str(meta.get('source', '?')))}</code>; "
            f"{len(counts)} countries, {n:,} respondents. Citation: "
            f"{html.escape(str(meta.get('citation', 'n/a')))}")


def _model_names(params: Params) -> dict[str, str]:
    out = {}
    for name, spec in params.models.items():
        if spec.provider == "transformers" and spec.model == "embedded":
            out[name] = f"{name} (SmolLM2-135M-Instruct, embedded)"
        else:
            out[name] = f"{name} ({spec.provider}: {spec.model})"
    return out


def _map_caption(sim_pos: pl.DataFrame) -> str:
    if sim_pos.is_empty():
        return "Figure 1. Cultural map: human country positions (selected countries highlighted)."
    return ("Figure 1. Cultural map: human country positions (filled; selected countries in yellow) and "
            "where each method's answers to the map items place the selected countries (open markers, "
            "joined to the country's human position). Simulated positions are the map's projection of "
            "the expected item values; the autonomy and post-materialist indexes are rebuilt from their "
            "source items (expectations of the model's own answers, no independence assumption).")


def _map_notes(params: Params, sim_pos: pl.DataFrame) -> list[str]:
    from valuesim.map_items import asks_map_items

    if not params.simulate.map_items:
        return ["The cultural map shows human positions only: simulate.map_items is off, so no "
                "method answered the map items."]
    shown = set(sim_pos["method"].unique().to_list()) if sim_pos.height else set()
    circular = [m for m in params.simulate.methods if not asks_map_items(m)]
    notes = []
    if circular:
        notes.append(f"Not on the cultural map: {', '.join(circular)}. These personas state the "
                     "respondent's own answers to the map items, so their positions would only echo "
                     "the persona text.")
    unplaced = [m for m in params.simulate.methods if asks_map_items(m) and m not in shown]
    if unplaced:
        notes.append(f"No map position for {', '.join(unplaced)}: too few usable answers to the map items.")
    return notes


def _shown_params(params: Params) -> dict:
    """The configuration as the report prints it, with credentials removed from URLs."""
    from valuesim.llm.api_support import redact_url

    shown = params.model_dump(mode="json")
    for spec in shown.get("models", {}).values():
        if spec.get("base_url"):
            spec["base_url"] = redact_url(spec["base_url"])
    return shown


def results_table(summary: pl.DataFrame, references: pl.DataFrame) -> pl.DataFrame:
    """The report's main table: every (model, method), then the reference rows."""
    def pm(mean: str, sd: str) -> pl.Expr:
        return pl.when(pl.col(mean).is_not_null()).then(
            pl.format("{} ± {}", pl.col(mean).round(3), pl.col(sd).round(3))).otherwise(pl.lit(""))

    methods = summary.select(
        "model", "method", "answer_rule",
        pl.col("coverage_mean").alias("coverage"), pl.col("coverage_p5").alias("coverage p5"),
        pl.col("mae"), pl.col("mae_lo"), pl.col("mae_hi"),
        pl.col("n_personas").cast(pl.Utf8).fill_null("").alias("N"),
        pm("floor_mae", "floor_mae_sd").alias("floor MAE"),
        "wasserstein", "wasserstein_cal", "mae_plain", "wasserstein_plain",
        "nvar", "nvar_cal", "nvar_human", "n_countries",
    )
    refs = references.select(
        pl.lit("reference").alias("model"), "method", pl.lit("").alias("answer_rule"),
        pl.lit(None, dtype=pl.Float64).alias("coverage"), pl.lit(None, dtype=pl.Float64).alias("coverage p5"),
        "mae", "mae_lo", "mae_hi", pl.lit("").alias("N"), pl.lit("").alias("floor MAE"),
        "wasserstein", "wasserstein_cal", pl.lit(None, dtype=pl.Float64).alias("mae_plain"),
        pl.lit(None, dtype=pl.Float64).alias("wasserstein_plain"), "nvar", "nvar_cal", "nvar_human",
        "n_countries",
    )
    return pl.concat([methods, refs.cast(methods.schema)])  # type: ignore[arg-type]


def floor_table(floor: pl.DataFrame, split_half: dict | None) -> pl.DataFrame:
    """Sampling floor per n (mean over countries per resample, then over resamples)."""
    from valuesim.analysis.references import spread

    rows = spread(floor, ["n"]).select(
        pl.format("sampling floor, n = {}", pl.col("n")).alias("reference"),
        "mae", "mae_sd", "mae_lo", "mae_hi", "wasserstein", "wasserstein_sd",
    )
    if split_half:
        rows = pl.concat([rows, pl.DataFrame([{
            "reference": "human split-half", "mae": split_half["mae"], "mae_sd": split_half["mae_sd"],
            "mae_lo": None, "mae_hi": None, "wasserstein": split_half["wasserstein"],
            "wasserstein_sd": split_half["wasserstein_sd"]}], schema=rows.schema)])
    return rows


def _read_positions() -> pl.DataFrame:
    """The map stage's country positions; a damaged file names itself and its stage."""
    try:
        return pl.read_csv(MAP_POSITIONS)
    except (pl.exceptions.PolarsError, OSError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{MAP_POSITIONS} is unreadable ({why}); rerun `dvc repro map`") from exc


def _draw(params: Params, out: Path) -> tuple[list[Figure], list[str]]:
    cells = read_parquet(EVAL / "cells.parquet", "evaluate")
    by_country = read_parquet(EVAL / "by_country.parquet", "evaluate")
    wilcoxon = read_parquet(EVAL / "wilcoxon.parquet", "evaluate")
    temperature = read_parquet(EVAL / "temperature.parquet", "evaluate")
    sample_sizes = read_parquet(EVAL / "sample_size.parquet", "evaluate")
    per_q = read_parquet(EVAL / "per_question.parquet", "evaluate")
    sim_pos = read_parquet(EVAL / "map_positions.parquet", "evaluate")
    notes: list[str] = []
    made: list[Figure] = []

    if MAP_POSITIONS.exists():
        positions = _read_positions()
        selected = read_json(SELECTED_COUNTRIES, "map", keys=("countries",))["countries"]
        figs.cultural_map(positions, selected, sim_pos, out / "cultural_map.png")
        made.append(Figure(out / "cultural_map.png", _map_caption(sim_pos)))
        notes += _map_notes(params, sim_pos)
    ref_by_country = read_parquet(EVAL / "reference_by_country.parquet", "evaluate")
    floor = read_parquet(EVAL / "sampling_floor.parquet", "evaluate")
    figs.mae_heatmap(by_country, wilcoxon, out / "mae_heatmap.png", ref_by_country)
    made.append(Figure(out / "mae_heatmap.png", "Figure 11. MAE by country and method; bold marks the "
                       "best method per model and country, * a significant advantage over every other "
                       "method (Wilcoxon, p<0.05). Below the line, in italics, the references (no model): "
                       "the scale midpoint, uniform answers and the pooled answers of the other countries."))
    figs.mae_by_country(by_country, out / "mae_by_country.png")
    made.append(Figure(out / "mae_by_country.png", "MAE of each method per country."))
    figs.nvar_boxplots(cells, out / "normalized_variance.png")
    made.append(Figure(out / "normalized_variance.png", "Figures 4/10. Normalized variance per "
                       "(country, question) by method vs humans, before and after calibration."))
    figs.temperature_curves(temperature, out / "temperature.png")
    made.append(Figure(out / "temperature.png", "Figure 9. MAE and Wasserstein distance vs a common "
                       "temperature: plain (A, B) vs mean-preserving scaling (C, D); bands are 95% "
                       "bootstrap CIs over (country, question) cells; dashed line T = 1."))
    multi = sample_sizes.group_by(["model", "method"]).agg(pl.col("n").n_unique()).filter(pl.col("n") > 1)
    if multi.height:
        figs.sample_size_curve(sample_sizes.join(multi.select("model", "method"), on=["model", "method"]),
                               out / "sample_size.png", floor)
        made.append(Figure(out / "sample_size.png", "Figure 3. MAE vs personas per country; band: "
                           "range over repeated random subsamples. Dashed: the sampling floor, what a "
                           "perfect simulator (each sampled respondent giving their own answers) scores "
                           "with that many personas; band 2.5-97.5% over resamples."))
    methods = [c for c in per_q.columns if c not in ("model", "question")]
    if len(methods) >= 2:
        x = "country" if "country" in methods else methods[0]
        y = "value" if "value" in methods and x != "value" else next(m for m in methods if m != x)
        figs.per_question(per_q, y, x, out / "per_question.png")
        made.append(Figure(out / "per_question.png", f"Figure 8. Per-question MAE, {y} vs {x}; points "
                           f"above the diagonal: {x} prompting has the larger error."))
    shapley = shapley_figure(SHAPLEY, out)  # only when analysis.shapley was on
    if shapley is not None:
        made.append(shapley)
    return made, notes


def run(params: Params, **_: object) -> None:
    meta = read_json(EXTRACT_META, "extract")
    summary = read_parquet(EVAL / "summary.parquet", "evaluate")
    wilcoxon = read_parquet(EVAL / "wilcoxon.parquet", "evaluate")
    population = read_parquet(CALIBRATED / "population.parquet", "calibrate")
    human = read_parquet(HUMAN_DISTRIBUTIONS, "human")
    temps = read_json(CALIBRATED / "temperatures.json", "calibrate", keys=("temperatures",))["temperatures"]
    ref_summary = read_parquet(EVAL / "reference_summary.parquet", "evaluate")
    metrics = read_json(METRICS, "evaluate")
    split_half = metrics.get("split_half")

    FIGURES.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".study-", dir=FIGURES))
    tmp.chmod(0o755)  # mkdtemp makes it private; the figures are for everyone
    try:
        made, notes = _draw(params, tmp)
        spread, human_sd = country_spread(population, human)
        found = findings(summary, wilcoxon, spread, human_sd, bool(meta.get("synthetic")),
                         _model_names(params), ref_summary, split_half)
        grid = read_json(CALIBRATED / "temperatures.json", "calibrate").get("grid") or {}
        if grid:
            edges = temperature_edge_findings(temps, grid["min"], grid["max"], _model_names(params))
            # before the closing line about synthetic data, when there is one
            at = len(found) - 1 if meta.get("synthetic") else len(found)
            found[at:at] = edges
        temp_table = pl.DataFrame([
            {"run": k, "T (all questions)": v["overall"], "T (LOQO median)": v["loqo_median"],
             "plain T (LOQO median)": (v.get("plain") or {}).get("loqo_median")}
            for k, v in temps.items()
        ])
        shown = results_table(summary, ref_summary)
        floors = floor_table(read_parquet(EVAL / "sampling_floor.parquet", "evaluate"), split_half)
        params_yaml = yaml.safe_dump(_shown_params(params), sort_keys=False)
        # figures are embedded from the temporary folder, then the folder takes the final place
        text = page(
            title="valuesim study report", findings=found, provenance=_provenance(meta),
            params_yaml=params_yaml, notes=notes, caveats=CAVEATS,
            tables=[("Scores per model and method, and the references below them (MAE with 95% "
                     "bootstrap CI over countries; coverage: probability on admissible answers under "
                     "the answer rule, mean and 5th percentile over answers; floor: the sampling "
                     "floor at the run's personas per country, ± SD over resamples; plain: plain "
                     "temperature scaling fitted like the calibration)", table(shown)),
                    ("Noise floors: a perfect simulator with n personas per country (mean, SD and "
                     "2.5-97.5% over resamples), and the human split-half", table(floors)),
                    ("Fitted calibration temperatures", table(temp_table))],
            figures=made,
        )
        final = STUDY_FIGURES
        if final.exists():
            shutil.rmtree(final)
        tmp.replace(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    REPORT_HTML.parent.mkdir(parents=True, exist_ok=True)
    tmp_html = REPORT_HTML.with_name(f".{REPORT_HTML.name}.tmp")
    tmp_html.write_text(text, encoding="utf-8")
    tmp_html.replace(REPORT_HTML)
