"""A stage whose `dvc repro` is killed stops; a second copy never runs beside the first.

Issue 22, item 6: SIGTERM to `dvc repro` (a CI cancel, a scheduler, `kill`) ended DVC
at once and left `valuesim stage simulate` running as an orphan, still paying; the next
`dvc repro` ran a second copy on the same outputs. Here a real `dvc repro` in a scratch
DVC project runs dvc.yaml's simulate stage through the test provider plugin (slowed by
VALUESIM_TEST_DELAY, one line per paid answer in VALUESIM_TEST_LOG); the test sends
SIGTERM to DVC alone and watches the real child process. A second `valuesim stage
simulate` on the same outputs, beside a first that is still running, must refuse with
one line naming the first one's pid and pay for nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures import simulate_project
from tests.fixtures.fault_checks import one_error_line
from valuesim.llm.cache import ResponseCache

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
VENV_BIN = Path(sys.executable).parent
# `make test` runs the venv's python without its bin on PATH: look beside it first
DVC = shutil.which("dvc", path=str(VENV_BIN)) or shutil.which("dvc")
N_REQUESTS = len(simulate_project.COUNTRIES) * simulate_project.PER_COUNTRY * len(simulate_project.QUESTIONS)
# One chunk of 2 in flight, DELAY_S each: an orphan left alone pays for all 18 answers
# within ~15 s; a stopped one within the grace period of the chunk in flight.
DELAY_S = 1.5
HANG_S = 60.0  # only to catch a hang: the orphan finishes well within this


def env_for(site: Path, log: Path, delay: float) -> dict[str, str]:
    """The test provider plugin installed, on top of the PYTHONPATH this test runs with,
    and `valuesim` (for DVC's shell) on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUESIM_") and k != "DVC_STAGE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env.update(VALUESIM_TEST_LOG=str(log), VALUESIM_TEST_DELAY=str(delay))
    return env


def make_dvc_project(directory: Path) -> Path:
    directory.mkdir(parents=True)
    simulate_project.make_project(directory)
    (directory / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": simulate_project.COUNTRIES},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1", "concurrency": 1}},
        "simulate": {"models": ["fake"], "methods": ["value"], "cache_dir": ".cache", "batch_size": 2},
    }))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["simulate"]
    (directory / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"simulate": {
        "matrix": stage["matrix"], "cmd": stage["cmd"], "outs": stage["outs"],
    }}}, sort_keys=False))
    return directory


