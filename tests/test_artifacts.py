"""valuesim.artifacts: atomic writes, the one-line errors, and the shared readers."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import polars as pl
import pytest

from valuesim import artifacts, paths
from valuesim.errors import DataError, OutputError


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_write_json_formats_as_the_call_site_asks(tmp_path: Path) -> None:
    data = {"b": 1, "a": [1, 2]}
    artifacts.write_json(data, tmp_path / "default.json")
    artifacts.write_json(data, tmp_path / "sorted.json", sort_keys=True)
    artifacts.write_json(data, tmp_path / "flat.json", indent=None, newline=False)
    assert (tmp_path / "default.json").read_text() == json.dumps(data, indent=2) + "\n"
    assert (tmp_path / "sorted.json").read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert (tmp_path / "flat.json").read_text() == json.dumps(data)
    assert _leftovers(tmp_path) == []


def test_writes_make_parents_replace_and_are_readable_by_all(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "t.parquet"
    frame = pl.DataFrame({"x": [1, 2]})
    artifacts.write_parquet(frame, target)
    artifacts.write_parquet(frame.with_columns(pl.col("x") * 2), target)
    assert pl.read_parquet(target)["x"].to_list() == [2, 4]
    assert target.stat().st_mode & 0o777 == 0o644
    artifacts.write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "x\n1\n2\n"


def test_write_text_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    artifacts.write_text(tmp_path / "t.txt", "0.1 ± 0.2 Zürich")
    assert (tmp_path / "t.txt").read_bytes() == "0.1 ± 0.2 Zürich".encode()
    artifacts.write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    artifacts.write_json({"old": True}, target)

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        artifacts.write_atomic(target, fail)
    assert json.loads(target.read_text()) == {"old": True}
    assert _leftovers(tmp_path) == []
    with pytest.raises(TypeError):  # not JSON: fails before anything is written
        artifacts.write_json({"x": object()}, tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()
    assert _leftovers(tmp_path) == []


def test_atomic_dir_swaps_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with artifacts.atomic_dir(out) as d:
        assert d != out
        assert d.parent == tmp_path
        (d / "new.txt").write_text("new")
        assert (out / "stale.txt").exists()  # the old directory stays until the swap
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert out.stat().st_mode & 0o777 == 0o755
    assert _leftovers(tmp_path) == []


def test_atomic_dir_keeps_the_old_directory_when_the_body_raises(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("old")

    def failing_stage() -> None:
        with artifacts.atomic_dir(out) as d:
            (d / "half.txt").write_text("half")
            raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError, match="stage failed"):
        failing_stage()
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]
    assert _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), artifacts.atomic_dir(tmp_path / "fresh"):
        raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()
    assert _leftovers(tmp_path) == []


def test_an_output_set_renames_only_when_every_output_was_written(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old.txt").write_text("old")

    def stage(fail: bool) -> None:
        with artifacts.output_set():
            artifacts.write_json({"a": 1}, tmp_path / "a.json")
            with artifacts.atomic_dir(tmp_path / "d") as d:  # joins the set: swapped at its end
                artifacts.write_text(d / "new.txt", "new")  # inside the folder: written now
            assert (tmp_path / "d" / "old.txt").exists()
            with artifacts.output_set():  # a nested set is the same set
                artifacts.write_text(tmp_path / "b.txt", "b")
            assert (tmp_path / "a.json").read_text() == "old a"
            assert not (tmp_path / "b.txt").exists()
            if fail:
                raise RuntimeError("the stage failed after writing")

    with pytest.raises(RuntimeError, match="failed after writing"):
        stage(fail=True)
    assert (tmp_path / "a.json").read_text() == "old a"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["old.txt"]
    assert not (tmp_path / "b.txt").exists()
    assert _leftovers(tmp_path) == []
    stage(fail=False)
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["new.txt"]
    assert (tmp_path / "b.txt").read_text() == "b"
    assert _leftovers(tmp_path) == []


def test_a_target_that_is_not_a_regular_file_is_never_renamed_over(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    for name, what in (("pipe", "a FIFO (named pipe)"), ("folder", "a directory")):
        with pytest.raises(OutputError, match=f"is {re.escape(what)}, not a regular file"):
            artifacts.write_text(tmp_path / name, "x")
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)
    assert (tmp_path / "folder").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="a file of that name is in the way"), \
            artifacts.atomic_dir(tmp_path / "file"):
        pass
    assert _leftovers(tmp_path) == []


def test_missing_and_unreadable_name_the_file_and_its_stage(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    msg = str(artifacts.missing(path, "human"))
    assert msg == f"{path} not found; run the human stage first (`dvc repro human`)"
    assert "\n" not in msg
    assert "(model m, method v)" in str(artifacts.missing(path, "simulate", "model m, method v"))
    assert str(artifacts.unreadable(path, "map", "bad")) == f"{path} is unreadable (bad); rerun `dvc repro map`"
    with pytest.raises(DataError, match=r"x\.parquet not found; run the extract stage first"):
        artifacts.require(path, "extract")
    path.write_bytes(b"")
    assert artifacts.require(path, "extract") == path


def test_read_parquet_turns_damage_into_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    with pytest.raises(DataError, match="run the evaluate stage first"):
        artifacts.read_parquet(path, "evaluate")
    pl.DataFrame({"x": list(range(1000))}).write_parquet(path)
    assert artifacts.read_parquet(path, "evaluate").height == 1000
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    with pytest.raises(DataError) as err:
        artifacts.read_parquet(path, "evaluate")
    line = str(err.value)
    assert line.startswith(f"{path} is unreadable (not a parquet table: ")
    assert line.endswith("rerun `dvc repro evaluate`")
    assert "\n" not in line


def test_read_csv_turns_damage_into_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n\xff\xfe,3,4,5\n")
    with pytest.raises(DataError, match=r"t\.csv is unreadable \(.*\); rerun `dvc repro map`"):
        artifacts.read_csv(path, "map")


@pytest.mark.parametrize(("text", "why"), [
    ("{not json", "invalid JSON: "),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"other": 1}', "no 'kept' key"),
])
def test_read_json_checks_form_and_keys(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        artifacts.read_json(path, "human", keys=("kept",))
    assert str(err.value).startswith(f"{path} is unreadable ({why}")
    assert str(err.value).endswith("rerun `dvc repro human`")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_selected_countries(project: Path) -> None:
    with pytest.raises(DataError, match=r"selected_countries\.json not found; run the map stage first"):
        artifacts.selected_countries()
    artifacts.write_json({"countries": ["JPN", "DEU"], "how": "list"}, paths.SELECTED_COUNTRIES)
    assert artifacts.selected_countries() == ["JPN", "DEU"]
    artifacts.write_json({"countries": []}, paths.SELECTED_COUNTRIES)
    with pytest.raises(DataError, match="selects no countries"):
        artifacts.selected_countries()
    artifacts.write_json({"countries": "JPN"}, paths.SELECTED_COUNTRIES)
    with pytest.raises(DataError, match=r"'countries' is not a list of strings\); rerun `dvc repro map`"):
        artifacts.selected_countries()
    other = project / "elsewhere.json"
    artifacts.write_json({"countries": ["COL"]}, other)
    assert artifacts.selected_countries(other) == ["COL"]


def test_kept_questions(project: Path) -> None:
    with pytest.raises(DataError, match=r"kept_questions\.json not found; run the human stage first"):
        artifacts.kept_questions()
    artifacts.write_json({"kept": ["Q1", "Q2"], "dropped": []}, paths.KEPT_QUESTIONS)
    assert artifacts.kept_questions() == ["Q1", "Q2"]
    artifacts.write_json({"dropped": []}, paths.KEPT_QUESTIONS)
    with pytest.raises(DataError, match=r"no 'kept' key\); rerun `dvc repro human`"):
        artifacts.kept_questions()


def test_persona_tables(project: Path) -> None:
    with pytest.raises(DataError, match=r"methods/value\.parquet not found; run the personas stage first"):
        artifacts.method_personas("value")
    with pytest.raises(DataError, match=r"personas\.parquet not found; run the personas stage first"):
        artifacts.all_personas()
    table = pl.DataFrame({"persona_id": ["p1"], "text": ["You value family."]})
    artifacts.write_parquet(table, paths.personas_for("value"))
    artifacts.write_parquet(table, paths.PERSONAS)
    assert artifacts.method_personas("value").equals(table)
    assert artifacts.all_personas().equals(table)
    paths.personas_for("value").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"value\.parquet is unreadable \(not a parquet table: .*dvc repro personas`$"):
        artifacts.method_personas("value")
