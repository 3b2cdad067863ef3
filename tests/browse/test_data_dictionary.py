"""docs/data-dictionary.md stays true: every table it documents has exactly the columns
(and Polars types) the pipeline writes, and every table the pipeline writes is on it.

The outputs are a real study's: the planted end-to-end study (tests/fixtures/planted_e2e.py,
real stages through a provider plugin), copied, with the stages it does not run
(validate, map, new_questions with no new questions, shapley switched off) run on the
copy. The few tables no test study makes (they need model calls the plant has no
answers for) are compared with the schema the code writes them with, or listed in
:data:`MADE_ONLY_BY_OPTIONAL_STAGES` with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures import planted_e2e as pe
from tests.fixtures.paths import ROOT

PAGE = ROOT / "docs" / "data-dictionary.md"
HEADING = re.compile(r"^### `([^`]+)`\s*$")
# a family of columns, keys or files: `<item>`, `<method>`, `<model>/<method>`
PLACEHOLDER = re.compile(r"^<.+>$")
# where the pipeline writes tables (reports/runs is run statistics outside DVC, the page
# says so; figures, HTML and YAML are no tables)
TABLE_SUFFIXES = (".parquet", ".csv", ".json")
NOT_TABLES = ("reports/runs/",)
COUNTRY_LEVEL_NOTE = "Country-level methods have only `persona_id` and `country`."


def _map_answers_schema() -> Mapping[str, pl.DataType]:
    from valuesim.culturalmap.item_prompts import MAP_ANSWERS_SCHEMA

    return MAP_ANSWERS_SCHEMA


def _shapley_schema() -> Mapping[str, pl.DataType]:
    from valuesim.analysis.shapley import ESTIMATES_SCHEMA

    return ESTIMATES_SCHEMA


def _shapley_values_schema() -> Mapping[str, pl.DataType]:
    from valuesim.analysis.shapley import VALUES_SCHEMA

    return VALUES_SCHEMA


def _unordered(name: str) -> Mapping[str, pl.DataType]:
    from valuesim.analysis import unordered_scores

    return getattr(unordered_scores, name)  # type: ignore[no-any-return]


#: Tables no test study writes, with the schema the code writes them with.
SCHEMA_IN_CODE: dict[str, Callable[[], Mapping[str, pl.DataType]]] = {
    # simulate.map_items is off in the planted study: the plant has no map-item answers
    "data/simulated/<model>/<method>/map_answers.parquet": _map_answers_schema,
    # analysis.shapley on pays for coalition prompts the plant has no answers for
    "data/shapley/shapley.parquet": _shapley_schema,
    "data/shapley/values.parquet": _shapley_values_schema,
    # the planted study's targets are ordinal: these exist only with a nominal/binary target
    # (tests/integration/test_unordered_targets.py writes them)
    "data/eval/unordered_cells.parquet": lambda: _unordered("CELL_SCHEMA"),
    "data/eval/unordered_reference_cells.parquet": lambda: _unordered("CELL_SCHEMA"),
    "data/eval/unordered_by_country.parquet": lambda: _unordered("BY_COUNTRY_SCHEMA"),
    "data/eval/unordered_summary.parquet": lambda: _unordered("SUMMARY_SCHEMA"),
}
#: Outputs no test study writes and no schema in code describes (a dict literal in the
#: stage): documented, not checked here.
MADE_ONLY_BY_OPTIONAL_STAGES = {
    "data/shapley/summary.json": "written only with analysis.shapley on (model calls)",
}
#: JSON keys written only in some runs: documented keys the test study's file may lack.
OPTIONAL_KEYS = {
    # with data.new_questions empty the summary holds only model, method and questions
    "data/new_questions/<model>/<method>/summary.json": {
        "provider",
        "provider_model",
        "estimator",
        "answer_rule",
        "countries",
        "personas",
        "requests",
        "unique_requests",
        "flagged",
    },
    # the TV/JS scores of nominal and binary targets: only a study with such a target
    "reports/metrics.json": {"unordered"},
}


@dataclass(frozen=True)
class Section:
    """One documented output: its path pattern and its columns (or JSON keys) with types."""

    pattern: str
    header: str  # "Column" (a table) or "Key" (a JSON file's top-level keys)
    fields: dict[str, str]  # name -> documented type

    @property
    def glob(self) -> str:
        return re.sub(r"<[^>]+>", "*", self.pattern)


def _cells(line: str) -> list[str]:
    # a cell may hold an escaped pipe (`E[answer \| persona]`)
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def parse_page(text: str) -> dict[str, Section]:
    """Every `### `path`` section and the first table below it (before the next heading)."""
    sections: dict[str, Section] = {}
    pattern: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = HEADING.match(lines[i])
        if m:
            pattern = m.group(1)
            if pattern in sections:
                raise AssertionError(f"{pattern} is documented twice")
        elif lines[i].startswith("#"):
            pattern = None
        elif pattern is not None and pattern not in sections and lines[i].startswith("|"):
            header = _cells(lines[i])[0]
            fields: dict[str, str] = {}
            i += 2  # the header and the |---| row
            while i < len(lines) and lines[i].startswith("|"):
                cells = _cells(lines[i])
                name = cells[0].strip("`")
                if name in fields:
                    raise AssertionError(f"{pattern}: {name} is documented twice")
                fields[name] = cells[1]
                i += 1
            sections[pattern] = Section(pattern, header, fields)
            continue
        i += 1
    return sections


def _match(
    documented: Mapping[str, str], actual: Mapping[str, str], what: str, types: bool
) -> list[str]:
    """Differences between documented and actual names (and types); a placeholder name
    stands for every actual name not documented by name (at least one)."""
    problems = []
    named = {k: v for k, v in documented.items() if not PLACEHOLDER.match(k)}
    families = {k: v for k, v in documented.items() if PLACEHOLDER.match(k)}
    rest = [k for k in actual if k not in named]
    missing = sorted(set(named) - set(actual))
    if missing:
        problems.append(f"{what}: documented but not written: {', '.join(missing)}")
    if rest and not families:
        problems.append(f"{what}: written but not documented: {', '.join(rest)}")
    if families and not rest:
        problems.append(f"{what}: no column of the family {', '.join(families)}")
    if types:
        family_type = next(iter(families.values()), None)
        for name, dtype in actual.items():
            want = named.get(name, family_type)
            if want is not None and want != dtype:
                problems.append(f"{what}: {name} is {dtype}, documented as {want}")
    return problems


def _actual(path: Path) -> dict[str, str]:
    if path.suffix == ".parquet":
        return {k: str(v) for k, v in pl.read_parquet_schema(path).items()}
    if path.suffix == ".csv":
        return {k: str(v) for k, v in pl.read_csv(path).schema.items()}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict.fromkeys(data, "")


def check_page(text: str, root: Path) -> list[str]:
    """Every difference between the page and the outputs under ``root``."""
    from valuesim.methods import get_method

    sections = parse_page(text)
    problems = []
    for s in sections.values():
        if s.header not in ("Column", "Key"):
            problems.append(
                f"{s.pattern}: its table's first header is {s.header!r}, not Column or Key"
            )
            continue
        files = sorted(root.glob(s.glob))
        if s.pattern in SCHEMA_IN_CODE:
            schema = {k: str(v) for k, v in SCHEMA_IN_CODE[s.pattern]().items()}
            problems += _match(s.fields, schema, f"{s.pattern} (schema in code)", types=True)
            continue
        if s.pattern in MADE_ONLY_BY_OPTIONAL_STAGES:
            continue
        if not files:
            problems.append(f"{s.pattern}: documented, but the test study has no such file")
        for f in files:
            rel = f.relative_to(root).as_posix()
            actual = _actual(f)
            if (
                s.pattern == "data/personas/methods/<method>.parquet"
                and get_method(f.stem).persona is None
            ):
                if set(actual) != {"persona_id", "country"} or COUNTRY_LEVEL_NOTE not in text:
                    problems.append(
                        f"{rel}: a country-level method's table is not as the page says"
                    )
                continue
            if s.header == "Key":
                optional = OPTIONAL_KEYS.get(s.pattern, set())
                documented = {k: "" for k in s.fields if k not in optional or k in actual}
                problems += _match(documented, actual, rel, types=False)
            else:
                problems += _match(s.fields, actual, rel, types=True)
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if (
            f.suffix not in TABLE_SUFFIXES
            or not rel.startswith(("data/", "reports/"))
            or rel.startswith(NOT_TABLES)
        ):
            continue
        if not any(
            f.match(s.glob) and rel.count("/") == s.glob.count("/") for s in sections.values()
        ):
            problems.append(f"{rel}: written by the pipeline but not on the page")
    return problems


@pytest.fixture(scope="module")
def full_study(planted: pe.Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted study plus the stages it skips, on a copy (the session's study stays as it is)."""
    copy = planted.copy(tmp_path_factory.mktemp("dictionary") / "study")
    pe.run_stages(copy, ("validate", "map", "new_questions", "shapley"))
    return copy.root


