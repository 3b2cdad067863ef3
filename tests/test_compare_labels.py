"""Experiment labels: flattened params and the keys that differ."""

from __future__ import annotations

import pytest

from tests.fixtures.compare_runs import project_params
from valuesim.compare.labels import (
    UNSET,
    differing_keys,
    experiment_labels,
    flatten,
    label_text,
    shared_params,
)
from valuesim.errors import ConfigError


def test_flatten_gives_dotted_keys_and_yaml_like_values() -> None:
    flat = flatten({"prompts": {"guidance": "minimal"}, "simulate": {"methods": ["country", "value"],
                    "map_items": False, "prices": {}}, "models": {"m": {"temperature": None}}})
    assert flat == {
        "prompts.guidance": "minimal", "simulate.methods": "[country, value]",
        "simulate.map_items": "false", "simulate.prices": "{}", "models.m.temperature": "null",
    }


def test_the_real_params_differ_only_where_changed() -> None:
    flat = [flatten(project_params(**{"prompts.guidance": g})) for g in ("social_science", "minimal")]
    assert differing_keys(flat) == ["prompts.guidance"]
    shared = shared_params(flat)
    assert "prompts.guidance" not in shared
    assert shared["descriptors.variant"] == "handwritten"
    labels = experiment_labels(["a", "b"], flat)
    assert [label_text(lab) for lab in labels] == ["prompts.guidance=social_science", "prompts.guidance=minimal"]


def test_a_key_one_experiment_lacks_is_unset_there() -> None:
    flat = [{"a": "1", "b": "x"}, {"a": "1"}]
    assert experiment_labels(["new", "old"], flat) == [{"b": "x"}, {"b": UNSET}]


def test_no_difference_is_an_error_naming_the_fix() -> None:
    flat = [flatten(project_params()), flatten(project_params())]
    with pytest.raises(ConfigError, match=r"same params, so there is nothing to compare.*dvc exp run -S"):
        experiment_labels(["a", "b"], flat)


def test_two_experiments_with_the_same_params_are_an_error() -> None:
    flat = [flatten(project_params(**{"prompts.guidance": g})) for g in ("minimal", "decisive", "minimal")]
    with pytest.raises(ConfigError, match=r"'one' and 'three' have the same params; leave one"):
        experiment_labels(["one", "two", "three"], flat)
