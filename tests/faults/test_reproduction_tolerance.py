"""A reproduction on another machine: fp32 noise told from a real difference (issue 22, item 12).

Same machine, same answers: byte-identical outputs (evaluate run twice here). Another
machine's fp32 kernels move the model's probabilities in their last bits (a fresh clone
on an AMD EPYC host moved per-country MAEs by up to 3.3e-7): that is simulated here by
perturbing a study's simulate answers by a relative 3e-7, the size of that noise, and
rerunning the real `valuesim stage calibrate` and `evaluate` processes. The parquet
outputs then differ byte for byte (what DVC sees), ``reports/metrics.json``, rounded to
4 decimals, almost never does, and `valuesim check-reproduction` says "reproduced"
(exit 0) against the committed metrics (a git revision) and the other run's data/eval;
a real change of the answers is "not reproduced" (exit 1), naming the metrics.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from tests.fixtures.study_data import build_study

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
PARAMS = {
    "simulate": {"methods": ["generic", "value"], "models": ["tiny"]},
    "models": {"tiny": {"provider": "transformers", "model": "embedded"}},
    "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
    "analysis": {"sample_sizes": [1, 2, 3], "subsample_repeats": 3, "bootstrap": 200},
}
ANSWERS = ("data/simulated/tiny/generic/answers.parquet", "data/simulated/tiny/value/answers.parquet")


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=project, capture_output=True, text=True, timeout=300,
                          check=False)


def stages(project: Path) -> None:
    for stage in ("calibrate", "evaluate"):
        out = run(project, "stage", stage)
        assert out.returncode == 0, out.stderr[-3000:]


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=project,
                   check=True, capture_output=True, timeout=60)


def perturb(project: Path, relative: float, seed: int) -> None:
    """Each answer probability times (1 + u * relative), u uniform in [-1, 1], renormalized:
    what summing in another order does to fp32 results (``relative`` 3e-7), or, larger,
    a real change of the answers."""
    rng = np.random.default_rng(seed)
    for name in ANSWERS:
        path = project / name
        frame = pl.read_parquet(path)
        probs = []
        for p in frame["probs"].to_list():
            q = np.asarray(p) * (1 + rng.uniform(-1, 1, len(p)) * relative)
            probs.append((q / q.sum()).tolist())
        frame.with_columns(pl.Series("probs", probs, dtype=pl.List(pl.Float64))).write_parquet(path)


def eval_bytes(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "data/eval").glob("*.parquet"))}


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study run once and its metrics committed to git (the study as published)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("committed")
    build_study(root, true_t=2.0, map_items=True)
    # the fixture's generic answers are the humans' sharpened exactly: a one-point persona
    # interval then covers the human mean by float equality, which the last bits decide
    # (no model is exactly right, so no real study is on that knife edge)
    perturb(root, 1e-2, seed=0)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    stages(root)
    git(root, "init", "-q")
    git(root, "add", "params.yaml", "reports/metrics.json")
    git(root, "commit", "-q", "-m", "the study")
    return root


@pytest.fixture(scope="module")
def other_machine(committed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same study reproduced where fp32 sums come out in other last bits."""
    other = tmp_path_factory.mktemp("other") / "study"
    shutil.copytree(committed, other)
    perturb(other, 3e-7, seed=1)
    stages(other)
    return other


def test_metrics_json_states_four_decimals(committed: Path) -> None:
    from valuesim.reproduction import flatten

    leaves = flatten(json.loads((committed / "reports/metrics.json").read_text()))
    floats = [v for v in leaves.values() if isinstance(v, float)]
    assert len(floats) > 50
    assert all(round(v, 4) == v for v in floats)
    assert any(round(v, 3) != v for v in floats)  # and not fewer


def test_one_machine_is_byte_identical(committed: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(committed, again)
    stages(again)
    assert eval_bytes(again) == eval_bytes(committed)
    assert (again / "reports/metrics.json").read_bytes() == (committed / "reports/metrics.json").read_bytes()


def test_fp32_noise_is_a_reproduction(committed: Path, other_machine: Path) -> None:
    ours, theirs = eval_bytes(other_machine), eval_bytes(committed)
    assert set(ours) == set(theirs)
    changed = [n for n in ours if ours[n] != theirs[n]]
    assert changed  # what DVC sees: the outputs' hashes changed

    out = run(other_machine, "check-reproduction")  # against HEAD: the committed metrics
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reports/metrics.json vs reports/metrics.json at HEAD:" in out.stdout
    assert "0 beyond the tolerance (atol 0.0001, rtol 0)" in out.stdout
    assert out.stdout.strip().endswith("reproduced within atol 0.0001, rtol 0")

    out = run(other_machine, "check-reproduction", "--eval-dir", str(committed / "data/eval"))
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("data/eval vs "))
    differ = int(line.split(" values, ")[1].split(" differ")[0].replace(",", ""))
    assert differ > 0  # the full-precision tables do differ, within the tolerance
    assert " 0 beyond the tolerance" in line


def test_a_real_difference_is_not_a_reproduction(committed: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(committed, changed)
    perturb(changed, 0.3, seed=2)  # the answers themselves moved
    stages(changed)
    out = run(changed, "check-reproduction", "--show", "3")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "beyond)" in out.stdout
    assert "mae" in out.stdout
    assert "not reproduced:" in out.stderr
    assert "Traceback" not in out.stderr
    # a tolerance wide enough to call it noise is the user's to give
    assert run(changed, "check-reproduction", "--atol", "1").returncode == 0


def test_tighter_than_the_rounding_shows_the_noise(committed: Path, other_machine: Path) -> None:
    out = run(other_machine, "check-reproduction", "--eval-dir", str(committed / "data/eval"),
              "--atol", "1e-12")
    assert out.returncode == 1
    assert "beyond the tolerance (atol 1e-12, rtol 0)" in out.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("--against", "no-such-rev"), "cannot read reports/metrics.json at revision 'no-such-rev'"),
     (("--metrics", "nothere.json"), "nothere.json not found"),
     (("--eval-dir", "nothere"), "nothere is not a directory")],
)
def test_bad_arguments_are_one_line(committed: Path, args: tuple[str, ...], expected: str) -> None:
    out = run(committed, "check-reproduction", *args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert expected in line


DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")


@pytest.mark.skipif(DVC is None, reason="dvc is not installed")
def test_the_documented_dvc_metrics_diff_recipe(committed: Path, tmp_path: Path) -> None:
    """README: `dvc metrics diff --targets reports/metrics.json --precision 4` lists the
    metrics that moved and by how much; a change of 0.0001 is fp32 rounding noise."""
    assert DVC is not None
    repo = tmp_path / "repo"
    shutil.copytree(committed, repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    key = next(k for k, v in metrics["mae"].items() if isinstance(v, float))
    metrics["mae"][key] = round(metrics["mae"][key] + 1e-4, 4)  # a rounding flip
    (repo / "reports/metrics.json").write_text(json.dumps(metrics, indent=2))
    subprocess.run([DVC, "init", "-q", "--subdir"], cwd=repo, check=True, capture_output=True, timeout=120)
    out = subprocess.run([DVC, "metrics", "diff", "--targets", "reports/metrics.json", "--precision", "4",
                          "--json"], cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    diff = json.loads(out.stdout)["reports/metrics.json"]
    assert list(diff) == [f"mae.{key}"]
    assert diff[f"mae.{key}"]["diff"] == pytest.approx(1e-4)
