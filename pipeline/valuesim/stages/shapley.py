"""`valuesim stage shapley`: per-item Shapley values of the value persona (Figure 7).

Off by default (``analysis.shapley: false``): the stage then writes only
``data/shapley/disabled.json`` and loads no model. Switched on
(``dvc exp run -S analysis.shapley=true``) it scores the value personas with persona
items removed (``valuesim.analysis.shapley``, which documents the estimator and its
cost) for every model in ``simulate.models``, through the engine and its response
cache, and writes ``data/shapley/{shapley,values}.parquet`` and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from valuesim.analysis.blocks import read_json, read_parquet
from valuesim.config import Params
from valuesim.paths import (
    GENERATED_DESCRIPTORS,
    HUMAN_SUMMARY,
    KEPT_QUESTIONS,
    RESPONDENTS,
    SELECTED_COUNTRIES,
    SHAPLEY,
    personas_for,
)

DISABLED = "disabled.json"


def _replace_dir(out: Path, write: Callable[[Path], None]) -> None:
    """Fill a sibling temporary directory, then swap it in: never a half-written output."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the output is an ordinary directory
    try:
        write(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json(data: object, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def run(params: Params, **_: object) -> None:
    an = params.analysis
    if not an.shapley:
        _replace_dir(SHAPLEY, lambda d: _json({
            "enabled": False,
            "reason": "analysis.shapley is false; enable with `dvc exp run -S analysis.shapley=true`",
        }, d / DISABLED))
        print(f"shapley: disabled (analysis.shapley: false) -> {SHAPLEY / DISABLED}")
        return

    from valuesim.analysis.shapley import run_shapley, sample_permutations
    from valuesim.llm.engine import Engine
    from valuesim.personas import descriptors
    from valuesim.survey.bank import load_bank

    bank = load_bank(params.data.questions)
    kept = read_json(KEPT_QUESTIONS, "human")["kept"]
    countries = read_json(SELECTED_COUNTRIES, "map")["countries"]
    personas = read_parquet(personas_for("value"), "personas")
    summary = read_parquet(HUMAN_SUMMARY, "human")
    value_set = descriptors.load(GENERATED_DESCRIPTORS, bank, kind="value")
    ids = personas["respondent_id"].to_list()
    respondents = read_parquet(RESPONDENTS, "extract").filter(pl.col("respondent_id").is_in(ids))
    orders = sample_permutations(len(bank.persona_items), an.shapley_permutations, an.seed)

    estimates, values, runs = [], [], {}
    for model in params.simulate.models:
        with Engine.from_params(params, model, label=f"shapley {model}") as engine:
            result = run_shapley(
                engine, model, personas=personas, respondents=respondents, bank=bank,
                value_set=value_set, questions=kept, countries=countries, summary=summary,
                guidance=params.prompts.guidance, orders=orders,
            )
        estimates.append(result.estimates)
        values.append(result.values)
        runs[model] = {"coalitions": result.n_coalitions, "prompts": result.prompts, **result.summary}
        print(f"shapley {model}: {engine.summary.line()}")
    items = [i.id for i in bank.persona_items]

    def write(d: Path) -> None:
        pl.concat(estimates).write_parquet(d / "shapley.parquet")
        pl.concat(values).write_parquet(d / "values.parquet")
        _json({
            "enabled": True, "items": items, "permutations": orders.tolist(),
            "seed": an.seed, "countries": countries, "questions": kept, "runs": runs,
        }, d / "summary.json")

    _replace_dir(SHAPLEY, write)
    print(f"shapley: {len(orders)} permutations x {len(items)} items -> {SHAPLEY}")
