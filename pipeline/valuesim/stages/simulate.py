"""`simulate` stage: one (model, method) of the DVC matrix -> answer distributions.

Plans every prompt of the method for the selected countries, kept questions and
personas, runs them through the engine (cached, resumable) and writes
``data/simulated/<model>/<method>/{answers,population}.parquet`` and ``summary.json``
(what the answers determine), and the run's statistics (cache hits, calls, tokens,
cost, time) to ``reports/runs/<model>-<method>.json`` (not a DVC output).
With ``simulate.map_items`` it also asks the Inglehart-Welzel map items (for the
methods where that is meaningful, see ``valuesim.culturalmap.item_prompts``) and writes them to
``map_answers.parquet``, apart from the target answers that the metrics read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from valuesim.config import Params
from valuesim.errors import ConfigError
from valuesim.methods import METHOD_NAMES
from valuesim.names import shorten
from valuesim.paths import simulated_dir

# Run statistics that the answers fix; the rest of the engine's RunSummary (cache_hits,
# sent, provider_calls, retries, tokens, cost_usd, wall_s) depends on the cache and the
# machine and goes to valuesim.answer_tables.run_stats_path.
ANSWER_DETERMINED = ("requests", "unique_requests", "flagged")


def _pick(given: str | None, choices: list[str], what: str) -> str:
    if given is not None:
        return given
    if len(choices) == 1:
        return choices[0]
    raise ConfigError(f"several {what}s in params ({', '.join(choices)}); pass --{what} NAME")


DVC_MATRIX_PREFIX = "simulate@"


def from_dvc_stage(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The (model, method) of the DVC matrix entry being run, from ``DVC_STAGE``.

    ``dvc repro`` pastes a matrix value into the stage's command, which its shell then
    parses: a model named ``m;touch pwned;#`` in params would run ``touch`` before
    valuesim could refuse the name. So dvc.yaml's simulate command names no model or
    method (``valuesim stage simulate --from-dvc-stage``) and the stage reads them from
    the variable DVC sets for every stage, ``simulate@<model>-<method>`` (the matrix
    values joined by ``-`` in dvc.yaml's key order; ``dvc.yaml:`` before it when the
    project is a subdirectory). Method names hold no ``-`` (valuesim.methods), so the
    method is what follows the last ``-`` (or, with the keys the other way round, what
    precedes the first); both are then checked against params as ``--model`` and
    ``--method`` are.
    """
    stage = environ.get("DVC_STAGE", "")
    entry = stage.rsplit(":", 1)[-1]
    key = entry.removeprefix(DVC_MATRIX_PREFIX)
    model, _, method = key.rpartition("-")
    first, _, rest = key.partition("-")
    if method not in METHOD_NAMES and first in METHOD_NAMES:
        model, method = rest, first
    if not entry.startswith(DVC_MATRIX_PREFIX) or not model or not method:
        found = f"is {shorten(stage)}" if stage else "is not set"
        raise ConfigError(f"--from-dvc-stage: DVC_STAGE {found}, not simulate@<model>-<method>; the "
                          "option is for dvc.yaml's simulate stage: by hand pass --model and --method")
    return model, method


def run(params: Params, *, model: str | None = None, method: str | None = None) -> None:
    from valuesim.llm.cache import resolve_cache_dir
    from valuesim.methods import get_method
    from valuesim.stage_lock import LOCKS, output_lock

    model = _pick(model, params.simulate.models, "model")
    method = get_method(_pick(method, params.simulate.methods, "method")).name
    if model not in params.models:
        known = ", ".join(sorted(params.models)) or "none"
        raise ConfigError(f"model {shorten(model)} is not defined under models in params ({known})")
    # One copy per output folder (valuesim.stage_lock): a copy left running by a killed
    # `dvc repro` and the next one's would both pay for the unsent answers.
    lock_dir = resolve_cache_dir(params.simulate.cache_dir) / LOCKS
    with output_lock(simulated_dir(model, method), lock_dir, what="valuesim stage simulate"):
        _simulate(params, model, method)


def _simulate(params: Params, model: str, method: str) -> None:
    from valuesim.answer_tables import (
        answers_frame,
        check_coverage,
        empty_cells,
        population_frame,
        run_stats_path,
        write_outputs,
        write_run_stats,
    )
    from valuesim.artifacts import output_set
    from valuesim.culturalmap.item_prompts import map_answers_frame
    from valuesim.llm.engine import Engine
    from valuesim.output_targets import check_writable
    from valuesim.planning import outputs_inputs, stage_prompts, stage_requests
    from valuesim.spending import check_simulate_ceiling

    # before any request is paid for (or a server started): a read-only or full data/
    # or reports/ would otherwise fail only after every answer was bought
    for folder in (simulated_dir(model, method), run_stats_path(model, method).parent):
        check_writable(folder, when="checked before any request was sent")
    # the same inputs and prompts as `valuesim plan` counts (valuesim.planning)
    inputs = outputs_inputs(params)
    bank, countries, kept = inputs.bank, list(inputs.countries), list(inputs.questions)
    units, map_prompts = stage_prompts(params, method, inputs)

    label = f"simulate {model}/{method}"
    with Engine.from_params(params, model, label=label) as engine:
        # one run for both, so progress, retries and the summary cover everything paid for
        requests = stage_requests(engine, units, map_prompts)
        # simulate.max_cost_usd: a paid model stops here, before its first request
        check_simulate_ceiling(params, engine, requests, model, method, label)
        results = engine.run(requests)
        summary = engine.summary

    map_answers = map_answers_frame(map_prompts, results[len(units):]) if map_prompts else None
    results = results[: len(units)]
    answers = answers_frame(units, results, bank)
    # the answers are in the response cache already: a fixed prompt or rule reruns cheaply
    check_coverage(answers, label, engine.answer_rule)
    population = population_frame(answers)
    empty = empty_cells(answers, population)
    # summary.json is a DVC output: only what the answers determine goes in, so two runs
    # that give the same answers (cold or warm cache, any machine) hash the same and
    # later stages do not rerun. How this run went (cache hits, calls, tokens, cost,
    # time) goes to a side file that is no DVC output and no stage's dependency.
    report = {
        "model": model,
        "method": method,
        "provider": summary.provider,
        "provider_model": summary.model,
        "estimator": engine.estimator,
        "answer_rule": engine.answer_rule,
        "coverage_mean": float(answers["coverage"].mean() or 0.0),  # type: ignore[arg-type]
        "personas": answers["persona_id"].n_unique(),
        "countries": len(countries),
        "questions": len(kept),
        "map_prompts": len(map_prompts),  # included in requests
        **{k: v for k, v in summary.to_json().items() if k in ANSWER_DETERMINED},
        "empty_cells": empty,
    }
    with output_set():  # the answers folder and the run's statistics: both or neither
        write_outputs(simulated_dir(model, method), answers, population, report, map_answers)
        write_run_stats(run_stats_path(model, method), {"model": model, "method": method, **summary.to_json()})
    print(f"{label}: {summary.line()} -> {simulated_dir(model, method)}")
