"""The notebook API below the aggregates (issue 23, item 3): scoreboard, distributions,
cells, per-country results, tests, personas and prompts, on a real study (the planted
end-to-end study: real stages, a provider with known answers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures import planted_e2e as pe
from tests.fixtures.planted_provider import prompt_key
from valuesim.errors import DataError
from valuesim.llm.types import ChatMessage
from valuesim.report import captions
from valuesim.report.scoreboard import scoreboard_html
from valuesim.study import load_study


def test_scoreboard_is_the_reports_table(planted: pe.Project) -> None:
    study = load_study(planted.root)
    board = study.scoreboard()
    page = (planted.root / "reports/index.html").read_text(encoding="utf-8")
    # the rendered values: the report stage's page holds exactly this frame, rendered
    assert scoreboard_html(board, captions.SCOREBOARD_NOTE) in page
    # every run once, ranked by error, then the references (lowest error first)
    runs = [f"{m}/{k}" for m, k in study.runs()]
    methods = board.filter(pl.col("kind") == "method")
    assert sorted(f"{m}/{k}" for m, k in methods.select("model", "method").rows()) == sorted(runs)
    for (_,), grp in methods.group_by(["model"]):
        assert grp.sort("rank")["mae"].to_list() == sorted(grp["mae"].to_list())
    refs = board.filter(pl.col("kind") == "reference")
    assert refs["mae"].to_list() == sorted(refs["mae"].to_list())
    assert set(refs["method"]) == {"midpoint", "other_countries", "uniform"}


def test_distributions_join_human_and_simulated_on_the_code(planted: pe.Project) -> None:
    study = load_study(planted.root)
    dist = study.distributions()
    assert dist.columns[:5] == ["model", "method", "country", "question", "code"]
    cells = study.cells().filter(pl.col("model") != "reference")
    assert dist.select("model", "method", "country", "question").unique().height == cells.height
    for (model, method, country, question), rows in dist.group_by(["model", "method", "country", "question"]):
        rows = rows.sort("code")
        # the human side is the respondents' shares, computed by the fixture with plain NumPy
        np.testing.assert_allclose(rows["human"].to_numpy(), planted.human[(country, question)], atol=1e-12)
        assert rows["code"].to_list() == planted.codes[question]
        for col in ("simulated", "calibrated", "plain"):
            assert rows[col].sum() == pytest.approx(1.0)
        # the cell's MAE follows from its rows: |mean simulated - mean human| / range
        r = np.asarray(planted.codes[question], dtype=float)
        mae = abs(rows["simulated"].to_numpy() @ r - rows["human"].to_numpy() @ r) / (r[-1] - r[0])
        cell = cells.filter((pl.col("model") == model) & (pl.col("method") == method)
                            & (pl.col("country") == country) & (pl.col("question") == question))
        assert cell["mae"].item() == pytest.approx(mae, abs=1e-12)


def test_cells_country_results_and_tests(planted: pe.Project) -> None:
    study = load_study(planted.root)
    cells = study.cells()
    n_cells = len(pe.COUNTRIES) * len(pe.QUESTIONS)
    assert cells.filter(pl.col("model") == pe.MODEL).height == len(pe.METHODS) * n_cells
    assert cells.filter(pl.col("model") == "reference").height == 3 * n_cells
    # persona counts: one prompt per country for country, PERSONAS per country otherwise
    counts = dict(cells.filter(pl.col("model") == pe.MODEL).group_by("method").agg(pl.col("n_personas").max()).rows())
    assert counts == {pe.A: 1, pe.B: pe.PERSONAS, pe.C: pe.PERSONAS, pe.TEMPERATURE: pe.PERSONAS}
    by_country = study.country_results()
    assert by_country.height == (len(pe.METHODS) + 3) * len(pe.COUNTRIES)
    mean = cells.group_by("model", "method", "country").agg(pl.col("mae").mean())
    joined = by_country.join(mean, on=["model", "method", "country"], suffix="_cells")
    np.testing.assert_allclose(joined["mae"].to_numpy(), joined["mae_cells"].to_numpy(), atol=1e-12)
    tests = study.tests()
    paired = pl.read_parquet(planted.root / "data/eval/paired_tests.parquet")
    got = tests.filter(pl.col("test") == "paired")
    assert got.select("a", "b", "diff", "p_bh").rows() == paired.select("a", "b", "diff", "p_bh").rows()
    wilcoxon = pl.read_parquet(planted.root / "data/eval/wilcoxon.parquet")
    assert tests.filter(pl.col("test") == "wilcoxon").height == wilcoxon.height
    assert set(tests["test"].to_list()) <= {"paired", "wilcoxon", "mann_whitney"}


def test_prompts_are_what_the_provider_was_sent(planted: pe.Project) -> None:
    """Every answer's prompt, put together from prompts (system) and questions (user), is a
    prompt the planted provider answers (its table is keyed by the exact messages), and the
    answer on disk is the distribution planted for that very prompt."""
    study = load_study(planted.root)
    heads = {(r["method"], r["persona_id"]): r["system"] for r in study.prompts().iter_rows(named=True)}
    users = dict(study.questions().select("question", "user").rows())
    plant = json.loads((planted.root / "plant.json").read_text())["prompts"]
    answers = study.simulated(level="answers")
    assert answers.height == len(planted.rows)
    for row in answers.iter_rows(named=True):
        messages = (ChatMessage("system", heads[(row["method"], row["persona_id"])]),
                    ChatMessage("user", users[row["question"]]))
        assert prompt_key(messages) in plant
        np.testing.assert_allclose(row["probs"], planted.rows[(row["method"], row["persona_id"], row["question"])].probs,
                                   atol=1e-9)
    personas = study.personas()
    assert set(personas["method"].to_list()) == {pe.B, pe.C, pe.TEMPERATURE}
    value = personas.filter(pl.col("method") == pe.TEMPERATURE).row(0, named=True)
    assert heads[(pe.TEMPERATURE, value["persona_id"])].endswith(value["text"])


def test_a_study_without_its_evaluation_is_a_one_line_error(tmp_path: Path) -> None:
    study = load_study(tmp_path)
    for read, message in ((study.cells, "data/eval/cells.parquet not found; run the evaluate stage"),
                          (study.scoreboard, "data/eval/summary.parquet not found; run the evaluate stage"),
                          (study.distributions, "data/calibrated/population.parquet not found; run the calibrate"),
                          (study.tests, "data/eval/wilcoxon.parquet not found")):
        with pytest.raises(DataError) as err:
            read()
        assert message in str(err.value)
        assert "\n" not in str(err.value)


def test_the_docs_below_the_aggregates_block_runs(planted: pe.Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/python-api.md's second block ("Below the aggregates") runs as written on a
    finished study, so the page cannot drift from the API."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs/python-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(planted.root)
    namespace: dict[str, object] = {"__name__": "docs_session"}
    exec(compile(blocks[1], "docs/python-api.md (below the aggregates)", "exec"), namespace)
    worst = namespace["worst"]
    assert worst.height == 5  # type: ignore[attr-defined]
    assert namespace["prompts"].height > 0  # type: ignore[attr-defined]
    assert isinstance(namespace["user"], str)
    assert namespace["user"].startswith("Question:")
