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


def _load(tmp_path: Path, text: str) -> object:
    f = tmp_path / "params.yaml"
    f.write_text(text)
    return load_params(f)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("personas:\n  seed: -1\n", r"personas\.seed: Input should be greater than or equal to 0"),
        ("analysis:\n  seed: -3\n", r"analysis\.seed: Input should be greater than or equal to 0"),
        ("analysis:\n  sample_sizes: [0, -2]\n", r"analysis\.sample_sizes\.0: .*greater than or equal to 1"),
        ("analysis:\n  sample_sizes: []\n", r"analysis\.sample_sizes: .*at least 1 item"),
        ("simulate:\n  methods: []\n", r"simulate\.methods: .*at least 1 item"),
        ("simulate:\n  models: []\n", r"simulate\.models: .*at least 1 item"),
        ("countries:\n  select: []\n", r"countries\.select: .*at least 1 item"),
        # YAML `true` is a bool: strict fields no longer take it as 1 / 1.0
        ("personas:\n  n_per_country: true\n", r"personas\.n_per_country: Input should be a valid integer"),
        ("simulate:\n  timeout_s: true\n", r"simulate\.timeout_s: Input should be a valid number"),
        ("analysis:\n  shapley: 1\n", r"analysis\.shapley: Input should be a valid boolean"),
        ("personas:\n  n_per_country: 0\n", r"personas\.n_per_country: .*greater than or equal to 1"),
        ("calibration:\n  t_grid_min: 8\n  t_grid_max: 2\n",
         r"calibration: .*t_grid_min \(8\.0\) must be below t_grid_max \(2\.0\)"),
        ("simulate:\n  prices: {m: {input: -1}}\n", r"simulate\.prices\.m\.input: .*greater than or equal to 0"),
    ],
)
def test_out_of_domain_values_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, text)
    assert "\n" not in str(info.value)


def test_floats_still_accept_integers(tmp_path: Path) -> None:
    p = _load(tmp_path, "simulate:\n  timeout_s: 30\ncalibration:\n  t_grid_min: 1\n  t_grid_max: 4\n")
    assert p.simulate.timeout_s == 30.0  # type: ignore[attr-defined]
    assert p.calibration.t_grid_max == 4.0  # type: ignore[attr-defined]


def test_sample_sizes_above_n_per_country_warn_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(tmp_path, "personas:\n  n_per_country: 4\nanalysis:\n  sample_sizes: [1, 4, 6, 10]\n")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "analysis.sample_sizes 6, 10 exceed personas.n_per_country (4)" in err[0]
    _load(tmp_path, "personas:\n  n_per_country: 10\nanalysis:\n  sample_sizes: [1, 4, 6, 10]\n")
    assert capsys.readouterr().err == ""


def test_cli_options_share_the_params_domains() -> None:
    from valuesim.config import PersonaParams, check_option

    assert check_option(PersonaParams, "seed", 5, "--seed") == 5
    with pytest.raises(ConfigError, match=r"^--seed -5: Input should be greater than or equal to 0$"):
        check_option(PersonaParams, "seed", -5, "--seed")
