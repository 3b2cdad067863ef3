"""User-given output paths: never written over what is not a regular file, and one line
when the file system refuses (read-only mount, full disk, /proc).

Every case runs the real `valuesim` command in a subprocess against a real target: a
character device made with mknod (the same device as /dev/full, in a temporary folder,
so a regression replaces a copy and not the machine's /dev/full), a FIFO, a folder,
a tmpfs remounted read-only, a tmpfs too small for the output, and /proc.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures import mounts
from tests.fixtures.compare_runs import cells_frame, project_params, write_result
from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.paths import ROOT, SHIPPED_BANK

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
DEMO = ROOT / "data/demo/aggregates.json"
# ``valuesim map`` on the demo population, small enough to be quick
MAP = ["map", "--source", str(DEMO), "--questions", str(SHIPPED_BANK), "--demo-n", "60"]
GENERATE = ["demo", "generate", "--aggregates", str(DEMO), "--questions", str(SHIPPED_BANK), "--n", "200"]
# too small for a map PNG, a 200-per-country sample or a comparison's figures, big
# enough for the writability probe: the failure comes mid-write, not up front
SMALL = "64k"


def valuesim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def hidden(folder: Path) -> list[str]:
    """Temporaries left behind (every temporary valuesim makes starts with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- targets that exist and are not regular files -------------------------------------


def _device(path: Path) -> None:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
    except PermissionError:
        pytest.skip("mknod is not permitted (needs root): no device to aim at")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.mkdir()
    (path / "keep.txt").write_text("mine")


NOT_FILES: dict[str, tuple[Callable[[Path], None], Callable[[int], bool], str]] = {
    "device": (_device, stat.S_ISCHR, "a character device"),
    "fifo": (_fifo, stat.S_ISFIFO, "a FIFO (named pipe)"),
    "folder": (_folder, stat.S_ISDIR, "a directory"),
}


@pytest.mark.parametrize("kind", sorted(NOT_FILES))
@pytest.mark.parametrize("command", ["map --plot", "demo generate --out"])
def test_a_target_that_is_not_a_regular_file_is_refused_and_kept(
    kind: str, command: str, tmp_path: Path
) -> None:
    make, is_kind, what = NOT_FILES[kind]
    target = tmp_path / ("target.png" if command.startswith("map") else "target.csv")
    make(target)
    before = target.lstat()
    args = [*MAP, "--plot", str(target)] if command.startswith("map") else [*GENERATE, "--out", str(target)]
    line = one_error_line(valuesim(*args, cwd=tmp_path))
    option = command.split()[-1]
    assert line == (f"error: {option} {target} is {what}, not a regular file; give another path "
                    "(valuesim replaces only regular files)")
    after = target.lstat()
    assert is_kind(after.st_mode)
    assert after.st_ino == before.st_ino
    if kind == "device":
        assert os.major(after.st_rdev) == 1
        assert os.minor(after.st_rdev) == 7
    if kind == "folder":
        assert (target / "keep.txt").read_text() == "mine"
    assert hidden(tmp_path) == []


def test_a_symlink_to_a_device_is_a_device(tmp_path: Path) -> None:
    _device(tmp_path / "dev")
    (tmp_path / "map.png").symlink_to(tmp_path / "dev")
    line = one_error_line(valuesim(*MAP, "--plot", str(tmp_path / "map.png"), cwd=tmp_path))
    assert "is a character device, not a regular file" in line
    assert (tmp_path / "map.png").is_symlink()
    assert stat.S_ISCHR((tmp_path / "dev").stat().st_mode)


def test_demo_fit_checks_its_out_before_reading_the_survey(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "aggregates.json")
    # the source does not exist: the output is checked first, so that is what is said
    line = one_error_line(valuesim("demo", "fit", "--source", str(tmp_path / "no-wvs"),
                                   "--out", str(tmp_path / "aggregates.json"), cwd=tmp_path))
    assert "--out" in line
    assert "is a FIFO (named pipe), not a regular file" in line
    assert stat.S_ISFIFO((tmp_path / "aggregates.json").stat().st_mode)


def test_compare_out_that_is_a_device_is_refused(tmp_path: Path) -> None:
    a, b = _experiments(tmp_path)
    _device(tmp_path / "cmp")
    line = one_error_line(valuesim("compare", str(a), str(b), "--out", str(tmp_path / "cmp"), cwd=tmp_path))
    assert line == f"error: --out {tmp_path / 'cmp'} is a character device, not a folder; give a folder"
    assert stat.S_ISCHR((tmp_path / "cmp").stat().st_mode)


# -- file systems that refuse: read-only, full, /proc ----------------------------------


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs holding an old output of every command, to check it survives."""
    with mounts.tmpfs(tmp_path / "disk", size=SMALL) as mnt:
        (mnt / "map.png").write_bytes(b"old png")
        (mnt / "sample.csv").write_text("old csv\n")
        (mnt / "cmp").mkdir()
        (mnt / "cmp" / "index.html").write_text("old page")
        yield mnt


def _experiments(tmp_path: Path) -> tuple[Path, Path]:
    a = write_result(tmp_path / "g-a", project_params(**{"prompts.guidance": "social_science"}),
                     cells_frame({}, 1))
    b = write_result(tmp_path / "g-b", project_params(**{"prompts.guidance": "minimal"}),
                     cells_frame({"value": 0.05}, 2))
    return a, b


def _olds_unchanged(mnt: Path) -> None:
    assert (mnt / "map.png").read_bytes() == b"old png"
    assert (mnt / "sample.csv").read_text() == "old csv\n"
    assert (mnt / "cmp" / "index.html").read_text() == "old page"
    assert sorted(p.name for p in (mnt / "cmp").iterdir()) == ["index.html"]


def _run_each(mnt: Path, tmp_path: Path) -> dict[str, str]:
    a, b = _experiments(tmp_path)
    return {
        "map --plot": one_error_line(valuesim(*MAP, "--plot", str(mnt / "map.png"), cwd=tmp_path)),
        "demo generate --out": one_error_line(valuesim(*GENERATE, "--out", str(mnt / "sample.csv"), cwd=tmp_path)),
        "demo generate --out (new)": one_error_line(
            valuesim(*GENERATE, "--out", str(mnt / "new.parquet"), cwd=tmp_path)),
        "compare --out": one_error_line(
            valuesim("compare", str(a), str(b), "--out", str(mnt / "cmp"), cwd=tmp_path)),
    }


def test_a_read_only_mount_is_one_line_and_keeps_the_old_outputs(disk: Path, tmp_path: Path) -> None:
    mounts.read_only(disk)
    for what, line in _run_each(disk, tmp_path).items():
        assert f"cannot write to {disk}: read-only file system; make {disk} writable" in line, what
    _olds_unchanged(disk)
    assert not (disk / "new.parquet").exists()
    assert hidden(disk) == []


def test_a_full_disk_mid_write_is_one_line_and_leaves_no_partial_file(disk: Path, tmp_path: Path) -> None:
    # room for the probe and some bytes, not for any whole output: each fails while writing
    for what, line in _run_each(disk, tmp_path).items():
        assert "no space left on the device; free space on the disk holding" in line, what
        assert line.startswith("error: cannot write "), what  # the target, not a temporary
        assert ".tmp" not in line, what
    _olds_unchanged(disk)
    assert not (disk / "new.parquet").exists()
    assert hidden(disk) == []
    assert hidden(disk / "cmp") == []


def test_a_filled_disk_is_refused_before_the_work(disk: Path, tmp_path: Path) -> None:
    mounts.fill(disk)
    for what, line in _run_each(disk, tmp_path).items():
        assert f"cannot write to {disk}: no space left on the device" in line, what
    _olds_unchanged(disk)
    assert hidden(disk) == []


@pytest.mark.parametrize("command", ["map --plot", "demo generate --out", "compare --out"])
def test_proc_is_one_line(command: str, tmp_path: Path) -> None:
    target = Path("/proc/valuesim-test-output")
    if command == "map --plot":
        args = [*MAP, "--plot", f"{target}.png"]
    elif command == "demo generate --out":
        args = [*GENERATE, "--out", f"{target}.csv"]
    else:
        a, b = _experiments(tmp_path)
        args = ["compare", str(a), str(b), "--out", str(target)]
    line = one_error_line(valuesim(*args, cwd=tmp_path))
    assert line.startswith(f"error: {command.split()[-1]} {target}")
    assert "cannot write to /proc: it takes no new files (a virtual file system like /proc or /sys)" in line
    assert not any(Path("/proc").glob("valuesim-test-output*"))
