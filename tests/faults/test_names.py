"""Names that become paths and shell words: one pattern, checked when params are read.

The probes of issue 22 (item 1), as real processes on real files: a model named
``../../../victim`` made `valuesim stage simulate` write beside the project (and swap
out a folder of that name there); a model named ``m;touch pwned;#`` ran ``touch``
under `dvc repro`, because DVC pastes a matrix value into the stage's shell command.
Now every such name must match ``valuesim.names.NAME_PATTERN``, one `error:` line
names the key, the value (cut short) and the pattern, nothing outside the project is
touched and nothing is sent; and under DVC the simulate stage takes its (model,
method) from ``DVC_STAGE`` (``--from-dvc-stage``), so no params value reaches a shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.simulate_project import COUNTRIES, make_project
from valuesim.compare.build import OWN_FILES
from valuesim.compare.figures import file_name
from valuesim.methods import METHOD_NAMES
from valuesim.names import NAME_PATTERN, name_problem

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
VENV_BIN = Path(sys.executable).parent
# `make test` runs the venv's python without its bin on PATH: look beside it first
DVC = shutil.which("dvc", path=str(VENV_BIN)) or shutil.which("dvc")


def _env(site: Path, project: Path) -> dict[str, str]:
    """The test provider plugin installed, its paid-request log in the project, and
    `valuesim` (for DVC's shell) on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["VALUESIM_TEST_LOG"] = str(project / "paid.log")
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    return env


def _project(directory: Path, root: Path, model: str, method: str = "sociodemographic") -> Path:
    directory.mkdir(parents=True)
    make_project(directory)
    (directory / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": COUNTRIES},
        "models": {model: {"provider": "testprovider", "model": "hash-1"}},
        "simulate": {"models": [model], "methods": [method], "cache_dir": ".cache", "batch_size": 4},
    }))
    return directory


def _files(top: Path) -> dict[str, bytes]:
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args", [[], ["--model", "../../../victim", "--method", "sociodemographic"]])
def test_a_model_named_like_a_path_writes_nothing_outside_the_project(
    tmp_path: Path, root: Path, testplugin_site: Path, args: list[str]
) -> None:
    # data/simulated/../../../victim is tmp/outer/victim: a folder of that name there,
    # with a file that the old atomic swap of the output folder would have deleted
    project = _project(tmp_path / "outer" / "project", root, "../../../victim")
    victim = tmp_path / "outer" / "victim" / "sociodemographic"
    victim.mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me")
    outside = {k: v for k, v in _files(tmp_path).items() if not k.startswith("outer/project/")}

    proc = subprocess.run([*CLI, "stage", "simulate", *args], cwd=project, env=_env(testplugin_site, project),
                          capture_output=True, text=True, timeout=120)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "params.yaml: models: " in line
    assert "model name '../../../victim' is not a valid name" in line
    assert NAME_PATTERN in line
    after = {k: v for k, v in _files(tmp_path).items() if not k.startswith("outer/project/")}
    assert after == outside  # nothing written, swapped or deleted beside the project
    assert not (project / "paid.log").exists()  # nothing sent
    assert not (project / "data/simulated").exists()


