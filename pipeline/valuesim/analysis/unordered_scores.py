"""Scores of nominal and binary target items: total variation and Jensen-Shannon.

A nominal item's codes only name its options, so a mean of them, a variance, a
Wasserstein distance along the codes and all that is built on them (the MAE, the
mean-preserving calibration, the prediction intervals of the mean, the floors and
tests of the MAE) mean nothing. Its simulated and human answer distributions of each
(country, item) are compared as distributions over unordered options instead:

* ``tv``: the total variation distance 1/2 sum |p - q|, in [0, 1]: the largest
  difference between the shares the two give to any set of options.
* ``js``: the Jensen-Shannon distance with base-2 logarithms
  (:func:`scipy.spatial.distance.jensenshannon`), in [0, 1]: the square root of the
  Jensen-Shannon divergence, a metric.

A binary item is scored the same way; ``share_first_diff`` (simulated minus human
share of its first option, the mean of an indicator) adds the direction of the error.
Its absolute value equals ``tv`` on two options, so it is no separate error score.

The simulated distribution of a country is the equal-weight mean of its usable
personas' distributions (as the population of the ordinal items). It is raw: the
calibration leaves these items out (:data:`valuesim.survey.question_types.NO_TILT`),
so a calibrated score would equal the raw one. References, from the human data
alone: ``uniform`` (each option 1/K) and ``other_countries`` (the weighted pool of the
other selected countries' respondents); the scale midpoint is a point on a scale and
has no nominal counterpart. Aggregates follow the MAE: the mean over items per
country, then the mean over countries, with a 95% percentile-bootstrap interval
resampling the per-country means (:func:`valuesim.analysis.metrics.bootstrap_ci`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.spatial.distance import jensenshannon

from valuesim.analysis import metrics, references
from valuesim.analysis.blocks import build_blocks
from valuesim.analysis.metric_precision import metric_value
from valuesim.errors import DataError
from valuesim.survey.bank import Item

FloatArray = NDArray[np.float64]

#: the references scored on nominal and binary items (no midpoint: it needs a scale)
UNORDERED_REFERENCES = ("uniform", "other_countries")

CELL_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "type": pl.Utf8, "n_personas": pl.Int64, "tv": pl.Float64, "js": pl.Float64,
    "share_first_sim": pl.Float64, "share_first_human": pl.Float64, "share_first_diff": pl.Float64,
    "mode_sim": pl.Int64, "mode_sim_label": pl.Utf8, "mode_sim_share": pl.Float64,
    "mode_human": pl.Int64, "mode_human_label": pl.Utf8, "mode_human_share": pl.Float64,
}
BY_COUNTRY_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "tv": pl.Float64, "js": pl.Float64,
    "n_questions": pl.Int64,
}
SUMMARY_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "tv": pl.Float64, "tv_lo": pl.Float64, "tv_hi": pl.Float64,
    "js": pl.Float64, "js_lo": pl.Float64, "js_hi": pl.Float64, "n_countries": pl.Int64,
    "n_questions": pl.Int64,
}


def total_variation(p: FloatArray, q: FloatArray) -> FloatArray:
    """1/2 sum |p - q| over the last axis."""
    return 0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum(axis=-1)


def js_distance(p: FloatArray, q: FloatArray) -> FloatArray:
    """SciPy's Jensen-Shannon distance, base 2, over the last axis.

    SciPy takes the square root of the divergence as summed, and for distributions
    equal up to rounding that sum can come out a hair below 0: NaN (4 in 10 pairs of a
    distribution and its copy perturbed by 1e-16). Such a pair is at distance 0; the
    TV bound keeps a NaN of any other cause (it cannot arise from two distributions)."""
    with np.errstate(invalid="ignore"):
        d = np.atleast_1d(np.asarray(jensenshannon(p, q, base=2.0, axis=-1), dtype=np.float64))
    return np.where(np.isnan(d) & (np.atleast_1d(total_variation(p, q)) < 1e-9), 0.0, d)


def _rows(
    model: str, method: str, item: Item, countries: Sequence[str], n_personas: Sequence[int | None],
    sim: FloatArray, hum: FloatArray,
) -> list[dict[str, object]]:
    """One cell row per country: distances, the share of the first option (binary) and
    both modal answers with their labels."""
    labels = [a.label for a in item.answers]
    codes = item.codes
    tv, js = total_variation(sim, hum), js_distance(sim, hum)
    rows = []
    for i, country in enumerate(countries):
        ms, mh = int(np.argmax(sim[i])), int(np.argmax(hum[i]))
        binary = item.type == "binary"
        rows.append({
            "model": model, "method": method, "country": country, "question": item.id, "type": item.type,
            "n_personas": n_personas[i], "tv": float(tv[i]), "js": float(js[i]),
            "share_first_sim": float(sim[i, 0]) if binary else None,
            "share_first_human": float(hum[i, 0]) if binary else None,
            "share_first_diff": float(sim[i, 0] - hum[i, 0]) if binary else None,
            "mode_sim": codes[ms], "mode_sim_label": labels[ms], "mode_sim_share": float(sim[i, ms]),
            "mode_human": codes[mh], "mode_human_label": labels[mh], "mode_human_share": float(hum[i, mh]),
        })
    return rows


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CELL_SCHEMA).sort(["model", "method", "country", "question"])


def unordered_cells(
    answers: Mapping[tuple[str, str], pl.DataFrame], human: pl.DataFrame, items: Mapping[str, Item],
) -> pl.DataFrame:
    """Cells of every (model, method) run on the nominal and binary ``items`` (kept
    targets), from the persona-level answers; countries without human data are left out."""
    rows: list[dict[str, object]] = []
    for (model, method), frame in answers.items():
        for block in build_blocks(frame, human, list(items)):
            item = items[block.question]
            if tuple(block.codes) != tuple(item.codes):
                raise DataError(f"simulated answer codes of {item.id} {list(block.codes)} are not the "
                                f"bank's {item.codes}; re-run simulate")
            counts = np.bincount(block.country_index, minlength=len(block.countries))
            rows += _rows(model, method, item, block.countries, [int(c) for c in counts],
                          block.aggregate(block.probs), block.human)
    return _frame(rows)


def reference_unordered_cells(
    human: pl.DataFrame, respondents: pl.DataFrame, countries: Sequence[str], items: Mapping[str, Item],
    keys: pl.DataFrame,
) -> pl.DataFrame:
    """Cells of the ``uniform`` and ``other_countries`` references (model "reference")
    on the (country, question) ``keys`` the methods are scored on."""
    questions = list(items)
    hum = human.filter(pl.col("question").is_in(questions) & pl.col("country").is_in(list(countries)))
    preds = {
        "uniform": references.constant_reference(hum, "uniform"),
        "other_countries": references.other_countries_reference(respondents, hum, countries, questions),
    }
    rows: list[dict[str, object]] = []
    for name, pred in preds.items():
        for (question,), grp in keys.sort(["question", "country"]).group_by(["question"], maintain_order=True):
            item = items[str(question)]
            have = grp.join(pred.select("country", "question").unique(), on=["country", "question"], how="semi")
            if have.is_empty():  # other_countries with one selected country
                continue
            sim = metrics.human_arrays(pred, have, item.codes)
            rows += _rows(references.REFERENCE_MODEL, name, item, have["country"].to_list(),
                          [None] * have.height, sim, metrics.human_arrays(hum, have, item.codes))
    return _frame(rows)


def by_country(cells: pl.DataFrame) -> pl.DataFrame:
    """Mean TV and JS over items per (model, method, country)."""
    return cells.group_by(["model", "method", "country"]).agg(
        pl.col("tv").mean(), pl.col("js").mean(), pl.len().cast(pl.Int64).alias("n_questions"),
    ).sort(["model", "method", "country"]).cast(BY_COUNTRY_SCHEMA)  # type: ignore[arg-type]


def summary(cells: pl.DataFrame, n_resamples: int, seed: int) -> pl.DataFrame:
    """Per (model, method): mean over countries of the per-country means, with the
    bootstrap 95% interval over countries (as the MAE's)."""
    rows = []
    for (model, method), grp in by_country(cells).group_by(["model", "method"], maintain_order=True):
        tv_lo, tv_hi = metrics.bootstrap_ci(grp["tv"].to_numpy(), n_resamples, seed)
        js_lo, js_hi = metrics.bootstrap_ci(grp["js"].to_numpy(), n_resamples, seed)
        rows.append({
            "model": model, "method": method, "tv": grp["tv"].mean(), "tv_lo": tv_lo, "tv_hi": tv_hi,
            "js": grp["js"].mean(), "js_lo": js_lo, "js_hi": js_hi, "n_countries": grp.height,
            "n_questions": cells.filter((pl.col("model") == model) & (pl.col("method") == method))[
                "question"].n_unique(),
        })
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA).sort(["model", "method"])


