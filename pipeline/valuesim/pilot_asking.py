"""Pilot mode of ``ask``: a small human pilot plus the model, combined by PPI++ (issue 20).

A researcher who has asked a new question of a few real respondents (a pilot file,
:mod:`valuesim.survey.pilot`) gets, per (country, question), an interval for the
population mean that is valid whatever the model's quality
(:func:`valuesim.analysis.ppi.ppi_mean`):

- each pilot respondent *is* a persona: ``Y_i`` is their answer, ``Yhat_i`` the model's
  expected answer for the persona built from their own answers to the persona items
  (the study's descriptor sets, as :func:`valuesim.personas.on_demand.personas_for`
  builds them);
- the unlabeled set is respondents of the study's source for that country (the
  extract, ``data.source`` or ``source``), pilot respondents excluded, drawn as the
  study draws personas (:func:`~valuesim.personas.sampling.sample_respondents`:
  ``personas.seed``, probability proportional to weight), ``n_unlabeled`` of them
  (default ``personas.n_per_country``: with the study's population and no pilot
  respondent in it, the study's own personas and cached answers). A weighted draw
  already represents the weights, so those respondents count equally; when every
  respondent is taken, their design weights are used instead;
- prompts, the engine and the response cache are ``ask``'s
  (:func:`valuesim.asking.plan_items`, :func:`~valuesim.asking.score_units`).

``Yhat`` uses the study's calibrated distributions when the calibrate stage fitted a
temperature for (model, method) (:func:`valuesim.asking.find_calibration`); the tilt is
mean-preserving, so every expected answer, and every PPI number, is the same raw or
calibrated (the summary says which was used).

Every check on the input (question files, method, model, the pilot file, its
countries against the source) runs before any answer is scored.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from valuesim.errors import ConfigError, DataError

if TYPE_CHECKING:
    from valuesim.asking import Calibration, CountriesArg, QuestionsArg
    from valuesim.config import ModelSpec, Params
    from valuesim.llm.engine import Engine
    from valuesim.llm.types import AnswerDistribution
    from valuesim.planning import PlanRow
    from valuesim.prompts import PromptUnit
    from valuesim.survey.bank import Item, QuestionBank
    from valuesim.survey.pilot import Pilot

PILOT_SCHEMA: dict[str, pl.DataType] = {
    "country": pl.Utf8(),
    "question": pl.Utf8(),
    "label": pl.Utf8(),
    "n_pilot": pl.Int64(),  # pilot respondents with an answer and a usable prediction
    "n_unlabeled": pl.Int64(),
    "ppi_estimate": pl.Float64(),
    "ppi_low": pl.Float64(),
    "ppi_high": pl.Float64(),
    "classical_estimate": pl.Float64(),  # the pilot's weighted mean, without the model
    "classical_low": pl.Float64(),
    "classical_high": pl.Float64(),
    "lam": pl.Float64(),  # PPI++ power tuning: 0 ignores the model
    "effective_n": pl.Float64(),  # pilot size the classical interval needs for the PPI width
    "ppi_correlation": pl.Float64(),  # weighted Pearson correlation of Y and Yhat in the pilot
    "level": pl.Float64(),
    "method": pl.Utf8(),
    "model": pl.Utf8(),
    "model_mean": pl.Float64(),  # the model alone: the unlabeled set's mean of Yhat
}
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "set": pl.Utf8(),  # "pilot" or "unlabeled"
    "country": pl.Utf8(),
    "respondent_id": pl.Utf8(),
    "question": pl.Utf8(),
    "y": pl.Int64(),  # the pilot's answer (null: none, or an unlabeled respondent)
    "yhat": pl.Float64(),  # the model's expected answer for the respondent's persona
    "weight": pl.Float64(),  # as used by PPI (unlabeled: 1 for a weighted draw)
}
# Pilot personas get their own ids: a pilot respondent may share an id with the source.
PILOT_PREFIX = "pilot:"


@dataclass(frozen=True)
class PilotSummary:
    """How one :func:`run_pilot` went."""

    model: str
    method: str
    provider: str
    provider_model: str
    estimator: str
    answer_rule: str
    pilot: str
    source: str
    countries: tuple[str, ...]
    questions: tuple[str, ...]
    level: float
    n_unlabeled: int  # asked for, per country
    pilot_in_source: int  # pilot respondents found in the source, left out of the unlabeled set
    weighted_pilot: bool
    requests: int
    cache_hits: int
    sent: int
    provider_calls: int
    wall_s: float
    calibration: Calibration | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    tokens: int = 0  # prompt and reply tokens of the answers sent
    cost_usd: float = 0.0  # at simulate.prices, else the provider's figure
    plan: PlanRow | None = None  # what was to be sent, planned before the first request
    dry_run: bool = False  # planned only: nothing was sent

    def line(self) -> str:
        head = (f"pilot {self.model}/{self.method}: {len(self.countries)} countries x "
                f"{len(self.questions)} questions, PPI++ at {self.level:g}: ")
        if self.dry_run:
            return head + "dry run, nothing was sent"
        return (head + f"{self.requests} requests, {self.cache_hits} cached, {self.sent} sent in "
                f"{self.provider_calls} calls, {self.tokens} tokens, ${self.cost_usd:.4f}, "
                f"{self.wall_s:.1f}s")

    def to_json(self) -> dict[str, object]:
        from valuesim.asking import summary_json

        return summary_json(self)


@dataclass(frozen=True)
class PilotResult:
    frame: pl.DataFrame  # PILOT_SCHEMA, one row per (country, question)
    summary: PilotSummary
    predictions: pl.DataFrame  # PREDICTION_SCHEMA: every respondent's Y and Yhat


# -- personas -----------------------------------------------------------------------


def pilot_personas(params: Params, bank: QuestionBank, pilot: Pilot, method: str, project: Path) -> pl.DataFrame:
    """One persona per pilot respondent (ids prefixed :data:`PILOT_PREFIX`)."""
    rows = pilot.frame.with_columns(respondent_id=PILOT_PREFIX + pl.col("respondent_id"))
    return personas_of(params, bank, rows, method, project)


def personas_of(params: Params, bank: QuestionBank, rows: pl.DataFrame, method: str, project: Path) -> pl.DataFrame:
    """One persona of ``method``'s kind per respondent row (country, respondent_id and
    the bank's persona and sociodemographic items), worded by the study's descriptor sets."""
    from valuesim.methods import persona_kind
    from valuesim.personas import descriptors
    from valuesim.personas.build import build_personas
    from valuesim.personas.on_demand import under, value_descriptors_path

    kind, nationality = persona_kind(method)
    if kind is None:
        raise ConfigError(f"{method} has no personas; use a persona method such as value")
    value_set = descriptors.load(value_descriptors_path(params, project), bank, kind="value")
    socio_set = descriptors.load(
        under(project, params.descriptors.sociodemographic_path), bank, kind="sociodemographic"
    )
    return build_personas(rows, bank, value_set, socio_set, kinds=[kind], nationality=[nationality])


def unlabeled_personas(
    params: Params, bank: QuestionBank, respondents: pl.DataFrame, countries: Sequence[str],
    method: str, n: int, project: Path,
) -> tuple[pl.DataFrame, dict[str, float], list[str]]:
    """(personas, weight by respondent id, notes): ``n`` per country drawn as the study
    draws its personas. A weighted draw of part of a country counts each drawn
    respondent once (weight 1); a country taken whole keeps its design weights."""
    from valuesim.personas.on_demand import personas_for

    personas = personas_for(params, bank, respondents, countries, method, n, project)
    available = dict(respondents.group_by("country").len().iter_rows())
    design = dict(respondents.select("respondent_id", "weight").iter_rows())
    weights: dict[str, float] = {}
    notes: list[str] = []
    for c in countries:
        ids = personas.filter(pl.col("country") == c)["respondent_id"].to_list()
        whole = len(ids) >= int(available.get(c, 0))
        if whole and len(ids) < n:
            notes.append(f"{c}: the source has {len(ids)} respondents besides the pilot, fewer "
                         f"than the {n} asked for; using all of them with their design weights")
        weights.update({i: float(design[i]) if whole else 1.0 for i in ids})
    return personas, weights, notes


# -- predictions --------------------------------------------------------------------


def expected_answers(
    units: Sequence[PromptUnit], results: Sequence[AnswerDistribution], items: Sequence[Item],
    calibration: Calibration | None,
) -> dict[tuple[str, str], float | None]:
    """(persona_id, question) -> the expected answer (None: the persona put no mass on
    the scale), after the study's mean-preserving tilt when ``calibration`` is given."""
    from valuesim.calibration.tilt import mean_preserving_tilt

    by_id = {i.id: i for i in items}
    out: dict[tuple[str, str], float | None] = {}
    for unit, dist in zip(units, results, strict=True):
        if dist.flag:
            out[(unit.persona_id, unit.question)] = None
            continue
        values = np.asarray(by_id[unit.question].codes, dtype=np.float64)
        probs = np.asarray(dist.probs, dtype=np.float64)[None, :]
        if calibration is not None:
            probs = mean_preserving_tilt(probs, values, calibration.temperature(unit.question))
        out[(unit.persona_id, unit.question)] = float(probs[0] @ values)
    return out


