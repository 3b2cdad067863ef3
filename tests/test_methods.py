"""The table of prompting methods: names, order and what each row says."""

from __future__ import annotations

import pytest

from valuesim.errors import ConfigError
from valuesim.methods import (
    METHOD_NAMES,
    METHODS,
    PERSONA_KINDS,
    country_blind,
    get_method,
    method_label,
    persona_kind,
)


def test_names_and_order_are_the_studys() -> None:
    assert METHOD_NAMES == (
        "default", "generic", "country",
        "sociodemographic", "value", "fewshot",
        "sociodemographic_nonat", "value_nonat", "fewshot_nonat",
    )
    assert len(set(METHOD_NAMES)) == len(METHODS)


def test_each_row_says_persona_nationality_and_opening() -> None:
    assert persona_kind("value_nonat") == ("value", False)
    assert persona_kind("fewshot") == ("fewshot", True)
    assert persona_kind("country") == (None, True)
    assert persona_kind("generic") == (None, False)
    assert {m.opening for m in METHODS if m.persona is None} == {"default", "generic", "survey"}
    assert all(m.opening == "survey" for m in METHODS if m.persona is not None)
    assert {m.persona for m in METHODS if m.persona is not None} == set(PERSONA_KINDS)
    # every persona kind comes with and without nationality
    assert {(m.persona, m.nationality) for m in METHODS if m.persona} == {
        (k, n) for k in PERSONA_KINDS for n in (True, False)
    }


def test_country_blind_methods_name_no_country() -> None:
    assert [m.name for m in METHODS if m.country_blind] == ["default", "generic"]
    assert not country_blind("midpoint")  # a reference, not a method


def test_labels_fall_back_to_the_name() -> None:
    assert method_label("value") == get_method("value").label
    assert method_label("other_countries") == "other_countries"


def test_unknown_method_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'vibes'; choose from default, generic,"):
        get_method("vibes")
