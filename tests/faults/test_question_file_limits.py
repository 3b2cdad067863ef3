"""Question files and the question bank read within limits; question ids as names.

The probes of issue 22 (items 1 and 3) on the files a user hands `valuesim ask` and the
new_questions stage, as real `valuesim` processes: a 600-byte question file whose
answer code is a nine-level alias ("billion laughs": 110-130 s, 11-12 GB and a 2-4 GB
error line before), deeply nested lists (a RecursionError traceback before), a 50 MB
question text (scored, 5 GB, before), and ids that would become file names
(``new_<id>.png``). Each is one short `error:` line naming the file and the limit, and
nothing is sent. The bank (``data.questions``) is read the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.study_files import write_ask_params

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
SHORT = 300
GOOD = {"id": "NEW1", "text": "Do you agree?", "answers": [{"code": 1, "label": "Yes"},
                                                          {"code": 2, "label": "No"}]}


def _ask(project: Path, site: Path, questions: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["VALUESIM_TEST_LOG"] = str(project / "paid.log")
    return subprocess.run(
        [*CLI, "ask", "--questions", str(questions), "--countries", "JPN", "--model", "fake",
         "--method", "generic"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )


def _laughs_question_file() -> str:
    """The issue's probe: the first answer's code is nine levels of nine aliases."""
    lines = ['a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    lines += ["items:", "- id: NEW1", "  text: Do you agree?", "  answers:",
              "  - {code: *i, label: Yes}", "  - {code: 2, label: No}"]
    return "\n".join(lines) + "\n"


def _write(path: Path, raw: object) -> Path:
    path.write_text(yaml.safe_dump(raw, width=10**9) if not isinstance(raw, str) else raw)
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_laughs_question_file(), "q.yaml: line 7: more than 1,000,000 values with its aliases (*name) "
                                  "expanded, the limit of a question file"),
        ("items: " + "[" * 50_000 + "]" * 50_000 + "\n",
         "q.yaml: line 1: lists and mappings nested more than 20 levels deep"),
        ({"items": [{**GOOD, "text": "Why? " * 1_000}]},
         "q.yaml: line 8: a value of 5,000 characters; a question file allows at most 2,000"),
        ({"items": [{**GOOD, "label": "L" * 300}]},
         "q.yaml: item NEW1: label has 300 characters; at most 200 are allowed"),
        ({"items": [{**GOOD, "answers": [{"code": 1, "label": "Y" * 201}, {"code": 2}]}]},
         "q.yaml: item NEW1: answers[0].label has 201 characters; at most 200 are allowed"),
        ({"items": [{**GOOD, "id": "../../etc/x"}]},
         "q.yaml: item ../../etc/x: id must start with a letter and use only letters, digits, _ . -"),
        ({"items": [{**GOOD, "id": "A" * 1_000}]}, "id must start with a letter"),
        ({"items": [{**GOOD, "answers": [{"code": "x" * 1_900, "label": "Y"}, {"code": 2}]}]},
         "q.yaml: item NEW1: answers[0].code 'xxxxxxxx"),
        ({"items": ["Q" * 1_900]}, "not a WVS item of the question bank"),
    ],
    ids=["billion-laughs", "deep", "5k-text", "long-label", "long-answer-label",
         "path-id", "long-id", "long-code", "long-bank-id"],
)
def test_question_files_are_read_within_limits(
    tmp_path: Path, testplugin_site: Path, raw: object, expected: str
) -> None:
    write_ask_params(tmp_path, model="fake")
    questions = _write(tmp_path / "q.yaml", raw)
    line = one_error_line(_ask(tmp_path, testplugin_site, questions))
    assert len(line) < SHORT, line[:500]
    assert expected in line
    assert not (tmp_path / "paid.log").exists()


def test_a_50_mb_question_text_is_refused_before_it_is_parsed(tmp_path: Path, testplugin_site: Path) -> None:
    write_ask_params(tmp_path, model="fake")
    questions = _write(tmp_path / "q.yaml", "items:\n- id: NEW1\n  text: " + "Why? " * 10_000_000 + "\n")
    line = one_error_line(_ask(tmp_path, testplugin_site, questions))
    assert line.endswith("q.yaml is 50,000,027 bytes; a question file may have at most 5,000,000 bytes (5 MB)")
    assert not (tmp_path / "paid.log").exists()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda text: _laughs_question_file().replace("items:", "version: x\nsource: y\nitems:"),
         "more than 1,000,000 values"),
        (lambda text: text.replace("id: Q1\n", "id: ../Q1\n", 1), "id must start with a letter"),
    ],
    ids=["billion-laughs", "path-id"],
)
def test_the_question_bank_is_read_within_limits(tmp_path: Path, root: Path, mutate, expected: str) -> None:
    bank = tmp_path / "bank.yaml"
    bank.write_text(mutate((root / "data/questions/wvs7.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"questions": str(bank)}}))
    proc = subprocess.run([*CLI, "stage", "descriptors"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    line = one_error_line(proc)
    assert line.startswith(f"error: question bank {bank}")
    assert expected in line
    assert len(line) < SHORT + len(str(bank))


def test_no_stage_command_pastes_a_params_value_into_the_shell(root: Path) -> None:
    # DVC interpolates ${...} into `cmd` and runs it in a shell: a name such as
    # `m;touch pwned;#` would be a command before valuesim could refuse it
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    pasted = {name: s["cmd"] for name, s in stages.items() if "${" in str(s["cmd"])}
    assert pasted == {}
    assert stages["simulate"]["cmd"] == "valuesim stage simulate --from-dvc-stage"
