"""Keys, Retry-After, redaction and the retry memo shared by API provider plugins."""

from __future__ import annotations

import email.utils
import time

import pytest

from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.api_support import (
    RetryMemo,
    api_key_from_env,
    http_status_error,
    redact,
    retry_after_seconds,
)
from valuesim.llm.provider_options import ProviderOptions


def test_key_from_first_set_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("A_KEY", raising=False)
    monkeypatch.setenv("B_KEY", "b")
    assert api_key_from_env("x", ["A_KEY", "B_KEY"]) == "b"
    monkeypatch.setenv("B_KEY", "  ")
    with pytest.raises(ProviderError, match="set A_KEY or B_KEY"):
        api_key_from_env("x", ["A_KEY", "B_KEY"])
    assert api_key_from_env("x", ["A_KEY"], optional=True) is None


def test_redact_removes_key_and_fragments() -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    msg = f"Incorrect API key provided: {key}\nor masked {key[:14]}****{key[-4:]}"
    out = redact(msg, key)
    assert key not in out
    assert key[:14] not in out
    assert "\n" not in out
    assert redact("nothing here", None) == "nothing here"


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < retry_after_seconds({"Retry-After": future}) <= 31  # type: ignore[operator]
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds(None) is None


def test_timeout_option() -> None:
    assert ProviderOptions.parse("p", {}).timeout_s == 120.0
    assert ProviderOptions.parse("p", {"timeout_s": "5"}).timeout_s == 5.0
    for bad in (0, -1, "soon", None):
        with pytest.raises(ProviderError, match="timeout_s must be a positive number") as info:
            ProviderOptions.parse("p", {"timeout_s": bad})
        assert "\n" not in str(info.value)


def test_http_status_errors_are_classified_and_redacted() -> None:
    key = "sk-secret-0123456789abcdef"
    rate = http_status_error("p", "https://x", 429, "slow", headers={"Retry-After": "3"}, key=key)
    assert isinstance(rate, TransientProviderError)
    assert rate.retry_after == 3.0
    assert isinstance(http_status_error("p", "https://x", 503, "busy"), TransientProviderError)
    quota = http_status_error("p", "https://x", 429, "no money", code="insufficient_quota")
    assert not isinstance(quota, TransientProviderError)
    assert "check billing" in str(quota)
    denied = http_status_error("p", "https://x", 401, f"bad key {key}", key=key)
    assert not isinstance(denied, TransientProviderError)
    assert str(denied) == "p: HTTP 401 from https://x: bad key ***; check the API key in the environment"


def test_retry_memo_pays_each_request_once() -> None:
    calls: list[str] = []
    fail = {"b"}

    def score(r: str) -> str:
        calls.append(r)
        if r in fail:
            fail.discard(r)
            raise RuntimeError(r)
        return r.upper()

    memo = RetryMemo()
    with pytest.raises(RuntimeError):
        memo.each(["a", "b", "c"], score)
    assert memo.each(["a", "b", "c"], score) == ["A", "B", "C"]
    assert calls == ["a", "b", "b", "c"]
    assert memo.each(["a"], score) == ["A"]
    assert calls[-1] == "a"
