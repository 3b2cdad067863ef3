"""simulate.max_cost_usd: a paid model's stage stops before its first request when the
study's plan costs more, against a loopback server speaking OpenAI's wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.paths import ROOT
from tests.fixtures.simulate_project import fake_openai_project
from valuesim.cli import main
from valuesim.config import Params
from valuesim.errors import ConfigError
from valuesim.planning import outputs_inputs, plan_study, usd
from valuesim.stages import simulate

# USD per million tokens: large, so that a tiny study costs whole dollars
PRICE = {"input": 1000.0, "output": 4000.0}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with fake_openai_project(tmp_path, monkeypatch) as server:
        yield server


def params_for(fake: Any, ceiling: float | None, methods: tuple[str, ...] = ("value", "country")) -> dict[str, Any]:
    return {
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN", "DEU"]},
        "models": {
            "gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.url},
        },
        "simulate": {"models": ["gpt"], "methods": list(methods), "cache_dir": ".cache",
                     "prices": {"gpt-4o-mini": PRICE}, "max_cost_usd": ceiling},
    }


def test_a_run_over_the_ceiling_stops_before_any_request(fake: Any) -> None:
    params = Params.model_validate(params_for(fake, None))
    plan = plan_study(params, outputs_inputs(params))
    by_method = {r.method: r.cost_usd or 0.0 for r in plan.rows}
    assert 1.0 < by_method["value"] < plan.cost_usd  # whole dollars; two paid runs
    # the value run alone fits under this ceiling, the study does not: the study counts
    ceiling = (by_method["value"] + plan.cost_usd) / 2
    strict = Params.model_validate(params_for(fake, ceiling))
    with pytest.raises(ConfigError) as info:
        simulate.run(strict, model="gpt", method="value")
    message = str(info.value)
    assert "\n" not in message
    assert usd(plan.cost_usd) in message
    assert usd(ceiling) in message
    assert "simulate.max_cost_usd" in message
    assert "nothing was sent" in message
    assert fake.counts["total"] == 0  # not one request reached the server
    assert not Path("data/simulated/gpt/value").exists()


def test_under_the_ceiling_it_runs_and_a_cached_rerun_is_not_checked(fake: Any) -> None:
    params = Params.model_validate(params_for(fake, None, ("value",)))
    (row,) = plan_study(params, outputs_inputs(params)).rows
    assert row.cost_usd is not None
    enough = Params.model_validate(params_for(fake, row.cost_usd * 1.01, ("value",)))
    simulate.run(enough, model="gpt", method="value")
    assert fake.counts["paid"] == row.to_send
    stats = json.loads(Path("reports/runs/gpt-value.json").read_text())
    # the plan's upper bound: prompt tokens estimated, replies at max_tokens
    assert 0 < stats["cost_usd"] <= row.cost_usd * 1.5
    # everything is cached now: nothing would be sent, so even a zero ceiling lets it through
    simulate.run(Params.model_validate(params_for(fake, 0.0, ("value",))), model="gpt", method="value")
    assert fake.counts["paid"] == row.to_send


def test_free_models_are_never_stopped(fake: Any) -> None:
    raw = params_for(fake, 0.0, ("value",))
    # a server of your own, said so: a zero price, nothing to pay
    raw["simulate"]["prices"] = {"gpt-4o-mini": {"input": 0, "output": 0}}
    simulate.run(Params.model_validate(raw), model="gpt", method="value")
    assert fake.counts["paid"] > 0


def test_a_vllm_server_of_your_own_needs_no_price(fake: Any) -> None:
    raw = params_for(fake, 0.0, ("value",))
    raw["simulate"]["prices"] = {}
    raw["models"]["gpt"]["options"] = {"server": "vllm", "fallback_top_logprobs": True}
    simulate.run(Params.model_validate(raw), model="gpt", method="value")
    assert fake.counts["paid"] > 0


def test_a_remote_model_without_a_price_under_a_ceiling_is_one_line(fake: Any) -> None:
    raw = params_for(fake, 100.0, ("value",))
    raw["simulate"]["prices"] = {}  # the OpenAI API, unpriced: the ceiling could not bound it
    with pytest.raises(ConfigError) as info:
        simulate.run(Params.model_validate(raw), model="gpt", method="value")
    message = str(info.value)
    assert "\n" not in message
    assert "no price in simulate.prices" in message
    assert "gpt-4o-mini" in message
    assert "nothing was sent" in message
    assert fake.counts["total"] == 0


def test_the_stage_command_says_it_in_one_line(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(params_for(fake, 0.5)))
    with pytest.raises(SystemExit) as done:
        main(["stage", "simulate", "--model", "gpt", "--method", "country"])
    assert done.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: simulate gpt/country: the study's unsent answers would cost $")
    assert fake.counts["total"] == 0


@pytest.mark.parametrize("value", [-1.0, True, "50"])
def test_the_ceiling_is_a_non_negative_number(value: object) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_cost_usd"):
        Params.model_validate({"simulate": {"max_cost_usd": value}})
