"""`valuesim ask` through the CLI, with the deterministic test provider plugin (a real
provider under the engine): formats parse, a repeat is free, errors are one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.cli import run_cli
from tests.fixtures.study_files import write_ask_params

EXAMPLE = "data/questions/new_items_example.yaml"


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_provider_installed: Path, root: Path
) -> Path:
    write_ask_params(tmp_path, model="fake")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def paid(project: Path) -> int:
    log = project / "paid.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_json_output_parses_and_asking_again_sends_nothing(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ask", "--questions", str(root / EXAMPLE), "-q", "Q1", "--countries", "JPN,DEU",
            "--model", "fake", "--n", "3", "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    data = json.loads(out)
    rows = data["results"]
    assert [(r["country"], r["question"]) for r in rows] == [
        ("JPN", "AI_TRUST"), ("JPN", "CLIMATE_TAX"), ("JPN", "Q1"),
        ("DEU", "AI_TRUST"), ("DEU", "CLIMATE_TAX"), ("DEU", "Q1"),
    ]
    for r in rows:
        assert abs(sum(r["probs"]) - 1) < 1e-9
        assert len(r["probs"]) == len(r["codes"])
        assert r["persona_ci_low"] <= r["expected"] <= r["persona_ci_high"]
        assert r["n_personas"] == 3
        assert r["estimator"] == "logprobs"
    assert [r["new"] for r in rows[:3]] == [True, True, False]
    summary = data["summary"]
    assert (summary["requests"], summary["sent"], summary["cache_hits"]) == (18, 18, 0)
    assert paid(project) == 18

    code, out, _ = run_cli(args, capsys)
    again = json.loads(out)
    assert (again["summary"]["sent"], again["summary"]["cache_hits"]) == (0, 18)
    assert paid(project) == 18  # the provider answered nothing the second time
    assert again["results"] == rows


def test_csv_output_parses_and_table_output_is_readable(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["ask", "--questions", f"{root / EXAMPLE},Q164", "--countries", "JPN",
            "--model", "fake", "--n", "2"]
    code, out, err = run_cli([*base, "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["question"] for r in rows] == ["AI_TRUST", "CLIMATE_TAX", "Q164"]
    probs = [float(p) for p in rows[1]["probs"].split(";")]
    assert len(probs) == 11
    assert abs(sum(probs) - 1) < 1e-5
    assert rows[1]["codes"] == ";".join(str(c) for c in range(11))
    assert float(rows[0]["persona_ci_low"]) <= float(rows[0]["expected"]) <= float(rows[0]["persona_ci_high"])
    # Q164 is a persona item: value personas state it, and the command says so
    assert "note: Q164: value personas state" in err
    assert "0 cached, 6 sent" in err.splitlines()[-1]  # the run's summary line

    code, out, err = run_cli([*base, "--format", "table", "--calibrate"], capsys)
    assert code == 0, err
    for text in ("AI_TRUST", "CLIMATE_TAX", "Q164 (WVS)", "persona 95%", "no prediction interval", "raw (not calibrated)"):
        assert text in out
    assert "note: no fitted temperature" in err
    assert "6 cached, 0 sent" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--countries", "JPN,XYZ"], "error: unknown country code 'XYZ'"),
        (["--countries", "GBR"], "error: GBR not in the demo population"),
        (["--n", "41"], "error: n 41 is more than the 40 respondents of JPN"),
        (["--method", "telepathy"], "error: unknown method 'telepathy'"),
        (["--model", "gpt-9"], "error: model 'gpt-9' is not an entry of the models section of params.yaml"),
        (["--format", "xml"], "error: unknown format 'xml'"),
        (["-q", "Q0"], "error: the questions given: item Q0: not a WVS item"),
        (["--params", "absent.yaml"], "error: params file absent.yaml not found"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {"--questions": str(root / EXAMPLE), "--countries": "JPN", "--model": "fake", "--n": "2"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag == "-q":
            base["--questions"] = value
        else:
            base[flag] = value
    code, out, err = run_cli(["ask", *[x for kv in base.items() for x in kv]], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(message), err
    assert "Traceback" not in err
    assert out == ""
    assert paid(project) == 0


def test_a_bad_question_file_is_one_line_naming_item_and_field(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "mine.yaml").write_text(yaml.safe_dump({"items": [
        {"id": "Q1", "text": "Clash?", "answers": [{"code": 1, "label": "a"}, {"code": 2, "label": "b"}]},
    ]}))
    code, _, err = run_cli(["ask", "--questions", "mine.yaml", "--countries", "JPN", "--model", "fake"], capsys)
    assert code != 0
    assert err.strip().splitlines() == [
        "error: mine.yaml: item Q1: id clashes with the WVS item Q1 of the question bank; "
        "write `- Q1` to ask the bank's item, or choose another id"
    ]


def test_rows_carry_the_studys_prediction_interval_at_the_asked_level(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_prediction import fit_rows, write_fits

    rows = fit_rows(jpn=0.2, deu=0.3)
    write_fits(project, [{**r, "model": "fake"} for r in rows])
    args = ["ask", "--questions", str(root / EXAMPLE), "--countries", "JPN,NGA", "--model", "fake",
            "--n", "2", "--format", "json", "--level", "0.8"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    by = {(r["country"], r["question"]): r for r in json.loads(out)["results"]}
    jpn = by[("JPN", "CLIMATE_TAX")]  # 0-10: 0.2 * 0.5 (level 0.8) * 10 either side
    assert jpn["pred_level"] == 0.8
    assert jpn["pred_low"] == pytest.approx(max(0.0, jpn["expected"] - 1.0))
    assert jpn["pred_high"] == pytest.approx(min(10.0, jpn["expected"] + 1.0))
    assert "fake/value N=6, asked with N=2 per_country" in jpn["pred_source"]
    nga = by[("NGA", "AI_TRUST")]  # not in the study: the pooled threshold, said so
    assert "pooled (country not in the study)" in nga["pred_source"]
    assert nga["pred_high"] - nga["pred_low"] <= 2 * 0.25 * 0.5 * 3 + 1e-9
    for r in by.values():
        assert r["persona_ci_low"] <= r["expected"] <= r["persona_ci_high"]

    code, out, err = run_cli([*args[:-4], "--level", "0.99"], capsys)
    assert code != 0
    assert err.strip().splitlines() == ["error: level 0.99 is not fitted; use --level 0.8, 0.9, 0.95"]


TYPES = "data/questions/question_types_example.yaml"


def test_nominal_binary_and_ordinal_items_print_labels_and_the_summaries_of_their_type(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example file's three types through `valuesim ask`: shares with labels and the
    modal answer for nominal and binary rows, nothing of a scale; the ordinal row is the
    row it was before question types (the same prompt: asked alone it is all cached)."""
    base = ["ask", "-q", str(root / TYPES), "--countries", "JPN", "--model", "fake", "--n", "3"]
    code, out, err = run_cli([*base, "--format", "json"], capsys)
    assert code == 0, err
    news, voted, *media, trust = json.loads(out)["results"]
    assert [r["type"] for r in (news, voted, trust)] == ["nominal", "binary", "ordinal"]
    assert len(media) == 4  # the multi item's options: checked in the test below
    assert news["labels"] == ["Television", "Newspapers", "Social media", "Radio"]
    assert voted["labels"] == ["Yes", "No"]  # quoted in the file: labels, not booleans
    for r in (news, voted):
        assert abs(sum(r["probs"]) - 1) < 1e-9
        assert 0 < r["mean_coverage"] <= 1
        top = max(range(len(r["probs"])), key=r["probs"].__getitem__)
        assert (r["mode"], r["mode_label"], r["mode_share"]) == (
            r["codes"][top], r["labels"][top], r["probs"][top])
        for column in ("expected", "normalized_variance", "persona_ci_low", "persona_ci_high",
                       "persona_sd", "pred_low", "pred_high", "temperature"):
            assert r[column] is None, column
        assert "unordered options, so there is no expected answer" in r["no_expected_reason"]
        assert r["first_listed_share"] is None  # order: fixed
    assert trust["expected"] == pytest.approx(sum(c * p for c, p in zip(trust["codes"], trust["probs"], strict=True)))
    assert trust["no_expected_reason"] is None
    assert trust["mode_label"] == trust["labels"][trust["codes"].index(trust["mode"])]

    alone = root / "data/questions/new_items_example.yaml"  # AI_TRUST, word for word
    code, out, err = run_cli(["ask", "-q", str(alone), "--countries", "JPN", "--model", "fake",
                              "--n", "3", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    before = next(r for r in data["results"] if r["question"] == "AI_TRUST")
    assert before == trust
    assert data["summary"]["cache_hits"] >= 3  # AI_TRUST's three prompts: unchanged, cached

    code, out, err = run_cli([*base, "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7
    assert json.loads(rows[0]["labels"]) == news["labels"]
    assert (rows[1]["mode_label"], rows[1]["type"], rows[1]["expected"]) == (voted["mode_label"], "binary", "")

    code, out, err = run_cli([*base, "--format", "table"], capsys)
    assert code == 0, err
    assert "Television" in out
    assert "Social media" in out  # a labelled option is never cut
    assert f"{voted['mode']} {voted['mode_label']} ({voted['mode_share']:.0%})" in out
    assert "unordered options, so no expected answer" in out


def test_a_multi_item_is_one_yes_no_item_per_option_grouped_in_the_table(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MEDIA_USED (select all that apply) is asked as one Yes/No item per option: a JSON
    and CSV row per option with its label and the share selecting it (probs[0], "Yes"),
    grouped under the item in the table; one prompt per persona and option."""
    base = ["ask", "-q", str(root / TYPES), "--countries", "JPN,DEU", "--model", "fake", "--n", "3"]
    code, out, err = run_cli([*base, "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    media = [r for r in data["results"] if r["type"] == "multi"]
    options = ["Television", "Newspapers", "Social media", "Radio"]
    assert [(r["country"], r["question"], r["option"]) for r in media] == [
        (c, f"MEDIA_USED.{k}", o) for c in ("JPN", "DEU") for k, o in enumerate(options, start=1)]
    assert data["summary"]["requests"] == 2 * 3 * (3 + 4)  # countries x personas x asked items
    for r in media:
        assert r["part_of"] == "MEDIA_USED"
        assert (r["labels"], r["codes"]) == (["Yes", "No"], [1, 2])
        assert r["label"] == f"News media used: {r['option']}"
        assert abs(sum(r["probs"]) - 1) < 1e-9
        assert r["n_personas"] == 3
        assert r["expected"] is None
        assert r["pred_low"] is None
        assert r["no_expected_reason"].startswith("multi item option: asked as Yes/No")
    others = [r for r in data["results"] if r["type"] != "multi"]
    assert all(r["part_of"] is None and r["option"] is None for r in others)

    code, out, err = run_cli([*base, "--format", "csv"], capsys)
    assert code == 0, err
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["type"] == "multi"]
    assert [(r["question"], r["part_of"], r["option"]) for r in rows] == [
        (r["question"], "MEDIA_USED", r["option"]) for r in media]

    code, out, err = run_cli([*base, "--format", "table"], capsys)
    assert code == 0, err
    assert out.count("MEDIA_USED (multi)") == 2  # one row per country, not per option
    assert "MEDIA_USED.1" not in out
    jpn = media[:4]
    for r in jpn:  # every option's label with the share selecting it
        assert f"{r['option']} {r['probs'][0]:.0%}" in out
    assert "multi items: the share selecting each option" in " ".join(out.split())


def test_calibrate_tilts_ordinal_items_only_and_says_why(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "data/calibrated").mkdir(parents=True)
    (project / "data/calibrated/temperatures.json").write_text(json.dumps(
        {"temperatures": {"fake/value": {"overall": 2.0, "loqo": {}}}}))
    code, out, err = run_cli(["ask", "-q", str(root / TYPES), "--countries", "JPN", "--model",
                              "fake", "--n", "3", "--calibrate", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [r["temperature"] for r in data["results"]] == [None] * 6 + [2.0]
    # the multi item is named once, by its own id
    assert any(n.startswith("calibration skipped for NEWS_SOURCE, VOTED_LAST, MEDIA_USED "
                            "(binary/multi/nominal): the mean-preserving tilt keeps each "
                            "persona's expected code")
               for n in data["summary"]["notes"])


def test_rotated_options_report_the_share_of_the_option_listed_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "rotated.yaml"
    path.write_text(yaml.safe_dump({"items": [{
        "id": "NEWS", "text": "Where do you get most of your news?", "type": "nominal",
        "order": "rotate", "answers": [{"code": c, "label": label} for c, label in
                                       enumerate(("Television", "Newspapers", "Radio"), start=1)]}]}))
    code, out, err = run_cli(["ask", "-q", str(path), "--countries", "JPN", "--model", "fake",
                              "--n", "3", "--format", "json"], capsys)
    assert code == 0, err
    row, = json.loads(out)["results"]
    assert 0 < row["first_listed_share"] < 1
    assert json.loads(out)["summary"]["requests"] == 3
