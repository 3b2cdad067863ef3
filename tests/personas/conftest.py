"""Fixtures for persona tests: a tiny bank built from the bank schema, descriptor sets
for it, and synthetic respondents (random codes, never WVS rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from valuesim.personas.descriptors import DescriptorSet
from valuesim.survey.bank import QuestionBank, load_bank

TEN = [{"code": 1, "label": "Never justifiable"}, *({"code": c, "label": str(c)} for c in range(2, 10)),
       {"code": 10, "label": "Always justifiable"}]
TINY_BANK = {
    "version": "test",
    "source": "tests",
    "items": [
        {"id": "T1", "roles": ["target"], "label": "Religion", "text": "How important is Religion in your life?",
         "answers": [{"code": 1, "label": "Very important"}, {"code": 2, "label": "Rather important"},
                     {"code": 3, "label": "Not very important"}, {"code": 4, "label": "Not at all important"}]},
        {"id": "T2", "roles": ["target"], "label": "Divorce", "text": "Divorce", "answers": TEN},
        {"id": "P1", "roles": ["persona"], "label": "Trust", "text": "Can most people be trusted?",
         "answers": [{"code": 1, "label": "Most people can be trusted"},
                     {"code": 2, "label": "Need to be very careful"}]},
        {"id": "P2", "roles": ["persona"], "label": "Abortion", "text": "Is abortion justifiable?", "answers": TEN},
        {"id": "P3", "roles": ["persona"], "label": "Autonomy", "text": "Which child qualities?",
         "answers": [{"code": c, "label": f"level {c}"} for c in (-2, -1, 0, 1, 2)]},
        {"id": "S1", "roles": ["sociodemographic"], "label": "Sex", "text": "Sex",
         "answers": [{"code": 1, "label": "Male"}, {"code": 2, "label": "Female"}]},
        {"id": "AGE", "roles": ["sociodemographic"], "label": "Age", "text": "How old are you?", "numeric": True},
    ],
}


def value_set_dict() -> dict:
    return {
        "name": "tiny", "kind": "value",
        "items": {
            "P1": {1: "You trust most people.", 2: "You are careful with people."},
            "P2": {c: f"You rate abortion {c} of 10." for c in range(1, 11)},
            "P3": {c: f"You sit at autonomy {c}." for c in (-2, -1, 0, 1, 2)},
        },
    }


def socio_set_dict() -> dict:
    return {
        "name": "tiny-socio", "kind": "sociodemographic",
        "items": {"S1": {1: "You are a man.", 2: "You are a woman."}},
        "numeric": {"AGE": {"template": "You are {value} years old."}},
    }


def make_respondents(bank: QuestionBank, countries: list[str], n: int, seed: int = 1,
                     missing: float = 0.1) -> pl.DataFrame:
    """Synthetic respondents in the extract contract (random codes, some missing)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in countries:
        for i in range(n):
            row: dict[str, object] = {"country": c, "respondent_id": f"{c}-{i:04d}", "weight": 1.0}
            for item in bank.items:
                if rng.random() < missing:
                    row[item.id] = None
                elif item.numeric:
                    row[item.id] = int(rng.integers(18, 90))
                else:
                    row[item.id] = int(rng.choice(item.codes))
            rows.append(row)
    schema = {"country": pl.Utf8, "respondent_id": pl.Utf8, "weight": pl.Float64,
              **{i.id: pl.Int64 for i in bank.items}}
    return pl.DataFrame(rows, schema=schema)


@pytest.fixture
def tiny_bank() -> QuestionBank:
    return QuestionBank.model_validate(TINY_BANK)


@pytest.fixture
def tiny_value_set() -> DescriptorSet:
    return DescriptorSet.model_validate(value_set_dict())


@pytest.fixture
def tiny_socio_set() -> DescriptorSet:
    return DescriptorSet.model_validate(socio_set_dict())


@pytest.fixture
def tiny_bank_file(tmp_path: Path) -> Path:
    p = tmp_path / "bank.yaml"
    p.write_text(yaml.safe_dump(TINY_BANK))
    return p


@pytest.fixture(scope="session")
def shipped_bank(root: Path) -> QuestionBank:
    return load_bank(root / "data" / "questions" / "wvs7.yaml")
