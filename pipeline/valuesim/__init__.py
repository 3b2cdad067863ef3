"""valuesim: simulate survey populations with calibrated value personas."""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin authors: decorate ``register_providers`` and
#: ``register_descriptor_generators`` implementations with it.
hookimpl = pluggy.HookimplMarker("valuesim")

__all__ = ["__version__", "hookimpl"]
