"""`valuesim summary` (the last step of `make run`, issue 24 item 4) on a real small study:
the planted end-to-end study (real stages extract -> ... -> report, see
tests/fixtures/planted_e2e.py). It names the report, and its headline is the report's own
verdict's first sentence; its line against the best reference agrees with the paired
test in data/eval/paired_tests.parquet, read here on its own."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures import planted_e2e as pe
from tests.fixtures.cli import run_cli
from tests.fixtures.paths import ROOT


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pe.Project]:
    with pe.planted_plugin(tmp_path_factory.mktemp("site")):
        yield pe.planted_project(tmp_path_factory.mktemp("headline") / "study")


def verdict_first_lines(page: str) -> dict[str, str]:
    """Per model heading, the first sentence of its verdict on the report page."""
    found = re.findall(r"<div class='verdict'><h3>(.*?)</h3><ul><li>(.*?)</li>", page)
    return {html.unescape(name): html.unescape(first) for name, first in found}


def test_summary_names_the_report_and_its_headline(
    study: pe.Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["summary", "--project", str(study.root)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"report: {study.root}/reports/index.html"
    assert (study.root / "reports/index.html").exists()
    firsts = verdict_first_lines((study.root / "reports/index.html").read_text())
    assert firsts, "the report has no verdict"
    for name, first in firsts.items():
        assert f"{name}: {first}" in lines, out  # the report's own words
    assert lines[1].startswith(f"{next(iter(firsts))}: Best method: ")

    # the line against the best reference, checked against the evaluate stage's files
    summary = study.read("data/eval/summary.parquet").filter(pl.col("model") == pe.MODEL)
    best = summary.sort(["mae", "method"]).row(0, named=True)
    refs = study.read("data/eval/reference_summary.parquet").sort("mae")
    best_ref = refs.row(0, named=True)
    test = study.read("data/eval/paired_tests.parquet").filter(
        (pl.col("model") == pe.MODEL) & (pl.col("a") == best["method"]) & (pl.col("b") == best_ref["method"])
    ).row(0, named=True)
    word = "no different" if test["p_bh"] >= 0.05 else ("better" if test["diff"] < 0 else "worse")
    vs = lines[2]
    assert vs.startswith("  vs the best reference, "), out
    assert f"(error {best_ref['mae']:.3f}): {word}, {test['diff']:+.3f} " in vs, out
    assert vs.endswith(f"p_BH {test['p_bh']:.2g}"), out
    assert lines[-1].startswith("note: Synthetic data: ")  # the planted study is the demo population
    assert len(lines) == 4


def test_summary_of_a_study_not_evaluated_is_one_line(
    study: pe.Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "study"
    shutil.copytree(study.root, project)
    (project / "data/eval/summary.parquet").unlink()
    code, out, err = run_cli(["summary", "--project", str(project)], capsys)
    assert code != 0
    assert out == ""
    assert err.strip().splitlines() == [
        f"error: {project}/data/eval/summary.parquet not found; run the evaluate stage first "
        "(`dvc repro evaluate`)"
    ]


def test_summary_before_the_report_says_so(
    study: pe.Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "study"
    shutil.copytree(study.root, project)
    (project / "reports/index.html").unlink()
    code, out, err = run_cli(["summary", "--project", str(project)], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"report: {project}/reports/index.html (not written yet: run `dvc repro report`)"


def _make_run(study: pe.Project, tmp_path: Path, dvc_status: int) -> subprocess.CompletedProcess[str]:
    """`make run` with this repository's Makefile in a copy of the study: a venv whose
    ``dvc`` stands in for DVC (says it ran, exits ``dvc_status``) and whose ``valuesim``
    is the real command."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    project = tmp_path / "study"
    shutil.copytree(study.root, project)
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    (venv / "bin/dvc").write_text(f"#!/bin/sh\necho 'dvc repro ran'\nexit {dvc_status}\n")
    (venv / "bin/valuesim").write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'from valuesim.cli import main; main()' \"$@\"\n")
    for tool in ("dvc", "valuesim"):
        (venv / "bin" / tool).chmod(0o755)
    stamp = venv / ".installed"
    return subprocess.run(["make", "--no-print-directory", "run", f"VENV={venv}", "-o", str(stamp)],
                          cwd=project, capture_output=True, text=True, timeout=300)


def test_make_run_ends_with_the_report_and_its_headline(study: pe.Project, tmp_path: Path) -> None:
    done = _make_run(study, tmp_path, 0)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "dvc repro ran" in lines[1]
    tail = lines[-4:]
    assert tail[0] == "report: reports/index.html"
    assert re.match(r"planted \(.*\): Best method: ", tail[1]), done.stdout
    assert tail[2].startswith("  vs the best reference, ")


def test_make_run_fails_as_dvc_repro_does(study: pe.Project, tmp_path: Path) -> None:
    done = _make_run(study, tmp_path, 3)
    assert done.returncode != 0
    assert "report:" not in done.stdout  # nothing claimed about a run that failed
