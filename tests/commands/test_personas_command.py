"""`valuesim personas show` and `valuesim prompt show`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.personas import make_respondents
from valuesim.cli import main
from valuesim.paths import PERSONAS
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import QuestionBank


@pytest.fixture
def project(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_bank: QuestionBank) -> Path:
    """A scratch project whose personas stage has run on synthetic respondents."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "descriptors": {"path": str(root / "data/descriptors/value_handwritten.yaml"),
                        "sociodemographic_path": str(root / "data/descriptors/sociodemographic.yaml")},
    }))
    v = descriptors.load(root / "data/descriptors/value_handwritten.yaml", shipped_bank, kind="value")
    s = descriptors.load(root / "data/descriptors/sociodemographic.yaml", shipped_bank, kind="sociodemographic")
    sample = sample_respondents(make_respondents(shipped_bank, ["JPN", "COL"], 20), ["JPN", "COL"], 4, 0)
    PERSONAS.parent.mkdir(parents=True)
    build_personas(sample, shipped_bank, v, s).write_parquet(PERSONAS)
    return tmp_path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_personas_show_prints_the_pipeline_personas(project: Path, capsys) -> None:
    code, out, _ = run(["personas", "show", "--country", "JPN", "--kind", "value", "--n", "2"], capsys)
    assert code == 0
    blocks = [b for b in out.strip().split("\n\n") if b]
    assert len(blocks) == 2
    assert all(b.startswith("# JPN-") and ":value (missing: " in b for b in blocks)
    assert all("\nYou live in Japan. You " in b for b in blocks)
    code, out, _ = run(["personas", "show", "--country", "JPN", "--kind", "sociodemographic", "--no-nationality"], capsys)
    assert code == 0
    assert "Japan" not in out
    assert ":sociodemographic:nonat" in out


def test_prompt_show_prints_exact_messages(project: Path, capsys) -> None:
    code, out, _ = run(["personas", "show", "--country", "COL", "--kind", "value", "--n", "1"], capsys)
    rid = out.split()[1].split(":")[0]
    persona = out.strip().split("\n")[1]
    code, out, _ = run(["prompt", "show", "--method", "value", "--country", "COL", "--question", "Q6",
                        "--respondent", rid, "--guidance", "identity_anchor"], capsys)
    assert code == 0
    assert out == (
        "[System]\nYou are a person from Colombia. Answer each survey question as yourself. "
        f"Do not explain your answer.\n\nYour persona: {persona}\n\n"
        "[User]\nQuestion:\nHow important is Religion in your life?\n\n"
        "Scale: 1=Very important, 2=Rather important, 3=Not very important, 4=Not at all important\n\n"
        "Respond with ONLY the single integer (1-4):\n\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["personas", "show", "--country", "JPN", "--kind", "values"], "unknown persona kind 'values'"),
        (["personas", "show", "--country", "XYZ"], "unknown country code 'XYZ'"),
        (["prompt", "show", "--method", "vibes", "--country", "JPN", "--question", "Q6"], "unknown method 'vibes'"),
        (["prompt", "show", "--method", "country", "--country", "JPN", "--question", "Q6", "--guidance", "x"],
         "unknown guidance key 'x'"),
        (["prompt", "show", "--method", "country", "--country", "JPN", "--question", "Q0"], "unknown question id 'Q0'"),
    ],
)
def test_bad_options_give_one_error_line(project: Path, capsys, argv: list[str], message: str) -> None:
    code, _out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_personas_show_from_real_files(root: Path, wvs_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(root)  # params.yaml of the project; nothing is written
    code, out, _ = run(["personas", "show", "--country", "NZL", "--kind", "fewshot", "--n", "1",
                        "--source", str(wvs_dir)], capsys)
    assert code == 0
    assert "Question: In which country do you live?\nAnswer: New Zealand" in out
