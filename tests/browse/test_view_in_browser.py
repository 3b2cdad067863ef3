"""`valuesim view` in a real headless browser (issue 23, item 3): the real command serves
the exported study with Datasette; Chromium, driven by Playwright, loads the page, filters
with a facet, and follows a cell to its answers and an answer to its prompt and persona.

Skips, saying what to install, without Datasette (`pip install 'valuesim[browse]'`),
Playwright (`pip install playwright`) or a Chromium (`apt-get install chromium`, or
`playwright install chromium`; VALUESIM_CHROMIUM names another binary)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # Playwright is an optional test dependency
    from playwright.sync_api import Browser, Page

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
START_TIMEOUT_S = 60  # a generous bound on Datasette's start, to catch a hang


def _need(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed; {install}")


def _chromium() -> str | None:
    """A Chromium binary; None: Playwright's own download (``playwright install chromium``)."""
    named = os.environ.get("VALUESIM_CHROMIUM")
    if named:
        return named
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_view(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`valuesim view` (the real command, in its own process group) on a free loopback port,
    once it serves; its output (Datasette's access log) goes to a file, which never fills
    up like a pipe."""
    _need("datasette", "pip install 'valuesim[browse]'")
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "view", str(db), "--port", str(port), "--no-open"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/versions.json", timeout=5):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                pytest.fail(f"valuesim view did not serve {url}: {log.read_text()[-2000:]}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The command and the Datasette it started (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def served(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = _start_view(exported, tmp_path_factory.mktemp("view") / "view.log")
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(served: str) -> Iterator[Browser]:
    _need("playwright", "pip install playwright (and apt-get install chromium)")
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        except Error as exc:
            pytest.skip(f"no Chromium to drive ({str(exc).splitlines()[0]}); apt-get install chromium "
                        "or playwright install chromium")
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, served: str) -> Iterator[Page]:
    context = browser.new_context(base_url=served)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def _count(db: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute(sql, args).fetchone()[0])


def test_the_study_page_loads_with_its_descriptions(page: Page, exported: Path) -> None:
    page.goto("/")
    assert "valuesim study" in page.title()  # the metadata's title
    page.goto("/study")
    for name in ("scoreboard", "cells", "distributions", "answers", "prompts", "personas"):
        assert page.locator(f"a[href='/study/{name}']").count() >= 1, name
    page.goto("/study/cells")
    assert "the errors of the simulated population" in page.inner_text("body")
    # the column descriptions are on the page (Datasette's column metadata)
    assert "Wasserstein-1 distance between the simulated and human distributions" in page.content()


def test_a_facet_filters_the_cells(page: Page, exported: Path) -> None:
    page.goto("/study/cells")
    total = _count(exported, "SELECT count(*) FROM cells")
    assert f"{total:,} rows" in page.inner_text("body")
    # click "value" in the method facet
    page.locator(".facet-info[data-column='method'] a", has_text="value").first.click()
    page.wait_for_url("**method=value**")
    want = _count(exported, "SELECT count(*) FROM cells WHERE method = 'value'")
    assert 0 < want < total
    assert f'{want:,} rows where method = "value"' in page.inner_text("body")
    shown = page.locator("td.col-method").all_inner_texts()
    assert len(shown) == want
    assert {s.strip() for s in shown} == {"value"}


def test_a_cell_leads_to_its_answers_and_an_answer_to_its_prompt(page: Page, exported: Path) -> None:
    with sqlite3.connect(exported) as con:
        cell_id, n = con.execute(
            "SELECT cell_id, n_personas FROM cells WHERE method = 'value' ORDER BY cell_id LIMIT 1").fetchone()
        answer_id, prompt_id, persona_id = con.execute(
            "SELECT answer_id, prompt_id, persona_id FROM answers WHERE cell_id = ? ORDER BY answer_id LIMIT 1",
            (cell_id,)).fetchone()
        system, text = con.execute(
            "SELECT p.system, s.text FROM prompts p JOIN personas s ON s.persona_id = p.persona_id "
            "WHERE p.prompt_id = ?", (prompt_id,)).fetchone()
    # the cell's row page links to its answers ("Links from other tables":
    # "N rows from cell_id in answers")
    page.goto("/study/cells?cell_id=" + cell_id.replace("/", "%2F"))
    page.locator("td.col-cell_id a").first.click()
    page.wait_for_url("**/study/cells/**")
    link = page.locator("li", has_text="from cell_id in answers").locator("a")
    assert link.inner_text().strip() == f"{n} rows"
    link.click()
    page.wait_for_url("**/study/answers?**")
    assert page.locator("td.col-answer_id").count() == n
    # on the answers page an answer's prompt_id links to its prompt: the exact system message
    row = page.locator("tr", has=page.locator("td.col-answer_id", has_text=answer_id))
    row.locator("td.col-prompt_id a").click()
    page.wait_for_url("**/study/prompts/**")
    assert page.locator("td.col-system").inner_text().strip() == system.strip()
    assert text in system  # the persona's descriptor, as the system message carries it
    # and its persona_id to the persona and its descriptor text
    page.go_back()
    row = page.locator("tr", has=page.locator("td.col-answer_id", has_text=answer_id))
    row.locator("td.col-persona_id a").click()
    page.wait_for_url("**/study/personas/**")
    assert page.locator("td.col-text").inner_text().strip() == text.strip()
    assert page.locator("td.col-persona_id").inner_text().strip() == persona_id


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_stopping_view_stops_datasette(exported: Path, tmp_path: Path) -> None:
    """SIGTERM to the `valuesim view` process alone (not its group) ends the Datasette it
    started: nothing keeps serving the study after the command is gone."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs /proc to find the Datasette process")
    proc, url = _start_view(exported, tmp_path / "view.log")
    try:
        servers = _children(proc.pid)
        assert len(servers) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        deadline = time.monotonic() + 30
        while Path(f"/proc/{servers[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{servers[0]}").exists()
        with pytest.raises(urllib.error.URLError, match="refused"):
            urllib.request.urlopen(f"{url}/-/versions.json", timeout=5)
    finally:
        _stop(proc)
