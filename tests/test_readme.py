"""The docs' notebook session (docs/python-api.md) runs as written, on a small project:
made-up study outputs and the deterministic test provider as the model, so the docs
cannot rot; the question-file excerpt of docs/questions.md is a valid file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.fixtures.study_files import make_study, write_ask_params

EXAMPLE = "data/questions/new_items_example.yaml"


def doc_block(path: Path, heading: str, language: str = "python") -> str:
    """The first ``language`` code block of the Markdown section under ``heading``
    (up to the next heading of the same level)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"{heading}\n") if text.startswith(f"{heading}\n") else text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    following = re.search(rf"\n{level} ", text[start + 1:])
    section = text[start: start + 1 + following.start()] if following else text[start:]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block, f"no {language} block under {heading!r} in {path}"
    return block.group(1)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_provider_installed: Path, root: Path
) -> Path:
    make_study(tmp_path)
    (tmp_path / "data/questions").mkdir(parents=True)
    shutil.copy(root / EXAMPLE, tmp_path / EXAMPLE)
    # the session's default model name, served by the test provider
    write_ask_params(tmp_path, model="smollm2")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_notebook_session_runs(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = doc_block(root / "docs/python-api.md", "# Python API (notebooks)")
    assert "load_study" in code
    assert "ask(" in code
    namespace: dict[str, object] = {"__name__": "readme_session"}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    new = namespace["new"]
    assert new.height == 4  # type: ignore[attr-defined]
    assert namespace["again"].summary.sent == 0  # type: ignore[attr-defined]
    paid = (project / "paid.log").read_text().splitlines()
    assert len(paid) == 2 * 2 * 6  # the first ask scored 2 countries x 2 items x 6 personas once
    assert "AI_TRUST" in capsys.readouterr().out


def test_the_readme_question_file_excerpt_is_a_valid_file(tmp_path: Path, root: Path) -> None:
    """The question-file example in docs/questions.md, with its elided codes
    filled in, loads (so the documented format is the one the loader takes)."""
    from valuesim.survey.bank import load_bank
    from valuesim.survey.new_questions import load_question_file

    text = doc_block(root / "docs/questions.md", "# Ask your own questions", "yaml")
    text = text.replace("  # ... codes 2 to 9\n", "".join(f"  - {{code: {c}}}\n" for c in range(2, 10)))
    path = tmp_path / "items.yaml"
    path.write_text(text)
    items = load_question_file(path, load_bank(root / "data/questions/wvs7.yaml"))
    assert [i.id for i in items] == ["AI_TRUST", "CLIMATE_TAX", "Q164"]
    assert items[1].codes == list(range(11))
