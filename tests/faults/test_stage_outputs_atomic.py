"""A stage's outputs are written together or not at all, and a stage that pays for
requests checks that it can write its outputs before the first one.

The file systems are real: a tmpfs mounted over the project's ``reports/`` or
``data/`` (with a copy of what it held), remounted read-only or filled to the last
block. The stages run as real `valuesim stage` processes; the simulate cases talk
through the real OpenAI plugin and SDK to the loopback fake OpenAI server, which
counts every request that arrives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.fixtures import mounts, simulate_project
from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.paths import ROOT, SHIPPED_BANK
from tests.fixtures.study_data import build_study
from valuesim import artifacts
from valuesim.errors import OutputError

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
STUDY_PARAMS = {
    "simulate": {"methods": ["generic", "value"], "models": ["tiny"]},
    "models": {"tiny": {"provider": "transformers", "model": "embedded"}},
    "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
    "analysis": {"sample_sizes": [1, 2, 3], "subsample_repeats": 3, "bootstrap": 200},
}


def stage(name: str, project: Path, *args: str, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "stage", name, "--params", "params.yaml", *args], cwd=project,
                          capture_output=True, text=True, timeout=300, env=env)


def files(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder`` with its inode, mtime and bytes: a file replaced by
    a rename has a new inode even when its bytes are the same."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler.bin"}


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


# -- the helper itself, on a real full disk --------------------------------------------


def test_an_output_set_on_a_full_disk_renames_nothing(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "a.json").write_text("old a")
    with mounts.tmpfs(tmp_path / "full", size="64k") as full:
        (full / "b.parquet").write_bytes(b"old b")
        big = pl.DataFrame({"x": list(range(200_000))})

        def three_outputs() -> None:
            with artifacts.output_set():
                artifacts.write_json({"new": True}, here / "a.json")
                artifacts.write_text(here / "new" / "c.txt", "new c")  # a folder made for it
                artifacts.write_parquet(big, full / "b.parquet")

        with pytest.raises(OutputError) as caught:
            three_outputs()
        assert str(caught.value) == (f"cannot write {full / 'b.parquet'}: no space left on the device; "
                                     f"free space on the disk holding {full} and rerun")
        assert (here / "a.json").read_text() == "old a"
        assert (full / "b.parquet").read_bytes() == b"old b"
        assert not (here / "new").exists()
        assert temporaries(here) == []
        assert temporaries(full) == []
        with artifacts.output_set():  # with room, all of it lands
            artifacts.write_json({"new": True}, here / "a.json")
            artifacts.write_text(full / "b.txt", "small")
            assert (here / "a.json").read_text() == "old a"  # nothing before the end
        assert json.loads((here / "a.json").read_text()) == {"new": True}
        assert (full / "b.txt").read_text() == "small"


# -- evaluate and report: data/eval/ with reports/, the figures with the page -----------


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study through calibrate, evaluate and report (real stages, made-up data)."""
    root = tmp_path_factory.mktemp("study")
    build_study(root, true_t=2.0, map_items=True)
    (root / "params.yaml").write_text(yaml.safe_dump(STUDY_PARAMS))
    for name in ("calibrate", "evaluate", "report"):
        done = stage(name, root)
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def project(study: Path, tmp_path: Path) -> Path:
    shutil.copytree(study, tmp_path / "p", symlinks=True)
    return tmp_path / "p"


@pytest.fixture
def reports(project: Path) -> Iterator[Path]:
    with mounts.tmpfs(project / "reports", size="16m") as mnt:
        yield mnt


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_evaluate_with_reports_refused_keeps_data_eval(fault: str, project: Path, reports: Path) -> None:
    if fault == "read-only":
        mounts.read_only(reports)
    else:
        mounts.fill(reports)
    before_eval, before_reports = files(project / "data/eval"), files(reports)
    line = one_error_line(stage("evaluate", project))
    cause = "read-only file system" if fault == "read-only" else "no space left on the device"
    assert line.startswith("error: cannot write reports/"), line
    assert cause in line, line
    assert files(project / "data/eval") == before_eval  # not one file replaced
    assert files(reports) == before_reports
    assert temporaries(project / "data") == []
    assert temporaries(reports) == []


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_report_with_reports_refused_keeps_the_figures_and_the_page(
    fault: str, project: Path, reports: Path
) -> None:
    if fault == "read-only":
        mounts.read_only(reports)
    else:
        mounts.fill(reports)
    before = files(reports)
    assert "figures/study/mae_heatmap.png" in before
    assert "index.html" in before
    line = one_error_line(stage("report", project))
    assert line.startswith("error: cannot write reports/"), line
    assert files(reports) == before
    assert temporaries(reports) == []


