"""Same answers, same bytes: DVC-hashed simulate outputs do not depend on the cache or
the project's copy, so a rerun (or a fresh clone with a cold cache) on the same machine
leaves dvc.lock alone and calibrate, evaluate and report are not rerun.

The simulate stage runs as a real `valuesim stage simulate` process with the test
provider plugin: cold, again warm (every answer from the response cache), and cold in
a second copy of the project (a fresh clone). Every output file must be identical.
Across machines the answers themselves can differ in their last bits (the embedded
model's fp32 kernels): test_reproduction_tolerance.py checks that within a tolerance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.simulate_project import COUNTRIES, make_project

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
OUT = Path("data/simulated/fake/sociodemographic")
STATS = Path("reports/runs/fake-sociodemographic.json")


def _project(directory: Path, root: Path) -> Path:
    directory.mkdir()
    make_project(directory)
    (directory / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": COUNTRIES},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1"}},
        # sociodemographic personas also answer the map items: map_answers.parquet too
        "simulate": {"models": ["fake"], "methods": ["sociodemographic"], "cache_dir": ".cache",
                     "batch_size": 4},
    }))
    return directory


def _simulate(project: Path, site: Path) -> dict[str, bytes]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["VALUESIM_TEST_LOG"] = str(project / "paid.log")
    proc = subprocess.run(
        [*CLI, "stage", "simulate"], cwd=project, env=env,
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    out = project / OUT
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _paid(project: Path) -> int:
    log = project / "paid.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_cold_warm_and_other_machine_runs_write_identical_outputs(
    tmp_path: Path, root: Path, testplugin_site: Path
) -> None:
    first = _project(tmp_path / "a", root)
    cold = _simulate(first, testplugin_site)
    paid = _paid(first)
    assert paid > 0
    assert {"answers.parquet", "population.parquet", "map_answers.parquet", "summary.json"} <= set(cold)
    cold_stats = json.loads((first / STATS).read_text())

    warm = _simulate(first, testplugin_site)
    assert _paid(first) == paid  # fully cached: nothing sent
    warm_stats = json.loads((first / STATS).read_text())
    # the run statistics do differ between the runs; they live outside the DVC output
    assert (cold_stats["sent"], cold_stats["cache_hits"]) == (paid, 0)
    assert (warm_stats["sent"], warm_stats["cache_hits"]) == (0, cold_stats["requests"])

    other = _simulate(_project(tmp_path / "b", root), testplugin_site)
    for name, data in cold.items():
        assert warm[name] == data, f"{name} differs between a cold and a warm run"
        assert other[name] == data, f"{name} differs between two copies of the project"
    assert set(warm) == set(cold) == set(other)

    summary = json.loads(cold["summary.json"])
    assert not {"cache_hits", "sent", "provider_calls", "retries", "wall_s", "cost_usd",
                "prompt_tokens", "completion_tokens", "cached_tokens"} & set(summary)
    assert summary["requests"] == cold_stats["requests"]


def test_run_statistics_are_no_dvc_output_or_dependency(root: Path) -> None:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    declared = json.dumps(stages)
    assert "reports/runs" not in declared
    assert "/reports/runs/" in (root / ".gitignore").read_text().splitlines()


# `make test` runs the venv's python without its bin on PATH: look beside it first
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")


@pytest.mark.skipif(DVC is None, reason="dvc is not installed")
def test_dvc_usage_analytics_are_off(root: Path) -> None:
    assert DVC is not None
    proc = subprocess.run(
        [DVC, "config", "--project", "core.analytics"], cwd=root,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "false"
