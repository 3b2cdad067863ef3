"""Experiment labels: the params that differ between experiments, as dotted keys.

``{"prompts": {"guidance": "minimal"}}`` flattens to ``{"prompts.guidance": "minimal"}``;
lists stay one value (``simulate.methods=[generic, country, value]``), since a list
of methods is one choice, not several params. A key that one experiment lacks
(a param added to the code later) counts as differing, with the value ``(unset)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from valuesim.errors import ConfigError

UNSET = "(unset)"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()  # as YAML writes it, so labels read like `-S` values
    return "null" if value is None else str(value)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as ``{"a.b.c": "value"}``; every value is rendered as text."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = _text(value)
    return flat


def differing_keys(flat: Sequence[Mapping[str, str]]) -> list[str]:
    """The keys whose value is not the same in every experiment, in first-seen order."""
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [k for k in keys if len({f.get(k, UNSET) for f in flat}) > 1]


def shared_params(flat: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The keys with one value in every experiment (the comparison's fixed settings)."""
    varying = set(differing_keys(flat))
    return {k: v for k, v in flat[0].items() if k not in varying} if flat else {}


def experiment_labels(names: Sequence[str], flat: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each experiment's values of the differing keys.

    Raises a one-line error when nothing differs (there is nothing to compare) or when
    two experiments have the same params (their cells would be pooled twice)."""
    keys = differing_keys(flat)
    if not keys:
        raise ConfigError(
            f"the experiments {', '.join(names)} have the same params, so there is nothing to compare; "
            "give experiments that differ (e.g. `dvc exp run -S prompts.guidance=minimal`)"
        )
    labels = [{k: f.get(k, UNSET) for k in keys} for f in flat]
    seen: dict[tuple[str, ...], str] = {}
    for name, label in zip(names, labels, strict=True):
        values = tuple(label.values())
        if values in seen:
            raise ConfigError(
                f"experiments {seen[values]!r} and {name!r} have the same params; "
                "leave one of them out of the comparison"
            )
        seen[values] = name
    return labels


def label_text(label: Mapping[str, str]) -> str:
    """``prompts.guidance=minimal, descriptors.variant=handwritten``."""
    return ", ".join(f"{k}={v}" for k, v in label.items())
