"""The prompting methods, as one table.

A method fixes how a prompt is built: which guidance text opens the system message,
which persona (if any) follows it and whether the country is named. Config
validation, the prompts, the persona tables, the simulate stage, the map prompts,
the findings and the figures all read these facts from :data:`METHODS` instead of
parsing method names, so a new method is one row here plus, when it needs a new
wording, that wording in ``valuesim/resources/guidance.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from valuesim.errors import ConfigError
from valuesim.names import shorten

PersonaKind = Literal["value", "sociodemographic", "fewshot"]
# Which guidance opens the system message: the assistant prompt ("default"), our
# wording without a country ("generic"), or a survey template of the paper's Table 1
# ("survey"; its country-free wording when the method leaves nationality out).
Opening = Literal["default", "generic", "survey"]

# The persona kinds in the order personas.parquet lists them (respondent x kind x
# nationality), which is not the order of the table below.
PERSONA_KINDS: tuple[PersonaKind, ...] = ("value", "sociodemographic", "fewshot")


@dataclass(frozen=True, slots=True)
class Method:
    """One prompting method (paper sections 4.1-4.2 and the ablations of 5.2).

    ``persona`` is None for the country-level methods, which ask once per country.
    ``nationality``: the prompt names the country (the ``_nonat`` persona methods
    leave it out, to measure what the country name alone contributes).
    ``asks_map_items``: the method may be asked the Inglehart-Welzel map items; the
    value and fewshot personas *state* the respondent's answers to those items, so
    their map position would only echo the persona text back (circular).
    ``label``: how findings and figures name the method.
    """

    name: str
    persona: PersonaKind | None
    nationality: bool
    asks_map_items: bool
    opening: Opening
    label: str

    @property
    def country_blind(self) -> bool:
        """Nothing in the prompt depends on the country: every country gets the same answers."""
        return self.persona is None and not self.nationality


def _persona_method(kind: PersonaKind, *, nationality: bool, asks_map_items: bool) -> Method:
    name = kind if nationality else f"{kind}_nonat"
    return Method(name, kind, nationality, asks_map_items, "survey", name)


# The order is the order of every listing of methods (error messages, persona tables).
METHODS: tuple[Method, ...] = (
    Method("default", None, False, True, "default", "default"),
    Method("generic", None, False, True, "generic", "generic"),
    Method("country", None, True, True, "survey", "country"),
    _persona_method("sociodemographic", nationality=True, asks_map_items=True),
    _persona_method("value", nationality=True, asks_map_items=False),
    _persona_method("fewshot", nationality=True, asks_map_items=False),
    _persona_method("sociodemographic", nationality=False, asks_map_items=True),
    _persona_method("value", nationality=False, asks_map_items=False),
    _persona_method("fewshot", nationality=False, asks_map_items=False),
)
METHOD_NAMES: tuple[str, ...] = tuple(m.name for m in METHODS)
_BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}


def unknown_method_message(name: str) -> str:
    return f"unknown method {shorten(name)}; choose from {', '.join(METHOD_NAMES)}"


def get_method(name: str) -> Method:
    """The table row of ``name``; a ConfigError listing the choices for any other name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(unknown_method_message(name)) from None


def check_method(name: str) -> str:
    """``name`` itself when it is a method (for option checks that keep the name)."""
    return get_method(name).name


def persona_kind(name: str) -> tuple[PersonaKind | None, bool]:
    """(persona kind, nationality) of a method: the key of its rows in personas.parquet."""
    method = get_method(name)
    return method.persona, method.nationality


def asks_map_items(name: str) -> bool:
    """Whether a method's map position is meaningful (see :class:`Method`)."""
    return get_method(name).asks_map_items


def country_blind(name: str) -> bool:
    """Whether a run's method names no country (False for names outside the table)."""
    method = _BY_NAME.get(name)
    return method is not None and method.country_blind


def method_label(name: str) -> str:
    """How findings and figures name a run's method; other names (references) unchanged."""
    method = _BY_NAME.get(name)
    return method.label if method is not None else name
