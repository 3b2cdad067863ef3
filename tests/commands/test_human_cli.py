"""`valuesim human` end to end through the console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from valuesim.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def src(wvs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli_wvs")
    for c in ("JPN", "TWN"):
        (d / f"{c}.csv.gz").symlink_to(wvs_dir / f"{c}.csv.gz")
    return d


def test_json(src: Path) -> None:
    out = _run("human", "--source", str(src), "--countries", "JPN,TWN", "--questions", "Q6,Q49")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [(r["country"], r["question"]) for r in records] == [
        ("JPN", "Q6"),
        ("JPN", "Q49"),
        ("TWN", "Q6"),
        ("TWN", "Q49"),
    ]
    raw = pd.read_csv(src / "TWN.csv.gz", usecols=["W_WEIGHT", "Q49"])
    ok = raw[raw["Q49"] > 0]
    twn49 = records[3]
    assert twn49["mean"] == pytest.approx((ok["Q49"] * ok["W_WEIGHT"]).sum() / ok["W_WEIGHT"].sum())
    assert list(twn49["distribution"]) == [str(c) for c in range(1, 11)]
    assert sum(twn49["distribution"].values()) == pytest.approx(1.0)
    assert twn49["n"] == len(ok)


def test_csv_and_table(src: Path) -> None:
    out = _run(
        "human", "--source", str(src), "--countries", "JPN", "--questions", "Q6", "--format", "csv"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "country,question,mean,n,missing_share,code,share"
    assert len(lines) == 1 + 4
    table = _run(
        "human",
        "--source",
        str(src),
        "--countries",
        "JPN",
        "--questions",
        "Q6",
        "--format",
        "table",
    )
    assert table.returncode == 0
    assert "JPN" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--countries", "XYZ", "--questions", "Q6"), "countries XYZ not in"),
        (("--countries", "JPN", "--questions", "Q999"), "unknown question id 'Q999'"),
    ],
)
def test_errors_are_one_line(src: Path, args: tuple[str, ...], message: str) -> None:
    out = _run("human", "--source", str(src), *args)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert message in errors[0]
    assert "Traceback" not in out.stderr


def test_missing_source(tmp_path: Path) -> None:
    out = _run(
        "human", "--source", str(tmp_path / "none"), "--countries", "JPN", "--questions", "Q6"
    )
    assert out.returncode == 2
    assert "error: WVS source" in out.stderr
    assert "Traceback" not in out.stderr


def test_demo_aggregates_source() -> None:
    """The same sources as `personas show --source`: the demo aggregates give the
    synthetic population the extract stage draws (here 300 per country)."""
    out = _run(
        "human", "--source", "data/demo/aggregates.json", "--countries", "JPN",
        "--questions", "Q6", "--demo-n", "300",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    [record] = json.loads(out.stdout)
    assert record["country"] == "JPN"
    assert 250 < record["n"] <= 300  # Q6 answered by most of the 300
