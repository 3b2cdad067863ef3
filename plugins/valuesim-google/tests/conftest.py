"""Fixtures: a fake Gemini API server on 127.0.0.1 and a recognisable fake key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_google_server import FAKE_KEY, FakeGemini, serve


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def fake(key: str) -> Iterator[FakeGemini]:
    with serve() as server:
        yield server
