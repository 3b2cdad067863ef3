"""`valuesim export --sqlite` (issue 23, item 3): the study's tables in one SQLite file,
linked for Datasette, described by its metadata, written whole or not at all."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures import planted_e2e as pe
from tests.fixtures.cli import run_cli
from tests.fixtures.planted_provider import prompt_key
from valuesim.browse.metadata import TABLES, VIEWS, datasette_metadata
from valuesim.browse.sqlite_export import metadata_path
from valuesim.llm.types import ChatMessage
from valuesim.report.html_page import table
from valuesim.study import load_study

# the export writes with sqlite-utils (the browse extra)
pytest.importorskip("sqlite_utils", reason="sqlite-utils is not installed; pip install 'valuesim[browse]'")


def _rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql, args).fetchall()


def test_the_tables_are_the_api_frames(planted: pe.Project, exported: Path) -> None:
    study = load_study(planted.root)
    names = {r[0] for r in _rows(exported, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(TABLES) <= names
    for name, frame in (("scoreboard", study.scoreboard()), ("cells", study.cells()),
                        ("distributions", study.distributions()), ("country_results", study.country_results()),
                        ("tests", study.tests())):
        assert _rows(exported, f"SELECT count(*) FROM {name}")[0][0] == frame.height, name
    answers = study.simulated(level="answers")
    assert _rows(exported, "SELECT count(*) FROM answers")[0][0] == answers.height
    # a value read back is the frame's value
    m, k, c, q = study.cells().row(0)[:4]
    got = _rows(exported, "SELECT mae FROM cells WHERE cell_id = ?", f"{m}/{k}/{c}/{q}")[0][0]
    assert got == study.cells().row(0, named=True)["mae"]


def test_every_link_resolves(exported: Path) -> None:
    """The foreign keys Datasette turns into links: declared, and none dangling."""
    links = {(t, fk[3], fk[2]) for t in TABLES for fk in _rows(exported, f"PRAGMA foreign_key_list({t})")}
    assert ("answers", "prompt_id", "prompts") in links
    assert ("answers", "persona_id", "personas") in links
    assert ("answers", "cell_id", "cells") in links
    assert ("distributions", "cell_id", "cells") in links
    assert ("prompts", "persona_id", "personas") in links
    assert _rows(exported, "PRAGMA foreign_key_check") == []
    # every persona answer of a run cell is reachable from its cell
    assert _rows(exported, "SELECT count(*) FROM answers WHERE cell_id NOT IN (SELECT cell_id FROM cells)")[0][0] == 0


def test_the_prompt_view_gives_the_exact_prompt_of_every_answer(planted: pe.Project, exported: Path) -> None:
    plant = json.loads((planted.root / "plant.json").read_text())["prompts"]
    rows = _rows(exported, "SELECT method, persona_id, country, question, system, user FROM prompt_messages")
    assert len(rows) == len(planted.rows)
    for _method, _persona, _country, _question, system, user in rows:
        assert prompt_key((ChatMessage("system", system), ChatMessage("user", user))) in plant


def test_the_metadata_describes_every_column(exported: Path) -> None:
    meta = json.loads(metadata_path(exported).read_text())
    assert meta == json.loads(json.dumps(datasette_metadata(exported.stem, meta["source"])))
    described = meta["databases"][exported.stem]["tables"]
    for name in (*TABLES, *VIEWS):
        columns = [r[1] for r in _rows(exported, f"PRAGMA table_info({name})")]
        assert set(columns) == set(described[name]["columns"]), name
        for facet in described[name].get("facets", []):
            assert facet in columns, (name, facet)


def test_a_failed_export_keeps_the_previous_file(planted: pe.Project, exported: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "study"
    shutil.copytree(planted.root, project)
    (project / "data/eval/cells.parquet").unlink()
    target = tmp_path / "out" / "study.db"
    target.parent.mkdir()
    shutil.copy(exported, target)
    before = target.read_bytes()
    code, _, err = run_cli(["export", "--sqlite", str(target), "--project", str(project)], capsys)
    assert code == 2
    assert err == f"error: {project}/data/eval/cells.parquet not found; run the evaluate stage first " \
                  "(`dvc repro evaluate`)\n"
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["study.db"]  # no temporary file left


def test_export_command_and_its_size(planted: pe.Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "browse.db"
    code, out, _ = run_cli(["export", "--sqlite", str(target), "--project", str(planted.root)], capsys)
    assert code == 0, out
    assert f"browse it: valuesim view {target}" in out
    assert metadata_path(target).exists()
    assert json.loads(metadata_path(target).read_text())["databases"].keys() == {"browse"}
    # each system message is stored once (per persona or country), not once per answer
    assert _rows(target, "SELECT count(*) FROM prompts") == _rows(target, "SELECT count(DISTINCT prompt_id) FROM answers")
    assert _rows(target, "SELECT count(*) FROM prompts")[0][0] < _rows(target, "SELECT count(*) FROM answers")[0][0] / 5
    # the exported scoreboard renders as the report's table does
    with sqlite3.connect(target) as con:
        board = pl.read_database("SELECT * FROM scoreboard", con)
    assert table(board) == table(load_study(planted.root).scoreboard())


def test_view_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.db"
    code, _, err = run_cli(["view", str(missing), "--no-open"], capsys)
    assert (code, err) == (2, f"error: {missing} not found; write it first with "
                              f"`valuesim export --sqlite {missing}`\n")
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    code, _, err = run_cli(["view", str(text), "--no-open"], capsys)
    assert (code, err) == (2, f"error: {text} is not a SQLite database; write it with "
                              f"`valuesim export --sqlite {text}`\n")


def test_no_answers_leaves_out_only_the_answers(planted: pe.Project, exported: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "small.db"
    code, out, _ = run_cli(["export", "--sqlite", str(target), "--project", str(planted.root), "--no-answers"], capsys)
    assert code == 0, out
    tables = {r[0] for r in _rows(target, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert "answers" not in tables
    assert "prompt_messages" not in tables
    for name in set(TABLES) - {"answers"}:
        assert _rows(target, f"SELECT count(*) FROM {name}") == _rows(exported, f"SELECT count(*) FROM {name}"), name
    assert _rows(target, "PRAGMA foreign_key_check") == []
    assert target.stat().st_size < exported.stat().st_size


def test_outputs_of_different_runs_are_refused(planted: pe.Project, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Personas rerun after simulate (here: one value persona gone): the answers would link
    to nothing, so the export stops with one line and writes nothing."""
    project = tmp_path / "study"
    shutil.copytree(planted.root, project)
    table = project / "data/personas/methods/value.parquet"
    personas = pl.read_parquet(table)
    personas.slice(1).write_parquet(table)
    target = tmp_path / "out.db"
    code, _, err = run_cli(["export", "--sqlite", str(target), "--project", str(project)], capsys)
    assert code == 2
    # each of the persona's answers links to its persona and to its prompt
    assert err == (f"error: {2 * len(pe.QUESTIONS)} links (answers -> personas, answers -> prompts) lead to rows "
                   "the study's outputs do not have (they come from different runs); run `dvc repro` and export "
                   "again\n")
    assert not target.exists()
    assert list(tmp_path.glob(".out.db.*")) == []



def test_runs_missing_from_disk_are_refused(planted: pe.Project, tmp_path: Path) -> None:
    """Only the country run left on disk while the evaluate outputs score four methods: the
    personas table is empty (with its columns) and the export refuses the mixed outputs."""
    from valuesim.browse.sqlite_export import export_sqlite
    from valuesim.errors import DataError

    project = tmp_path / "study"
    shutil.copytree(planted.root, project)
    for method in (pe.B, pe.C, pe.TEMPERATURE):
        shutil.rmtree(project / "data/simulated" / pe.MODEL / method)
    study = load_study(project)
    assert study.personas().columns[:2] == ["method", "persona_id"]
    assert study.personas().height == 0
    with pytest.raises(DataError, match=r"links \(cells -> methods, .*\) lead to rows .* run `dvc repro`"):
        export_sqlite(study, tmp_path / "country.db")
    assert not (tmp_path / "country.db").exists()
