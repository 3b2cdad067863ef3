"""Fixtures: a fake OpenAI server on 127.0.0.1 and a recognisable fake key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai_server import FAKE_KEY, FakeOpenAI, serve


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def fake(key: str) -> Iterator[FakeOpenAI]:
    with serve() as server:
        yield server

