"""Fit and apply the mean-preserving calibration to one (model, method).

Calibration acts on persona-level distributions, before they are averaged into a
country's population distribution; T is fit leave-one-question-out so that every
question's calibrated distribution is out of sample. The search includes the
T -> infinity limit, so a fit whose objective keeps falling reaches it and says so
(``identified: false``) instead of stopping at the top of the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from valuesim.analysis import metrics
from valuesim.analysis.blocks import FloatArray, QuestionBlock
from valuesim.calibration.objective import StackedObjective
from valuesim.calibration.tilt import (
    LoqoFit,
    fit_temperature_loqo,
    identification,
    mean_preserving_tilt,
    temperature_scale,
)

POPULATION_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "codes": pl.List(pl.Int64), "probs_raw": pl.List(pl.Float64),
    "probs_cal": pl.List(pl.Float64), "temperature": pl.Float64,
    # plain temperature scaling fitted the same way (LOQO, same grid): the comparison
    # the report states next to the mean-preserving result
    "probs_plain": pl.List(pl.Float64), "temperature_plain": pl.Float64,
}


def calibrated_population(block: QuestionBlock, t: float, *, mean_preserving: bool = True) -> FloatArray:
    """Country distributions after calibrating every persona at temperature ``t``."""
    if mean_preserving:
        q = mean_preserving_tilt(block.probs, block.values, t)
    else:
        q = temperature_scale(block.probs, t)
    return block.aggregate(q)


def wasserstein_by_question(
    blocks: Sequence[QuestionBlock], t: float, *, mean_preserving: bool = True
) -> FloatArray:
    """Per question: mean over countries of W1(calibrated, human) at temperature t."""
    return np.array([
        float(metrics.wasserstein(
            calibrated_population(b, t, mean_preserving=mean_preserving), b.human, b.values
        ).mean())
        for b in blocks
    ])


def fit_loqo(blocks: Sequence[QuestionBlock], grid: FloatArray, *, mean_preserving: bool = True) -> LoqoFit:
    """The LOQO fit of one (model, method); the objective is :func:`wasserstein_by_question`,
    evaluated with one tilt per answer scale (:class:`~valuesim.calibration.objective.StackedObjective`,
    bitwise the same values)."""
    return fit_temperature_loqo(
        StackedObjective(blocks, mean_preserving=mean_preserving), [b.question for b in blocks], grid
    )


def population_rows(
    model: str, method: str, blocks: Sequence[QuestionBlock], fit: LoqoFit, plain: LoqoFit
) -> pl.DataFrame:
    temps = dict(zip(fit.questions, fit.temperatures.tolist(), strict=True))
    temps_plain = dict(zip(plain.questions, plain.temperatures.tolist(), strict=True))
    rows = []
    for b in blocks:
        t, tp = temps[b.question], temps_plain[b.question]
        raw = b.aggregate(b.probs)
        cal = calibrated_population(b, t)
        flat = calibrated_population(b, tp, mean_preserving=False)
        for i, country in enumerate(b.countries):
            rows.append({
                "model": model, "method": method, "country": country, "question": b.question,
                "codes": list(b.codes), "probs_raw": raw[i].tolist(), "probs_cal": cal[i].tolist(),
                "temperature": t, "probs_plain": flat[i].tolist(), "temperature_plain": tp,
            })
    return pl.DataFrame(rows, schema=POPULATION_SCHEMA)


def _t(t: float) -> float:
    """A temperature for temperatures.json: rounded, infinity kept (JSON ``Infinity``)."""
    return float(t) if np.isinf(t) else round(float(t), 6)


def fit_summary(fit: LoqoFit) -> dict[str, object]:
    """The temperatures.json entry of one (model, method).

    Temperatures may be ``Infinity`` (the T -> infinity limit did best). ``identified``,
    ``edge`` and ``monotone``: :func:`~valuesim.calibration.tilt.identification` of the
    all-questions fit; ``loqo_at_limit``: held-out questions whose T is the limit;
    ``curve``: the all-questions objective (mean Wasserstein distance / range) at each
    finite grid T, and at the limit (``objective_limit``), for the report's figure."""
    ident = identification(fit)
    finite = np.isfinite(fit.grid)
    curve = fit.curve
    return {
        "overall": _t(fit.overall),
        "loqo": {q: _t(t) for q, t in zip(fit.questions, fit.temperatures, strict=True)},
        "loqo_median": _t(float(np.median(fit.temperatures))),
        "identified": ident.identified,
        "edge": ident.edge,
        "monotone": ident.monotone,
        "loqo_at_limit": int(np.count_nonzero(np.isinf(fit.temperatures))),
        "curve": {
            "t": [round(float(t), 6) for t in fit.grid[finite]],
            "objective": [round(float(v), 8) for v in curve[finite]],
            "objective_limit": round(float(curve[~finite][0]), 8) if (~finite).any() else None,
        },
    }
