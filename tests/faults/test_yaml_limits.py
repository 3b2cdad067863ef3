"""YAML that expands: every YAML a user gives is read within limits (valuesim.safe_yaml).

The probes of issue 22 (item 3), as real `valuesim` processes on real files: a
600-byte "billion laughs" file (nine levels of aliases) took minutes and gigabytes and
printed a gigabyte error line; a few thousand nested brackets gave a RecursionError
traceback; a 50 MB text was parsed (and scored) before anything looked at it. Each now
fails with one short `error:` line naming the file (and the line) and the limit, and a
file over the size limit is refused before it is parsed. The question files and the
question bank go through the same reader (valuesim.survey).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from tests.fixtures.fault_checks import one_error_line
from valuesim import safe_yaml
from valuesim.config import load_params
from valuesim.names import ECHO_LIMIT, shorten

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
SHORT = 300  # an error line is about this long at most; the probes printed gigabytes


def valuesim(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def billion_laughs(key: str = "lol") -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings when expanded."""
    lines = [f'a: &a ["{key}", "{key}", "{key}", "{key}", "{key}", "{key}", "{key}", "{key}", "{key}"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def deep(levels: int = 50_000) -> str:
    return "a: " + "[" * levels + "]" * levels + "\n"


def _params(directory: Path, root: Path, **sections: Any) -> None:
    params: dict[str, Any] = {"data": {"questions": str(root / "data/questions/wvs7.yaml")},
                              "descriptors": {"path": str(directory / "value.yaml")}, **sections}
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def _short(line: str, path: str) -> None:
    assert len(line) < SHORT, line[:500]
    assert path in line


def test_billion_laughs_params_fail_at_once_with_one_short_line(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text) < 600
    (tmp_path / "params.yaml").write_text(text)
    line = one_error_line(valuesim(tmp_path, "stage", "calibrate"))
    _short(line, "params.yaml: line ")
    assert "more than 100,000 values with its aliases (*name) expanded, the limit of a params file" in line


def test_deeply_nested_params_are_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    text = deep()
    with pytest.raises(RecursionError):  # the probe: what plain yaml.safe_load does
        yaml.safe_load(text)
    (tmp_path / "params.yaml").write_text(text)
    line = one_error_line(valuesim(tmp_path, "stage", "calibrate"))
    _short(line, "params.yaml: line 1: ")
    assert "nested more than 20 levels deep; a params file allows at most 20" in line


def test_a_50_mb_params_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # invalid YAML after the first line: a parse would have said so, not the size
    (tmp_path / "params.yaml").write_text("simulate: [\n" + "x" * 50_000_000)
    line = one_error_line(valuesim(tmp_path, "stage", "calibrate"))
    assert line == ("error: params.yaml is 50,000,012 bytes; a params file may have at most "
                    "1,000,000 bytes (1 MB)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (billion_laughs("You are kind."), "value.yaml: line 6: more than 100,000 values"),
        (deep(), "value.yaml: line 1: lists and mappings nested more than 20 levels deep"),
        ("name: x\nkind: value\nitems:\n  Q1: {1: &s [*s]}\n",
         "value.yaml: line 4: alias *s is inside the list or mapping it names"),
        ("name: x\nkind: value\nitems:\n  Q1:\n    1: You " + "a" * 5_000 + "\n",
         "value.yaml: line 5: a value of 5,004 characters; a descriptor set allows at most 2,000"),
        ("name: x\nkind: value\nitems:\n  Q1:\n    1: You " + "a" * 1_500 + "\n",
         "value.yaml: items.Q1.1: String should have at most 1000 characters"),
        ("name: x\nkind: value\nitems:\n  " + "Q" * 3_000 + ": {1: You.}\n",
         "value.yaml: line 4: a value of 3,000 characters"),
    ],
    ids=["billion-laughs", "deep", "recursive", "long-value", "long-sentence", "long-key"],
)
def test_descriptor_sets_are_read_within_limits(
    tmp_path: Path, root: Path, text: str, expected: str
) -> None:
    _params(tmp_path, root)
    (tmp_path / "value.yaml").write_text(text)
    line = one_error_line(valuesim(tmp_path, "stage", "descriptors"))
    _short(line, "error: descriptor set ")
    assert expected in line


def test_a_50_mb_descriptor_set_is_refused_before_it_is_parsed(tmp_path: Path, root: Path) -> None:
    _params(tmp_path, root)
    (tmp_path / "value.yaml").write_text("name: x\nkind: value\nitems: {Q1: {1: 'You " + "a" * 50_000_000)
    line = one_error_line(valuesim(tmp_path, "stage", "descriptors"))
    assert line.endswith("value.yaml is 50,000,041 bytes; a descriptor set may have at most "
                         "1,000,000 bytes (1 MB)")


def test_compare_reads_an_experiments_params_within_limits(tmp_path: Path) -> None:
    for name, params in (("a", "prompts: {guidance: minimal}\n"), ("b", billion_laughs())):
        (tmp_path / name / "data/eval").mkdir(parents=True)
        pl.DataFrame({"model": ["m"], "method": ["generic"], "country": ["JPN"], "question": ["Q1"],
                      "mae": [0.1]}).write_parquet(tmp_path / name / "data/eval/cells.parquet")
        (tmp_path / name / "params.yaml").write_text(params)
    line = one_error_line(valuesim(tmp_path, "compare", "a", "b", "--out", "out"))
    _short(line, "error: b: params.yaml: line ")
    assert "the limit of a params file" in line
    assert not (tmp_path / "out").exists()


def test_aliases_that_pyyaml_itself_writes_still_load(tmp_path: Path, root: Path) -> None:
    # yaml.safe_dump writes an anchor and an alias for an object used twice
    spec = {"provider": "transformers", "model": "embedded"}
    text = yaml.safe_dump({"models": {"a": spec, "b": spec}, "simulate": {"models": ["a", "b"]}})
    assert "&id001" in text
    assert "*id001" in text
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    assert params.models["a"] == params.models["b"]


def test_the_shipped_yaml_fits_its_limits(root: Path) -> None:
    safe_yaml.load_file(root / "params.yaml", safe_yaml.PARAMS)
    for bank in sorted((root / "data/questions").glob("*.yaml")):
        safe_yaml.load_file(bank, safe_yaml.QUESTION_BANK)
    for descriptor_set in sorted((root / "data/descriptors").glob("*.yaml")):
        safe_yaml.load_file(descriptor_set, safe_yaml.DESCRIPTOR_SET)


@pytest.mark.parametrize("value", ["x" * 10**7, ["y" * 10**4] * 10**5, {"k" * 500: [[[["v"]]]]}, b"\0" * 999])
def test_an_echoed_value_is_cut_short(value: object) -> None:
    assert len(shorten(value)) <= ECHO_LIMIT
