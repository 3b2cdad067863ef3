"""Spending outside the ceiling (issue 22, item 4): every command and stage that sends paid
requests plans its unsent cost first and honours ``simulate.max_cost_usd``.

Each test drives the real CLI (``valuesim.cli.main``) against a loopback server that
speaks OpenAI's wire format and counts the requests that reach it; over the ceiling
the count stays 0 and the error is one line. Prices are inflated ($1000/$4000 per
million tokens) so that a handful of prompts costs whole cents.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.paths import ROOT
from tests.fixtures.simulate_project import make_project
from valuesim import plugins
from valuesim.cli import main

PRICE = {"input": 1000.0, "output": 4000.0}
EXAMPLE = ROOT / "data/questions/new_items_example.yaml"
TINY = 0.0001  # USD: below the cost of any one request at PRICE
ASK = ["ask", "--questions", str(EXAMPLE), "--countries", "JPN,DEU", "--model", "gpt"]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A study project in ``tmp_path`` (selection and personas, no survey rows) and the
    fake OpenAI server."""
    monkeypatch.syspath_prepend(str(ROOT / "plugins/valuesim-openai/tests"))
    from fake_openai_server import FAKE_KEY, serve

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    for var in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.plugin_manager.cache_clear()
    monkeypatch.chdir(tmp_path)
    with serve() as server:
        yield server
    plugins.plugin_manager.cache_clear()


