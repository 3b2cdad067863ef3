"""The words of the study report: figure captions, table headings, notes, provenance
and caveats.

Kept apart from the report stage (which reads the tables and writes the page) so the
prose can be read, reviewed and tested in one place, without running the pipeline.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from valuesim.config import Params
from valuesim.methods import asks_map_items

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

MAE_HEATMAP = ("Figure 11. MAE by country and method, averaged over questions; the first column is "
               "the MAE over all countries (each country weighs the same). Bold marks the best "
               "method per model and column, * a significant advantage over every other method in "
               "that country (Wilcoxon signed-rank across questions, Benjamini-Hochberg-adjusted p<0.05 over "
               "every per-country test of the model: methods and references, all countries). With two or more models "
               "the top rows are the ensemble: for each method, country and question the mean of the "
               "models' predicted distributions, scored like a model. Below the line, in italics, the "
               "references (no model): the scale midpoint, uniform answers and the pooled answers of "
               "the other countries.")
REFERENCE_LINES_NOTE = (" Grey dashed: the scale-midpoint reference; green dash-dotted: the other countries' "
                        "answers (no model); a method above a line does worse than it.")
MAE_BY_COUNTRY = "MAE of each method per country, with each country's references." + REFERENCE_LINES_NOTE
MAE_BY_MODEL = ("Figure 2. MAE per model (x axis) and country, one panel per prompting method. "
                "Models run from the largest to the smallest (params models.<name>.size_b, billions "
                "of parameters), proprietary ones (open: false) left of the dotted line and open ones "
                "right of it; models that give neither are in name order. Each colored line is one "
                "country, the black line the mean over countries." + REFERENCE_LINES_NOTE)
NORMALIZED_VARIANCE = ("Figures 4/10. Normalized variance per "
                       "(country, question) by method vs humans, before and after calibration.")
TEMPERATURE = ("Figure 9. MAE and Wasserstein distance vs a common "
               "temperature: plain (A, B) vs mean-preserving scaling (C, D); bands are 95% "
               "bootstrap CIs over (country, question) cells; dashed line T = 1.")
SAMPLE_SIZE = ("Figure 3. MAE vs personas per country; band: "
               "range over repeated random subsamples. Dotted: the persona-information floor, what a "
               "perfect simulator of that many personas scores (each persona answering the mean "
               "answer of respondents with the same persona items, estimated on the survey with "
               "cross-fitting): the floor a persona method is read against. Dashed: the "
               "actual-answer floor, the error of that many respondents' own answers (what asking "
               "them would give; higher, because one answer varies far more than a persona's "
               "expected answer). Bands 2.5-97.5% over resamples." + REFERENCE_LINES_NOTE)

SCOREBOARD_NOTE = ("Error: the mean absolute difference between simulated and human mean answers, divided "
                   "by the scale's range, averaged over the study's countries and questions; 95% CI: "
                   "bootstrap resampling the countries. vs best reference: the method's error minus the "
                   "best reference's on the same cells, with its 95% CI and Benjamini-Hochberg-adjusted p "
                   "(paired sign-flip test over questions). References need no model; floors are what "
                   "perfect personas (or N real respondents) would score. Coverage: the share of the "
                   "model's probability on admissible answers.")
RESULTS_HEADING = ("Scores per model and method, and the references below them (MAE with 95% "
                   "bootstrap CI that resamples the countries' MAEs, questions held fixed; coverage: probability on admissible answers under "
                   "the answer rule, mean and 5th percentile over answers; floors at the run's "
                   "personas per country N, ± SD over resamples: persona-information, what a perfect "
                   "simulator of N personas would score, and actual-answer, the error of N "
                   "respondents' own answers; plain: plain temperature scaling fitted like the "
                   "calibration)")
FLOORS_HEADING = ("Noise floors (mean, SD and 2.5-97.5% over resamples of n personas per country): "
                  "the persona-information floor, the error of a perfect simulator of n personas "
                  "(E[answer | persona items] estimated on the survey by cross-fitted ridge "
                  "regression); the actual-answer floor, the error of n respondents' own answers; the "
                  "human split-half, two halves of each country's respondents against each other, and "
                  "the human sampling noise it implies (split-half / 2: the error a perfect predictor "
                  "of the population has against the full sample)")
TEMPERATURES_HEADING = ("Fitted calibration temperatures (leave-one-question-out; the search includes the "
                        "T → ∞ limit, shown as inf; \"T identified: no\" means the objective is lowest at "
                        "the limit, or at the lowest grid point, which is then a bound)")
PAIRED_HEADING = ("Paired tests clustered by question (data/eval/paired_tests.parquet): a - b on the "
                  "cells both score, averaged over countries per question; 95% CI: percentile "
                  "bootstrap resampling questions; p: two-sided sign-flip permutation test over "
                  "questions; p_bh: Benjamini-Hochberg over the model's rows. The paper's unpaired "
                  "Mann-Whitney U between methods is in data/eval/mann_whitney.parquet, labelled unpaired")


def per_question(y: str, x: str, n_models: int = 1) -> str:
    points = ("Each colored point is one model's MAE on one question, averaged over countries; "
              "black points are the mean over models." if n_models > 1 else
              "Each point is one question's MAE, averaged over countries.")
    return (f"Figure 8. Per-question MAE, {y} vs {x} prompting. {points} Points above the "
            f"diagonal: {x} prompting has the larger error. The references' mean errors are drawn on both "
            "axes (grey dashed: scale midpoint; green dash-dotted: other countries' answers).")


def sampled_map(sample: pl.DataFrame, seed: int, bias: pl.DataFrame | None = None) -> str:
    """Figure 1B's caption, with the counts actually drawn and the independence bias
    (``bias``: the evaluate stage's joint vs item-by-item human spread, None if absent)."""
    from valuesim.report.map_text import independence_sentence

    n = sample.group_by(["model", "method", "country"]).len()["len"]
    count = f"{int(n.max()):,}" if n.len() else "0"
    return ("Figure 1B. Four selected countries spread over the map (farthest apart on it). "
            "Shading: density of the human respondents' positions as they answered (weighted "
            "Gaussian kernel; context). "
            f"Markers: up to {count} sampled model respondents per method and country (seed "
            f"{seed}), many on the same spot. The model gives a distribution per item, not joint "
            "answers: each sampled respondent draws a persona of the country, then one answer per "
            "item from it independently (the post-materialist second choice given the first), and "
            "is placed with the same transform as the humans. The spread shows what the marginals "
            "imply, not how the model's answers co-vary. " + independence_sentence(bias, sample))


def missing_figures(
    params: Params, n_models: int, sample: pl.DataFrame | None, humans: pl.DataFrame | None,
) -> list[str]:
    """Why Figure 1B or the cross-model parts of Figures 2, 8 and 11 are not shown
    (``sample``/``humans``: the evaluate stage's map_sample/map_humans, None if absent)."""
    notes = []
    if sample is None or humans is None or sample.is_empty() or humans.is_empty():
        if sample is not None and humans is not None and sample.height:
            why = ("the human respondents lack the map items, so there is no human density to "
                   "draw them over (extract with a question bank that has the ten map items)")
        elif not params.simulate.map_items:
            why = "simulate.map_items is off, so no method answered the map items"
        elif not any(asks_map_items(m) for m in params.simulate.methods):
            why = ("none of simulate.methods answers the map items (only default, generic, country "
                   "and sociodemographic do)")
        elif sample is None:
            why = "the evaluate stage wrote no sampled respondents (re-run `dvc repro evaluate`)"
        else:
            why = "no (model, method) had usable answers to the map items in the panel countries"
        notes.append(f"Figure 1B (sampled model respondents over the human density) is not shown: {why}.")
    if n_models < 2:
        notes.append("Figure 2 across models, Figure 8's mean-over-models points and Figure 11's "
                     "ensemble rows need two or more models (simulate.models); with one model the "
                     "report shows its MAE per method and country instead of Figure 2.")
    return notes


def per_question_axes(methods: Sequence[str]) -> tuple[str, str] | None:
    """(y, x) methods of the per-question scatter: country prompting across when it
    ran, the value persona up; None with fewer than two methods."""
    if len(methods) < 2:
        return None
    x = "country" if "country" in methods else methods[0]
    y = "value" if "value" in methods and x != "value" else next(m for m in methods if m != x)
    return y, x


def provenance(meta: Mapping[str, Any]) -> str:
    """Where the human data came from (HTML): synthetic or real, source, counts, citation."""
    counts = meta.get("countries", {})
    n = sum(int(v) for v in counts.values())
    kind = ("<b>synthetic demo population</b> generated from shipped aggregates (no real respondents)"
            if meta.get("synthetic") else "<b>real World Values Survey wave 7 respondents</b>")
    return (f"Human data: {kind}; source <code>{html.escape(str(meta.get('source', '?')))}</code>; "
            f"{len(counts)} countries, {n:,} respondents. Citation: "
            f"{html.escape(str(meta.get('citation', 'n/a')))}")


def model_names(params: Params) -> dict[str, str]:
    """How findings name each model: its params name and what it runs."""
    out = {}
    for name, spec in params.models.items():
        if spec.provider == "transformers" and spec.model == "embedded":
            out[name] = f"{name} (SmolLM2-135M-Instruct, embedded)"
        else:
            out[name] = f"{name} ({spec.provider}: {spec.model})"
    return out


def map_caption(sim_pos: pl.DataFrame) -> str:
    """Figure 1's caption; it mentions simulated positions only when there are some."""
    if sim_pos.is_empty():
        return "Figure 1. Cultural map: human country positions (selected countries highlighted)."
    return ("Figure 1. Cultural map: human country positions (filled; selected countries in yellow) and "
            "where each method's answers to the map items place the selected countries (open markers, "
            "joined to the country's human position). Simulated positions are the map's projection of "
            "the expected item values; the autonomy and post-materialist indexes are rebuilt from their "
            "source items (expectations of the model's own answers, no independence assumption).")


def map_notes(params: Params, sim_pos: pl.DataFrame) -> list[str]:
    """Why a method the params ran has no position on the cultural map, if any."""
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


def insert_before_closing(found: list[str], extra: Iterable[str], synthetic: bool) -> list[str]:
    """``found`` with ``extra`` findings added at the end, but before the closing line
    about synthetic data when there is one (it is the last finding then)."""
    at = len(found) - 1 if synthetic else len(found)
    return [*found[:at], *extra, *found[at:]]
