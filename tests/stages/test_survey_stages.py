"""extract -> validate -> human on real files in a tmp project; their error paths."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from valuesim import paths
from valuesim.config import Params, load_params
from valuesim.errors import ContractError, DataError
from valuesim.stages import extract, human, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def few_dir(wvs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real countries, symlinked (never copied) into a tmp dir."""
    d = tmp_path_factory.mktemp("wvs_few_stages")
    for c in ("JPN", "TWN", "COL"):
        (d / f"{c}.csv.gz").symlink_to(wvs_dir / f"{c}.csv.gz")
    return d


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    for d in ("data/questions", "validation/contracts"):
        shutil.copytree(ROOT / d, tmp_path / d)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def _params(source: Path) -> Params:
    Path("params.yaml").write_text(f"data:\n  source: {source}\nfilter:\n  max_missing: 0.2\n")
    return load_params("params.yaml")


def test_real_pipeline(project: Path, few_dir: Path) -> None:
    params = _params(few_dir)
    extract.run(params)
    meta = json.loads(paths.EXTRACT_META.read_text())
    assert meta == {
        "synthetic": False,
        "source": str(few_dir),
        "countries": {"COL": 1520, "JPN": 1353, "TWN": 1223},
        "citation": meta["citation"],
    }
    assert "doi:10.14281/18241.20" in meta["citation"]
    validate.run(params)
    assert json.loads((paths.VALIDATION_DIR / "respondents.json").read_text())["success"]

    with pytest.raises(DataError, match=r"selected_countries\.json not found; run the map stage"):
        human.run(params)
    paths.SELECTED_COUNTRIES.parent.mkdir(parents=True)
    paths.SELECTED_COUNTRIES.write_text(
        json.dumps({"countries": ["JPN", "TWN"], "how": "list", "extra": []})
    )
    human.run(params)
    kept = json.loads(paths.KEPT_QUESTIONS.read_text())
    assert {d["question"] for d in kept["dropped"]} == {"Q210", "Q211", "Q236"}  # JPN > 20% missing
    summary = pl.read_parquet(paths.HUMAN_SUMMARY)
    assert set(summary["country"]) == {"JPN", "TWN"}

    paths.SELECTED_COUNTRIES.write_text(json.dumps({"countries": ["JPN", "GBR"]}))
    with pytest.raises(DataError, match="GBR have no respondents"):
        human.run(params)


def test_validate_fails_on_count_mismatch(project: Path, few_dir: Path) -> None:
    params = _params(few_dir)
    extract.run(params)
    meta = json.loads(paths.EXTRACT_META.read_text())
    meta["countries"]["JPN"] += 1
    paths.EXTRACT_META.write_text(json.dumps(meta))
    with pytest.raises(ContractError, match="country_counts"):
        validate.run(params)
    assert not json.loads((paths.VALIDATION_DIR / "respondents.json").read_text())["success"]


def test_stages_need_their_inputs(project: Path, tmp_path: Path) -> None:
    params = _params(tmp_path / "missing_dir")
    with pytest.raises(DataError, match="not found"):
        extract.run(params)
    assert not paths.RESPONDENTS.exists()
    with pytest.raises(DataError, match="run the extract stage first"):
        validate.run(params)
    with pytest.raises(DataError, match="run the extract stage first"):
        human.run(params)