def score_personas(
    engine: Engine, params: Params, method: str, personas: pl.DataFrame, bank: QuestionBank,
    items: Sequence[Item], countries: Sequence[str], calibration: Calibration | None,
) -> dict[tuple[str, str], float | None]:
    """Every persona's expected answer to every item, through ``ask``'s prompts and engine."""
    from valuesim.asking import plan_items, score_units

    _, units = plan_items(params, method, personas, bank, items, countries)
    return expected_answers(units, score_units(engine, units), items, calibration)


def _predictions(
    pilot: Pilot, unl: pl.DataFrame, unl_weights: dict[str, float], yhat: dict[tuple[str, str], float | None],
    items: Sequence[Item], kind_suffix: str,
) -> pl.DataFrame:
    rows: list[dict[str, object]] = []
    for item in items:
        for r in pilot.frame.select("country", "respondent_id", "weight", item.id).iter_rows():
            pid = f"{PILOT_PREFIX}{r[1]}{kind_suffix}"
            rows.append({"set": "pilot", "country": r[0], "respondent_id": r[1], "question": item.id,
                         "y": r[3], "yhat": yhat.get((pid, item.id)), "weight": r[2]})
        for pid, country, rid in unl.select("persona_id", "country", "respondent_id").iter_rows():
            rows.append({"set": "unlabeled", "country": country, "respondent_id": rid,
                         "question": item.id, "y": None, "yhat": yhat.get((pid, item.id)),
                         "weight": unl_weights[rid]})
    return pl.DataFrame(rows, schema=PREDICTION_SCHEMA)


