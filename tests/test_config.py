from pathlib import Path

import pytest

from valuesim.config import Params, load_params
from valuesim.errors import ConfigError


def test_shipped_params_parse(root: Path) -> None:
    p = load_params(root / "params.yaml")
    assert p.simulate.models == ["smollm2"]
    assert p.models["smollm2"].provider == "transformers"


def test_typo_is_rejected_with_one_line(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("filter:\n  max_mising: 0.2\n")
    with pytest.raises(ConfigError, match=r"filter\.max_mising.*typo"):
        load_params(f)


def test_unknown_method_rejected() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        Params.model_validate({"simulate": {"methods": ["vibes"]}})


def test_simulate_model_must_be_defined() -> None:
    with pytest.raises(ValueError, match="not defined under models"):
        Params.model_validate({"simulate": {"models": ["gpt"]}})


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
