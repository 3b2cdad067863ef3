"""`valuesim providers` and `valuesim score`, through the CLI, with the test plugin installed."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.fixtures.cli import run_cli
from tests.fixtures.simulate_project import make_project
from valuesim.answer_tables import run_stats_path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_provider_installed: Path, root: Path) -> Path:
    make_project(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN", "DEU"]},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1"}},
        "simulate": {"models": ["fake"], "methods": ["value"], "cache_dir": ".cache"},
    }))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_providers_lists_builtin_and_plugin_providers(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["providers", "--format", "json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["testprovider"] == {
        "name": "testprovider", "package": "valuesim-testprovider", "version": "0.1",
        "logprobs": True, "top_logprobs": 5, "sampling": True, "text_generation": False,
        "batch_api": False, "answer_rules": ["answer_start"],
    }
    assert rows["transformers"]["logprobs"] is True
    assert rows["transformers"]["answer_rules"] == ["answer_start", "answer_eot", "first_token", "leading_integer"]
    code, out, _ = run_cli(["providers"], capsys)
    assert code == 0
    assert "testprovider" in out
    assert "valuesim-testprovider" in out
    code, _, err = run_cli(["providers", "--format", "xml"], capsys)
    assert code == 2
    assert err.startswith("error: unknown format 'xml'")


def test_score_prints_what_simulate_computes_for_the_same_prompt(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from valuesim.config import load_params
    from valuesim.stages import simulate

    args = ["score", "--provider", "testprovider", "--model", "hash-1", "--method", "value",
            "--country", "DEU", "--question", "Q6", "--respondent", "DEU-1", "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    result = json.loads(out)
    assert set(result["distribution"]) == {"1", "2", "3", "4"}
    assert sum(result["distribution"].values()) == pytest.approx(1.0)
    assert 0 < result["coverage"] <= 1
    assert result["estimator"] == "logprobs"
    assert (result["persona_id"], result["cached"]) == ("DEU-1:value", False)

    # the same prompt through the simulate stage: same model, same answer, no new call
    simulate.run(load_params(), model="fake", method="value")
    capsys.readouterr()
    answers = pl.read_parquet("data/simulated/fake/value/answers.parquet")
    row = answers.filter((pl.col("persona_id") == "DEU-1:value") & (pl.col("question") == "Q6"))
    assert row["probs"][0].to_list() == list(result["distribution"].values())
    assert row["coverage"][0] == result["coverage"]
    assert json.loads(run_stats_path("fake", "value").read_text())["cache_hits"] == 1

    paid = len((project / "paid.log").read_text().splitlines())
    code, out, _ = run_cli(args, capsys)
    assert json.loads(out)["cached"] is True
    assert len((project / "paid.log").read_text().splitlines()) == paid


def test_score_with_a_params_model_and_table_output(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["score", "--model", "fake", "--method", "country", "--question", "Q48"], capsys)
    assert code == 0, err
    assert "coverage" in out
    assert "10" in out  # the ten-point scale is listed


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--provider", "nosuch", "--model", "x"], 4, "unknown provider 'nosuch'"),
        (["--model", "notinparams"], 2, "model 'notinparams' is not an entry of the models section of"),
        (["--model", "fake", "--method", "telepathy"], 2, "unknown method 'telepathy'"),
        (["--model", "fake", "--question", "Q999"], 2, "unknown question id 'Q999'"),
        (["--model", "fake", "--estimator", "psychic"], 2,
         "unknown estimator 'psychic'; choose one of: logprobs, top_logprobs, sampling, verbalized"),
        (["--model", "fake", "--answer-rule", "whole"], 2,
         "unknown answer rule 'whole'; choose one of: answer_start, answer_eot, first_token, leading_integer"),
        (["--model", "fake", "--estimator", "verbalized"], 4, "cannot give the 'verbalized' estimator"),
        (["--model", "fake", "--format", "yaml"], 2, "unknown format 'yaml'"),
    ],
)
def test_score_rejects_bad_input_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], exit_code: int, message: str
) -> None:
    code, _, err = run_cli(["score", *args], capsys)
    assert code == exit_code
    assert err.startswith("error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (project / "paid.log").exists()
