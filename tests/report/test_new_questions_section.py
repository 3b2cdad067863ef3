"""The report's "New questions" section: absent (byte-identical page and figures) when
the new_questions stage asked nothing; with new items, figures and tables apart from
the evaluated items, calibrated with each run's overall temperature."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.fixtures.study_data import COUNTRIES, build_study
from valuesim.answer_tables import ANSWERS_SCHEMA
from valuesim.asking import RESULT_SCHEMA, cell_stats
from valuesim.config import Params
from valuesim.stages import calibrate, evaluate, new_questions, report

ITEMS = [
    {"id": "AI_TRUST", "label": "Trust in AI decisions", "text": "Trust <an AI> & its decisions?",
     "answers": [{"code": c, "label": f"answer {c}"} for c in (1, 2, 3, 4)]},
    {"id": "CLIMATE_TAX", "label": "Higher taxes for climate",
     "text": "On a scale from 0 to 10, how willing?",
     "answers": [{"code": c, "label": {0: "Not at all", 10: "Completely"}.get(c, str(c))}
                 for c in range(11)]},
]
RUNS = (("tiny", "generic"), ("tiny", "value"))


def _params(new: list[str] | None = None) -> Params:
    return Params.model_validate({
        "data": {"new_questions": new or []},
        "simulate": {"methods": ["generic", "value"], "models": ["tiny"]},
        "models": {"tiny": {"provider": "transformers", "model": "embedded"}},
        "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
        "analysis": {"sample_sizes": [1, 2, 3], "subsample_repeats": 3, "bootstrap": 200},
    })


def _outputs(root: Path) -> dict[str, bytes]:
    files = [root / "reports/index.html", *sorted((root / "reports/figures/study").glob("*"))]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _write_asked(root: Path, params: Params, items: list[dict[str, Any]] = ITEMS) -> None:
    """New-question outputs in the stage's format, with made-up persona answers."""
    rng = np.random.default_rng(1)
    base = root / "data/new_questions"
    (base / "questions.json").write_text(json.dumps(
        {"questions": items, "files": ["data/questions/mine.yaml"]}))
    for model, method in RUNS:
        answers, population = [], []
        n = 1 if method == "generic" else 3
        for c in COUNTRIES:
            for asked in _asked(items):
                codes = [a["code"] for a in asked["answers"]]
                scale = asked.get("type", "ordinal") == "ordinal"
                probs = rng.dirichlet(np.ones(len(codes)), size=n)
                answers += [{"persona_id": f"{c}:{i}", "country": c, "question": asked["id"],
                             "codes": codes, "probs": p.tolist(), "coverage": 0.8,
                             "estimator": "logprobs", "answer_rule": "answer_start", "flag": ""}
                            for i, p in enumerate(probs)]
                # the k-th persona listed the (k mod n)-th option first
                first = (float(np.mean([p[k % len(codes)] for k, p in enumerate(probs)]))
                         if asked.get("order") == "rotate" else None)
                population.append({
                    "country": c, "question": asked["id"], "label": asked["label"], "new": True,
                    "codes": codes, "n_personas": n, "flagged": 0, "mean_coverage": 0.8,
                    "estimator": "logprobs", "answer_rule": "answer_start", "method": method,
                    "model": model, "first_listed_share": first,
                    **cell_stats(codes, probs, None, params, c, asked["id"], scale=scale),
                })
        out = base / model / method
        out.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(answers, schema=ANSWERS_SCHEMA).write_parquet(out / "answers.parquet")
        pl.DataFrame(population, schema=RESULT_SCHEMA).write_parquet(out / "population.parquet")