def test_every_documented_table_has_exactly_its_columns(full_study: Path) -> None:
    problems = check_page(PAGE.read_text(encoding="utf-8"), full_study)
    assert not problems, "docs/data-dictionary.md is out of date:\n" + "\n".join(problems)


def test_the_check_notices_a_column_left_off_the_page(full_study: Path) -> None:
    """A page without one column (or with a wrong type) fails: the check can fail."""
    text = PAGE.read_text(encoding="utf-8")
    row = "| `mae_cal` | Float64 | the same after the mean-preserving calibration (equal to `mae`) |\n"
    assert text.count(row) == 1
    assert check_page(text.replace(row, ""), full_study) == [
        "data/eval/cells.parquet: written but not documented: mae_cal"
    ]
    wrong = text.replace(
        "| `n_questions` | UInt32 | questions averaged |", "| `n_questions` | Int64 | x |", 1
    )
    assert any(
        "n_questions is UInt32, documented as Int64" in p for p in check_page(wrong, full_study)
    )


def test_every_table_of_the_stages_is_documented() -> None:
    """The page names every output directory of dvc.yaml's stages and every data/eval
    table the evaluate stage's code names (also those no test study writes)."""
    import yaml

    text = PAGE.read_text(encoding="utf-8")
    patterns = set(parse_page(text))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outs = [
        next(iter(o)) if isinstance(o, dict) else o
        for stage in stages.values()
        for o in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", [])
    ]
    for out in outs:
        out = re.sub(r"\$\{item\.(\w+)\}", r"<\1>", out)
        if out.endswith((".png", ".html")) or out in (
            "reports/figures/study",
            "data/descriptors/generated",
        ):
            assert out in text, f"{out} (no table) is not mentioned on the page"
            continue
        assert any(p == out or p.startswith(out.rstrip("/") + "/") for p in patterns), (
            f"{out} is not documented"
        )