def pilot_rows(
    predictions: pl.DataFrame, items: Sequence[Item], countries: Sequence[str], level: float,
    *, method: str, model: str,
) -> tuple[pl.DataFrame, list[str]]:
    """One :data:`PILOT_SCHEMA` row per (country, question) from the respondents' Y and
    Yhat; a cell left with too few usable respondents gets nulls and a note."""
    from valuesim.analysis.ppi import ppi_mean
    from valuesim.survey.pilot import MIN_RESPONDENTS

    rows, notes = [], []
    for country in countries:
        for item in items:
            cell = predictions.filter((pl.col("country") == country) & (pl.col("question") == item.id))
            lab = cell.filter((pl.col("set") == "pilot") & pl.col("y").is_not_null())
            unl = cell.filter(pl.col("set") == "unlabeled")
            lost = lab["yhat"].null_count() + unl["yhat"].null_count()
            lab, unl = lab.drop_nulls("yhat"), unl.drop_nulls("yhat")
            row: dict[str, object] = {
                "country": country, "question": item.id, "label": item.label,
                "n_pilot": lab.height, "n_unlabeled": unl.height, "level": level,
                "method": method, "model": model,
            }
            if lost:
                notes.append(f"{country}/{item.id}: {lost} personas put no probability on the "
                             "scale; those respondents are left out")
            if lab.height < MIN_RESPONDENTS or unl.height < 2:
                notes.append(f"{country}/{item.id}: {lab.height} pilot and {unl.height} unlabeled "
                             "respondents with a prediction; too few for PPI, no interval")
                rows.append(row)
                continue
            r = ppi_mean(lab["y"].to_numpy().astype(np.float64), lab["yhat"].to_numpy(),
                         unl["yhat"].to_numpy(), lab["weight"].to_numpy(), unl["weight"].to_numpy(),
                         level)
            row.update({
                "ppi_estimate": r.estimate, "ppi_low": r.low, "ppi_high": r.high,
                "classical_estimate": r.classical_estimate, "classical_low": r.classical_low,
                "classical_high": r.classical_high, "lam": r.lam, "effective_n": r.effective_n,
                "ppi_correlation": r.correlation,
                "model_mean": float(np.average(unl["yhat"].to_numpy(), weights=unl["weight"].to_numpy())),
            })
            rows.append(row)
    return pl.DataFrame(rows, schema=PILOT_SCHEMA), notes


# -- the run ------------------------------------------------------------------------