def _asked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as asked: a multi item's records as its options' Yes/No items."""
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") != "multi":
            out.append(item)
            continue
        out += [{"id": q, "label": f"{item['label']}: {a['label']}", "type": "binary",
                 "answers": [{"code": 1, "label": "Yes"}, {"code": 2, "label": "No"}]}
                for q, a in zip(item["asked_as"], item["answers"], strict=True)]
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("study_new_questions")
    build_study(root, true_t=2.0)
    old = Path.cwd()
    os.chdir(root)
    try:
        calibrate.run(_params())
        evaluate.run(_params())
        yield root
    finally:
        os.chdir(old)


def test_without_new_questions_every_report_output_is_byte_identical(study: Path) -> None:
    report.run(_params())  # a study from before the new_questions stage existed
    before = _outputs(study)
    new_questions.run(_params())  # data.new_questions empty: empty tables, no model
    assert (study / "data/new_questions/tiny/value/population.parquet").exists()
    assert pl.read_parquet(study / "data/new_questions/tiny/value/population.parquet").is_empty()
    report.run(_params())
    after = _outputs(study)
    assert list(after) == list(before)
    assert after == before
    assert b"New questions" not in after["reports/index.html"]


def test_new_questions_get_their_own_section_calibrated_and_not_evaluated(study: Path) -> None:
    params = _params(["data/questions/mine.yaml"])
    _write_asked(study, params)
    report.run(params)
    page = (study / "reports/index.html").read_text()
    start = page.index(">New questions (not evaluated)</h2>")
    section = page[start:page.index("<h2", start + 1)]  # up to the next section
    # after the evaluated figures, before the caveats
    assert page.index(">Figures</h2>") < page.index(">New questions (not evaluated)</h2>") < page.index(">Caveats</h2>")
    assert "no human answers" in section
    assert "data/questions/mine.yaml" in section
    assert "Trust &lt;an AI&gt; &amp; its decisions?" in section  # the text, escaped
    assert section.count("data:image/png;base64,") == 2
    for item in ITEMS:
        assert (study / f"reports/figures/study/new_{item['id']}.png").stat().st_size > 0
    # the configuration shows the setting once it is set
    assert "new_questions:" in page[page.index("Configuration"):]

    # calibrated with each run's overall T: expected answers kept, the spread changed
    from valuesim.report.new_questions import load_new_questions

    temps = json.loads((study / "data/calibrated/temperatures.json").read_text())["temperatures"]
    _, files, rows = load_new_questions(study / "data/new_questions", temps, params)
    assert files == ["data/questions/mine.yaml"]
    assert rows.height == len(RUNS) * len(COUNTRIES) * len(ITEMS)
    for (model, method), t in ((r, temps[f"{r[0]}/{r[1]}"]["overall"]) for r in RUNS):
        sub = rows.filter((pl.col("model") == model) & (pl.col("method") == method))
        assert sub["T"].to_list() == [pytest.approx(t)] * sub.height
        for raw, cal in zip(sub["probs_raw"], sub["probs_cal"], strict=True):
            codes = np.arange(len(raw)) + (0 if len(raw) == 11 else 1)
            assert float(np.dot(codes, raw)) == pytest.approx(float(np.dot(codes, cal)), abs=1e-9)
        assert not np.allclose(sub["nvar_raw"].to_numpy(), sub["nvar_cal"].to_numpy())


TYPED = [
    *ITEMS,
    {"id": "NEWS_SOURCE", "label": "Main source of news", "text": "Where do you get most of your news?",
     "type": "nominal", "answers": [{"code": c, "label": label} for c, label in
                                    enumerate(("Television", "Newspapers", "Social media", "Radio"), 1)]},
    {"id": "VOTED_LAST", "label": "Voted", "text": "Did you vote?", "type": "binary",
     "answers": [{"code": 1, "label": "Yes"}, {"code": 2, "label": "No"}]},
]


def test_nominal_and_binary_items_show_shares_with_labels_and_no_scale(study: Path) -> None:
    """A nominal and a binary item next to the ordinal ones: their tables list every
    option's share under its label and the modal answer with its label, with no
    expected answer, variance, temperature or interval; figure 15 leaves them out."""
    params = _params(["data/questions/mine.yaml"])
    _write_asked(study, params, TYPED)
    report.run(params)
    page = (study / "reports/index.html").read_text()
    start = page.index(">New questions (not evaluated)</h2>")
    section = page[start:page.index("<h2", start + 1)]
    assert "Nominal and binary items (NEWS_SOURCE, nominal; VOTED_LAST, binary)" in section
    news = section[section.index("<h3>NEWS_SOURCE"):section.index("<h3>VOTED_LAST")]
    assert "nominal, unordered options: 1 = Television; 2 = Newspapers" in news
    for header in ("1=Television", "2=Newspapers", "3=Social media", "4=Radio", "mode"):
        assert f">{header}</th>" in news, header
    for absent in ("expected", "nvar", "prediction", ">T<"):
        assert absent not in news, absent
    voted = section[section.index("<h3>VOTED_LAST"):]
    assert ">1=Yes</th>" in voted
    assert ">2=No</th>" in voted
    # every mode cell names the option: code, label and share
    from valuesim.report.new_questions import load_new_questions, unordered_table

    temps = json.loads((study / "data/calibrated/temperatures.json").read_text())["temperatures"]
    items, _, rows = load_new_questions(study / "data/new_questions", temps, params)
    sub = rows.filter(pl.col("question") == "NEWS_SOURCE")
    assert sub["T"].is_null().all()  # not tilted: the raw shares are the calibrated ones
    assert sub["probs_cal"].to_list() == sub["probs_raw"].to_list()
    shown = unordered_table(items[2], sub)
    labels = ["Television", "Newspapers", "Social media", "Radio"]
    for row, probs in zip(shown.iter_rows(named=True), sub["probs_raw"], strict=True):
        top = int(np.argmax(probs))
        assert row["mode"] == f"{top + 1} {labels[top]} ({probs[top]:.0%})"
        assert [row[f"{k + 1}={label}"] for k, label in enumerate(labels)] == pytest.approx(list(probs))
    # the ordinal items are still calibrated
    assert rows.filter(pl.col("question") == "AI_TRUST")["T"].is_not_null().all()

    trust = page[page.index("How far to trust a new answer"):]
    assert "NEWS_SOURCE (nominal), VOTED_LAST (binary): unordered options have no mean answer" in trust
    for item in TYPED:
        drawn = (study / f"reports/figures/study/intervals_new_{item['id']}.png").exists()
        assert drawn == (item.get("type", "ordinal") == "ordinal"), item["id"]


def test_multi_items_are_grouped_and_rotated_items_show_the_share_listed_first(
    study: Path, root: Path,
) -> None:
    """The shipped example's multi item, as the stage records it (one questions.json
    record, its options asked as Yes/No items), has one heading, one figure and one
    table with the share selecting each option; a rotated item's table has the
    "listed first" share and the caption says what 1/n means."""
    from valuesim.report.new_questions import load_new_questions, multi_rows, multi_table
    from valuesim.stages.new_questions import item_records
    from valuesim.survey.bank import load_bank
    from valuesim.survey.new_questions import load_question_file

    items = item_records(load_question_file(root / "data/questions/question_types_example.yaml",
                                            load_bank(root / "data/questions/wvs7.yaml")))
    media = next(i for i in items if i["id"] == "MEDIA_USED")
    assert media["type"] == "multi"
    assert media["asked_as"] == ["MEDIA_USED.1", "MEDIA_USED.2", "MEDIA_USED.3", "MEDIA_USED.4"]
    assert [a["label"] for a in media["answers"]] == ["Television", "Newspapers", "Social media", "Radio"]
    assert (media["label"], media["text"]) == ("News media used", "Which of these do you use to follow the news?")
    news = next(i for i in items if i["id"] == "NEWS_SOURCE")
    news = {**news, "order": "rotate"}
    typed = [news, media]
    params = _params(["data/questions/mine.yaml"])
    _write_asked(study, params, typed)
    report.run(params)
    page = (study / "reports/index.html").read_text()
    start = page.index(">New questions (not evaluated)</h2>")
    section = page[start:page.index("<h2", start + 1)]
    flat = " ".join(section.split())
    assert "Multi items (select all that apply: MEDIA_USED) are asked as one Yes/No item per option" in flat
    assert "1/n for n options means no order effect" in flat
    assert "Items with order: rotate (NEWS_SOURCE)" in flat
    assert section.count("<h3>MEDIA_USED") == 1
    assert "<h3>MEDIA_USED." not in section  # the options are not items of their own
    assert section.count("data:image/png;base64,") == 2
    assert (study / "reports/figures/study/new_MEDIA_USED.png").stat().st_size > 0
    assert not list((study / "reports/figures/study").glob("new_MEDIA_USED.*.png"))
    block = section[section.index("<h3>MEDIA_USED"):]
    for header in ("1=Television", "2=Newspapers", "3=Social media", "4=Radio"):
        assert f">{header}</th>" in block, header
    assert ">mode</th>" not in block
    news_block = section[section.index("<h3>NEWS_SOURCE"):section.index("<h3>MEDIA_USED")]
    assert ">listed first</th>" in news_block

    temps = json.loads((study / "data/calibrated/temperatures.json").read_text())["temperatures"]
    loaded, _, rows = load_new_questions(study / "data/new_questions", temps, params)
    grouped = multi_rows(loaded[1], rows)
    assert grouped.height == len(RUNS) * len(COUNTRIES)
    shown = multi_table(loaded[1], grouped)
    for row, (country, model, method) in zip(
            shown.iter_rows(named=True), grouped.select("country", "model", "method").iter_rows(), strict=True):
        for k, option in enumerate(media["answers"], start=1):  # the share of Yes of each option's row
            yes = rows.filter((pl.col("country") == country) & (pl.col("model") == model)
                              & (pl.col("method") == method) & (pl.col("question") == f"MEDIA_USED.{k}"))
            assert row[f"{k}={option['label']}"] == pytest.approx(yes["probs_raw"][0][0])
    firsts = rows.filter(pl.col("question") == "NEWS_SOURCE")["first_listed_share"]
    assert firsts.is_not_null().all()
    trust = page[page.index("How far to trust a new answer"):]
    assert "MEDIA_USED (multi)" in trust
