"""The simulate stage, in-process, on a small project with the test provider plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures.simulate_project import (
    COUNTRIES,
    PER_COUNTRY,
    QUESTIONS,
    make_project,
    write_personas,
)
from valuesim import plugins
from valuesim.answer_tables import run_stats_path
from valuesim.config import Params
from valuesim.culturalmap.expectations import AIMS, DIRECT_ITEMS
from valuesim.errors import ConfigError, DataError, ProviderError
from valuesim.llm.engine import FLAG_NO_COVERAGE
from valuesim.stages import simulate

# per country or persona: the direct map items, the four autonomy sources, the first
# aim and one second-aim follow-up per possible first choice
MAP_PROMPTS = len(DIRECT_ITEMS) + 4 + 1 + len(AIMS)


def make_params(root: Path, **simulate_params: object) -> Params:
    return Params.model_validate({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": COUNTRIES},
        "models": {
            "fake": {"provider": "testprovider", "model": "hash-1"},
            "other": {"provider": "testprovider", "model": "hash-2"},
        },
        "simulate": {
            "models": ["fake"], "methods": ["generic", "country", "value"],
            "cache_dir": ".cache", "batch_size": 4, **simulate_params,
        },
    })


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, testplugin_site: Path
) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(testplugin_site))
    monkeypatch.delenv("VALUESIM_PLUGINS", raising=False)
    monkeypatch.delenv("VALUESIM_BLOCK_PLUGINS", raising=False)
    monkeypatch.setenv("VALUESIM_TEST_LOG", str(tmp_path / "paid.log"))
    plugins.plugin_manager.cache_clear()
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    plugins.plugin_manager.cache_clear()


def out(method: str, model: str = "fake") -> Path:
    return Path("data/simulated") / model / method


def summary(method: str) -> dict[str, object]:
    return json.loads((out(method) / "summary.json").read_text())  # type: ignore[no-any-return]


def stats(method: str, model: str = "fake") -> dict[str, object]:
    """The run statistics, kept out of the DVC-hashed summary.json."""
    return json.loads(run_stats_path(model, method).read_text())  # type: ignore[no-any-return]


def paid(project: Path) -> int:
    log = project / "paid.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_value_method_writes_answers_population_and_summary(project: Path, root: Path) -> None:
    simulate.run(make_params(root), model="fake", method="value")
    answers = pl.read_parquet(out("value") / "answers.parquet")
    assert answers.schema == pl.Schema({
        "persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
        "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "coverage": pl.Float64,
        "estimator": pl.Utf8, "answer_rule": pl.Utf8, "flag": pl.Utf8,
    })
    assert answers.height == len(COUNTRIES) * PER_COUNTRY * len(QUESTIONS)
    assert set(answers["persona_id"]) == {f"{c}-{i}:value" for c in COUNTRIES for i in range(PER_COUNTRY)}
    q48 = answers.filter(pl.col("question") == "Q48")
    assert q48["codes"][0].to_list() == list(range(1, 11))
    assert (answers["probs"].list.sum() - 1).abs().max() < 1e-9  # type: ignore[operator]
    assert set(answers["estimator"]) == {"logprobs"}

    population = pl.read_parquet(out("value") / "population.parquet")
    assert population.columns == ["country", "question", "codes", "probs", "n_personas", "mean_coverage"]
    assert population.height == len(COUNTRIES) * len(QUESTIONS)
    expected = (
        answers.with_columns(k=pl.int_ranges(pl.col("probs").list.len()))
        .explode("probs", "k")
        .group_by("country", "question", "k")
        .agg(pl.col("probs").mean())
        .sort("k")
        .group_by("country", "question")
        .agg(pl.col("probs"))
    )
    joined = population.join(expected, on=["country", "question"], suffix="_expected")
    for got, want in zip(joined["probs"], joined["probs_expected"], strict=True):
        assert got.to_list() == pytest.approx(want.to_list(), abs=1e-12)
    assert set(population["n_personas"]) == {PER_COUNTRY}

    s = summary("value")
    assert (s["requests"], s["flagged"]) == (18, 0)
    assert (stats("value")["cache_hits"], stats("value")["sent"]) == (0, 18)
    # nothing that depends on the cache or the machine in the DVC-hashed summary
    assert not {"cache_hits", "sent", "provider_calls", "retries", "wall_s", "cost_usd",
                "prompt_tokens", "completion_tokens", "cached_tokens"} & set(s)
    assert s["provider"] == "testprovider"
    assert s["estimator"] == "logprobs"
    assert paid(project) == 18


def test_a_rerun_makes_no_model_call_and_writes_identical_tables(project: Path, root: Path) -> None:
    params = make_params(root)
    simulate.run(params, model="fake", method="value")
    first = {n: (out("value") / n).read_bytes() for n in ("answers.parquet", "population.parquet")}
    simulate.run(params, model="fake", method="value")
    assert paid(project) == 18
    assert stats("value")["sent"] == 0
    assert stats("value")["cache_hits"] == 18
    for name, data in first.items():
        assert (out("value") / name).read_bytes() == data


def test_country_level_methods_need_no_personas_and_share_identical_prompts(
    project: Path, root: Path
) -> None:
    import shutil

    shutil.rmtree(project / "data/personas")
    params = make_params(root)
    simulate.run(params, model="fake", method="generic")
    # the generic prompt names no country: one model call per question, not per country
    per_country = len(QUESTIONS) + MAP_PROMPTS
    assert (summary("generic")["requests"], stats("generic")["sent"]) == (2 * per_country, per_country)
    assert summary("generic")["map_prompts"] == 2 * MAP_PROMPTS
    answers = pl.read_parquet(out("generic") / "answers.parquet")
    assert set(answers["persona_id"]) == {"JPN:generic", "DEU:generic"}
    simulate.run(params, model="fake", method="country")
    assert stats("country")["sent"] == 2 * per_country
    with pytest.raises(DataError, match="run the personas stage"):
        simulate.run(params, model="fake", method="value")


def test_changing_value_descriptors_recomputes_only_value_persona_requests(
    project: Path, root: Path
) -> None:
    params = make_params(root)
    for method in ("generic", "country", "value", "sociodemographic", "fewshot_nonat"):
        simulate.run(params, model="fake", method=method)
    before = paid(project)
    write_personas(project / "data/personas/personas.parquet", value_text="You cherish {i} things.")
    for method in ("generic", "country", "sociodemographic", "fewshot_nonat"):
        simulate.run(params, model="fake", method=method)
        assert stats(method)["sent"] == 0, method
    simulate.run(params, model="fake", method="value")
    assert stats("value")["sent"] == 18
    assert paid(project) == before + 18


def test_flagged_rows_are_kept_flagged_and_left_out_of_the_population(
    project: Path, root: Path
) -> None:
    write_personas(project / "data/personas/personas.parquet", flag_country="DEU")
    simulate.run(make_params(root), model="fake", method="value")
    answers = pl.read_parquet(out("value") / "answers.parquet")
    flagged = answers.filter(pl.col("flag") != "")
    assert set(flagged["country"]) == {"DEU"}
    assert set(flagged["flag"]) == {FLAG_NO_COVERAGE}
    assert flagged.height == PER_COUNTRY * len(QUESTIONS)
    population = pl.read_parquet(out("value") / "population.parquet")
    assert set(population["country"]) == {"JPN"}
    s = summary("value")
    assert s["flagged"] == 9
    assert s["empty_cells"] == ["DEU/Q1", "DEU/Q48", "DEU/Q6"]


def test_a_run_with_no_coverage_anywhere_fails_and_writes_nothing(project: Path, root: Path) -> None:
    write_personas(project / "data/personas/personas.parquet",
                   value_text="You value {i} things. [no-coverage]")
    with pytest.raises(DataError, match=r"every one of 18 answers has coverage 0.*answer_rule"):
        simulate.run(make_params(root), model="fake", method="value")
    assert not out("value").exists()


def test_rows_and_summary_record_the_answer_rule(project: Path, root: Path) -> None:
    simulate.run(make_params(root), model="fake", method="value")
    answers = pl.read_parquet(out("value") / "answers.parquet")
    assert set(answers["answer_rule"]) == {"answer_start"}
    assert summary("value")["answer_rule"] == "answer_start"
    assert 0.5 <= summary("value")["coverage_mean"] <= 1.0  # type: ignore[operator]


def test_a_failed_run_leaves_no_output_and_keeps_what_was_paid(
    project: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = make_params(root, batch_size=3)
    simulate.run(params, model="fake", method="value")
    previous = (out("value") / "answers.parquet").read_bytes()
    write_personas(project / "data/personas/personas.parquet", value_text="You weigh {i} options.")
    monkeypatch.setenv("VALUESIM_TEST_FAIL_MARKER", "You weigh 2 options")
    with pytest.raises(ProviderError, match=r"malformed body.*rerun to resume"):
        simulate.run(params, model="fake", method="value")
    assert (out("value") / "answers.parquet").read_bytes() == previous  # old output untouched
    assert sorted(p.name for p in out("value").parent.iterdir()) == ["value"]  # no temp dirs left
    monkeypatch.delenv("VALUESIM_TEST_FAIL_MARKER")
    paid_before = paid(project)
    simulate.run(params, model="fake", method="value")
    # only what had not been answered before the failure is sent now
    assert stats("value")["sent"] == 18 - stats("value")["cache_hits"]  # type: ignore[operator]
    assert 0 < stats("value")["cache_hits"] < 18  # type: ignore[operator]
    assert paid(project) - paid_before == stats("value")["sent"]


def test_bad_requests_fail_before_any_model_call(project: Path, root: Path) -> None:
    params = make_params(root, models=["fake", "other"])
    with pytest.raises(ConfigError, match="several models"):
        simulate.run(params, method="value")
    with pytest.raises(ConfigError, match="'nope' is not defined under models"):
        simulate.run(params, model="nope", method="value")
    with pytest.raises(ConfigError, match="unknown method"):
        simulate.run(params, model="fake", method="telepathy")
    (project / "data/human/kept_questions.json").unlink()
    with pytest.raises(DataError, match="run the human stage"):
        simulate.run(params, model="fake", method="value")
    assert paid(project) == 0


def test_an_unknown_provider_fails_clearly(project: Path, root: Path) -> None:
    params = Params.model_validate({
        **make_params(root).model_dump(),
        "models": {"fake": {"provider": "nosuchprovider", "model": "x"}},
    })
    with pytest.raises(ProviderError, match="unknown provider 'nosuchprovider'"):
        simulate.run(params, model="fake", method="value")


def test_map_items_are_written_apart_from_the_target_answers(project: Path, root: Path) -> None:
    params = make_params(root)
    simulate.run(params, model="fake", method="sociodemographic")
    answers = pl.read_parquet(out("sociodemographic") / "answers.parquet")
    assert set(answers["question"]) == set(QUESTIONS)  # the metrics' inputs hold targets only
    assert set(pl.read_parquet(out("sociodemographic") / "population.parquet")["question"]) == set(QUESTIONS)
    maps = pl.read_parquet(out("sociodemographic") / "map_answers.parquet")
    assert maps.height == len(COUNTRIES) * PER_COUNTRY * MAP_PROMPTS
    assert set(maps["persona_id"]) == set(answers["persona_id"])
    second = maps.filter(pl.col("question") == "Q155")
    assert sorted(set(second["given"].to_list())) == list(AIMS)
    for given, codes in second.select("given", "codes").iter_rows():
        assert given not in codes
        assert len(codes) == 3
    assert (maps["probs"].list.sum() - 1).abs().max() < 1e-9  # type: ignore[operator]
    assert summary("sociodemographic")["requests"] == maps.height + answers.height
    assert summary("sociodemographic")["map_prompts"] == maps.height


def test_no_map_answers_when_off_or_circular(project: Path, root: Path) -> None:
    simulate.run(make_params(root), model="fake", method="value")
    assert not (out("value") / "map_answers.parquet").exists()  # value personas state the answers
    assert summary("value")["map_prompts"] == 0
    off = make_params(root, map_items=False)
    simulate.run(off, model="fake", method="generic")
    assert not (out("generic") / "map_answers.parquet").exists()
    assert summary("generic")["requests"] == len(COUNTRIES) * len(QUESTIONS)
    # switched on again: the target answers come from the cache, only map items are sent
    simulate.run(make_params(root), model="fake", method="generic")
    assert (out("generic") / "map_answers.parquet").exists()
    assert stats("generic")["sent"] == MAP_PROMPTS  # generic names no country: shared prompts