def run_pilot(
    pilot_path: str | Path,
    questions: QuestionsArg,
    countries: CountriesArg | None = None,
    *,
    method: str = "value",
    model: str = "smollm2",
    n_unlabeled: int | None = None,
    level: float = 0.9,
    source: str | Path | None = None,
    params_path: str | Path = "params.yaml",
    project_dir: str | Path = ".",
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    dry_run: bool = False,
    spec: ModelSpec | None = None,
) -> PilotResult:
    """PPI++ estimates of ``questions``' country means from the pilot file and the model.

    ``countries``: ISO3 codes (default: every country of the pilot file);
    ``n_unlabeled``: model-only respondents per country (default
    ``personas.n_per_country``); ``level``: of every interval; the rest as
    :func:`valuesim.asking.run_ask` (the run is planned first and refused over
    ``simulate.max_cost_usd``; ``dry_run`` plans only). Returns the per-(country,
    question) rows (:data:`PILOT_SCHEMA`), the run's summary and every respondent's Y
    and Yhat.
    """
    from valuesim.analysis.ppi import check_level
    from valuesim.asking import (
        _check_model_and_method,
        _echoed,
        find_calibration,
        open_engine,
        parse_countries,
        plan_items,
        plan_run,
        resolve_questions,
        score_units,
    )
    from valuesim.config import load_params
    from valuesim.model_flags import with_model
    from valuesim.personas.build import persona_id
    from valuesim.personas.on_demand import respondents_for, under
    from valuesim.survey.bank import load_bank
    from valuesim.survey.pilot import persona_items_for, read_pilot
    from valuesim.survey.question_types import OptionItem

    project = Path(project_dir)
    params = with_model(load_params(under(project, params_path)), model, spec)
    _check_model_and_method(params, model, method)
    bank = load_bank(under(project, params.data.questions))
    persona_items_for(method, bank)  # a one-line error for a method without personas
    level = check_level(level)
    n_unl = params.personas.n_per_country if n_unlabeled is None else int(n_unlabeled)
    if n_unl < 2:
        raise ConfigError(f"n_unlabeled {n_unl}: PPI needs at least 2 model-only respondents per country")
    items = resolve_questions(questions, bank)
    # a multi item is named once, by its own id (its options are binary items)
    unordered = list(dict.fromkeys(
        f"{i.part_of} (multi)" if isinstance(i, OptionItem) else f"{i.id} ({i.type})"
        for i in items if i.type != "ordinal"))
    if unordered:  # PPI++ here estimates a mean answer, which unordered options do not have
        raise ConfigError(f"--pilot estimates mean answers, which {', '.join(unordered)} "
                          "do not have; ask nominal, binary and multi items without --pilot")
    codes = None if countries is None else parse_countries(countries)
    pilot_file = under(project, pilot_path)
    pilot = read_pilot(pilot_file, bank, items, method, countries=codes)
    codes = list(pilot.countries)

    notes: list[str] = []
    echoed = _echoed(items, method)
    if echoed:
        notes.append(f"{', '.join(echoed)}: {method} personas state the respondent's answer to "
                     "these items, so the model mostly reads it back")
    try:
        respondents, where, _ = respondents_for(
            None if source is None else str(source), params, bank, codes, project
        )
    except DataError as exc:
        raise DataError(f"pilot file {pilot_file}: {exc}") from None
    in_pilot = respondents["respondent_id"].is_in(pilot.frame["respondent_id"].to_list())
    overlap = int(in_pilot.sum())
    pool = respondents.filter(~in_pilot)
    emptied = [c for c in codes if c not in set(pool["country"].to_list())]
    if emptied:
        raise DataError(f"pilot file {pilot_file}: every respondent of {', '.join(emptied)} in "
                        f"{where} is in the pilot, so none is left to be the unlabeled set; "
                        "give a source with more respondents (--source)")
    if overlap:
        notes.append(f"{overlap} pilot respondents are in {where}; they are left out of the "
                     "unlabeled set")
    unl, unl_weights, more = unlabeled_personas(params, bank, pool, codes, method, n_unl, project)
    notes += more
    personas = pl.concat([pilot_personas(params, bank, pilot, method, project), unl], how="vertical")

    calibration, note = find_calibration(project, model, method)
    notes.append(
        f"{note}; the tilt keeps every persona's expected answer, so Yhat and PPI are the same "
        "raw or calibrated" if calibration is not None else
        f"{note} (Yhat would be the same calibrated: the tilt keeps expected answers)"
    )
    if not pilot.weighted:
        notes.append("the pilot file has no weights: every pilot respondent counts equally")

    label = f"pilot {model}/{method}"
    _, units = plan_items(params, method, personas, bank, items, codes)
    with open_engine(params, model, project, label=label, dry_run=dry_run, progress=progress,
                     log=log) as engine:
        plan = plan_run(params, engine, model, method, units, label=label, project=project,
                        announce=not dry_run, log=log)
        estimator, answer_rule = engine.estimator, engine.answer_rule
        if dry_run:
            return PilotResult(pl.DataFrame(schema=PILOT_SCHEMA), PilotSummary(
                model=model, method=method, provider=engine.factory.name,
                provider_model=engine.spec.model, estimator=estimator, answer_rule=answer_rule,
                pilot=str(pilot_path), source=where, countries=tuple(codes),
                questions=tuple(i.id for i in items), level=level, n_unlabeled=n_unl,
                pilot_in_source=overlap, weighted_pilot=pilot.weighted, requests=plan.requests,
                cache_hits=plan.cached, sent=0, provider_calls=0, wall_s=0.0,
                calibration=calibration, notes=tuple(notes), plan=plan, dry_run=True,
            ), pl.DataFrame(schema=PREDICTION_SCHEMA))
        yhat = expected_answers(units, score_units(engine, units), items, calibration)
        run = engine.summary

    from valuesim.methods import persona_kind

    kind, nationality = persona_kind(method)
    suffix = persona_id("", str(kind), nationality)  # ":value", ":value:nonat", ...
    predictions = _predictions(pilot, unl, unl_weights, yhat, items, suffix)
    frame, more = pilot_rows(predictions, items, codes, level, method=method, model=model)
    notes += more
    summary = PilotSummary(
        model=model, method=method, provider=run.provider, provider_model=run.model,
        estimator=estimator, answer_rule=answer_rule, pilot=str(pilot_path), source=where,
        countries=tuple(codes), questions=tuple(i.id for i in items), level=level,
        n_unlabeled=n_unl, pilot_in_source=overlap, weighted_pilot=pilot.weighted,
        requests=run.requests, cache_hits=run.cache_hits, sent=run.sent,
        provider_calls=run.provider_calls, wall_s=run.wall_s, calibration=calibration,
        notes=tuple(notes), tokens=run.prompt_tokens + run.completion_tokens,
        cost_usd=run.cost_usd, plan=plan,
    )
    return PilotResult(frame, summary, predictions)


