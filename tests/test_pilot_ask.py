"""Pilot mode (valuesim.pilot_asking.run_pilot): pilot respondents' own personas, the
study's respondents as the unlabeled set, ask's prompts, engine and cache, PPI++ per
(country, question). With the deterministic test provider (a real provider plugin under
the engine) and, marked slow, the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from tests.fixtures.paths import ROOT
from tests.fixtures.study_files import write_ask_params
from valuesim.analysis.ppi import ppi_mean
from valuesim.asking import run_ask
from valuesim.pilot_asking import PILOT_SCHEMA, PilotResult, format_pilot, print_pilot, run_pilot
from valuesim.survey.bank import load_bank
from valuesim.survey.demo.population import generate

SOURCE_N = 40  # demo respondents per country in the project's population
QUESTION = {"id": "FAMILY_NEW", "label": "Family important",
            "text": "How important is family in your life?",
            "answers": [{"code": c, "label": lab} for c, lab in enumerate(
                ["Very important", "Rather important", "Not very important", "Not at all important"],
                start=1)]}


def write_pilot(project: Path, rows: int = 15, weights: list[float] | None = None) -> Path:
    """The first ``rows`` respondents of the project's own demo population (who are
    therefore in its source too), their persona items and their Q1 answer as the new
    question's answer."""
    bank = load_bank(ROOT / "data/questions/wvs7.yaml")
    frame = generate(ROOT / "data/demo/aggregates.json", bank, SOURCE_N, 0, countries=["JPN"])
    frame = frame.filter(pl.col("Q1").is_not_null()).head(rows)
    out = frame.select("country", "respondent_id", *[i.id for i in bank.persona_items],
                       pl.col("Q1").alias("FAMILY_NEW"))
    if weights is not None:
        out = out.with_columns(weight=pl.Series(weights))
    path = project / "pilot.csv"
    out.write_csv(path)
    return path


def check_rows(result: PilotResult, rows: int, unlabeled: int) -> dict[str, object]:
    frame, pred = result.frame, result.predictions
    assert frame.schema == pl.Schema(PILOT_SCHEMA)
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert (row["country"], row["question"], row["n_pilot"], row["n_unlabeled"]) == (
        "JPN", "FAMILY_NEW", rows, unlabeled)
    lab = pred.filter(pl.col("set") == "pilot")
    unl = pred.filter(pl.col("set") == "unlabeled")
    # the unlabeled set never holds a pilot respondent
    assert set(lab["respondent_id"]).isdisjoint(set(unl["respondent_id"]))
    # the row is PPI++ of these very predictions
    again = ppi_mean(lab["y"].to_numpy().astype(float), lab["yhat"].to_numpy(), unl["yhat"].to_numpy(),
                     lab["weight"].to_numpy(), unl["weight"].to_numpy(), row["level"])
    assert row["ppi_estimate"] == pytest.approx(again.estimate)
    assert (row["ppi_low"], row["ppi_high"]) == pytest.approx((again.low, again.high))
    assert row["classical_estimate"] == pytest.approx(np.average(lab["y"], weights=lab["weight"]))
    assert row["ppi_low"] <= row["ppi_estimate"] <= row["ppi_high"]
    assert 0 <= row["lam"] <= 1
    width, c_width = row["ppi_high"] - row["ppi_low"], row["classical_high"] - row["classical_low"]
    assert row["effective_n"] == pytest.approx(rows * (c_width / width) ** 2)
    assert row["model_mean"] == pytest.approx(unl["yhat"].mean())
    return row


@pytest.fixture
def fake_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_provider_installed: Path) -> Path:
    write_ask_params(tmp_path, model="fake", demo_respondents=SOURCE_N)
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"items": [QUESTION]}))
    return tmp_path


def test_pilot_respondents_are_scored_as_the_study_scores_them_and_left_out_of_the_unlabeled_set(
    fake_project: Path,
) -> None:
    project = fake_project
    pilot = write_pilot(project)
    args = {"model": "fake", "project_dir": project, "progress": False}
    first = run_pilot(pilot, project / "q.yaml", n_unlabeled=10, **args)
    check_rows(first, 15, 10)
    s = first.summary
    assert (s.requests, s.sent, s.cache_hits, s.pilot_in_source) == (25, 25, 0, 15)
    assert any("15 pilot respondents are in demo population" in n for n in s.notes)
    assert any("no weights" in n for n in s.notes)

    # asked again: every answer from the cache, the same numbers
    second = run_pilot(pilot, project / "q.yaml", n_unlabeled=10, **args)
    assert (second.summary.sent, second.summary.cache_hits) == (0, 25)
    assert second.frame.equals(first.frame)

    # a pilot persona is its respondent's own persona, worded as the study words it:
    # asking all 40 respondents of the population re-uses all 25 answers
    asked = run_ask(project / "q.yaml", "JPN", n=SOURCE_N, model="fake", project_dir=project,
                    progress=False)
    assert (asked.summary.cache_hits, asked.summary.sent) == (25, SOURCE_N - 25)


