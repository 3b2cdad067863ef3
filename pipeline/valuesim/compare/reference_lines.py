"""The references and floors a comparison's figures draw as horizontal lines.

An experiment's error means little alone (0.25 is good if answering the scale's
midpoint gives 0.30 and bad if it gives 0.20), so the figures carry the lines the
study report reads every result against (:mod:`valuesim.analysis.references`), read
from each experiment's ``reports/metrics.json`` (the evaluate stage's DVC metrics):

* the scale-midpoint and uniform answers and the other countries' pooled answers
  (``<metric>."reference/<name>"``), scored on the cells the methods are scored on;
* the actual-answer floor (N respondents' own answers) and the persona-information
  floor (a perfect simulator of N personas) of each compared persona method
  (``actual_answer_floor``, ``persona_information_floor``: keyed by model/method);
* human sampling noise (``human_sampling_noise``: the error a perfect predictor of
  the population has against the survey sample).

The values are means of the per-cell errors, the quantity the boxes' diamonds show.
The floors exist for MAE and the Wasserstein distance only (``*_cal`` and ``*_plain``
read the uncalibrated floor: they measure the same answers). A line whose value
differs between experiments (they were run on different data) is left out and said
so, as is every line when no experiment has a readable metrics file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from valuesim.compare.sources import METRICS, Experiment
from valuesim.methods import method_label

# (metrics.json key under the metric, what the line is called)
REFERENCE_KEYS = (
    ("reference/midpoint", "scale midpoint"),
    ("reference/uniform", "uniform answers"),
    ("reference/other_countries", "other countries' answers"),
)
# values this close (metrics.json rounds to 5 decimals) are one line: the midpoint and
# uniform answers have the same MAE (both put the mean at the scale's centre)
SAME = 1e-9


@dataclass(frozen=True)
class Reference:
    """One line: ``kind`` is ``reference`` (a prediction without a model) or ``floor``."""

    label: str
    value: float
    kind: str


def _floor_key(metric: str) -> str:
    return metric.removesuffix("_cal").removesuffix("_plain")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _lines(metrics: Mapping[str, Any], metric: str, runs: Iterable[tuple[str, str]]) -> dict[str, tuple[float, str]]:
    """label -> (value, kind) of one experiment's metrics file."""
    found: dict[str, tuple[float, str]] = {}
    per_metric = metrics.get(metric)
    if isinstance(per_metric, Mapping):
        for key, label in REFERENCE_KEYS:
            value = _number(per_metric.get(key))
            if value is not None:
                found[label] = (value, "reference")
    floor_metric = _floor_key(metric)
    for section, what in (("actual_answer_floor", "actual-answer floor"),
                          ("persona_information_floor", "persona-information floor")):
        table = metrics.get(section)
        if not isinstance(table, Mapping):
            continue
        for model, method in runs:
            entry = table.get(f"{model}/{method}")
            if not isinstance(entry, Mapping):
                continue
            value = _number(entry.get(floor_metric))
            if value is not None:
                n = entry.get("n")
                found[f"{what} ({method_label(method)}, N={n})"] = (value, "floor")
    noise = metrics.get("human_sampling_noise")
    if isinstance(noise, Mapping):
        value = _number(noise.get(floor_metric))
        if value is not None:
            found["human sampling noise"] = (value, "floor")
    return found


def _parsed(experiment: Experiment) -> Mapping[str, Any] | str:
    """The metrics file, or why it cannot be used."""
    try:
        loaded = json.loads(experiment.metrics or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{experiment.name}: {METRICS} is not JSON ({str(exc).splitlines()[0]})"
    if not isinstance(loaded, Mapping):
        return f"{experiment.name}: {METRICS} is not a JSON object"
    return loaded


def references(
    experiments: Sequence[Experiment], metric: str, runs: Iterable[tuple[str, str]],
) -> tuple[list[Reference], list[str]]:
    """The lines for ``metric`` (lowest value last, as they sit under the boxes) and
    notes on what was left out; ``runs``: the compared (model, method) pairs."""
    runs = sorted(set(runs))
    notes: list[str] = []
    per_experiment: list[dict[str, tuple[float, str]]] = []
    missing = [e.name for e in experiments if e.metrics is None]
    for e in experiments:
        if e.metrics is None:
            continue
        parsed = _parsed(e)
        if isinstance(parsed, str):
            notes.append(f"reference lines: {parsed}; its references are left out (rerun its evaluate stage)")
            continue
        per_experiment.append(_lines(parsed, metric, runs))
    if not per_experiment:
        if missing:
            notes.append(f"no reference lines: no experiment has a readable {METRICS} "
                         "(the evaluate stage writes it)")
        return [], notes
    if missing:
        notes.append(f"reference lines from the experiments with {METRICS}; none in {', '.join(missing)}")
    labels = list(dict.fromkeys(label for lines in per_experiment for label in lines))
    kept: list[Reference] = []
    for label in labels:
        values = [lines[label][0] for lines in per_experiment if label in lines]
        if max(values) - min(values) > SAME:
            notes.append(f"reference line {label!r} left out: it differs between the experiments "
                         f"({min(values):.4f} to {max(values):.4f}; were they run on different data?)")
            continue
        kind = next(lines[label][1] for lines in per_experiment if label in lines)
        same = next((i for i, r in enumerate(kept) if abs(r.value - values[0]) <= SAME and r.kind == kind), None)
        if same is None:
            kept.append(Reference(label=label, value=values[0], kind=kind))
        else:  # one line, both names (the midpoint's and the uniform answers' MAE coincide)
            kept[same] = Reference(label=f"{kept[same].label} = {label}", value=kept[same].value, kind=kind)
    return sorted(kept, key=lambda r: -r.value), notes
