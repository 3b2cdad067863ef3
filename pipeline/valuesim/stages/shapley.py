"""`valuesim stage shapley`: per-item Shapley values of the value persona (Figure 7).

Off by default (``analysis.shapley: false``): the stage then writes only
``data/shapley/disabled.json`` and loads no model. Switched on
(``dvc exp run -S analysis.shapley=true``) it scores the value personas with persona
items removed (``valuesim.analysis.shapley``, which documents the estimator and its
cost) for every model in ``simulate.models``, through the engine and its response
cache, and writes ``data/shapley/{shapley,values}.parquet`` and ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from valuesim import artifacts
from valuesim.config import Params
from valuesim.paths import HUMAN_SUMMARY, SHAPLEY

DISABLED = "disabled.json"


def _json(data: object, path: Path) -> None:
    """The stage's JSON format: sorted keys, so the summary reads the same every run."""
    artifacts.write_json(data, path, sort_keys=True)


def run(params: Params, **_: object) -> None:
    an = params.analysis
    if not an.shapley:
        with artifacts.atomic_dir(SHAPLEY) as d:
            _json({
                "enabled": False,
                "reason": "analysis.shapley is false; enable with `dvc exp run -S analysis.shapley=true`",
            }, d / DISABLED)
        print(f"shapley: disabled (analysis.shapley: false) -> {SHAPLEY / DISABLED}")
        return

    from valuesim.analysis.shapley import coalition_prompts, run_shapley
    from valuesim.llm.engine import Engine
    from valuesim.output_targets import check_writable
    from valuesim.paid_stages import coalition_inputs
    from valuesim.spending import check_study_ceiling

    # before any request is paid for: a read-only or full data/ fails here, not after
    check_writable(SHAPLEY, when="checked before any request was sent")
    inputs = coalition_inputs(params)
    summary = artifacts.read_parquet(HUMAN_SUMMARY, "human")
    prompts = coalition_prompts(**inputs)
    # simulate.max_cost_usd: before the first model sends anything (valuesim.spending)
    check_study_ceiling(params, "shapley", stage="shapley", models=params.simulate.models)
    bank, orders = inputs["bank"], inputs["orders"]

    estimates, values, runs = [], [], {}
    for model in params.simulate.models:
        with Engine.from_params(params, model, label=f"shapley {model}") as engine:
            result = run_shapley(engine, model, summary=summary, prompts=prompts, **inputs)
        estimates.append(result.estimates)
        values.append(result.values)
        runs[model] = {"coalitions": result.n_coalitions, "prompts": result.prompts, **result.summary}
        print(f"shapley {model}: {engine.summary.line()}")
    items = [i.id for i in bank.persona_items]

    with artifacts.atomic_dir(SHAPLEY) as d:
        pl.concat(estimates).write_parquet(d / "shapley.parquet")
        pl.concat(values).write_parquet(d / "values.parquet")
        _json({
            "enabled": True, "items": items, "permutations": orders.tolist(),
            "seed": an.seed, "countries": inputs["countries"], "questions": inputs["questions"],
            "runs": runs,
        }, d / "summary.json")
    print(f"shapley: {len(orders)} permutations x {len(items)} items -> {SHAPLEY}")
