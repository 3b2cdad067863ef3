"""A small simulate project on disk (made-up personas, no survey rows), for the stage tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from valuesim.personas.build import SCHEMA, persona_id, write_persona_tables

QUESTIONS = ["Q1", "Q6", "Q48"]  # 4, 4 and 10 answers
COUNTRIES = ["JPN", "DEU"]
PER_COUNTRY = 3


def write_personas(path: Path, value_text: str = "You value {i} things.", flag_country: str = "") -> None:
    """Made-up personas (no survey rows): every kind, with and without nationality."""
    rows = []
    for c in COUNTRIES:
        for i in range(PER_COUNTRY):
            rid = f"{c}-{i}"
            for kind in ("value", "sociodemographic", "fewshot"):
                for nat in (True, False):
                    text = value_text.format(i=i) if kind == "value" else f"You are {kind} {i}."
                    if c == flag_country and kind == "value":
                        text += " [no-coverage]"
                    rows.append({
                        "persona_id": persona_id(rid, kind, nat), "respondent_id": rid,
                        "country": c, "kind": kind, "nationality": nat, "text": text,
                        "missing_items": [],
                    })
    write_persona_tables(pl.DataFrame(rows, schema=SCHEMA), path.parent)


def make_project(directory: Path) -> None:
    (directory / "data/human").mkdir(parents=True)
    (directory / "data/map").mkdir(parents=True)
    (directory / "data/human/kept_questions.json").write_text(
        json.dumps({"kept": QUESTIONS, "dropped": [], "max_missing": 0.2})
    )
    (directory / "data/map/selected_countries.json").write_text(
        json.dumps({"countries": COUNTRIES, "how": "list", "extra": []})
    )
    write_personas(directory / "data/personas/personas.parquet")
