"""Small pieces every API provider plugin needs: keys, timeouts, Retry-After, redaction.

Keys are read from environment variables only, when the provider is created, so a
missing key fails before the first request. A provider's own variable (for example
``OPENAI_API_KEY``) goes only to that provider's own host; any other server gets a key
only from an explicit ``options.api_key_env`` (see :func:`resolve_endpoint`). Nothing
here logs; callers pass every message that may echo a server response through
:func:`redact`, and every URL they show through :func:`redact_url`.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from valuesim.errors import ProviderError
from valuesim.urls import (  # noqa: F401 - the URL checks live below valuesim.config; re-exported here
    base_url_problem,
    is_loopback,
    redact_credentials_in,
    redact_url,
    redact_urls_in,
    url_credential,
)

# Per-request timeout when options.timeout_s is not set (see valuesim.llm.provider_options).
DEFAULT_TIMEOUT_S = 120.0
# A retry wait (a server's Retry-After, which is capped at the call timeout, or a backoff)
# longer than this is announced with one line on stderr, so a run never sits silent.
ANNOUNCE_WAIT_S = 5.0


def api_key_from_env(
    provider: str, env_vars: Sequence[str], *, optional: bool = False
) -> str | None:
    """The first non-empty variable of ``env_vars``; ProviderError when none is set."""
    for var in env_vars:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    if optional:
        return None
    names = " or ".join(env_vars)
    raise ProviderError(f"{provider}: no API key; set {names} in the environment")


# What the SDKs get instead of a key when none may be sent: they insist on a string,
# and this one is recognisably not a secret in a server's logs.
NO_KEY = "valuesim-no-key"
def direct_mounts(url: str) -> dict[str, None]:
    """httpx ``mounts`` that connect straight to ``url``'s host when it is a loopback one.

    HTTP_PROXY/ALL_PROXY apply to 127.0.0.1 too unless NO_PROXY names it, so a key sent
    over plain http "to localhost" would travel in clear to the proxy, and a proxy on
    another machine would reach its own loopback, not ours. Mounting ``None`` for the
    host makes httpx use its direct transport there whatever the environment says;
    other hosts keep the proxy settings (https through a proxy stays encrypted).
    """
    host = urlsplit(url).hostname
    if not host or not is_loopback(host):
        return {}
    return {f"all://[{host}]" if ":" in host else f"all://{host}": None}


@dataclass(frozen=True)
class Endpoint:
    """Where a provider sends requests, and the key it may send there (None: no key)."""

    url: str
    key: str | None
    #: the URL's host is the provider's own (``default_url``'s): account ids that come
    #: with its key (OpenAI's organization and project) may go there and nowhere else
    vendor_host: bool = False

    @property
    def where(self) -> str:
        """The URL as it may appear in errors, logs and reports."""
        return redact_url(self.url)

    @property
    def sdk_key(self) -> str:
        """The key for the SDK constructor: a placeholder when no key may be sent."""
        return self.key or NO_KEY

    @property
    def mounts(self) -> dict[str, None]:
        """The httpx client's ``mounts``: a loopback URL is never reached through a
        proxy (:func:`direct_mounts`), so plain http stays on this machine."""
        return direct_mounts(self.url)


def resolve_endpoint(
    provider: str,
    *,
    base_url: str | None,
    default_url: str,
    env_vars: Sequence[str],
    api_key_env: object = None,
) -> Endpoint:
    """The endpoint and key for a provider; ProviderError before any request when unsafe.

    Without ``base_url`` the provider's own ``default_url`` is used (passed to the SDK
    explicitly so an ambient ``*_BASE_URL`` variable cannot redirect the key). The
    provider's own ``env_vars`` are read only when the URL's host is the default one:
    an inherited ``OPENAI_API_KEY`` must not reach a local vLLM or a proxy. Any other
    host gets a key only from ``api_key_env``, which the user named on purpose. A key
    is never sent over plain http except to a loopback address, which clients reach
    directly, never through a proxy (:attr:`Endpoint.mounts`).
    """
    url = base_url or default_url
    problem = base_url_problem(url)
    if problem:
        raise ProviderError(f"{provider}: {problem}")
    parts = urlsplit(url)
    vendor_host = parts.hostname == urlsplit(default_url).hostname
    if api_key_env:
        key = api_key_from_env(provider, [str(api_key_env)])
    elif vendor_host:
        key = api_key_from_env(provider, env_vars)
    else:
        key = None
    if key and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ProviderError(
            f"{provider}: refusing to send an API key over plain http to {redact_url(url)}; "
            "use an https:// base_url (plain http is allowed only to localhost)"
        )
    return Endpoint(url=url, key=key, vendor_host=vendor_host)


def redact(message: str, *secrets: str | None) -> str:
    """``message`` with every secret (and its longer fragments) and URL credential removed."""
    message = redact_urls_in(message)
    for s in secrets:
        if s and len(s) >= 4:
            message = message.replace(s, "***")
            # Servers echo masked keys ("sk-abc...wxyz"); drop any 12+ character
            # slice of the key too so no recognisable piece survives.
            for width in range(min(len(s) - 1, 24), 11, -1):
                for start in range(0, len(s) - width + 1, 4):
                    message = message.replace(s[start : start + width], "***")
    return " ".join(message.split())  # one line


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryMemo:
    """Answers finished inside a ``score`` call that then failed on a later request.

    The engine retries a whole chunk when one request in it fails; remembering the
    finished ones until the chunk succeeds means a retry pays only for the rest.
    """

    def __init__(self) -> None:
        self._done: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def each(self, requests: Sequence[Hashable], score_one: Callable[[Any], Any]) -> list[Any]:
        results = []
        for r in requests:
            with self._lock:
                hit = self._done.get(r)
            if hit is None:
                hit = score_one(r)
                with self._lock:
                    self._done[r] = hit
            results.append(hit)
        with self._lock:
            for r in requests:
                self._done.pop(r, None)
        return results


def raise_sdk_error(
    sdk: Any, exc: Exception, *, provider: str, where: str, key: str | None, timeout: float
) -> None:
    """Raise the engine's error for ``exc`` from a Stainless SDK; return if it is not one.

    429 (except exhausted quota), 408, 409, 5xx, timeouts and connection failures
    become :class:`TransientProviderError` (with Retry-After); everything else a
    one-line :class:`ProviderError`. Keys are redacted and status errors are not
    chained, because the SDK's own message may quote the key back.
    """
    from valuesim.contracts import TransientProviderError

    if isinstance(exc, sdk.APITimeoutError):
        raise TransientProviderError(
            f"{provider}: no response from {where} within {timeout:g} s "
            "(raise options.timeout_s if the server is just slow)"
        ) from exc
    if isinstance(exc, sdk.APIConnectionError):
        raise TransientProviderError(f"{provider}: cannot reach {where}: {redact(str(exc), key)}") from exc
    if isinstance(exc, sdk.APIStatusError):
        raise _status_error(exc, provider=provider, where=where, key=key) from None
    if isinstance(exc, (ValueError, sdk.APIResponseValidationError, sdk.APIError)):
        # A body that is not JSON surfaces as a decode error from the SDK.
        raise ProviderError(
            f"{provider}: unreadable response from {where}: {redact(str(exc), key)[:200]}"
        ) from None


def _status_error(exc: Any, *, provider: str, where: str, key: str | None) -> Exception:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body)
    err = err if isinstance(err, dict) else {}
    return http_status_error(
        provider, where, int(exc.status_code),
        str(err.get("message") or getattr(exc, "message", "")),
        code=str(err.get("code") or err.get("type") or ""),
        headers=exc.response.headers, key=key,
    )


def http_status_error(
    provider: str,
    where: str,
    status: int,
    message: str,
    *,
    code: str = "",
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
) -> Exception:
    """The engine's error for an HTTP error status from any client (raise it ``from None``).

    429 (except exhausted quota), 408, 409, 529 and 5xx are worth retrying (with the
    server's Retry-After); anything else is a one-line ProviderError with a hint.
    ``message`` is the server's own text, redacted of ``key``.
    """
    from valuesim.contracts import TransientProviderError

    detail = redact(message, key)[:300]
    if status == 429 and code == "insufficient_quota":
        return ProviderError(f"{provider}: quota exhausted at {where}: {detail}; check billing")
    if status in (408, 409, 429, 529) or status >= 500:
        return TransientProviderError(
            f"{provider}: HTTP {status} from {where}: {detail}",
            retry_after=retry_after_seconds(headers),
        )
    hint = {
        401: "check the API key in the environment",
        403: "the key lacks access to this model",
        404: "check the model name and base_url",
    }.get(status, "check the request options")
    return ProviderError(f"{provider}: HTTP {status} from {where}: {detail}; {hint}")
