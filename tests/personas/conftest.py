"""Fixtures for persona tests: a tiny bank built from the bank schema and descriptor sets
for it (built in tests/fixtures/personas.py, which also makes synthetic respondents)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.personas import TINY_BANK, socio_set_dict, value_set_dict
from valuesim.personas.descriptors import DescriptorSet
from valuesim.survey.bank import QuestionBank


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
