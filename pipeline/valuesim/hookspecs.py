"""The plugin contract.

A plugin is a module named in the ``valuesim`` entry-point group that implements
one or both hooks below with ``@valuesim.hookimpl`` (defined here). Built-in providers and
generators register through the same hooks as external ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from valuesim.contracts import DescriptorGeneratorFactory, ProviderFactory

hookspec = pluggy.HookspecMarker("valuesim")
#: Marker for plugin implementations (re-exported as ``valuesim.hookimpl``).
hookimpl = pluggy.HookimplMarker("valuesim")


@hookspec
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    """Register model providers by calling ``register(factory)`` once per provider.

    A factory has a ``name`` (used as ``provider:`` in params), ``capabilities``
    and a ``create(spec)`` method returning a provider; it must import its SDK
    lazily, inside ``create``, so that listing providers needs no SDK.
    """


@hookspec
def register_descriptor_generators(register: Callable[[DescriptorGeneratorFactory], None]) -> None:
    """Register descriptor generators by calling ``register(factory)`` once each.

    A factory has a ``name`` (used as ``descriptors.generator`` in params) and a
    ``generate(...)`` method returning a validated descriptor set.
    """