# -- output -------------------------------------------------------------------------


def format_pilot(result: PilotResult, fmt: str) -> str:
    """The rows as ``json`` (rows and summary), ``csv`` or a ``table`` for a terminal."""
    if fmt == "json":
        return json.dumps({"results": result.frame.to_dicts(), "summary": result.summary.to_json()},
                          indent=2) + "\n"
    if fmt == "csv":
        return result.frame.write_csv()
    if fmt != "table":
        raise ConfigError(f"unknown format {fmt!r}; use --format table, json or csv")
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    cal = s.calibration.line() if s.calibration is not None else "raw (no fitted temperature)"
    table = Table(
        title=f"PPI++ with a pilot · {s.provider}/{s.provider_model} · {s.method} · level {s.level:g}",
        caption=f"pilot {s.pilot}; unlabeled from {s.source}; {cal}",
    )
    for col in ("country", "question", "n pilot", "n unlab.", "PPI++", "interval", "classical",
                "interval", "lambda", "eff. n", "corr.", "model alone"):
        table.add_column(col, justify="left" if col in ("country", "question") else "right")
    for r in result.frame.iter_rows(named=True):
        if r["ppi_estimate"] is None:
            table.add_row(r["country"], r["question"], str(r["n_pilot"]), str(r["n_unlabeled"]),
                          "-", "too few", "-", "-", "-", "-", "-", "-")
            continue
        table.add_row(
            r["country"], r["question"], str(r["n_pilot"]), str(r["n_unlabeled"]),
            f"{r['ppi_estimate']:.2f}", f"{r['ppi_low']:.2f}-{r['ppi_high']:.2f}",
            f"{r['classical_estimate']:.2f}", f"{r['classical_low']:.2f}-{r['classical_high']:.2f}",
            f"{r['lam']:.2f}", f"{r['effective_n']:.0f}", _fmt(r["ppi_correlation"]),
            f"{r['model_mean']:.2f}",
        )
    buf = io.StringIO()
    Console(file=buf, width=130).print(table)
    return buf.getvalue()


def _fmt(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"


def print_pilot(result: PilotResult, fmt: str) -> None:
    """What ``valuesim ask --pilot`` prints: the rows on stdout; for table and csv the
    notes and the summary line on stderr (json carries them in its summary)."""
    import sys

    sys.stdout.write(format_pilot(result, fmt))
    if fmt != "json":
        for note in result.summary.notes:
            print(f"note: {note}", file=sys.stderr)
        print(result.summary.line(), file=sys.stderr)
