"""A real study for the browsing tests: the planted end-to-end study (real stages extract
-> personas -> simulate through a provider plugin -> calibrate -> evaluate -> report, see
tests/fixtures/planted_e2e.py), built once per session, and its SQLite export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import planted_e2e as pe


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pe.Project]:
    """The study and what was planted in it (every prompt's answer distribution)."""
    with pe.planted_plugin(tmp_path_factory.mktemp("site")):
        yield pe.planted_project(tmp_path_factory.mktemp("browse") / "study")


@pytest.fixture(scope="session")
def exported(planted: pe.Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sqlite_utils", reason="sqlite-utils is not installed; pip install 'valuesim[browse]'")
    from valuesim.browse.sqlite_export import export_sqlite
    from valuesim.study import load_study

    return export_sqlite(load_study(planted.root), tmp_path_factory.mktemp("export") / "study.db").database
