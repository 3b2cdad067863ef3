"""URLs fit to check and to show: base_url checks, credential detection, redaction.

Below :mod:`valuesim.config` on purpose: the config validates a fleet's URLs when
params are read, and this module imports nothing of valuesim, so checking a URL loads
no provider code (``valuesim.llm.api_support``, which needs ``valuesim.contracts``,
which names ``valuesim.config``'s ModelSpec: an import circle before this module).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are credentials (Google takes ``?key=``, others
# ``api_key=``, signed URLs ``sig=``/``token=``); matched on the lower-cased name.
_SECRET_PARAM = re.compile(r"key|token|secret|pass|auth|sig|credential|session", re.IGNORECASE)
# A URL in prose: no trailing sentence punctuation, which belongs to the text.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]]")


def redact_url(url: str | None) -> str:
    """``url`` fit to show: userinfo (``user:pw@``) and credential query values become ``***``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_urls_in(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); no DNS lookup."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_credential(url: str) -> str | None:
    """What secret ``url`` carries in itself (``user:password@``, or a query parameter
    named like ``key=``/``token=``), or None; the secret itself is not repeated."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if "@" in parts.netloc:
        return "a user:password@ part"
    names = [
        k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAM.search(k)
    ]
    return f"the {names[0]}= query parameter" if names else None


def redact_credentials_in(text: str) -> str:
    """``text`` with each URL that carries a credential passed through :func:`redact_url`;
    other URLs stay exactly as written (so values that differ only there still differ)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m[0]) if url_credential(m[0]) else m[0], text)


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server's base_url (one line), or None when it can.

    Checked for every URL of a fleet (``base_url`` as a list) when params are read,
    and for the one URL a provider is created with.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return f"base_url {redact_url(url)!r} is not an http(s) URL; write it like https://host:port/v1"
    return None