def paid(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def cached(project: Path) -> int:
    with ResponseCache(project / ".cache") as cache:
        return len(cache)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X")  # a zombie has exited: nobody reaped it


def simulate_children(ancestor: int) -> list[int]:
    """The `valuesim stage simulate` processes below ``ancestor``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stage" not in cmdline or b"simulate" not in cmdline:
            continue
        p = pid
        while (s := _stat(p)) is not None and s[1] > 1:
            if s[1] == ancestor:
                found.append(pid)
                break
            p = s[1]
    return found


# DVC runs the command with $SHELL -c: bash execs it (the stage is DVC's child), dash
# (/bin/sh, DVC's choice when SHELL is unset) forks (the stage is the shell's child).
SHELLS = [s for s in ("/bin/bash", "/bin/sh") if Path(s).exists()]


@pytest.mark.skipif(DVC is None or not Path("/proc/self/stat").exists(),
                    reason="needs dvc and Linux /proc to follow DVC's child process")
@pytest.mark.parametrize("shell", SHELLS)
def test_a_killed_dvc_repro_leaves_no_stage_running_and_the_next_one_pays_nothing_twice(
    tmp_path: Path, testplugin_site: Path, shell: str
) -> None:
    assert DVC is not None
    project = make_dvc_project(tmp_path / "p")
    log = project / "paid.log"
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=project, env=env_for(testplugin_site, log, 0),
                   check=True, timeout=60)
    # its own session, so that the cleanup below can reach whatever is left of it
    env = {**env_for(testplugin_site, log, DELAY_S), "SHELL": shell}
    dvc = subprocess.Popen([DVC, "repro"], cwd=project, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    child: int | None = None
    try:
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline and dvc.poll() is None and (child is None or not paid(log)):
            children = simulate_children(dvc.pid)
            child = children[0] if children else child
            time.sleep(0.05)
        assert child is not None, "no simulate stage under dvc repro"
        assert paid(log), "the simulate stage never got going under dvc repro"

        dvc.send_signal(signal.SIGTERM)  # DVC alone, as `kill <pid>` or a scheduler does
        dvc.wait(timeout=30)
        died = time.monotonic()
        while alive(child) and time.monotonic() < died + HANG_S:
            time.sleep(0.05)
        assert not alive(child), "the stage outlived its dvc repro"
        print(f"{shell}: the stage exited {time.monotonic() - died:.2f} s after dvc repro died")
        out, _ = dvc.communicate(timeout=30)  # the child held DVC's stdout: all of it now
    finally:
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
        if dvc.poll() is None:
            os.killpg(dvc.pid, signal.SIGKILL)
            dvc.wait()

    first = paid(log)
    # it stopped: far from done, nothing written, and every answer it paid for is cached
    assert len(first) < N_REQUESTS, out
    assert not (project / "data/simulated/fake/value").exists()
    assert cached(project) == len(first), out
    lines = [line for line in out.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, out
    assert re.match(rf"^interrupted \(SIGTERM: dvc repro \(pid {dvc.pid}\) that ran this stage exited\): "
                    rf"simulate fake/value: {len(first)} answers received in this run are saved", lines[0]), lines

    # the next dvc repro finishes the job and pays only for the rest
    rerun = subprocess.run([DVC, "repro"], cwd=project, env=env_for(testplugin_site, log, 0),
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    every = paid(log)
    assert len(every) == N_REQUESTS
    assert len(set(every)) == N_REQUESTS  # nothing paid twice
    assert (project / "data/simulated/fake/value/answers.parquet").is_file()


SIMULATE = [*CLI, "stage", "simulate", "--model", "fake", "--method", "value"]


def test_a_second_copy_on_the_same_outputs_refuses_naming_the_first(
    tmp_path: Path, testplugin_site: Path
) -> None:
    project = make_dvc_project(tmp_path / "p")
    first_log, second_log = project / "first.log", project / "second.log"
    # the first copy's calls outlast the test: it is running throughout
    first = subprocess.Popen(SIMULATE, cwd=project, env=env_for(testplugin_site, first_log, 120),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        assert "to send in" in first.stderr.readline()  # it holds the outputs and is sending
        second = subprocess.run(SIMULATE, cwd=project, env=env_for(testplugin_site, second_log, 0),
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    line = one_error_line(second)
    assert second.returncode == 2
    assert line == (
        f"error: data/simulated/fake/value is being written by another valuesim stage simulate "
        f"(pid {first.pid}, perhaps left running by a stopped dvc repro); let it finish or stop it "
        f"with `kill {first.pid}`, then rerun"
    )
    assert paid(second_log) == []  # nothing sent
    assert not (project / "data/simulated/fake/value").exists()


HOLD_S = 3.0
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_second_copy_waits_for_a_first_that_is_stopping_then_runs(
    tmp_path: Path, testplugin_site: Path
) -> None:
    """The next `dvc repro` right after a kill finds the first copy still landing its
    calls in flight (the engine's grace period, ~2 s): it waits for the lock rather than
    refuse. Here a process holds the lock for HOLD_S, as such a stopping copy does."""
    from valuesim.stage_lock import LOCKS, WAIT_S, lock_path

    assert HOLD_S < WAIT_S
    project = make_dvc_project(tmp_path / "p")
    log = project / "paid.log"
    path = lock_path(project / "data/simulated/fake/value", project / ".cache" / LOCKS)
    path.parent.mkdir(parents=True)
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(HOLD_S)],
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(SIMULATE, cwd=project, env=env_for(testplugin_site, log, 0),
                                capture_output=True, text=True, timeout=120)
        assert holder.poll() == 0  # it ran only once the lock was free
    assert second.returncode == 0, second.stderr
    assert len(paid(log)) == N_REQUESTS
