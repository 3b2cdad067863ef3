"""`valuesim.ask` (issue 12): new items through the study's personas, prompts, engine and
cache, with the real embedded model; bad input fails in one line before any model call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.fixtures.study_files import write_ask_params
from valuesim.asking import ask, run_ask
from valuesim.errors import ConfigError, DataError, ValuesimError
from valuesim.survey.new_questions import QuestionFileError

EXAMPLE = "data/questions/new_items_example.yaml"


@pytest.fixture
def project(tmp_path: Path, root: Path) -> Path:
    """A study project that has run nothing yet: params only, the demo population."""
    write_ask_params(
        tmp_path, model="smollm2", provider=None, demo_respondents=50,
        countries={"select": ["JPN"]},
    )
    return tmp_path


@pytest.mark.slow
def test_embedded_model_asks_the_example_items_and_a_second_ask_is_free(
    project: Path, root: Path
) -> None:
    questions = root / EXAMPLE
    first = run_ask(questions, "JPN", n=2, calibrate=True, project_dir=project, progress=False)
    frame = first.frame
    assert frame["question"].to_list() == ["AI_TRUST", "CLIMATE_TAX"]
    assert frame["country"].to_list() == ["JPN", "JPN"]
    assert [len(p) for p in frame["probs"]] == [4, 11]  # the 0-10 item has 11 probabilities
    for row in frame.iter_rows(named=True):
        assert abs(sum(row["probs"]) - 1) < 1e-9
        assert len(row["codes"]) == len(row["probs"])
        expected = float(np.dot(row["codes"], row["probs"]))
        assert row["expected"] == pytest.approx(expected)
        assert row["codes"][0] <= row["persona_ci_low"] <= row["expected"] <= row["persona_ci_high"] <= row["codes"][-1]
        assert 0 <= row["normalized_variance"] <= 1
        assert 0 < row["mean_coverage"] <= 1
        assert (row["n_personas"], row["flagged"]) == (2, 0)
        assert (row["estimator"], row["new"], row["temperature"]) == ("logprobs", True, None)
    s = first.summary
    assert (s.requests, s.sent, s.cache_hits) == (4, 4, 0)
    # no calibrate stage has run: raw distributions, and a note that says so
    assert s.calibration is None
    assert any("no fitted temperature" in n and "reporting raw" in n for n in s.notes)

    second = run_ask(questions, "JPN", n=2, project_dir=project, progress=False)
    assert (second.summary.sent, second.summary.provider_calls, second.summary.cache_hits) == (0, 0, 4)
    assert second.frame.equals(frame)

    # a calibrate stage's output: the fitted T tilts every persona's distribution,
    # keeps each expected answer (mean-preserving), changes the spread; still no call
    (project / "data/calibrated").mkdir(parents=True)
    (project / "data/calibrated/temperatures.json").write_text(json.dumps(
        {"temperatures": {"smollm2/value": {"overall": 2.0, "loqo": {"Q1": 1.5}}}}
    ))
    calibrated = run_ask(questions, "JPN", n=2, calibrate=True, project_dir=project, progress=False)
    assert calibrated.summary.sent == 0
    assert calibrated.frame["temperature"].to_list() == [2.0, 2.0]
    assert calibrated.summary.calibration is not None
    assert calibrated.summary.calibration.path == "data/calibrated/temperatures.json"
    assert np.allclose(calibrated.frame["expected"], frame["expected"])
    assert not np.allclose(calibrated.frame["normalized_variance"], frame["normalized_variance"])
    assert all(abs(sum(p) - 1) < 1e-9 for p in calibrated.frame["probs"])


def test_ask_returns_the_frame_of_run_ask() -> None:
    # the notebook entry point and the one with a summary share their signature (a dry
    # run has no frame to return: its plan is in run_ask's summary)
    import inspect

    assert list(inspect.signature(ask).parameters) == [
        p for p in inspect.signature(run_ask).parameters if p not in ("progress", "log", "dry_run")
    ]


BAD: list[tuple[str, dict[str, object], type[ValuesimError], str]] = [
    ("unknown country for the source", {"countries": "JPN,GBR"}, DataError,
     "GBR not in the demo population"),
    ("not an ISO3 code", {"countries": "Japan"}, ConfigError, "'JAPAN' is not an ISO3 code"),
    ("no countries", {"countries": " , "}, ConfigError, "no countries given"),
    ("n above the respondents", {"n": 51}, DataError,
     "n 51 is more than the 50 respondents of JPN"),
    ("n zero", {"n": 0}, ConfigError, "at least one persona"),
    ("unknown method", {"method": "telepathy"}, ConfigError, "unknown method 'telepathy'"),
    ("model not in params", {"model": "gpt-9"}, ConfigError,
     "model 'gpt-9' is not an entry of the models section of params (smollm2); add one there"),
    ("unknown WVS id", {"questions": "Q99999"}, QuestionFileError, "not a WVS item"),
    ("missing question file", {"questions": "nothere.yaml"}, QuestionFileError,
     "question file nothere.yaml not found"),
    ("a question twice", {"questions": ["Q1", "Q1"]}, QuestionFileError, "given twice"),
]


@pytest.mark.parametrize(("case", "change", "error", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_in_one_line_before_any_model_call(
    project: Path, root: Path, case: str, change: dict[str, object],
    error: type[ValuesimError], message: str,
) -> None:
    args: dict[str, object] = {"questions": root / EXAMPLE, "countries": "JPN", "n": 2, **change}
    with pytest.raises(error) as err:
        run_ask(args.pop("questions"), args.pop("countries"), project_dir=project, **args)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not (project / ".cache").exists()  # no engine was created, nothing was scored


def test_a_bad_question_file_names_the_item_and_field(project: Path) -> None:
    bad = project / "bad.yaml"
    bad.write_text(yaml.safe_dump({"items": [{"id": "X1", "text": "?", "answers": [
        {"code": 1, "label": "yes"}, {"code": 1.5, "label": "no"}]}]}))
    with pytest.raises(QuestionFileError, match=r"bad.yaml: item X1: answers\[1\].code 1.5"):
        run_ask(bad, "JPN", n=2, project_dir=project)
    assert not (project / ".cache").exists()


def test_the_study_extract_is_the_default_population_and_its_countries_are_named(
    project: Path, root: Path
) -> None:
    # with an extract on disk, personas come from it (as the personas stage samples them)
    from valuesim.survey.bank import load_bank
    from valuesim.survey.demo.population import generate

    bank = load_bank(root / "data/questions/wvs7.yaml")
    (project / "data/interim").mkdir(parents=True)
    generate(root / "data/demo/aggregates.json", bank, 3, 0, countries=["JPN"]).write_parquet(
        project / "data/interim/respondents.parquet"
    )
    with pytest.raises(DataError, match=r"DEU not in data/interim/respondents.parquet .*; it has JPN"):
        run_ask("Q1", "DEU", n=1, project_dir=project)
    with pytest.raises(DataError, match="n 4 is more than the 3 respondents of JPN in data/interim"):
        run_ask("Q1", "JPN", n=4, project_dir=project)


@pytest.mark.slow
def test_embedded_model_answers_a_nominal_a_binary_and_an_ordinal_item_through_the_cli(
    project: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`valuesim ask` with the real embedded model and the shipped example of the three
    question types: exact distributions over the options (answer_start), labelled, with
    a mean only where the answers are a scale."""
    from tests.fixtures.cli import run_cli

    monkeypatch.chdir(project)
    code, out, err = run_cli(["ask", "-q", str(root / "data/questions/question_types_example.yaml"),
                              "--countries", "JPN", "--model", "smollm2", "--n", "2",
                              "--format", "json"], capsys)
    assert code == 0, err
    news, voted, *media, trust = json.loads(out)["results"]
    assert (news["type"], voted["type"], trust["type"]) == ("nominal", "binary", "ordinal")
    assert [(r["type"], r["part_of"], r["labels"]) for r in media] == [("multi", "MEDIA_USED", ["Yes", "No"])] * 4
    for row in (news, voted, *media, trust):
        assert abs(sum(row["probs"]) - 1) < 1e-9
        assert len(row["probs"]) == len(row["labels"]) == len(row["codes"])
        assert 0 < row["mean_coverage"] <= 1
        assert (row["estimator"], row["answer_rule"], row["n_personas"]) == ("logprobs", "answer_start", 2)
        assert row["mode_label"] == row["labels"][row["codes"].index(row["mode"])]
    assert news["expected"] is None
    assert voted["expected"] is None
    assert voted["labels"] == ["Yes", "No"]
    assert trust["expected"] == pytest.approx(float(np.dot(trust["codes"], trust["probs"])))