def metrics_json(summary_frame: pl.DataFrame, countries: pl.DataFrame, items: Mapping[str, Item]) -> dict[str, object]:
    """metrics.json's ``unordered`` key: {"items": {id: type}, "tv": {run: x}, "tv_ci":
    {run: {"lo": x, "hi": x}}, "js": ..., "js_ci": ..., "by_country": {run: {ISO3: {"tv",
    "js"}}}}, references beside the runs as ``reference/<name>``."""
    out: dict[str, object] = {"items": {q: item.type for q, item in items.items()}}
    for key in ("tv", "js"):
        out[key] = {f"{m}/{k}": metric_value(v) for m, k, v in summary_frame.select("model", "method", key).iter_rows()}
        out[f"{key}_ci"] = {f"{m}/{k}": {"lo": metric_value(lo), "hi": metric_value(hi)} for m, k, lo, hi in
                            summary_frame.select("model", "method", f"{key}_lo", f"{key}_hi").iter_rows()}
    by: dict[str, dict[str, dict[str, float | None]]] = {}
    for model, method, country, tv, js in countries.select("model", "method", "country", "tv", "js").iter_rows():
        by.setdefault(f"{model}/{method}", {})[country] = {"tv": metric_value(tv), "js": metric_value(js)}
    out["by_country"] = by
    return out
