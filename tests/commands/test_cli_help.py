"""The `valuesim` command's front (issue 24, item 4): `--version`, `--help` grouped by
workflow with flags shown without a type, and one default output format (a table in a
terminal). Real processes; the terminal is a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.commands.test_progress import run_in_terminal
from tests.fixtures.cli import run_cli
from valuesim.cli import WORKFLOWS, build_command

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]


def valuesim(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, env=environ, timeout=300)


def test_version_is_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = valuesim("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"valuesim {version}\n"
    assert out.stderr == ""


def test_help_lists_the_commands_by_workflow() -> None:
    out = valuesim("--help")
    assert out.returncode == 0, out.stderr
    panels = re.findall(r"╭─ (\w+) ─", out.stdout)
    assert panels == ["Options", *WORKFLOWS], out.stdout
    listed = {}  # command -> the panel --help shows it in
    panel = ""
    for line in out.stdout.splitlines():
        if m := re.match(r"╭─ (\w+) ─", line):
            panel = m[1]
        elif m := re.match(r"│ ([a-z][a-z-]+) ", line):
            listed.setdefault(m[1], panel)
    commands = build_command().commands  # type: ignore[attr-defined]
    assert set(commands) <= set(listed), out.stdout  # every command is in some workflow
    for name in commands:
        assert listed[name] in WORKFLOWS, name
        assert name in WORKFLOWS[listed[name]]
    assert listed["ask"] == "Ask"
    assert listed["summary"] == "Study"


def test_the_command_list_wraps_at_the_terminal_not_at_the_docstrings_lines() -> None:
    # summary's docstring breaks after "its best method"; 240 columns hold the sentence
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "240"}, timeout=300)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("│ summary "))
    assert "its best method and how it compares with the best reference (the paired test)." in line


def _all_commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", {})
    found = [path]
    for name, sub in subs.items():
        found += _all_commands(sub, (*path, name))
    return found


def test_no_help_shows_a_flag_as_taking_a_bool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    paths = _all_commands(build_command())
    assert len(paths) > 15
    flags_seen = 0
    for path in paths:
        code, out, err = run_cli([*path, "--help"], capsys)
        assert code == 0, (path, err)
        assert "<bool>" not in out, (path, out)
        flags_seen += len(re.findall(r"│ +--help +Show this message", out))
    assert flags_seen == len(paths)  # --help itself, a flag, sits right beside its text


def test_human_prints_a_table_in_a_terminal_and_json_into_a_pipe() -> None:
    args = [*CLI, "human", "--source", "data/demo/aggregates.json", "--countries", "JPN",
            "--questions", "Q6", "--demo-n", "50"]
    code, screen = run_in_terminal(args, ROOT, dict(os.environ))
    assert code == 0, screen
    assert re.search(r"country +question +mean +n +missing +distribution", screen), screen
    assert re.search(r"JPN +Q6 +\d\.\d{3}", screen), screen
    piped = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert piped.returncode == 0, piped.stderr
    [record] = json.loads(piped.stdout)
    assert record["country"] == "JPN"


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_an_explicit_format_wins_in_a_terminal(fmt: str) -> None:
    args = [*CLI, "human", "--source", "data/demo/aggregates.json", "--countries", "JPN",
            "--questions", "Q6", "--demo-n", "50", "--format", fmt]
    code, screen = run_in_terminal(args, ROOT, dict(os.environ))
    assert code == 0, screen
    assert ('"country": "JPN"' in screen) == (fmt == "json"), screen
