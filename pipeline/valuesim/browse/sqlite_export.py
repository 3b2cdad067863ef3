"""``valuesim export --sqlite``: the study as one SQLite file, linked for Datasette.

The tables are the notebook API's frames (:class:`valuesim.study.Study`, built by
:mod:`valuesim.study_tables`) plus the per-persona answers. Composite keys become one text
column each (``cell_id`` model/method/country/question, ``answer_id``), because Datasette
turns a single-column foreign key into a link: a cell's page lists its distributions and
answers, an answer links to its cell, persona and prompt. The prompts are stored once per
persona (system message) and once per question (user message); the ``prompt_messages``
view joins them per answer when read, so the file grows with personas x questions only by
the answers themselves.

Written with sqlite-utils into a temporary file beside the target and renamed into place
when complete: an interrupted export leaves the previous file (or none), never half of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from valuesim import __version__, artifacts
from valuesim.analysis.references import REFERENCES
from valuesim.browse.metadata import datasette_metadata
from valuesim.errors import ConfigError, DataError
from valuesim.methods import get_method
from valuesim.study import Study
from valuesim.survey.countries import country_name

REFERENCE_DESCRIPTIONS = {
    "midpoint": "reference: all mass at the scale centre",
    "uniform": "reference: every answer equally likely",
    "other_countries": "reference: the weighted pool of the other selected countries' respondents",
}
_SEP = "/"


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the database, its metadata file and each table's rows."""

    database: Path
    metadata: Path
    rows: dict[str, int]


def metadata_path(database: Path) -> Path:
    """``study.db`` -> ``study.metadata.json`` (beside it)."""
    return database.with_name(f"{database.stem}.metadata.json")


def _sqlite_utils() -> ModuleType:
    try:
        import sqlite_utils
    except ImportError:
        raise ConfigError("sqlite-utils is not installed; pip install 'valuesim[browse]'") from None
    return sqlite_utils


def _id(*cols: str) -> pl.Expr:
    return pl.concat_str([pl.col(c) for c in cols], separator=_SEP)


def _jsonable(frame: pl.DataFrame) -> pl.DataFrame:
    """List columns as JSON text (SQLite has no arrays; Datasette shows JSON readably)."""
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    return frame.with_columns(
        pl.col(c).map_elements(lambda v: json.dumps(list(v)), return_dtype=pl.Utf8) for c in lists
    ) if lists else frame


def _methods(methods: list[str]) -> pl.DataFrame:
    """The runs' methods (valuesim.methods) and the references, with how the report names them."""
    rows = []
    for name in methods:
        m = get_method(name)
        what = ("asked once per country" if m.persona is None else f"one prompt per {m.persona} persona"
                + ("" if m.nationality else ", country not named"))
        rows.append({"method": name, "label": m.label, "persona": m.persona, "nationality": m.nationality,
                     "opening": m.opening, "description": what})
    rows += [{"method": r, "label": r, "persona": None, "nationality": None, "opening": None,
              "description": REFERENCE_DESCRIPTIONS[r]} for r in REFERENCES]
    return pl.DataFrame(rows, schema={"method": pl.Utf8, "label": pl.Utf8, "persona": pl.Utf8,
                                      "nationality": pl.Boolean, "opening": pl.Utf8, "description": pl.Utf8})


def _answers(study: Study, model: str, method: str) -> pl.DataFrame:
    persona_method = get_method(method).persona is not None
    answers = study.simulated(model, method, level="answers")
    return _jsonable(answers.select(
        _id("model", "method", "persona_id", "question").alias("answer_id"),
        _id("model", "method", "country", "question").alias("cell_id"),
        "model", "method", "country", "question",
        (pl.col("persona_id") if persona_method else pl.lit(None, pl.Utf8)).alias("persona_id"),
        pl.col("persona_id").alias("prompt_id"),
        pl.struct("codes", "probs").map_elements(
            lambda s: ", ".join(f"{c}: {p:.4f}" for c, p in zip(s["codes"], s["probs"], strict=True)),
            return_dtype=pl.Utf8).alias("distribution"),
        "codes", "probs", "coverage", "estimator", "answer_rule", "flag",
    ))