LONG = "x" * 9_000  # under the 10,000 characters a params value may have


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("models", "models", "../evil"),
        ("simulate", "simulate.models.0", "m;touch pwned;#"),
        ("simulate", "simulate.models.0", ".."),
        ("simulate", "simulate.models.0", "-rf"),
        ("simulate", "simulate.models.0", "a/b"),
        ("simulate", "simulate.models.0", "x" * 65),
        ("simulate", "simulate.methods", "generic;id"),
        ("descriptors", "descriptors.generator_model", "$(id)"),
        ("countries", "countries.select", "../JPN"),
        ("simulate", "simulate.models.0", LONG),
        ("models", "models", LONG),
    ],
)
def test_every_name_that_becomes_a_path_is_checked_when_params_are_read(
    tmp_path: Path, root: Path, section: str, key: str, value: str
) -> None:
    params: dict[str, Any] = {
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "models": {"ok": {"provider": "transformers", "model": "embedded"}},
        "simulate": {"models": ["ok"]},
        "descriptors": {"generator_model": "ok"},
    }
    if section == "models":
        params["models"][value] = params["models"]["ok"]
    elif key == "simulate.models.0":
        params["simulate"]["models"] = [value]
    elif key == "simulate.methods":
        params["simulate"]["methods"] = [value]
    elif section == "descriptors":
        params["descriptors"]["generator_model"] = value
    else:
        params["countries"] = {"select": [value]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, width=1_000_000))
    proc = subprocess.run([*CLI, "stage", "calibrate"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert line.startswith(f"error: params.yaml: {key}: ")
    assert value[:20] in line
    assert len(line) < 400  # the value is cut short: never 9,000 characters
    if "method" not in key and "countries" not in key:
        assert NAME_PATTERN in line


@pytest.mark.skipif(DVC is None, reason="dvc is not installed")
@pytest.mark.parametrize("model", ["fake", "m;touch pwned;#", "m';touch pwned;'"])
def test_under_dvc_repro_a_name_never_reaches_the_shell(
    tmp_path: Path, root: Path, testplugin_site: Path, model: str
) -> None:
    """The simulate stage of dvc.yaml (its matrix) run by `dvc repro` in a scratch DVC
    project, with the command that takes the entry from DVC_STAGE."""
    assert DVC is not None
    project = _project(tmp_path / "p", root, model)
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["simulate"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"simulate": {
        "matrix": stage["matrix"], "cmd": stage["cmd"],
        "outs": stage["outs"],
    }}}, sort_keys=False))
    env = _env(testplugin_site, project)
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=project, env=env, check=True, timeout=60)
    proc = subprocess.run([DVC, "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert not list(tmp_path.rglob("pwned")), proc.stdout + proc.stderr
    if model == "fake":
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (project / "data/simulated/fake/sociodemographic/answers.parquet").is_file()
    else:
        assert proc.returncode != 0
        assert "is not a valid name" in proc.stdout + proc.stderr
        assert not (project / "paid.log").exists()


def test_from_dvc_stage_outside_dvc_is_one_line(tmp_path: Path, root: Path) -> None:
    _project(tmp_path / "p", root, "fake")
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    proc = subprocess.run([*CLI, "stage", "simulate", "--from-dvc-stage"], cwd=tmp_path / "p", env=env,
                          capture_output=True, text=True, timeout=120)
    line = one_error_line(proc)
    assert "DVC_STAGE is not set" in line
    assert "pass --model and --method" in line


def test_the_pattern_fits_what_the_project_ships(root: Path) -> None:
    from valuesim.stages.simulate import from_dvc_stage

    params = yaml.safe_load((root / "params.yaml").read_text())
    for name in [*params["models"], *params["simulate"]["models"], *METHOD_NAMES]:
        assert name_problem(name) is None, name
    # the method of a DVC_STAGE is what follows the last "-"
    assert not [m for m in METHOD_NAMES if "-" in m]
    for model in ("smollm2", "a-b", "gpt-4o-mini"):
        for method in METHOD_NAMES:
            assert from_dvc_stage({"DVC_STAGE": f"simulate@{model}-{method}"}) == (model, method)
    assert from_dvc_stage({"DVC_STAGE": "sub/dvc.yaml:simulate@m-value"}) == ("m", "value")


def test_compare_panel_names_stay_short_for_any_params_key() -> None:
    # the keys a comparison varies come from each experiment's params.yaml
    key = "models." + "k" * 5_000 + ".precision"
    name = file_name("mae", [key, "../../etc/passwd"])
    assert len(name) < 255
    assert "/" not in name
    assert OWN_FILES.match(name)
    assert file_name("mae", [key]) != file_name("mae", [key + "x"])
