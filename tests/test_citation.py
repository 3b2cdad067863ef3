"""CITATION.cff and LICENSE agree with what pyproject.toml declares."""

from __future__ import annotations

import tomllib

import yaml

from tests.fixtures.paths import ROOT


def test_citation_matches_the_package() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("Improving Cross-Cultural Survey Simulation")
    assert next(a["family-names"] for a in paper["authors"]) == "Abels"


def test_license_is_the_declared_one() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert text.startswith("MIT License")
