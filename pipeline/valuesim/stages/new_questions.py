"""`new_questions` stage: the items of ``data.new_questions`` asked by every run of the study.

Every (model, method) of ``simulate.models`` x ``simulate.methods`` answers the new
items (question files, README "Ask your own questions") with the study's own
personas (the personas stage's table of that method) in the selected countries,
through the engine and the response cache, scored as :func:`valuesim.ask` scores
them (:mod:`valuesim.asking`). Writes ``data/new_questions/questions.json`` (the
items, as the report shows them) and, per run, ``<model>/<method>/``
``answers.parquet`` (per persona), ``population.parquet`` (raw, one row per country
and item, :data:`valuesim.asking.RESULT_SCHEMA`, with the prediction interval of the
study's conformal fit for that run at level 0.9, ``data/eval/interval_fits.parquet``)
and ``summary.json`` (what the
answers determine). Run statistics go to ``reports/runs/new_questions-<model>-<method>.json``.

A stage of its own, not part of simulate: calibrate and evaluate read all of
``data/simulated``, so a changed question file would rerun them for nothing. Nothing
here is evaluated (there are no human answers); the report calibrates these answers
with each run's overall temperature. With no new questions it writes the same
files, empty (schema only), without loading any model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from valuesim import artifacts
from valuesim.config import Params
from valuesim.paths import NEW_QUESTIONS
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.question_types import MULTI, OptionItem

# as simulate: only what the answers determine goes into the DVC-hashed summary
ANSWER_DETERMINED = ("requests", "unique_requests", "flagged")


def item_records(items: Sequence[Item]) -> list[dict[str, object]]:
    """The items as questions.json holds them: one record per item of the question
    files, so a multi item's options (asked as one binary item each) are one record of
    ``type: multi`` whose ``answers`` are its options and ``asked_as`` their ids."""
    records: list[dict[str, object]] = []
    multi: dict[str, dict[str, object]] = {}
    for item in items:
        if not isinstance(item, OptionItem):
            records.append(item_record(item))
            continue
        record = multi.get(item.part_of)
        if record is None:
            record = multi[item.part_of] = {
                "id": item.part_of, "label": item.part_label, "text": item.part_text,
                "answers": [], "type": MULTI, "asked_as": []}
            records.append(record)
        record["answers"].append({"code": item.option.code, "label": item.option.label})  # type: ignore[union-attr]
        record["asked_as"].append(item.id)  # type: ignore[union-attr]
    return records


def item_record(item: Item) -> dict[str, object]:
    """An item as questions.json holds it (what the report needs to show it). ``type``
    and ``order`` are written only when not the defaults, so an ordinal item's record
    (and the file of a study with only ordinal items) is as before question types."""
    record: dict[str, object] = {
        "id": item.id, "label": item.label, "text": item.text,
        "answers": [{"code": a.code, "label": a.label} for a in item.answers],
    }
    if item.type != "ordinal":
        record["type"] = item.type
    if item.order != "fixed":
        record["order"] = item.order
    return record


def run(params: Params, **_: object) -> None:
    from valuesim.answer_tables import ANSWERS_SCHEMA, RUNS, write_run_stats
    from valuesim.asking import RESULT_SCHEMA
    from valuesim.output_targets import check_writable
    from valuesim.survey.bank import load_bank
    from valuesim.survey.new_questions import load_question_files

    files = params.data.new_questions
    # every file is validated (one line naming file, item and field) before any model call
    bank = load_bank(params.data.questions) if files else None
    items = load_question_files(files, bank) if bank is not None else []
    runs = [(model, method) for model in params.simulate.models for method in params.simulate.methods]
    outputs: dict[tuple[str, str], tuple[pl.DataFrame, pl.DataFrame, dict[str, object]]] = {}
    stats: dict[Path, dict[str, object]] = {}
    if not items:
        for key in runs:
            outputs[key] = (pl.DataFrame(schema=ANSWERS_SCHEMA), pl.DataFrame(schema=RESULT_SCHEMA),
                            {"model": key[0], "method": key[1], "questions": []})
    else:
        from valuesim.spending import check_study_ceiling

        assert bank is not None
        countries = artifacts.selected_countries()
        # before any request is paid for: a read-only or full data/ or reports/ would
        # otherwise fail only after every answer was bought
        for folder in (NEW_QUESTIONS, RUNS):
            check_writable(folder, when="checked before any request was sent")
        # simulate.max_cost_usd: every run's cost is planned before the first one sends
        check_study_ceiling(params, "new_questions", stage="new_questions",
                            models=params.simulate.models)
        for model, method in runs:
            answers, population, summary, path, run_stats = _ask(params, bank, items, countries, model, method)
            outputs[(model, method)] = (answers, population, summary)
            stats[path] = run_stats

    records = item_records(items)
    # the answers folder and every run's statistics: all or none
    with artifacts.output_set(), artifacts.atomic_dir(NEW_QUESTIONS) as tmp:
        for path, run_stats in stats.items():
            write_run_stats(path, run_stats)
        artifacts.write_json({"questions": records,
                              "files": list(files)}, tmp / "questions.json")
        for (model, method), (answers, population, summary) in outputs.items():
            out = tmp / model / method
            artifacts.write_parquet(answers, out / "answers.parquet")
            artifacts.write_parquet(population, out / "population.parquet")
            artifacts.write_json(summary, out / "summary.json", sort_keys=True)
    # a multi item is one question of the file, asked as one item per option
    asked = f" (asked as {len(items)} items)" if len(records) != len(items) else ""
    what = f"{len(records)} new questions{asked}" if items else "no new questions (data.new_questions is empty)"
    print(f"new_questions: {what}, {len(runs)} runs -> {NEW_QUESTIONS}")


def _ask(
    params: Params, bank: QuestionBank, items: list[Item], countries: list[str], model: str, method: str,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, object], Path, dict[str, object]]:
    """The run's answers, population and summary, and where its run statistics go and
    what they are (written by the caller with the other outputs)."""
    from valuesim.answer_tables import answers_frame, run_stats_path
    from valuesim.asking import plan_items, score_units, summarise
    from valuesim.llm.engine import Engine
    from valuesim.methods import get_method
    from valuesim.prediction import DEFAULT_LEVEL, add_prediction_intervals, find_fit

    personas = pl.DataFrame() if get_method(method).persona is None else artifacts.method_personas(method)
    asked, units = plan_items(params, method, personas, bank, items, countries)
    label = f"new_questions {model}/{method}"
    with Engine.from_params(params, model, label=label) as engine:
        results = score_units(engine, units)
        run = engine.summary
        estimator, answer_rule = engine.estimator, engine.answer_rule
    answers = answers_frame(units, results, asked)
    population = summarise(units, results, items, countries, bank, params, None,
                           model=model, method=method)
    # the study's own conformal fit for this run (the evaluate stage ran first): where
    # each country's population answer lies, at the default level
    n = None if get_method(method).persona is None else params.personas.n_per_country
    fit, note = find_fit(Path(), model, method, level=DEFAULT_LEVEL, n=n)
    if note:
        print(f"{label}: {note}")
    population = add_prediction_intervals(population, fit, asked_n=n, level=DEFAULT_LEVEL)
    summary: dict[str, object] = {
        "model": model, "method": method, "provider": run.provider, "provider_model": run.model,
        "estimator": estimator, "answer_rule": answer_rule,
        "questions": [i.id for i in items], "countries": len(countries),
        "personas": answers["persona_id"].n_unique(),
        **{k: v for k, v in run.to_json().items() if k in ANSWER_DETERMINED},
    }
    print(f"{label}: {run.line()}")
    stats = {"model": model, "method": method, **run.to_json()}
    return answers, population, summary, run_stats_path(f"new_questions-{model}", method), stats
