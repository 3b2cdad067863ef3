"""`valuesim plan`: its counts are what the simulate stage sends, caches and is charged for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.simulate_project import COUNTRIES, PER_COUNTRY, QUESTIONS, make_project
from valuesim.answer_tables import run_stats_path
from valuesim.cli import main
from valuesim.config import Params
from valuesim.culturalmap.expectations import AIMS, DIRECT_ITEMS
from valuesim.planning import (
    CHARS_PER_TOKEN,
    outputs_inputs,
    params_inputs,
    plan_study,
    study_inputs,
)
from valuesim.stages import simulate

METHODS = ["generic", "country", "value", "sociodemographic"]
# per country or persona: direct map items, four autonomy sources, first aim, its follow-ups
MAP_PROMPTS = len(DIRECT_ITEMS) + 4 + 1 + len(AIMS)


def make_params(root: Path, **simulate_params: object) -> Params:
    return Params.model_validate({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": COUNTRIES},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1"}},
        "simulate": {"models": ["fake"], "methods": METHODS, "cache_dir": ".cache",
                     "batch_size": 4, **simulate_params},
    })


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_provider_installed: Path) -> Path:
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def paid(project: Path) -> int:
    log = project / "paid.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_plan_counts_are_what_the_simulate_stage_sends_and_then_caches(project: Path, root: Path) -> None:
    params = make_params(root)
    before = {(r.model, r.method): r for r in plan_study(params, outputs_inputs(params)).rows}
    assert set(before) == {("fake", m) for m in METHODS}
    # the numbers the fixture implies, so that a plan and a run that both drift still fail
    per_country = len(QUESTIONS) + MAP_PROMPTS
    assert before["fake", "country"].requests == len(COUNTRIES) * per_country
    assert before["fake", "value"].requests == len(COUNTRIES) * PER_COUNTRY * len(QUESTIONS)
    assert before["fake", "sociodemographic"].map_requests == len(COUNTRIES) * PER_COUNTRY * MAP_PROMPTS
    # generic names no country: every country's prompt is the same, sent once
    assert before["fake", "generic"].unique == per_country

    sent_total = 0
    for method in METHODS:
        simulate.run(params, model="fake", method=method)
        stats = json.loads(run_stats_path("fake", method).read_text())
        row = before["fake", method]
        assert (row.requests, row.unique, row.cached) == (
            stats["requests"], stats["unique_requests"], stats["cache_hits"])
        assert row.to_send == stats["sent"]
        sent_total += stats["sent"]
    assert paid(project) == sent_total  # what the provider answered, request by request

    after = plan_study(params, outputs_inputs(params)).rows
    assert [(r.cached, r.to_send, r.prompt_tokens) for r in after] == [(r.requests, 0, 0) for r in after]


def test_a_plan_leaves_the_garbage_collector_as_it_found_it(project: Path, root: Path) -> None:
    # the plan pauses the cyclic collector while it builds its prompts (speed); the
    # process's setting must come back, also when the plan fails
    import gc

    params = make_params(root)
    assert gc.isenabled()
    plan_study(params, outputs_inputs(params))
    assert gc.isenabled()
    gc.disable()
    try:
        plan_study(params, outputs_inputs(params))
        assert not gc.isenabled()  # not switched on for a caller that had it off
    finally:
        gc.enable()
    with pytest.raises(KeyError):  # an unknown model, raised while the collector is paused
        plan_study(params, outputs_inputs(params), models=["no-such-model"])
    assert gc.isenabled()


def test_estimated_tokens_are_characters_over_four(project: Path, root: Path) -> None:
    from valuesim.planning import stage_prompts

    params = make_params(root, methods=["value"], map_items=False)
    inputs = outputs_inputs(params)
    (row,) = plan_study(params, inputs).rows
    units, _ = stage_prompts(params, "value", inputs)
    chars = sum(len(m.content) for u in units for m in u.messages)
    assert row.tokens_counted == "estimate"
    assert row.prompt_tokens == round(chars / CHARS_PER_TOKEN)


def test_cost_time_and_prefix_splits(project: Path, root: Path) -> None:
    price = {"input": 2.0, "output": 8.0}
    params = Params.model_validate({
        **make_params(root).model_dump(),
        "models": {"fake": {"provider": "testprovider", "model": "hash-1"},
                   "srv": {"provider": "openai", "model": "served-model", "base_url": "http://127.0.0.1:9/v1",
                           "options": {"server": "vllm"}}},
        "simulate": {**make_params(root).simulate.model_dump(), "models": ["fake", "srv"],
                     "methods": ["value"], "prices": {"hash-1": price}},
    })
    rows = {r.model: r for r in plan_study(params, outputs_inputs(params), requests_per_s=4.0).rows}
    fake, srv = rows["fake"], rows["srv"]
    # testprovider: logprobs, one reply token at most per request
    assert fake.cost_usd == pytest.approx((fake.prompt_tokens * 2.0 + fake.to_send * 8.0) / 1e6)
    assert srv.cost_usd is None  # no price: shown unpriced, not free
    assert fake.split_requests == 0
    # one 10-point question (Q48) per persona: "1" may grow into "10", one more request each
    assert srv.split_requests == len(COUNTRIES) * PER_COUNTRY
    assert srv.time_s == pytest.approx((srv.to_send + srv.split_requests) / 4.0)
    assert srv.rate_source.startswith("assumed")

    # a run seen in reports/runs sets the model's rate
    simulate.run(make_params(root, methods=["value"]), model="fake", method="value")
    stats = json.loads(run_stats_path("fake", "value").read_text())
    (seen,) = [r for r in plan_study(params, outputs_inputs(params), requests_per_s=4.0).rows
               if r.model == "fake"]
    assert seen.rate == pytest.approx(stats["sent"] / stats["wall_s"])
    assert seen.rate_source.startswith("seen")


def test_plan_from_params_alone_samples_personas_as_the_stage_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate({
        "data": {"source": str(root / "data/demo/aggregates.json"),
                 "questions": str(root / "data/questions/wvs7.yaml"),
                 "demo_respondents_per_country": 30},
        "descriptors": {"path": str(root / "data/descriptors/value_handwritten.yaml"),
                        "sociodemographic_path": str(root / "data/descriptors/sociodemographic.yaml")},
        "countries": {"select": ["JPN", "MDA"]},  # no demo population for Moldova
        "personas": {"n_per_country": 50},
        "simulate": {"methods": ["value"], "map_items": False},
    })
    inputs = study_inputs(params, tmp_path)
    assert not inputs.from_outputs
    personas = inputs.personas("value")
    counts = dict(personas.group_by("country").len().iter_rows())
    # JPN has 30 respondents: all of them, as the personas stage caps n; MDA: stand-ins
    assert counts == {"JPN": 30, "MDA": 50}
    assert personas.filter(personas["country"] == "MDA")["text"].str.contains("Moldova").all()
    notes = " ".join(inputs.notes)
    assert "JPN 30" in notes
    assert "MDA not in" in notes
    assert "params alone" in notes
    n_targets = len(inputs.questions)
    (row,) = plan_study(params, inputs, count_tokens=False).rows
    assert row.requests == 80 * n_targets


def test_hull_without_a_map_is_a_one_line_error(tmp_path: Path, root: Path) -> None:
    from valuesim.errors import ConfigError

    params = Params.model_validate({"countries": {"select": "hull"}})
    with pytest.raises(ConfigError, match="dvc repro map") as info:
        params_inputs(params, tmp_path)
    assert "\n" not in str(info.value)


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0)


def test_plan_command_table_and_json(project: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(make_params(root).model_dump(mode="json")))
    assert cli("plan", "--requests-per-s", "10") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["model", "method", "requests"]
    assert "assumed (--requests-per-s)" in table
    assert "note: inputs: the pipeline's outputs" in table  # the project's own params.yaml
    assert cli("plan", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in data["rows"]] == METHODS
    assert data["totals"]["requests"] == sum(r["requests"] for r in data["rows"])
    assert cli("plan", "--requests-per-s", "0") != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --requests-per-s")
    assert "\n" not in err


@pytest.mark.slow
def test_local_tokens_are_counted_with_the_models_tokenizer(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars as pl

    from valuesim.personas.build import write_persona_tables

    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    Path("data/map/selected_countries.json").write_text(
        json.dumps({"countries": ["JPN"], "how": "list", "extra": []}))
    personas = pl.read_parquet("data/personas/personas.parquet")
    write_persona_tables(personas.filter(pl.col("respondent_id") == "JPN-0"), Path("data/personas"))
    params = Params.model_validate({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN"]},
        "simulate": {"models": ["smollm2"], "methods": ["value"], "cache_dir": ".cache"},
    })
    (row,) = plan_study(params, outputs_inputs(params)).rows
    assert row.tokens_counted == "tokenizer"
    simulate.run(params, model="smollm2", method="value")
    stats = json.loads(run_stats_path("smollm2", "value").read_text())
    # the provider reports the prompt's token ids as it scored them
    assert row.prompt_tokens == stats["prompt_tokens"]


def test_the_paper_scale_params_validate_and_plan_without_a_network(
    monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    from valuesim.config import load_params

    monkeypatch.chdir(root)  # its paths are the project's, as every stage reads them
    params = load_params("examples/paper_scale/params.yaml")
    assert params.countries.select == ["MDA", "TWN", "JPN", "ISL", "SWE", "PRI", "COL", "GHA", "JOR", "GBR"]
    assert params.personas.n_per_country == 2000
    served = [n for n, m in params.models.items() if m.options.get("server") == "vllm"]
    assert len(served) == 7
    assert all(params.models[n].provider == "openai" and params.models[n].base_url for n in served)
    assert set(params.simulate.prices) == {params.models[n].model for n in params.simulate.models
                                           if n not in served}
    # the whole file takes minutes to plan: a slice of it, same code path
    small = params.model_copy(update={
        "personas": params.personas.model_copy(update={"n_per_country": 3}),
        "simulate": params.simulate.model_copy(update={
            "methods": ["value"], "models": ["gpt5.4", "gemma4-31b"]}),
    })
    inputs = study_inputs(small, Path(), use_outputs=False)
    rows = {r.model: r for r in plan_study(small, inputs, requests_per_s=60.0).rows}
    assert rows["gpt5.4"].requests == 10 * 3 * len(inputs.questions)
    assert rows["gpt5.4"].cost_usd is not None
    assert rows["gpt5.4"].cost_usd > 0
    assert rows["gemma4-31b"].cost_usd is None  # a vLLM server of your own: no price
    assert rows["gemma4-31b"].split_requests > 0  # the 10-point questions' "1"
    assert any("MDA" in n for n in inputs.notes)  # no WVS-7 file for Moldova: stand-ins, said so


def one_by_one(prompts: list[tuple[tuple[object, ...], tuple[str, ...]]]) -> dict[str, int]:
    """What a plan counts, counted prompt by prompt (the way it was before it counted parts)."""
    from valuesim.llm.answer_estimates import prefix_answers

    unique = list(dict.fromkeys(prompts))
    chars = [sum(len(m.content) for m in messages) for messages, _ in unique]  # type: ignore[attr-defined]
    ks = [len(prefix_answers(answers)) for _, answers in unique]
    return {"requests": len(prompts), "unique": len(unique), "tokens": round(sum(chars) / CHARS_PER_TOKEN),
            "splits": sum(ks), "split_tokens": sum(k * (round(c / CHARS_PER_TOKEN) + 1)
                                                   for k, c in zip(ks, chars, strict=True))}


def test_the_plans_counts_are_the_stages_prompts_counted_one_by_one(project: Path, root: Path) -> None:
    # the plan counts heads x shared rows; the simulate stage sends stage_prompts: every
    # count (map prompts, duplicates of generic, prefix splits and their tokens) must be
    # what the stage's own prompts give, one by one
    from valuesim.planning import stage_prompts

    price = {"input": 3.0, "output": 0.0}  # no reply cost: the cost is the prompt tokens
    base = make_params(root)
    params = Params.model_validate({
        **base.model_dump(),
        "models": {"srv": {"provider": "openai", "model": "served-model", "base_url": "http://127.0.0.1:9/v1",
                           "options": {"server": "vllm"}}},
        "simulate": {**base.simulate.model_dump(), "models": ["srv"], "prices": {"served-model": price}},
    })
    inputs = outputs_inputs(params)
    rows = {r.method: r for r in plan_study(params, inputs).rows}
    for method in METHODS:
        units, maps = stage_prompts(params, method, inputs)
        sent = [(u.messages, u.answers) for u in units] + [(p.unit.messages, p.unit.answers) for p in maps]
        want = one_by_one(sent)
        row = rows[method]
        assert (row.requests, row.map_requests, row.unique, row.to_send, row.prompt_tokens, row.split_requests) == (
            want["requests"], len(maps), want["unique"], want["unique"], want["tokens"], want["splits"]), method
        assert row.cost_usd == pytest.approx((want["tokens"] + want["split_tokens"]) * 3.0 / 1e6), method
    assert rows["generic"].unique < rows["generic"].requests  # duplicates counted once


def test_counts_from_parts_with_rotated_answers_and_repeated_personas(root: Path, tmp_path: Path) -> None:
    # two personas of one country with the same text are one system message at two
    # rotation offsets: their prompts differ only in the rotated item's listing
    from collections import Counter

    import polars as pl

    from valuesim.prompt_counts import counts_from_blocks, unique_prompts
    from valuesim.prompts import plan_prompt_messages, prompt_parts
    from valuesim.survey.bank import load_bank
    from valuesim.survey.new_questions import extend_bank, load_question_file

    news = {"id": "NEWS", "text": "Where do you get most of your news?", "type": "nominal", "order": "rotate",
            "answers": [{"code": c, "label": label} for c, label in
                        enumerate(["Television", "Newspapers", "Social media", "Radio"], 1)]}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"items": [news]}, sort_keys=False))
    bank = load_bank(root / "data/questions/wvs7.yaml")
    asked = extend_bank(bank, [load_question_file(path, bank)[0]])
    personas = pl.DataFrame({
        "persona_id": ["J0", "J1", "J2", "J3", "J4", "J5", "D0", "D1"],
        "country": ["JPN"] * 6 + ["DEU"] * 2, "kind": ["value"] * 8, "nationality": [True] * 8,
        "text": ["same", "b", "same", "same", "c", "same", "same", "same"]})
    args = ("value", personas, asked, ["NEWS", "Q164", "Q48"], ["JPN", "DEU"])
    blocks = [(head, [((user,), answers) for user, answers in row])
              for _, _, _, head, _, row in prompt_parts(*args)]
    counts = counts_from_blocks(blocks)
    want = one_by_one(plan_prompt_messages(*args))
    assert (counts.requests, counts.unique, counts.estimated_tokens, counts.split_requests, counts.split_tokens) == (
        want["requests"], want["unique"], want["tokens"], want["splits"], want["split_tokens"])
    # JPN "same" at offsets 0, 2, 3, 5 (= 1 mod 4): NEWS listed 4 ways, Q164 and Q48 once
    assert want["unique"] < want["requests"]
    # what a cache lookup starts from: each distinct prompt once, with its requests
    prompts, asked = unique_prompts(blocks)
    assert dict(zip(prompts, asked, strict=True)) == Counter(plan_prompt_messages(*args))
    assert len(prompts) == want["unique"]
