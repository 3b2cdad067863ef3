"""The OpenAI provider end to end through the `simulate` stage, against the fake server."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from fake_openai_server import FakeOpenAI

from valuesim.answer_tables import run_stats_path
from valuesim.config import Params
from valuesim.personas.build import write_persona_tables
from valuesim.stages import simulate

ROOT = Path(__file__).resolve().parents[3]


def _inputs(project: Path) -> None:
    (project / "data/human").mkdir(parents=True)
    (project / "data/map").mkdir(parents=True)
    (project / "data/personas").mkdir(parents=True)
    (project / "data/human/kept_questions.json").write_text(
        json.dumps({"kept": ["Q1", "Q48"], "dropped": [], "max_missing": 0.2})
    )
    (project / "data/map/selected_countries.json").write_text(
        json.dumps({"countries": ["JPN"], "how": "list", "extra": []})
    )
    write_persona_tables(pl.DataFrame({
        "persona_id": ["JPN-v-1", "JPN-v-2"], "respondent_id": ["r1", "r2"],
        "country": ["JPN", "JPN"], "kind": ["value", "value"], "nationality": [True, True],
        "text": ["You value tradition.", "You value freedom."], "missing_items": [[], []],
    }, schema_overrides={"missing_items": pl.List(pl.Utf8)}), project / "data/personas")


def test_simulate_stage_with_openai(fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate({
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": ["JPN"]},
        "models": {"gpt": {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.url}},
        "simulate": {"methods": ["value"], "models": ["gpt"], "cache_dir": str(tmp_path / "cache"),
                     "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}},
    })
    simulate.run(params, model="gpt", method="value")
    out = tmp_path / "data/simulated/gpt/value"
    answers = pl.read_parquet(out / "answers.parquet")
    assert answers.height == 4  # 2 personas x 2 questions
    assert set(answers["estimator"]) == {"top_logprobs"}
    q48 = answers.filter(pl.col("question") == "Q48")
    assert (q48["coverage"] > 0.9).all()
    # what this run sent and paid is machine- and cache-dependent: it goes to the run
    # stats, not to the DVC-tracked summary.json
    stats = json.loads(run_stats_path("gpt", "value").read_text())
    assert stats["sent"] == 4
    assert stats["cost_usd"] > 0
    assert "sent" not in json.loads((out / "summary.json").read_text())
    assert fake.counts["paid"] == 4
    assert "You value tradition." in fake.bodies[0]["messages"][0]["content"]
    simulate.run(params, model="gpt", method="value")  # rerun: all from the cache
    assert fake.counts["paid"] == 4
