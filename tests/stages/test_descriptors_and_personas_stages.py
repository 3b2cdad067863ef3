"""The descriptors and personas stages, run in a scratch project directory."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.fixtures.personas import make_respondents
from valuesim.config import Params
from valuesim.errors import DataError, ProviderError
from valuesim.paths import GENERATED_DESCRIPTORS, PERSONAS, RESPONDENTS, SELECTED_COUNTRIES
from valuesim.stages import descriptors as descriptors_stage
from valuesim.stages import personas as personas_stage
from valuesim.survey.bank import load_bank


def _params(root: Path, **overrides) -> Params:
    raw = {
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "descriptors": {
            "path": str(root / "data/descriptors/value_handwritten.yaml"),
            "sociodemographic_path": str(root / "data/descriptors/sociodemographic.yaml"),
        },
        "personas": {"n_per_country": 3, "seed": 7},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return Params.model_validate(raw)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_handwritten_variant_copies_the_validated_set(root: Path, project: Path) -> None:
    descriptors_stage.run(_params(root))
    written = yaml.safe_load(GENERATED_DESCRIPTORS.read_text())
    shipped = yaml.safe_load((root / "data/descriptors/value_handwritten.yaml").read_text())
    assert written["items"] == shipped["items"]
    assert written["kind"] == "value"


@pytest.mark.parametrize(
    ("variant", "file"),
    [("handwritten", "value_handwritten.yaml"),
     ("handwritten_nohedge", "value_nohedge_handwritten.yaml"),
     ("handwritten_bare", "value_bare_handwritten.yaml")],
)
def test_offline_variants_write_their_own_hand_written_set(root: Path, project: Path, variant: str, file: str) -> None:
    # no model is defined: the hand-written variants must not need one
    descriptors_stage.run(_params(root, descriptors={"variant": variant, "generator_model": "undefined"}))
    written = yaml.safe_load(GENERATED_DESCRIPTORS.read_text())
    shipped = yaml.safe_load((root / "data/descriptors" / file).read_text())
    assert written["items"] == shipped["items"]
    assert written["name"] == variant


def test_offline_variant_with_its_file_missing_writes_nothing(root: Path, project: Path) -> None:
    # the contrast sets live beside descriptors.path; a lone copy of the default lacks them
    lone = project / "descriptors" / "value_handwritten.yaml"
    lone.parent.mkdir()
    lone.write_text((root / "data/descriptors/value_handwritten.yaml").read_text())
    params = _params(root, descriptors={"variant": "handwritten_bare", "path": str(lone)})
    with pytest.raises(DataError, match=r"value_bare_handwritten\.yaml not found"):
        descriptors_stage.run(params)
    assert not GENERATED_DESCRIPTORS.exists()


def test_generated_variant_with_unknown_provider_writes_nothing(root: Path, project: Path) -> None:
    params = _params(root, descriptors={"variant": "modular", "generator_model": "gen"},
                     models={"gen": {"provider": "nowhere", "model": "m"},
                             "smollm2": {"provider": "transformers", "model": "embedded"}})
    with pytest.raises(ProviderError, match="unknown provider 'nowhere'"):
        descriptors_stage.run(params)
    assert not GENERATED_DESCRIPTORS.exists()


def test_personas_stage_writes_every_kind_and_flag(root: Path, project: Path) -> None:
    params = _params(root)
    bank = load_bank(params.data.questions)
    RESPONDENTS.parent.mkdir(parents=True)
    make_respondents(bank, ["JPN", "COL", "DEU"], 30).write_parquet(RESPONDENTS)
    SELECTED_COUNTRIES.parent.mkdir(parents=True)
    SELECTED_COUNTRIES.write_text(json.dumps({"countries": ["JPN", "COL"], "how": "list", "extra": []}))
    with pytest.raises(DataError, match=r"descriptor set .*generated/value\.yaml not found"):
        personas_stage.run(params)
    descriptors_stage.run(params)
    personas_stage.run(params)
    out = pl.read_parquet(PERSONAS)
    assert out.columns == ["persona_id", "respondent_id", "country", "kind", "nationality", "text", "missing_items"]
    assert out.height == 2 * 3 * 3 * 2
    assert set(out["country"]) == {"JPN", "COL"}
    first = out["persona_id"].to_list()
    personas_stage.run(params)
    assert pl.read_parquet(PERSONAS)["persona_id"].to_list() == first
    personas_stage.run(_params(root, personas={"seed": 8}))
    assert pl.read_parquet(PERSONAS)["persona_id"].to_list() != first


def test_personas_stage_needs_its_inputs(root: Path, project: Path) -> None:
    with pytest.raises(DataError, match=r"respondents.parquet not found; run the extract stage"):
        personas_stage.run(_params(root))
