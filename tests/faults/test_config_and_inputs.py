"""Config that validates but crashed, and damaged stage inputs: one-line errors.

Each case runs the real `valuesim` command in a scratch directory on real files and
checks the exit status and the single `error: ...` line it prints (no traceback).
The personas shortfall runs the personas stage in-process on synthetic respondents.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures.fault_checks import one_error_line

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]


def valuesim(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)



def write_params(directory: Path, root: Path, text: str = "") -> None:
    base = f"data:\n  questions: {root / 'data/questions/wvs7.yaml'}\n"
    (directory / "params.yaml").write_text(base + text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("personas:\n  seed: -1\n", "personas.seed: Input should be greater than or equal to 0"),
        ("analysis:\n  sample_sizes: [0, -2]\n",
         "analysis.sample_sizes.0: Input should be greater than or equal to 1"),
        ("simulate:\n  methods: []\n", "simulate.methods: List should have at least 1 item"),
        ("personas:\n  n_per_country: true\n", "personas.n_per_country: Input should be a valid integer"),
        ("countries:\n  select: []\n", "countries.select: Value should have at least 1 item"),
    ],
)
def test_out_of_domain_params_stop_every_stage_with_one_line(
    tmp_path: Path, root: Path, text: str, expected: str
) -> None:
    write_params(tmp_path, root, text)
    line = one_error_line(valuesim(tmp_path, "stage", "calibrate"))
    assert f"params.yaml: {expected}" in line


def test_cli_seed_has_the_params_domain(tmp_path: Path, root: Path) -> None:
    write_params(tmp_path, root)
    line = one_error_line(valuesim(tmp_path, "personas", "show", "--country", "JPN", "--seed", "-5"))
    assert line == "error: --seed -5: Input should be greater than or equal to 0"


def test_score_lists_the_estimator_choices(tmp_path: Path, root: Path) -> None:
    write_params(tmp_path, root)
    line = one_error_line(valuesim(tmp_path, "score", "--model", "x", "--estimator", "bogus"))
    assert "logprobs, top_logprobs, sampling, verbalized" in line


def _table(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"a": [1]}).write_parquet(path)


def _garbage(path: Path, text: str = "{not json") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _report_inputs(directory: Path) -> None:
    """Readable stand-ins for what report reads before temperatures.json."""
    _garbage(directory / "data/interim/extract_meta.json", "{}")
    for p in ("data/eval/summary.parquet", "data/eval/wilcoxon.parquet",
              "data/calibrated/population.parquet", "data/human/distributions.parquet"):
        _table(directory / p)


@pytest.mark.parametrize(
    ("stage", "setup", "expected"),
    [
        ("calibrate",
         lambda d: _garbage(d / "data/human/distributions.parquet", "PAR1 truncated"),
         "data/human/distributions.parquet is unreadable (not a parquet table: "),
        ("calibrate",
         lambda d: (_table(d / "data/human/distributions.parquet"),
                    _garbage(d / "data/human/kept_questions.json")),
         "data/human/kept_questions.json is unreadable (invalid JSON: "),
        ("calibrate",
         lambda d: (_table(d / "data/human/distributions.parquet"),
                    _garbage(d / "data/human/kept_questions.json", '{"questions": []}')),
         "data/human/kept_questions.json is unreadable (no 'kept' key); rerun `dvc repro human`"),
        ("calibrate",
         lambda d: (_table(d / "data/human/distributions.parquet"),
                    _garbage(d / "data/human/kept_questions.json", '{"kept": ["Q1"]}'),
                    _garbage(d / "data/simulated/smollm2/generic/answers.parquet", "")),
         "data/simulated/smollm2/generic/answers.parquet is unreadable ("),
        ("report",
         lambda d: (_garbage(d / "data/interim/extract_meta.json", "{}"),
                    _garbage(d / "data/eval/summary.parquet", "not a table")),
         "data/eval/summary.parquet is unreadable (not a parquet table: "),
        ("report",
         lambda d: (_report_inputs(d), _garbage(d / "data/calibrated/temperatures.json", '{"grid"')),
         "data/calibrated/temperatures.json is unreadable (invalid JSON: "),
        ("report",
         lambda d: (_report_inputs(d), _garbage(d / "data/calibrated/temperatures.json", "[1, 2]")),
         "data/calibrated/temperatures.json is unreadable (a JSON list, not an object); "
         "rerun `dvc repro calibrate`"),
    ],
)
def test_damaged_stage_inputs_name_the_file_and_the_stage(
    tmp_path: Path, root: Path, stage: str, setup: object, expected: str
) -> None:
    write_params(tmp_path, root, "simulate:\n  methods: [generic]\n")
    setup(tmp_path)  # type: ignore[operator]
    line = one_error_line(valuesim(tmp_path, "stage", stage))
    assert expected in line
    maker = {"distributions": "human", "kept_questions": "human", "answers": "simulate",
             "summary": "evaluate", "temperatures": "calibrate"}
    name = next(k for k in maker if k in expected)
    assert line.endswith(f"rerun `dvc repro {maker[name]}`")


def test_simulate_names_damaged_upstream_files(tmp_path: Path, root: Path) -> None:
    write_params(tmp_path, root)
    _garbage(tmp_path / "data/human/kept_questions.json", "\x00\x01")
    line = one_error_line(valuesim(tmp_path, "stage", "simulate", "--method", "generic"))
    assert "data/human/kept_questions.json is unreadable (invalid JSON: " in line
    assert line.endswith("rerun `dvc repro human`")


def test_personas_warns_per_country_when_respondents_are_fewer_than_asked(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.fixtures.personas import make_respondents
    from valuesim.config import Params
    from valuesim.paths import PERSONAS, RESPONDENTS, SELECTED_COUNTRIES
    from valuesim.stages import descriptors as descriptors_stage
    from valuesim.stages import personas as personas_stage
    from valuesim.survey.bank import load_bank

    monkeypatch.chdir(tmp_path)
    params = Params.model_validate({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "descriptors": {
            "path": str(root / "data/descriptors/value_handwritten.yaml"),
            "sociodemographic_path": str(root / "data/descriptors/sociodemographic.yaml"),
        },
        "personas": {"n_per_country": 5, "seed": 0},
    })
    bank = load_bank(params.data.questions)
    respondents = pl.concat([
        make_respondents(bank, ["JPN"], 8), make_respondents(bank, ["DEU"], 3, seed=2),
    ], how="diagonal_relaxed")
    RESPONDENTS.parent.mkdir(parents=True)
    respondents.write_parquet(RESPONDENTS)
    SELECTED_COUNTRIES.parent.mkdir(parents=True)
    SELECTED_COUNTRIES.write_text(json.dumps({"countries": ["JPN", "DEU"]}))
    descriptors_stage.run(params)
    capsys.readouterr()
    personas_stage.run(params)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: personas: DEU has 3 respondents, fewer than personas.n_per_country (5); using all 3"
    ]
    sampled = pl.read_parquet(PERSONAS.parent / "methods" / "value.parquet")
    assert sampled.height == 5 + 3
