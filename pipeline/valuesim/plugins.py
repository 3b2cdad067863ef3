"""Plugin manager: built-ins and entry-point plugins, registered through the same hooks.

``VALUESIM_PLUGINS`` (comma-separated entry-point names) limits which external
plugins load; ``VALUESIM_BLOCK_PLUGINS`` skips the named ones. Built-ins always load.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pluggy

from valuesim import hookspecs
from valuesim.errors import ProviderError

if TYPE_CHECKING:
    from valuesim.llm.provider import ProviderFactory
    from valuesim.personas.generators import DescriptorGeneratorFactory

ENTRY_POINT_GROUP = "valuesim"
# Modules that implement the hooks for the built-in provider and generators.
BUILTIN_PLUGINS = (
    "valuesim.llm.transformers_provider",
    "valuesim.personas.generators",
)


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def make_plugin_manager() -> pluggy.PluginManager:
    import importlib

    pm = pluggy.PluginManager("valuesim")
    pm.add_hookspecs(hookspecs)
    for mod in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(mod), name=mod)
    allow = _env_names("VALUESIM_PLUGINS")
    block = _env_names("VALUESIM_BLOCK_PLUGINS") or set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (allow is not None and ep.name not in allow) or ep.name in block:
            continue
        if pm.has_plugin(ep.name):
            continue
        pm.register(ep.load(), name=ep.name)
    pm.check_pending()
    return pm


@cache
def plugin_manager() -> pluggy.PluginManager:
    return make_plugin_manager()


def providers(pm: pluggy.PluginManager | None = None) -> dict[str, ProviderFactory]:
    found: dict[str, ProviderFactory] = {}
    (pm or plugin_manager()).hook.register_providers(register=lambda f: found.setdefault(f.name, f))
    return found


def descriptor_generators(
    pm: pluggy.PluginManager | None = None,
) -> dict[str, DescriptorGeneratorFactory]:
    found: dict[str, DescriptorGeneratorFactory] = {}
    (pm or plugin_manager()).hook.register_descriptor_generators(
        register=lambda f: found.setdefault(f.name, f)
    )
    return found


def get_provider_factory(name: str) -> ProviderFactory:
    found = providers()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ProviderError(
            f"unknown provider {name!r} (installed: {known}); "
            f"install its plugin, e.g. pip install ./plugins/valuesim-{name}"
        )
    return found[name]
