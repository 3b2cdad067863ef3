"""`valuesim compare` over real `dvc exp run -S` experiments: a tiny Git + DVC project
whose one stage copies a prepared cells table (chosen by ``prompts.guidance``) to
``data/eval/cells.parquet``, so each experiment runs in a second or two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from tests.fixtures.compare_runs import cells_frame, project_params

pytestmark = pytest.mark.slow  # runs DVC: about 15 s

SHIFTS = {"social_science": 0.0, "minimal": 0.02, "decisive": 0.1}
# reports/metrics.json's references (git-tracked, as the study's metrics are)
METRICS = {"mae": {"reference/midpoint": 0.2015, "reference/other_countries": 0.0996},
           "human_sampling_noise": {"mae": 0.0062}}
STAGE = """\
import shutil, sys
from pathlib import Path
import yaml
guidance = yaml.safe_load(open("params.yaml"))["prompts"]["guidance"]
Path("data/eval").mkdir(parents=True, exist_ok=True)
source = Path("inputs") / f"{guidance}.parquet"
Path("reports").mkdir(exist_ok=True)  # the references, as the evaluate stage writes them
shutil.copy(Path("inputs") / "metrics.json", "reports/metrics.json")
if source.exists():
    shutil.copy(source, "data/eval/cells.parquet")
else:  # an experiment whose evaluate stage wrote no cells table
    Path("data/eval/summary.parquet").write_bytes(b"")
"""


# no usage reports from the DVC subprocesses (and no network wait on a machine without one)
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def _run(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _compare(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    valuesim = Path(sys.executable).with_name("valuesim")
    return subprocess.run([str(valuesim), "compare", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env=ENV)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("dvcexp")
    (repo / "inputs").mkdir()
    for i, (guidance, shift) in enumerate(SHIFTS.items()):
        cells_frame({"country": shift}, seed=i, methods=("generic", "country")).write_parquet(
            repo / "inputs" / f"{guidance}.parquet")
    (repo / "inputs" / "metrics.json").write_text(json.dumps(METRICS))
    (repo / "stage.py").write_text(STAGE)
    (repo / "params.yaml").write_text(yaml.safe_dump(project_params(), sort_keys=False))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py", "inputs"],
        "params": ["prompts.guidance"], "outs": ["data/eval"],
        "metrics": [{"reports/metrics.json": {"cache": False}}],
    }}}))
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "test@example.com")
    _run(repo, "git", "config", "user.name", "test")
    _dvc(repo, "init", "-q")
    _dvc(repo, "repro", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "baseline: social_science")
    for guidance in ("minimal", "decisive"):
        _dvc(repo, "exp", "run", "-q", "-n", f"g-{guidance}", "-S", f"prompts.guidance={guidance}")
    # `dvc exp run` leaves the workspace at the last experiment; back to the baseline
    _run(repo, "git", "checkout", "-q", "--", "params.yaml", "dvc.lock")
    _dvc(repo, "checkout", "-q")
    return repo


def _expected(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    groups = {g: pl.read_parquet(Path("inputs") / f"{g}.parquet").filter(pl.col("method") == "country")
              ["mae"].to_numpy() for g in labels}
    order = sorted(groups, key=lambda g: float(np.median(groups[g])))
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    res = [mannwhitneyu(groups[a], groups[b], alternative="two-sided") for a, b in pairs]
    _, bh, _, _ = multipletests([r.pvalue for r in res], method="fdr_bh")
    return {f"{a} vs {b}": (r.statistic, r.pvalue, q) for (a, b), r, q in zip(pairs, res, bh, strict=True)}


def test_compare_all_reads_every_experiment_at_its_revision(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = _run(project, "git", "status", "--porcelain")
    out = tmp_path / "compare"
    done = _compare(project, "--all", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "compared 2 experiments by prompts.guidance (methods: country)" in done.stdout
    # the table, read at each experiment's revision: ranked, the best marked, the references under it
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()[:2] in ("1 ", "2 ")]
    assert [r[1] for r in rows] == ["minimal", "decisive"]
    assert rows[0][-1] == "best"
    assert rows[1][-1] == "****"
    assert "references (same cells): scale midpoint 0.202; other countries' answers 0.100; human " \
           "sampling noise 0.006" in " ".join(done.stdout.split())
    experiments = pl.read_csv(out / "experiments.csv")
    assert experiments["experiment"].sort().to_list() == ["g-decisive", "g-minimal"]
    assert all(s.startswith("rev ") for s in experiments["source"])
    labels = dict(zip(experiments["experiment"], experiments["label"], strict=True))
    assert labels == {"g-minimal": "prompts.guidance=minimal", "g-decisive": "prompts.guidance=decisive"}
    tests = pl.read_csv(out / "tests.csv")
    monkeypatch.chdir(project)
    expected = _expected(["minimal", "decisive"])
    assert tests["pair"].to_list() == list(expected)
    # the default: paired on the cells both experiments score, clustered by question
    assert tests["test"][0] == "paired, clustered by question (sign-flip)"
    cells = {g: pl.read_parquet(Path("inputs") / f"{g}.parquet").filter(pl.col("method") == "country")
             for g in ("minimal", "decisive")}
    assert tests["n_cells"][0] == cells["minimal"].height
    a, b = tests["a"][0], tests["b"][0]
    assert tests["diff"][0] == pytest.approx(cells[a]["mae"].mean() - cells[b]["mae"].mean(), rel=1e-9)
    assert tests["stars"][0] == "****"
    # nothing was checked out: the workspace is as it was
    assert _run(project, "git", "status", "--porcelain") == status
    assert yaml.safe_load((project / "params.yaml").read_text())["prompts"]["guidance"] == "social_science"


def test_workspace_names_and_patterns_mix(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "mixed"
    done = _compare(project, "workspace", "g-*", "--test", "mann-whitney", "--out", str(out))
    assert done.returncode == 0, done.stderr
    experiments = pl.read_csv(out / "experiments.csv")
    assert experiments["experiment"].to_list()[0] == "workspace"
    assert set(experiments["experiment"].to_list()) == {"workspace", "g-minimal", "g-decisive"}
    tests = pl.read_csv(out / "tests.csv")
    monkeypatch.chdir(project)
    expected = _expected(list(SHIFTS))
    assert sorted(tests["pair"].to_list()) == sorted(expected)
    for row in tests.iter_rows(named=True):
        assert (row["U"], row["p"], row["p_BH"]) == pytest.approx(expected[row["pair"]], rel=1e-9)


def test_bad_experiment_names_and_missing_cells_are_one_line_errors(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    done = _compare(project, "g-minimal", "g-nope", "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no experiment, Git revision or directory named 'g-nope'" in done.stderr
    assert "`dvc exp show`" in done.stderr
    done = _compare(project, "nothing-*", "--out", str(out))
    assert done.returncode == 2
    assert "no finished experiment matches 'nothing-*'" in done.stderr
    _dvc(project, "exp", "run", "-q", "-n", "g-broken", "-S", "prompts.guidance=broken")
    done = _compare(project, "g-minimal", "g-broken", "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "g-broken (rev " in done.stderr
    assert "has no readable data/eval/cells.parquet" in done.stderr
    assert not out.exists()
