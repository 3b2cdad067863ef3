"""The simulate stage with the real embedded model: a tiny run, then a free rerun."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures.simulate_project import QUESTIONS, make_project
from valuesim.answer_tables import run_stats_path
from valuesim.config import Params
from valuesim.personas.build import write_persona_tables
from valuesim.stages import simulate


@pytest.mark.slow
def test_embedded_model_tiny_run_and_a_rerun_without_model_calls(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    Path("data/map/selected_countries.json").write_text(
        json.dumps({"countries": ["JPN"], "how": "list", "extra": []})
    )
    personas = pl.read_parquet("data/personas/personas.parquet")
    write_persona_tables(
        personas.filter(pl.col("respondent_id").is_in(["JPN-0", "JPN-1"])), Path("data/personas")
    )
    params = Params.model_validate({
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN"]},
        "simulate": {"models": ["smollm2"], "methods": ["value"], "cache_dir": ".cache"},
    })
    out = Path("data/simulated/smollm2/value")

    simulate.run(params, model="smollm2", method="value")
    answers = pl.read_parquet(out / "answers.parquet")
    assert answers.height == 2 * len(QUESTIONS)
    assert set(answers["flag"]) == {""}
    assert set(answers["estimator"]) == {"logprobs"}
    assert (answers["probs"].list.sum() - 1).abs().max() < 1e-6  # type: ignore[operator]
    assert answers["coverage"].is_between(0, 1, closed="right").all()
    first = json.loads(run_stats_path("smollm2", "value").read_text())
    assert (first["sent"], first["cache_hits"]) == (6, 0)
    assert first["prompt_tokens"] > 0
    tables = {n: (out / n).read_bytes() for n in ("answers.parquet", "population.parquet")}

    simulate.run(params, model="smollm2", method="value")
    second = json.loads(run_stats_path("smollm2", "value").read_text())
    assert (second["sent"], second["provider_calls"], second["cache_hits"]) == (0, 0, 6)
    assert {n: (out / n).read_bytes() for n in tables} == tables
