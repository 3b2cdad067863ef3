"""Shared pytest fixtures. Real WVS files are read by path and never copied into the repo.

The helpers behind fixtures live in tests/fixtures/ (see its __init__.py); this file
only turns them into pytest fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.paths import ROOT, SHARED_WVS, SHIPPED_BANK
from valuesim.survey.bank import QuestionBank, load_bank


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shipped_bank() -> QuestionBank:
    """The WVS-7 question bank the project ships (data/questions/wvs7.yaml)."""
    return load_bank(SHIPPED_BANK)


@pytest.fixture(scope="session")
def wvs_dir() -> Path:
    """The real WVS-7 v5 per-country files; skips when they are absent."""
    d = SHARED_WVS / "v5"
    if not d.is_dir():
        pytest.skip(f"real WVS-7 files not found at {d} (they are never shipped; see README)")
    return d


@pytest.fixture(scope="session")
def codebook_path() -> Path:
    p = SHARED_WVS / "codebook.json"
    if not p.exists():
        pytest.skip(f"WVS-7 codebook not found at {p}")
    return p


@pytest.fixture
def testplugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that, on sys.path or PYTHONPATH, installs the test provider plugin.

    It holds ``valuesim_testprovider.py`` (tests/llm/testplugin) and a dist-info with
    an entry point in the ``valuesim`` group, which importlib.metadata discovers like
    any installed distribution; subprocesses see it through PYTHONPATH.
    """
    import shutil

    site = tmp_path_factory.mktemp("site")
    shutil.copy(ROOT / "tests" / "llm" / "testplugin" / "valuesim_testprovider.py", site)
    dist = site / "valuesim_testprovider-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: valuesim-testprovider\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text("[valuesim]\ntestprovider = valuesim_testprovider\n")
    return site


@pytest.fixture
def test_provider_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, testplugin_site: Path
) -> Iterator[Path]:
    """The test provider plugin installed for this test only (no other plugin filter), its
    paid-request log at ``tmp_path / "paid.log"``; yields the log's path."""
    from valuesim import plugins

    monkeypatch.syspath_prepend(str(testplugin_site))
    for var in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    log = tmp_path / "paid.log"
    monkeypatch.setenv("VALUESIM_TEST_LOG", str(log))
    plugins.plugin_manager.cache_clear()
    yield log
    plugins.plugin_manager.cache_clear()