def test_a_country_taken_whole_keeps_design_weights_and_a_weighted_pilot_is_weighted(
    fake_project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    weights = [0.5, 1.5, 1.0] * 5
    pilot = write_pilot(fake_project, weights=weights)
    result = run_pilot(pilot, fake_project / "q.yaml", model="fake", n_unlabeled=100,
                       project_dir=fake_project, progress=False)
    check_rows(result, 15, SOURCE_N - 15)
    assert result.summary.weighted_pilot
    assert result.predictions.filter(pl.col("set") == "pilot")["weight"].to_list() == weights
    assert any("the source has 25 respondents besides the pilot, fewer than the 100 asked for" in n
               for n in result.summary.notes)
    # output formats
    parsed = json.loads(format_pilot(result, "json"))
    assert parsed["results"][0]["question"] == "FAMILY_NEW"
    assert parsed["summary"]["pilot_in_source"] == 15
    assert format_pilot(result, "csv").splitlines()[0].split(",") == list(PILOT_SCHEMA)
    assert "PPI++" in format_pilot(result, "table")
    print_pilot(result, "table")  # what `valuesim ask --pilot` prints
    out, err = capsys.readouterr()
    assert "FAMILY_NEW" in out
    assert err.splitlines()[-1] == result.summary.line()


@pytest.mark.slow
def test_embedded_model_pilot_end_to_end_and_calibration_leaves_it_unchanged(tmp_path: Path) -> None:
    write_ask_params(tmp_path, model="smollm2", provider=None, demo_respondents=SOURCE_N,
                     countries={"select": ["JPN"]})
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"items": [QUESTION]}))
    pilot = write_pilot(tmp_path)
    args = {"n_unlabeled": 10, "project_dir": tmp_path, "progress": False}
    raw = run_pilot(pilot, tmp_path / "q.yaml", **args)
    check_rows(raw, 15, 10)
    assert raw.summary.estimator == "logprobs"
    assert raw.summary.sent == 25
    assert raw.summary.calibration is None
    yhat = raw.predictions["yhat"].to_numpy()
    assert np.all((yhat >= 1) & (yhat <= 4))

    # with the study's fitted temperature: nothing is sent again, and the tilt keeps every
    # persona's expected answer, so Yhat and every PPI number stay the same
    (tmp_path / "data/calibrated").mkdir(parents=True)
    (tmp_path / "data/calibrated/temperatures.json").write_text(json.dumps(
        {"temperatures": {"smollm2/value": {"overall": 2.0, "loqo": {}}}}))
    cal = run_pilot(pilot, tmp_path / "q.yaml", **args)
    assert cal.summary.sent == 0
    assert cal.summary.calibration is not None
    assert any("the tilt keeps every persona's expected answer" in n for n in cal.summary.notes)
    assert np.allclose(cal.predictions["yhat"].to_numpy(), yhat, atol=1e-9)
    for col in ("ppi_estimate", "ppi_low", "ppi_high", "lam"):
        assert cal.frame[col][0] == pytest.approx(raw.frame[col][0], abs=1e-9)


def test_the_ask_command_prints_ppi_rows_and_refuses_n_with_a_pilot(
    fake_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.cli import run_cli

    monkeypatch.chdir(fake_project)
    write_pilot(fake_project)
    args = ["ask", "--questions", "q.yaml", "--countries", "JPN", "--model", "fake",
            "--pilot", "pilot.csv", "--pilot-unlabeled", "12", "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    data = json.loads(out)
    rows = data["results"] if isinstance(data, dict) else data
    (row,) = rows
    assert (row["country"], row["question"], row["n_pilot"], row["n_unlabeled"]) == ("JPN", "FAMILY_NEW", 15, 12)
    for key in ("ppi_estimate", "ppi_low", "ppi_high", "lam", "effective_n", "ppi_correlation",
                "classical_low", "classical_high"):
        assert row[key] is not None
    assert row["ppi_low"] <= row["ppi_estimate"] <= row["ppi_high"]

    code, out, err = run_cli([*args, "--n", "3"], capsys)
    assert code != 0
    assert out == ""
    assert err.strip().splitlines() == [
        "error: --n is not used with --pilot (the pilot's respondents are the personas); "
        "set the unlabeled set's size with --pilot-unlabeled"
    ]


def test_a_pilot_of_a_nominal_item_is_refused_in_one_line_before_any_model_call(
    fake_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    test_provider_installed: Path,
) -> None:
    """PPI++ here estimates a mean answer; a nominal item has none (question types)."""
    from tests.fixtures.cli import run_cli

    monkeypatch.chdir(fake_project)
    write_pilot(fake_project)
    (fake_project / "q.yaml").write_text(yaml.safe_dump({"items": [
        {**QUESTION, "type": "nominal"}, {**QUESTION, "id": "FAMILY_ROLES", "type": "multi"}]}))
    code, out, err = run_cli(["ask", "--questions", "q.yaml", "--countries", "JPN", "--model",
                              "fake", "--pilot", "pilot.csv", "--format", "json"], capsys)
    assert code != 0
    assert out == ""
    assert err.strip().splitlines() == [  # a multi item once, not each of its options
        "error: --pilot estimates mean answers, which FAMILY_NEW (nominal), FAMILY_ROLES (multi) "
        "do not have; ask nominal, binary and multi items without --pilot"]
    assert not test_provider_installed.exists()  # nothing was sent
