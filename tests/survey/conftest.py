"""Fixtures over the real WVS files: a few countries, read by path (symlinked into a
tmp dir, never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.paths import SHIPPED_BANK
from valuesim.survey.bank import QuestionBank, load_bank
from valuesim.survey.readers import ExtractResult, read_source

FEW = ("JPN", "TWN", "COL")


@pytest.fixture(scope="session")
def bank() -> QuestionBank:
    return load_bank(SHIPPED_BANK)


@pytest.fixture(scope="session")
def few_dir(wvs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wvs_few")
    for c in FEW:
        (d / f"{c}.csv.gz").symlink_to(wvs_dir / f"{c}.csv.gz")
    return d


@pytest.fixture(scope="session")
def few(few_dir: Path, bank: QuestionBank) -> ExtractResult:
    return read_source(few_dir, bank)
