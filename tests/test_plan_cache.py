"""The plan kept between the paid stages' cost checks (valuesim.plan_cache): used again
while what it was made from is the same, made again when a param, an input file or a
model's cached answers change; against a loopback server speaking OpenAI's wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.fixtures.paths import ROOT
from tests.fixtures.simulate_project import fake_openai_project
from valuesim import paths
from valuesim.config import Params
from valuesim.errors import ConfigError
from valuesim.plan_cache import FILE_NAME
from valuesim.planning import kept_study_plan, outputs_inputs, plan_study
from valuesim.spending import check_study_ceiling
from valuesim.stages import simulate

PRICE = {"input": 1000.0, "output": 4000.0}
KEPT = Path(".cache") / FILE_NAME


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with fake_openai_project(tmp_path, monkeypatch) as server:
        yield server


def params_for(fake: Any, ceiling: float | None = 1e6, **simulate_params: object) -> Params:
    return Params.model_validate({
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN", "DEU"]},
        "models": {"gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.url}},
        "simulate": {"models": ["gpt"], "methods": ["value", "country"], "cache_dir": ".cache",
                     "prices": {"gpt-4o-mini": PRICE}, "max_cost_usd": ceiling, **simulate_params},
    })


def fresh(params: Params) -> list[dict[str, Any]]:
    """The plan made from scratch, as the ceiling asks for it."""
    return [asdict(r) for r in plan_study(params, outputs_inputs(params), count_tokens=False).rows]


def kept(params: Params) -> list[dict[str, Any]]:
    return [asdict(r) for r in kept_study_plan(params, Path(), ["gpt"]).rows]


def inflate_kept_tokens(factor: int = 1000) -> None:
    """Multiply the kept plan's prompt tokens, key untouched: a plan that uses the file
    shows it, a plan made anew does not."""
    data = json.loads(KEPT.read_text())
    for counts in data["plan"]["methods"].values():
        counts["estimated_tokens"] *= factor
    for _, rows in data["plan"]["models"].values():
        for counts in rows.values():
            counts["prompt_tokens"] *= factor
    KEPT.write_text(json.dumps(data))


def test_the_kept_plan_is_the_plan_and_the_next_check_uses_it(fake: Any) -> None:
    params = params_for(fake)
    assert not KEPT.exists()
    first = kept(params)
    assert first == fresh(params)
    assert KEPT.exists()
    assert kept(params) == first

    # the next check reads the kept counts (it does not count again): inflated, they show
    inflate_kept_tokens()
    inflated = kept(params)
    assert [r["prompt_tokens"] for r in inflated] == [r["prompt_tokens"] * 1000 for r in first]
    # ... and the ceiling acts on them
    cost = sum(r["cost_usd"] for r in first)
    under = params_for(fake, cost * 10)
    with pytest.raises(ConfigError, match=r"over simulate\.max_cost_usd"):
        check_study_ceiling(under, "simulate gpt/value", stage="simulate", models=["gpt"])
    assert fake.counts["total"] == 0
    # the ceiling is not what the plan counts: another one plans nothing again
    assert kept(under) == inflated


@pytest.mark.parametrize("change", ["param", "personas", "kept questions", "bank"])
def test_any_change_of_what_the_plan_reads_plans_again(fake: Any, change: str) -> None:
    bank = Path("bank.yaml")  # the project's own copy: edited in place below
    bank.write_bytes((ROOT / "data/questions/wvs7.yaml").read_bytes())
    raw = params_for(fake).model_dump()
    params = Params.model_validate({**raw, "data": {**raw["data"], "questions": str(bank)}})
    kept(params)
    inflate_kept_tokens()
    if change == "param":
        params = Params.model_validate({**params.model_dump(), "simulate": {
            **params.simulate.model_dump(), "batch_size": 3}})
    elif change == "personas":
        table = pl.read_parquet(paths.personas_for("value"))
        table.head(table.height - 1).write_parquet(paths.personas_for("value"))
    elif change == "kept questions":
        data = json.loads(paths.KEPT_QUESTIONS.read_text())
        data["kept"] = data["kept"][:-1]
        paths.KEPT_QUESTIONS.write_text(json.dumps(data))
    else:
        bank.write_text(bank.read_text() + "\n# edited\n")
    again = kept(params)
    assert again == fresh(params)  # not the inflated numbers
    assert kept(params) == again


def test_a_model_whose_answers_were_paid_for_is_looked_up_again(fake: Any) -> None:
    params = params_for(fake)
    before = {r["method"]: r for r in kept(params)}
    assert before["value"]["cached"] == 0
    simulate.run(params, model="gpt", method="value")  # pays, and checks the ceiling on the way
    assert fake.counts["paid"] == before["value"]["to_send"]
    after = {r["method"]: r for r in kept(params)}
    assert after["value"]["cached"] == after["value"]["requests"]
    assert after["value"]["to_send"] == 0
    assert list(after.values()) == fresh(params)
