"""Plugin manager: built-ins and entry-point plugins, registered through the same hooks.

External plugins are modules named in the ``valuesim`` entry-point group.
``VALUESIM_PLUGINS`` (comma-separated entry-point names) limits which of them load
(empty: none); ``VALUESIM_BLOCK_PLUGINS`` skips the named ones. Built-ins always load.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import TYPE_CHECKING

import pluggy

from valuesim import hookspecs
from valuesim.errors import ConfigError, ProviderError

if TYPE_CHECKING:
    from valuesim.contracts import DescriptorGeneratorFactory, ProviderFactory

ENTRY_POINT_GROUP = "valuesim"
ALLOW_ENV = "VALUESIM_PLUGINS"
BLOCK_ENV = "VALUESIM_BLOCK_PLUGINS"
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


def make_plugin_manager(builtins: tuple[str, ...] = BUILTIN_PLUGINS) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and every allowed entry-point plugin.

    A plugin that fails to import or implements a hook that does not exist is a
    ConfigError naming it and how to skip it, not a traceback.
    """
    pm = pluggy.PluginManager("valuesim")
    pm.add_hookspecs(hookspecs)
    for mod in builtins:
        pm.register(importlib.import_module(mod), name=mod)
    allow = _env_names(ALLOW_ENV)
    block = _env_names(BLOCK_ENV) or set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (allow is not None and ep.name not in allow) or ep.name in block:
            continue
        if pm.has_plugin(ep.name):
            continue  # the same distribution found twice on sys.path
        skip = f"fix or reinstall it, or skip it with {BLOCK_ENV}={ep.name}"
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"plugin {ep.name!r} ({ep.value}) is invalid: {exc}; {skip}") from exc
        except Exception as exc:
            raise ConfigError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}; {skip}"
            ) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
        raise ConfigError(
            f"plugin {name!r} implements a hook valuesim does not define ({exc}); "
            f"update it, or skip it with {BLOCK_ENV}={name}"
        ) from exc
    return pm


@cache
def plugin_manager() -> pluggy.PluginManager:
    return make_plugin_manager()


def _collect(register_hook: pluggy.HookCaller, kind: str) -> dict[str, object]:
    found: dict[str, object] = {}

    def register(factory: object) -> None:
        name = getattr(factory, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a plugin registered a {kind} without a name: {factory!r}")
        if name in found and found[name] is not factory:
            first = getattr(found[name], "package", "?")
            second = getattr(factory, "package", "?")
            raise ConfigError(
                f"two plugins register the {kind} {name!r} (packages {first} and {second}); "
                f"uninstall one or block it with {BLOCK_ENV}"
            )
        found[name] = factory

    register_hook(register=register)
    return found


def providers(pm: pluggy.PluginManager | None = None) -> dict[str, ProviderFactory]:
    return _collect((pm or plugin_manager()).hook.register_providers, "provider")  # type: ignore[return-value]


def descriptor_generators(
    pm: pluggy.PluginManager | None = None,
) -> dict[str, DescriptorGeneratorFactory]:
    return _collect(  # type: ignore[return-value]
        (pm or plugin_manager()).hook.register_descriptor_generators, "descriptor generator"
    )


def get_provider_factory(name: str, pm: pluggy.PluginManager | None = None) -> ProviderFactory:
    found = providers(pm)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ProviderError(
            f"unknown provider {name!r} (installed: {known}); "
            f"install its plugin, e.g. pip install ./plugins/valuesim-{name}"
        )
    return found[name]


@dataclass(frozen=True)
class ProviderInfo:
    """One row of `valuesim providers`."""

    name: str
    package: str
    version: str
    logprobs: bool
    top_logprobs: int
    sampling: bool
    text_generation: bool
    batch_api: bool
    answer_rules: tuple[str, ...] = ()  # what its log-probability estimators measure; first = default


def provider_infos(pm: pluggy.PluginManager | None = None) -> list[ProviderInfo]:
    rows = []
    for name, factory in sorted(providers(pm).items()):
        package = getattr(factory, "package", "") or "?"
        try:
            ver = version(package)
        except (PackageNotFoundError, ValueError):
            ver = "?"
        caps = factory.capabilities
        rows.append(
            ProviderInfo(
                name=name,
                package=package,
                version=ver,
                logprobs=caps.logprobs,
                top_logprobs=caps.top_logprobs,
                sampling=caps.sampling,
                text_generation=caps.text_generation,
                batch_api=caps.batch_api,
                answer_rules=tuple(getattr(caps, "answer_rules", ("answer_start",))),
            )
        )
    return rows