def write_params(fake: Any, ceiling: float | None, *, prices: dict[str, Any] | None = None,
                 **sections: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "data": {"source": str(ROOT / "data/demo/aggregates.json"),
                 "questions": str(ROOT / "data/questions/wvs7.yaml"),
                 "demo_respondents_per_country": 40},
        "descriptors": {"path": str(ROOT / "data/descriptors/value_handwritten.yaml"),
                        "sociodemographic_path": str(ROOT / "data/descriptors/sociodemographic.yaml")},
        "countries": {"select": ["JPN", "DEU"]},
        "personas": {"n_per_country": 3},
        "models": {"gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.url}},
        "simulate": {"models": ["gpt"], "methods": ["value", "country"], "cache_dir": ".cache",
                     "prices": {"gpt-4o-mini": PRICE} if prices is None else prices,
                     "max_cost_usd": ceiling},
        "analysis": {"bootstrap": 50, "sample_sizes": [1, 2, 3]},
    }
    for key, value in sections.items():
        params[key] = {**params.get(key, {}), **value}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    return params


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


# -- params ---------------------------------------------------------------------------


def test_a_misspelled_price_key_is_refused_at_load(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(Path())
    write_params(fake, 100.0, prices={"gpt-4o-mini": {"inptu": 1000.0, "output": 4000.0}})
    code, _, err = run_cli(["stage", "simulate", "--model", "gpt", "--method", "country"], capsys)
    assert code == 2
    line = one_line(err)
    assert "simulate.prices.gpt-4o-mini.inptu" in line
    assert "input, output, cached_input" in line  # the keys a price takes
    assert fake.counts["total"] == 0


def test_a_price_entry_lacking_output_is_refused(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    write_params(fake, None, prices={"gpt-4o-mini": {"input": 1000.0}})
    code, _, err = run_cli([*ASK, "--method", "country"], capsys)
    assert code == 2
    assert "simulate.prices.gpt-4o-mini.output: Field required" in one_line(err)
    assert fake.counts["total"] == 0


def test_a_paid_model_without_a_price_under_a_ceiling_is_one_line(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_params(fake, 100.0, prices={})  # the ceiling cannot bound an unpriced API model
    code, _, err = run_cli([*ASK, "--method", "country"], capsys)
    assert code == 2
    line = one_line(err)
    assert "gpt-4o-mini" in line
    assert "no price in simulate.prices" in line
    assert "nothing was sent" in line
    assert "{input: 0, output: 0}" in line
    assert fake.counts["total"] == 0


# -- ask ------------------------------------------------------------------------------


def test_ask_over_the_ceiling_sends_nothing(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    write_params(fake, TINY)
    code, out, err = run_cli([*ASK, "--method", "value", "--n", "2"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: ask gpt/value: 8 requests to send (0 of 8 cached) would cost $")
    assert "over simulate.max_cost_usd $0.0001; nothing was sent" in line
    assert out == ""
    assert fake.counts["total"] == 0


def test_ask_dry_run_prints_its_plan_and_sends_nothing(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_params(fake, None)
    code, out, err = run_cli([*ASK, "--method", "value", "--n", "2", "--dry-run"], capsys)
    assert code == 0, err
    (plan,) = out.strip().splitlines()
    assert plan.startswith("ask gpt/value plan: 8 requests, 0 cached, 8 to send, ~")
    assert "at most $" in plan
    assert "at simulate.prices" in plan
    assert err.strip().splitlines()[-1].endswith("dry run, nothing was sent")
    assert fake.counts["total"] == 0
    assert not Path(".cache").exists()  # a plan creates no response cache


def test_ask_under_the_ceiling_prints_its_plan_tokens_and_cost(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_params(fake, 100.0)
    code, _, err = run_cli([*ASK, "--method", "country"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    plan = next(i for i, x in enumerate(lines) if x.startswith("ask gpt/country plan: "))
    summary = lines[-1]
    assert plan < len(lines) - 1  # the plan comes before the run
    assert "4 requests, 0 cached, 4 to send" in lines[plan]  # a paid run says its plan
    assert fake.counts["paid"] == 4
    # the summary says tokens and cost, as simulate's does
    assert summary.startswith("ask gpt/country: 2 countries x 2 questions x 1 personas: 4 requests")
    tokens, cost = summary.split(" calls, ")[1].split(", ")[:2]
    assert int(tokens.removesuffix(" tokens")) > 0
    assert float(cost.removeprefix("$")) > 0
    # asked again: all cached, so even a zero ceiling lets it through and nothing is paid
    write_params(fake, 0.0)
    code, _, err = run_cli([*ASK, "--method", "country"], capsys)
    assert code == 0, err
    assert fake.counts["paid"] == 4


def test_ask_with_a_pilot_over_the_ceiling_sends_nothing(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_params(fake, TINY)
    Path("pilot.csv").write_text(pilot_csv())
    code, _, err = run_cli([*ASK, "--method", "value", "--countries", "JPN", "--pilot", "pilot.csv",
                            "--pilot-unlabeled", "3"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: pilot gpt/value: ")
    assert "nothing was sent" in line
    assert fake.counts["total"] == 0


def pilot_csv() -> str:
    """Twelve JPN respondents (PPI needs ten): the value persona items and the example's two items."""
    from valuesim.survey.bank import load_bank

    items = [i.id for i in load_bank(ROOT / "data/questions/wvs7.yaml").persona_items]
    head = ["country", "respondent_id", *items, "AI_TRUST", "CLIMATE_TAX"]
    rows = [",".join(head)]
    for r in range(12):
        rows.append(",".join(["JPN", f"p{r}", *["1"] * len(items), str(1 + r % 4), str(r % 11)]))
    return "\n".join(rows) + "\n"


# -- score ----------------------------------------------------------------------------


def test_score_over_the_ceiling_sends_nothing(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    write_params(fake, TINY)
    code, _, err = run_cli(["score", "--model", "gpt", "--method", "country", "--country", "JPN"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: score gpt: 1 requests to send")
    assert "nothing was sent" in line
    assert fake.counts["total"] == 0
    write_params(fake, 100.0)  # under it, the same command pays for its one answer
    code, _, err = run_cli(["score", "--model", "gpt", "--method", "country", "--country", "JPN"], capsys)
    assert code == 0, err
    assert fake.counts["paid"] == 1


# -- the pipeline's other paid stages -------------------------------------------------


def new_questions_project(fake: Any, ceiling: float | None) -> None:
    make_project(Path())
    (Path("data/questions")).mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, "data/questions/new.yaml")
    write_params(fake, ceiling, data={"new_questions": ["data/questions/new.yaml"]})


def test_the_new_questions_stage_over_the_ceiling_sends_nothing(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    new_questions_project(fake, TINY)
    code, _, err = run_cli(["stage", "new_questions"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: new_questions: the study's unsent answers would cost $")
    assert "nothing was sent" in line
    assert fake.counts["total"] == 0
    assert not Path("data/new_questions").exists()


def test_simulate_counts_the_new_questions_of_the_same_repro(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulate matrix alone fits under the ceiling; with the new questions that the
    same ``dvc repro`` asks next, it does not: the first paid stage stops."""
    from valuesim.config import load_params
    from valuesim.planning import outputs_inputs, plan_study

    new_questions_project(fake, None)
    plan = plan_study(load_params(), outputs_inputs(load_params()))
    simulate = sum(r.cost_usd or 0.0 for r in plan.rows if r.stage == "simulate")
    asked = sum(r.cost_usd or 0.0 for r in plan.rows if r.stage == "new_questions")
    assert simulate > 0
    assert asked > 0
    new_questions_project(fake, simulate + asked / 2)
    code, _, err = run_cli(["stage", "simulate", "--model", "gpt", "--method", "value"], capsys)
    assert code == 2
    assert "the study's unsent answers would cost" in one_line(err)
    assert fake.counts["total"] == 0


def test_the_shapley_stage_over_the_ceiling_sends_nothing(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.analysis.test_shapley import make_project as make_shapley_project

    make_shapley_project(Path(), human_at_minimum=False)
    write_params(fake, TINY, analysis={"shapley": True, "shapley_permutations": 1},
                 simulate={"methods": ["value"]})
    code, _, err = run_cli(["stage", "shapley"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: shapley: the study's unsent answers would cost $")
    assert fake.counts["total"] == 0
    assert not Path("data/shapley").exists()


def test_a_large_ask_prints_its_plan_before_it_starts(
    test_provider_installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1,200 requests (2 countries x 2 items x 300 personas) with a free model: the plan
    is printed before the first request, and its count of requests to send was right."""
    import re

    from tests.fixtures.study_files import write_ask_params
    from valuesim.asking import LARGE_RUN

    write_ask_params(tmp_path, model="fake", demo_respondents=320)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["ask", "--questions", str(EXAMPLE), "--countries", "JPN,DEU",
                            "--model", "fake", "--n", "300", "--format", "csv"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    plan = next(i for i, x in enumerate(lines) if x.startswith("ask fake/value plan: "))
    started = next(i for i, x in enumerate(lines) if "to send in" in x)  # the engine's first line
    assert plan < started
    found = re.search(r"1,200 requests, 0 cached, ([\d,]+) to send", lines[plan])
    assert found is not None, lines[plan]
    to_send = int(found[1].replace(",", ""))
    assert to_send >= LARGE_RUN
    assert "no price in simulate.prices" in lines[plan]  # no ceiling: unpriced is allowed
    assert len(test_provider_installed.read_text().splitlines()) == to_send  # what was paid
    assert f"1200 requests, 0 cached, {to_send} sent" in lines[-1]