def _write(study: Study, target: Path, rows: dict[str, int], answers: bool) -> None:
    sqlite_utils = _sqlite_utils()
    db = sqlite_utils.Database(target)
    # a temporary file that is renamed into place only when complete: no journal to keep
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")

    def put(name: str, frame: pl.DataFrame, pk: str | tuple[str, ...] | None = None,
            fks: tuple[tuple[str, str, str], ...] = ()) -> None:
        """Insert ``frame`` (creating the table with its key and links the first time); a
        repeated key is an error, never a silent replacement."""
        table = db.table(name)
        records = _jsonable(frame).to_dicts()
        if not table.exists():
            table.create({c: _sql_type(t) for c, t in frame.schema.items()}, pk=pk, foreign_keys=list(fks) or None)
        table.insert_all(records, batch_size=5000)
        rows[name] = rows.get(name, 0) + len(records)

    countries = artifacts.selected_countries(study.path("data/map/selected_countries.json"))
    put("countries", pl.DataFrame({"country": countries, "name": [country_name(c) for c in countries]}), "country")
    methods = sorted({k for _, k in study.runs()})
    put("methods", _methods(methods), "method")
    questions = study.questions()
    put("questions", questions, "question")
    put("personas", study.personas(), "persona_id", (("method", "methods", "method"), ("country", "countries", "country")))
    # the simulate stage names a country-level prompt "<country>:<method>": no persona behind it
    persona_methods = [k for k in methods if get_method(k).persona is not None]
    put("prompts", study.prompts().select(
        pl.col("persona_id").alias("prompt_id"), "method", "country",
        pl.when(pl.col("method").is_in(persona_methods)).then(pl.col("persona_id")).alias("persona_id"),
        "system"), "prompt_id",
        (("method", "methods", "method"), ("country", "countries", "country"), ("persona_id", "personas", "persona_id")))
    run_fks = (("method", "methods", "method"), ("country", "countries", "country"), ("question", "questions", "question"))
    cells = study.cells()
    put("cells", cells.select(_id("model", "method", "country", "question").alias("cell_id"), pl.all()), "cell_id", run_fks)
    dist = study.distributions()
    put("distributions", dist.select(_id("model", "method", "country", "question").alias("cell_id"), pl.all()),
        ("cell_id", "code"), (("cell_id", "cells", "cell_id"), *run_fks))
    answer_fks = (("cell_id", "cells", "cell_id"), *run_fks, ("persona_id", "personas", "persona_id"),
                  ("prompt_id", "prompts", "prompt_id"))
    for model, method in study.runs() if answers else ():  # one run at a time: the large table
        put("answers", _answers(study, model, method), "answer_id", answer_fks)
    put("country_results", study.country_results(), None, run_fks[:2])
    put("scoreboard", study.scoreboard(), None, (("method", "methods", "method"),))
    put("tests", study.tests(), None, (("country", "countries", "country"),))
    put("human_summary", study.human_summary().filter(pl.col("country").is_in(countries)
                                                      & pl.col("question").is_in(questions["question"].to_list())),
        None, (("country", "countries", "country"), ("question", "questions", "question")))
    if answers:
        db.create_view("prompt_messages", """
            SELECT a.answer_id, a.model, a.method, a.country, a.question, a.persona_id, p.system, q.user
            FROM answers a JOIN prompts p ON p.prompt_id = a.prompt_id JOIN questions q ON q.question = a.question""")
    indexed = {"answers": ("cell_id", "prompt_id", "persona_id", "model", "method", "country", "question"),
               "distributions": ("model", "method", "country", "question"),
               "cells": ("model", "method", "country", "question")}
    for table, cols in indexed.items():
        if table not in db.table_names():
            continue
        for col in cols:
            db[table].create_index([col], if_not_exists=True)
    _check_links(db)
    db["personas"].enable_fts(["text"])
    db["questions"].enable_fts(["text"])
    db.vacuum()
    db.close()


def _check_links(db: Any) -> None:
    """Every link must lead somewhere: an answer whose persona or prompt the persona tables no
    longer hold means the outputs come from different runs (personas rerun, simulate not)."""
    dangling = db.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        links = ", ".join(f"{t} -> {p}" for t, p in sorted({(row[0], row[2]) for row in dangling}))
        raise DataError(f"{len(dangling)} links ({links}) lead to rows the study's outputs do not have "
                        "(they come from different runs); run `dvc repro` and export again")


def _sql_type(dtype: pl.DataType) -> type:
    if dtype.is_integer() or dtype == pl.Boolean:
        return int
    if dtype.is_float():
        return float
    return str


def export_sqlite(study: Study, database: Path, *, answers: bool = True) -> Exported:
    """Write ``study`` to ``database`` (replacing it whole) and its Datasette metadata beside it.

    ``answers=False`` leaves out the per-persona answers (and the prompt_messages view), the
    one table that grows with personas x questions x runs (~590 bytes an answer)."""
    database = Path(database)
    if database.suffix in (".parquet", ".json", ".yaml", ".csv"):
        raise ConfigError(f"--sqlite {database}: give a .db file name, e.g. study.db")
    rows: dict[str, int] = {}
    # into a temporary file, renamed over the target only when complete (a missing stage
    # output is reported before that, and the previous file stays)
    artifacts.write_atomic(database, lambda tmp: _write(study, tmp, rows, answers), mode=0o644)
    meta = metadata_path(database)
    artifacts.write_text(meta, json.dumps(datasette_metadata(database.stem, f"valuesim {__version__}"), indent=2))
    return Exported(database, meta, rows)
