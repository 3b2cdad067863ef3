"""``simulate.max_cost_usd``: nothing paid is sent before its cost is planned.

Every stage and command that sends a paid model requests plans what it would still
send (requests not in the response cache: answers already paid for are free) and
stops with one line, before its first request, when that costs more than the ceiling:

- the pipeline's paid stages (simulate, new_questions, shapley) check the **whole
  study's** unsent cost (:func:`valuesim.planning.plan_study`: the simulate matrix,
  the new questions and the Shapley coalitions): DVC runs them one after another, so
  only the total bounds what one ``dvc repro`` pays (:func:`check_study_ceiling`).
  Only the paid models are planned, and the counts are kept between the checks
  (:mod:`valuesim.plan_cache`): a check recounts nothing that has not changed;
- ``valuesim ask`` (also ``--pilot``) and ``valuesim score`` check what they send
  themselves (:func:`check_request_ceiling`).

Costs are the plan's upper bounds (estimated prompt tokens at the full input price,
replies at the most tokens the estimator asks for). With a ceiling set, a model that
may cost money (remote, not a vLLM/SGLang server of your own) and has no price in
``simulate.prices`` is an error: its cost could not be bounded (:func:`require_price`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from valuesim.errors import ConfigError
from valuesim.planning import (
    duration,
    is_paid,
    kept_study_plan,
    needs_price,
    plan_engine,
    plan_requests,
    usd,
)

if TYPE_CHECKING:
    from valuesim.config import Params
    from valuesim.llm.engine import Engine
    from valuesim.llm.types import ScoreRequest
    from valuesim.planning import PlanRow


def require_price(params: Params, engine: Engine, model: str, label: str) -> None:
    """With a ceiling, a model that may cost money must have a price (one line if not)."""
    if params.simulate.max_cost_usd is None or not needs_price(params, engine):
        return
    name = engine.spec.model
    raise ConfigError(
        f"{label}: model {model} ({engine.factory.name}/{name}) has no price in simulate.prices, "
        f"so simulate.max_cost_usd {usd(params.simulate.max_cost_usd)} cannot bound it; nothing "
        f"was sent: add `{name}: {{input: ..., output: ...}}` (USD per million tokens) under "
        "simulate.prices, or {input: 0, output: 0} for a server of your own"
    )


def check_study_ceiling(
    params: Params,
    label: str,
    *,
    stage: str,
    models: Sequence[str],
    mine: Callable[[PlanRow], bool] | None = None,
    project: Path = Path(),
) -> None:
    """Stop a paid stage of the pipeline before its first request when the whole study's
    unsent answers would cost more than ``simulate.max_cost_usd``.

    ``models``: the models this stage sends to; ``mine``: which plan rows are this
    stage's (default: every row of ``stage``). Nothing happens without a ceiling, when
    none of the stage's models is paid, or when its rows have nothing left to send.
    """
    ceiling = params.simulate.max_cost_usd
    if ceiling is None:
        return
    with ExitStack() as stack:
        engines = {m: plan_engine(params, m, project, stack)
                   for m in dict.fromkeys([*models, *params.simulate.models])}
        for model in models:
            require_price(params, engines[model], model, label)
        if not any(is_paid(params, engines[m]) for m in models):
            return  # this stage pays nothing
        for model, engine in engines.items():  # the total must count every paid model
            require_price(params, engine, model, label)
        paid = [m for m in params.simulate.models if is_paid(params, engines[m])]
    # Only the paid models' rows have a cost; the plan of the others is not needed. The
    # counts are kept between checks (valuesim.plan_cache): every paid stage checks.
    plan = kept_study_plan(params, project, paid)
    own = [r for r in plan.rows if (mine(r) if mine is not None else r.stage == stage)]
    if not any(r.to_send and r.cost_usd for r in own):
        return  # nothing paid left to send here
    total = plan.cost_usd
    if total <= ceiling:
        return
    this = sum(r.cost_usd or 0.0 for r in own)
    raise ConfigError(
        f"{label}: the study's unsent answers would cost {usd(total)} at simulate.prices "
        f"({len(plan.paid_rows)} paid runs, this one {usd(this)}), over simulate.max_cost_usd "
        f"{usd(ceiling)}; nothing was sent: raise the ceiling or shrink the study "
        "(see `valuesim plan`)"
    )


def check_simulate_ceiling(
    params: Params, engine: Engine, requests: Sequence[ScoreRequest], model: str, method: str,
    label: str, project: Path = Path(),
) -> None:
    """The simulate stage's guard (:func:`check_study_ceiling`), skipped at no cost when
    every request of the run is cached already."""
    if params.simulate.max_cost_usd is None:
        return
    require_price(params, engine, model, label)
    if not is_paid(params, engine):
        return
    keys = [engine.key(r) for r in requests]  # hashed once (a paper-scale run has 0.5 M)
    if len(engine.cached(requests, keys)) == len(set(keys)):
        return  # nothing to send
    check_study_ceiling(
        params, label, stage="simulate", models=[model], project=project,
        mine=lambda r: r.stage == "simulate" and (r.model, r.method) == (model, method),
    )


def check_request_ceiling(
    params: Params, engine: Engine, row: PlanRow, model: str, label: str, fix: str,
) -> None:
    """Stop a command (ask, score) before its first request when what it would send
    (``row``: :func:`valuesim.planning.plan_requests`) costs more than the ceiling."""
    ceiling = params.simulate.max_cost_usd
    if ceiling is None:
        return
    require_price(params, engine, model, label)
    cost = row.cost_usd or 0.0
    if row.to_send == 0 or cost <= ceiling:
        return
    raise ConfigError(
        f"{label}: {row.to_send:,} requests to send ({row.cached:,} of {row.requests:,} cached) "
        f"would cost {usd(cost)} at simulate.prices, over simulate.max_cost_usd {usd(ceiling)}; "
        f"nothing was sent: raise the ceiling or {fix}"
    )


def plan_and_check(
    params: Params, engine: Engine, model: str, method: str, requests: Sequence[ScoreRequest],
    *, stage: str, label: str, fix: str, project: Path = Path(),
) -> PlanRow:
    """The plan of a command's requests, after the ceiling let them through."""
    if params.simulate.max_cost_usd is not None:
        require_price(params, engine, model, label)  # before planning: a config error
    row = plan_requests(params, engine, model, method, requests, stage=stage, project=project)
    check_request_ceiling(params, engine, row, model, label, fix)
    return row


def plan_line(row: PlanRow, label: str) -> str:
    """One line: what a command will send and what it costs, before it sends anything."""

    if row.cost_usd is None:
        cost = "no price in simulate.prices"
    elif row.cost_usd == 0:
        cost = "$0"
    else:
        cost = f"at most {usd(row.cost_usd)} at simulate.prices"
    time = (f"~{duration(row.time_s)} at {row.rate:,.2f} requests/s ({row.rate_source})"
            if row.time_s is not None and row.rate else "time unknown (no runs of this model "
            "in reports/runs)") if row.to_send else "nothing to send"
    return (f"{label} plan: {row.requests:,} requests, {row.cached:,} cached, "
            f"{row.to_send:,} to send, ~{row.prompt_tokens:,} prompt tokens "
            f"({'counted' if row.tokens_counted == 'tokenizer' else 'estimated'}), "
            f"{row.reply_tokens:,} reply tokens at most, {cost}; {time}")
