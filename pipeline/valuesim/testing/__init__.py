"""Test helpers for provider plugins.

- :func:`local_http_server` / :class:`JSONHandler`: run a wire-format fake of a
  vendor API on 127.0.0.1 (see ``plugins/*/tests/fake_*_server.py``).
- :class:`ProviderConformance` (:mod:`valuesim.testing.conformance`): the fault
  suite every provider plugin runs against its fake in a few lines (flaky,
  rate-limited, garbage and hung servers, a restart that pays nothing twice, a
  key that never leaks). It needs pytest, so it loads only when asked for.
- :func:`serve_fake_vllm` / :class:`FakeVLLM` (:mod:`valuesim.testing.fake_vllm`): a
  vLLM- (or SGLang-) wire-format server whose log-probabilities come from a local
  model through transformers, extension fields (``continue_final_message``) included.
"""

from __future__ import annotations

from typing import Any

from valuesim.testing._server import JSONHandler, local_http_server

__all__ = [
    "FakeServer", "FakeVLLM", "JSONHandler", "ProviderConformance", "local_http_server",
    "serve_fake_vllm",
]


def __getattr__(name: str) -> Any:
    if name in ("ProviderConformance", "FakeServer"):
        from valuesim.testing import conformance

        return getattr(conformance, name)
    if name in ("FakeVLLM", "serve_fake_vllm"):
        from valuesim.testing import fake_vllm

        return getattr(fake_vllm, name)
    raise AttributeError(f"module 'valuesim.testing' has no attribute {name!r}")