def test_report_with_room_for_the_figures_but_not_the_page_writes_neither(project: Path) -> None:
    """The issue's case: the figures fit, the page does not (it is written last)."""
    reports = project / "reports"
    page = (reports / "index.html").stat().st_size
    # the report's inputs under reports/ (metrics, the map figure), not its outputs
    inputs = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*")
              if p.is_file() and p.name != "index.html" and "study" not in p.parts}
    blocks = sum(-(-p.stat().st_size // 4096) for p in (reports / "figures/study").iterdir())
    blocks += sum(-(-len(b) // 4096) for b in inputs.values())
    assert page > 3 * 4096, page  # else the slack below would hold it
    # the inputs, this run's figures again (same data, same bytes), the old page and two
    # pages more
    with mounts.tmpfs(reports, size=f"{4 * (blocks + 3)}k", carry=False) as mnt:
        for name, data in inputs.items():
            (mnt / name).parent.mkdir(parents=True, exist_ok=True)
            (mnt / name).write_bytes(data)
        (mnt / "index.html").write_bytes(b"old page")
        before = files(mnt)
        line = one_error_line(stage("report", project))
        assert line.startswith("error: cannot write reports/index.html: no space left"), line
        assert files(mnt) == before
        assert not (mnt / "figures/study").exists()
        assert temporaries(mnt) == []


# -- simulate through the OpenAI API: no request before the outputs are known writable --


@pytest.fixture
def openai_server() -> Iterator[object]:
    pytest.importorskip("valuesim_openai", reason="the OpenAI provider plugin is not installed")
    sys.path.insert(0, str(ROOT / "plugins/valuesim-openai/tests"))
    try:
        from fake_openai_server import serve
    finally:
        sys.path.remove(str(ROOT / "plugins/valuesim-openai/tests"))
    with serve() as fake:
        yield fake


def simulate_project_for(url: str, root: Path) -> Path:
    simulate_project.make_project(root)
    params = {
        "data": {"questions": str(SHIPPED_BANK)},
        "countries": {"select": simulate_project.COUNTRIES},
        "models": {"gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": url}},
        "simulate": {"models": ["gpt"], "methods": ["value"], "cache_dir": ".cache"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


N_REQUESTS = (len(simulate_project.COUNTRIES) * simulate_project.PER_COUNTRY
              * len(simulate_project.QUESTIONS))


@pytest.mark.parametrize(("folder", "fault"), [("data", "read-only"), ("reports", "read-only"),
                                               ("data", "full")])
def test_simulate_checks_its_outputs_before_the_first_request(
    folder: str, fault: str, openai_server, tmp_path: Path
) -> None:
    project = simulate_project_for(openai_server.url, tmp_path / "p")
    (project / "reports").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with mounts.tmpfs(project / folder, size="8m") as mnt:
        mounts.read_only(mnt) if fault == "read-only" else mounts.fill(mnt)
        line = one_error_line(stage("simulate", project, "--model", "gpt", "--method", "value", env=env))
        cause = "read-only file system" if fault == "read-only" else "no space left on the device"
        assert cause in line, line
        assert line.endswith("(checked before any request was sent)"), line
        assert openai_server.counts["total"] == 0  # nothing paid for
        # the same project with room: the server does answer this run (the check above can fail)
        mounts.read_write(mnt)
        (mnt / "filler.bin").unlink(missing_ok=True)
        done = stage("simulate", project, "--model", "gpt", "--method", "value", env=env)
        assert done.returncode == 0, done.stderr
    assert openai_server.counts["total"] == N_REQUESTS
