"""Ask any survey item of any country: simulated answers for questions nobody has asked.

(The module is ``asking``, not ``ask``: ``valuesim.ask`` is the function, re-exported
from the package, and a submodule of the same name would shadow it.)

:func:`ask` runs new items (question files, :mod:`valuesim.survey.new_questions`) or
WVS items of the bank through the study's own machinery and returns one row per
(country, question): the predicted distribution, its expected answer and normalized
variance, a prediction interval of the population's mean answer (the study's conformal
fit, :mod:`valuesim.prediction`), a bootstrap 95% interval of the expected answer over
personas (simulation noise only), coverage and estimator. Nothing is approximated on the way:

- personas are the study's: respondents of the study's population (the extract
  stage's ``data/interim/respondents.parquet``, else ``data.source``; or ``source``),
  sampled by :func:`valuesim.personas.sampling.sample_respondents` with
  ``personas.seed`` (deterministic: ``n = personas.n_per_country`` gives the
  study's personas) and worded by the study's descriptor set;
- prompts are planned by :func:`valuesim.prompts.plan_prompts`, as simulate plans them;
- answers go through the engine and the study's response cache
  (``simulate.cache_dir``), so asking twice pays once, and asking a WVS item the study
  already simulated with the same personas pays nothing;
- ``calibrate=True`` applies the mean-preserving tilt at the temperature the
  calibrate stage fitted for that (model, method) to every persona's distribution
  before they are averaged, as the study does.

The new_questions stage (``data.new_questions``) scores with the same functions:
:func:`plan_items`, :func:`score_units`, :func:`summarise`; the report calibrates its
stored answers with :func:`calibrated_population`.

Every check on the input (question files, method, model, countries against the
source, ``n`` against its respondents, answers the local tokenizer cannot express)
runs before any answer is scored and fails with one line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from valuesim.analysis.conformal import cell_seed as _cell_seed  # evaluate reproduces ask's seeds
from valuesim.errors import ConfigError, ProviderError
from valuesim.paths import CALIBRATED
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.new_questions import plan_items  # ask's prompts (also the stage's)
from valuesim.survey.question_types import (
    MULTI,
    NO_TILT,
    OptionItem,
    first_listed_share,
    has_scale,
    modal,
    no_scale_reason,
)

if TYPE_CHECKING:
    from valuesim.config import ModelSpec, Params
    from valuesim.llm.engine import Engine
    from valuesim.llm.types import AnswerDistribution, ScoreRequest
    from valuesim.planning import PlanRow
    from valuesim.prompts import PromptUnit

QuestionsArg = str | Path | Item | Sequence[str | Path | Item]
CountriesArg = str | Sequence[str]

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "country": pl.Utf8(),
    "question": pl.Utf8(),
    "label": pl.Utf8(),
    "new": pl.Boolean(),  # a question-file item, not one of the WVS bank
    "codes": pl.List(pl.Int64()),
    "probs": pl.List(pl.Float64()),
    "expected": pl.Float64(),
    "normalized_variance": pl.Float64(),
    # persona bootstrap 95% interval of the expected answer: simulation noise only
    "persona_ci_low": pl.Float64(),
    "persona_ci_high": pl.Float64(),
    "persona_sd": pl.Float64(),  # spread of the personas' expected answers (scale points)
    "n_personas": pl.Int64(),
    "flagged": pl.Int64(),
    "mean_coverage": pl.Float64(),
    "estimator": pl.Utf8(),
    "answer_rule": pl.Utf8(),
    "method": pl.Utf8(),
    "model": pl.Utf8(),
    "temperature": pl.Float64(),  # null: raw (uncalibrated) distributions
    # prediction interval of the population's mean answer (valuesim.prediction): from the
    # study's conformal fit for (model, method); null when there is none
    "pred_low": pl.Float64(),
    "pred_high": pl.Float64(),
    "pred_level": pl.Float64(),
    "pred_source": pl.Utf8(),
    # order: rotate (nominal and binary items): the mean share the personas gave whichever
    # answer their prompt listed first (1/n: no order effect); null for an item listed
    # in one order
    "first_listed_share": pl.Float64(),
}
# ask's rows: RESULT_SCHEMA (what the new_questions stage stores, unchanged) and the
# answers' labels and type-aware summaries (valuesim.survey.question_types)
LABEL_SCHEMA: dict[str, pl.DataType] = {
    # ordinal, nominal or binary; multi: one option of a multi item, asked as Yes/No
    "type": pl.Utf8(),
    "labels": pl.List(pl.Utf8()),  # in the order of codes
    "mode": pl.Int64(),  # the modal answer's code
    "mode_label": pl.Utf8(),
    "mode_share": pl.Float64(),
    # why expected, variance and intervals are null (nominal, binary and multi items)
    "no_expected_reason": pl.Utf8(),
    # an option of a multi item: the item's id and the option's label; the share
    # selecting it is probs[0] (Yes)
    "part_of": pl.Utf8(),
    "option": pl.Utf8(),
}
ASK_SCHEMA: dict[str, pl.DataType] = {**RESULT_SCHEMA, **LABEL_SCHEMA}
# The study's calibrate output (valuesim.stages.calibrate writes it).
TEMPERATURES = CALIBRATED / "temperatures.json"
_ISO3 = re.compile(r"^[A-Z]{3}$")
#: Requests to send from which ask prints its plan before it starts (a paid one always).
LARGE_RUN = 1_000


@dataclass(frozen=True)
class Calibration:
    """The temperatures the calibrate stage fitted for one (model, method).

    A WVS item the study calibrated keeps its leave-one-question-out T (the study's
    own out-of-sample value); any other item gets ``overall``, the T fitted on all of
    the study's questions, which is out of sample for an item the study never saw.
    """

    path: str
    run: str  # "<model>/<method>"
    overall: float
    loqo: dict[str, float]
    md5: str  # of the temperatures file: which calibrate run this was
    modified: str  # the file's modification time, UTC

    def temperature(self, question: str) -> float:
        return self.loqo.get(question, self.overall)

    def line(self) -> str:
        return (f"calibrated with T={self.overall:.4g} (overall) fitted for {self.run} in "
                f"{self.path} (md5 {self.md5[:8]}, written {self.modified})")


def summary_json(summary: object) -> dict[str, object]:
    """A run summary dataclass (ask, pilot) as JSON: tuples as lists, the calibration
    and the plan as their fields."""
    out = {k: v for k, v in summary.__dict__.items() if k not in ("calibration", "plan")}
    for key in ("countries", "questions", "notes"):
        out[key] = list(out[key])
    for key in ("calibration", "plan"):
        value = summary.__dict__.get(key)
        out[key] = None if value is None else dict(value.__dict__)
    return out


def plan_run(
    params: Params, engine: Engine, model: str, method: str, units: Sequence[PromptUnit], *,
    label: str, project: Path, announce: bool, log: Callable[[str], None] | None,
) -> PlanRow:
    """Plan ``units``' requests before any is sent: refused in one line over
    ``simulate.max_cost_usd`` (:mod:`valuesim.spending`); with ``announce``, the plan's
    line is logged when the run is large (:data:`LARGE_RUN`) or paid."""
    import sys

    from valuesim.spending import plan_and_check, plan_line

    requests = [engine.request(u.messages, u.answers) for u in units]
    row = plan_and_check(
        params, engine, model, method, requests, stage="ask", label=label, project=project,
        fix="ask less (fewer countries, questions or personas; --dry-run prints the plan)",
    )
    if announce and (row.to_send >= LARGE_RUN or row.cost_usd):
        line = plan_line(row, label)
        (log or (lambda m: print(m, file=sys.stderr, flush=True)))(line)
    return row


def open_engine(
    params: Params, model: str, project: Path, *, label: str, dry_run: bool,
    progress: bool | None, log: Callable[[str], None] | None, carry_over: bool = False,
) -> Engine:
    """The engine of an ask (or pilot) run; a dry run creates no response cache.
    ``carry_over``: an interrupted run's paid answers are reported by the next one."""
    from valuesim.llm.cache import DB_NAME, resolve_cache_dir
    from valuesim.llm.engine import Engine

    spec, sim = params.models[model], params.simulate
    directory = resolve_cache_dir(sim.cache_dir, cwd=project)
    cache = None if dry_run and not (directory / DB_NAME).exists() else directory
    return Engine(
        spec.provider, spec, cache, batch_size=sim.batch_size, max_retries=sim.max_retries,
        timeout_s=sim.timeout_s, prices=sim.prices, label=label, progress=progress, log=log,
        carry_over=carry_over,
    )


@dataclass(frozen=True)
class AskSummary:
    """How one :func:`run_ask` went: what was asked, where from, what it cost."""

    model: str
    method: str
    provider: str
    provider_model: str
    estimator: str
    answer_rule: str
    source: str
    countries: tuple[str, ...]
    questions: tuple[str, ...]
    personas_per_country: int
    requests: int
    cache_hits: int
    sent: int  # answers the provider scored in this call (0 when all were cached)
    provider_calls: int
    wall_s: float
    calibration: Calibration | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    tokens: int = 0  # prompt and reply tokens of the answers sent
    cost_usd: float = 0.0  # at simulate.prices, else the provider's figure
    plan: PlanRow | None = None  # what was to be sent, planned before the first request
    dry_run: bool = False  # planned only: nothing was sent
    # answers interrupted asks of this provider/model paid for and never reported
    earlier_runs: int = 0
    earlier_answers: int = 0

    def line(self) -> str:
        head = (f"ask {self.model}/{self.method}: {len(self.countries)} countries x "
                f"{len(self.questions)} questions x {self.personas_per_country} personas: ")
        if self.dry_run:
            return head + "dry run, nothing was sent"
        earlier = ""
        if self.earlier_runs:
            runs = "an interrupted run" if self.earlier_runs == 1 else f"{self.earlier_runs} interrupted runs"
            earlier = f" (and {self.earlier_answers} answers paid by {runs} before)"
        return (head + f"{self.requests} requests, {self.cache_hits} cached, {self.sent} sent in "
                f"{self.provider_calls} calls{earlier}, {self.tokens} tokens, ${self.cost_usd:.4f}, "
                f"{self.wall_s:.1f}s")

    def to_json(self) -> dict[str, object]:
        return summary_json(self)


@dataclass(frozen=True)
class AskResult:
    frame: pl.DataFrame  # ASK_SCHEMA, one row per (country, question)
    summary: AskSummary


# -- input --------------------------------------------------------------------------


def resolve_questions(questions: QuestionsArg, bank: QuestionBank) -> list[Item]:
    """Items from question files (paths), WVS ids of the bank and :class:`Item` objects."""
    from valuesim.survey.new_questions import (
        QuestionFileError,
        load_question_files,
        parse_items,
    )

    given = [questions] if isinstance(questions, str | Path | Item) else list(questions)
    if not given:
        raise ConfigError("no questions given; pass a question file or WVS item ids")
    items: list[Item] = []
    for entry in given:
        if isinstance(entry, Item):
            items.append(entry)
        elif isinstance(entry, Path) or str(entry).endswith((".yaml", ".yml")) or Path(entry).is_file():
            items += load_question_files([entry], bank)
        else:
            items += parse_items([str(entry)], "the questions given", bank)
    ids = [i.id for i in items]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise QuestionFileError(f"questions {', '.join(dup)} are given twice; ask each once")
    return items


def parse_countries(countries: CountriesArg) -> list[str]:
    """ISO3 codes from "JPN,DEU" or a list; each must be a country the prompts can name."""
    from valuesim.survey.countries import country_name

    raw = countries.split(",") if isinstance(countries, str) else list(countries)
    codes = list(dict.fromkeys(c.strip().upper() for c in raw if c.strip()))
    if not codes:
        raise ConfigError("no countries given; pass ISO3 codes such as JPN,DEU")
    for c in codes:
        if not _ISO3.match(c):
            raise ConfigError(f"country {c!r} is not an ISO3 code such as JPN")
        country_name(c)
    return codes


def _echoed(items: Sequence[Item], method: str) -> list[str]:
    """Bank items that ``method``'s personas describe (their answers are in the prompt)."""
    from valuesim.methods import get_method

    kind = get_method(method).persona
    role = {"value": "persona", "fewshot": "persona", "sociodemographic": "sociodemographic"}.get(
        kind or ""
    )
    return [i.id for i in items if role is not None and role in i.roles]


def _check_model_and_method(params: Params, model: str, method: str) -> None:
    from valuesim.methods import get_method

    get_method(method)  # the table of methods: a one-line error listing them
    if model not in params.models:
        from valuesim.model_flags import how_to_add

        raise ConfigError(how_to_add(model, "params", list(params.models)))


# -- calibration --------------------------------------------------------------------


def find_calibration(project: Path, model: str, method: str) -> tuple[Calibration | None, str]:
    """The fitted temperatures for (model, method), or None and a note saying why not."""
    from valuesim.artifacts import read_json

    path = project / TEMPERATURES
    run = f"{model}/{method}"
    if not path.exists():
        return None, (f"no fitted temperature: {TEMPERATURES} not found (run `dvc repro calibrate` "
                      f"with {run} in the study); reporting raw distributions")
    data = read_json(path, "calibrate", keys=("temperatures",))
    entry = data["temperatures"].get(run) if isinstance(data["temperatures"], dict) else None
    if not isinstance(entry, dict) or "overall" not in entry:
        fitted = ", ".join(sorted(data["temperatures"])) or "none"
        return None, (f"no fitted temperature for {run} in {TEMPERATURES} (fitted: {fitted}); "
                      "reporting raw distributions")
    raw = path.read_bytes()
    stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    loqo = {str(q): float(t) for q, t in (entry.get("loqo") or {}).items()}
    cal = Calibration(str(TEMPERATURES), run, float(entry["overall"]), loqo,
                      hashlib.md5(raw).hexdigest(), stamp)  # an id, not security
    return cal, cal.line()


# -- scoring ------------------------------------------------------------------------


def _preflight(engine: Engine, units: Sequence[PromptUnit], requests: Sequence[ScoreRequest]) -> None:
    """Refuse answers the local model's tokenizer cannot express, before scoring any.

    Runs only when something is not cached yet; loading the model is not a call. For
    providers without a local tokenizer the provider's own check applies.
    """
    found = engine.cached(requests)
    todo = [i for i, r in enumerate(requests) if engine.key(r) not in found]
    if not todo:
        return
    lm = getattr(engine.provider, "lm", None)
    if lm is None or getattr(lm, "tokenizer", None) is None:
        return
    from valuesim.llm.exact_scoring import answer_trie

    rule = engine.decoding.answer_rule or "answer_start"
    checked: set[str] = set()
    for i in todo:
        question = units[i].question
        if question in checked:
            continue
        checked.add(question)
        try:
            answer_trie(lm, requests[i].messages, requests[i].answers, rule)  # type: ignore[arg-type]
        except ProviderError as exc:
            raise ProviderError(f"question {question}: {exc}; nothing was scored") from None


def cell_stats(
    codes: Sequence[int], probs: np.ndarray, temperature: float | None, params: Params,
    country: str, question: str, *, scale: bool = True,
) -> dict[str, object]:
    """One (country, question) from its usable personas' distributions (rows of ``probs``).

    ``temperature``: the mean-preserving tilt applied to every persona's distribution
    before they are averaged (as the study calibrates), or None for raw. Returns
    probs, expected, normalized_variance, the percentile bootstrap 95% interval of the
    expected answer over personas (seeded per cell from ``analysis.seed``: simulation
    noise only, not where the population's answer lies) and the personas' spread.
    ``scale=False`` (nominal and binary items): the shares only, raw; every statistic
    of the codes as numbers is null (:mod:`valuesim.survey.question_types`).
    """
    from valuesim.analysis import metrics

    if not scale:
        return {"probs": probs.mean(axis=0).tolist(), "expected": None,
                "normalized_variance": None, "persona_ci_low": None, "persona_ci_high": None,
                "persona_sd": None, "temperature": None}
    values = np.asarray(codes, dtype=np.float64)
    if temperature is not None:
        from valuesim.calibration.tilt import mean_preserving_tilt

        probs = mean_preserving_tilt(probs, values, temperature)
    population = probs.mean(axis=0)
    per_persona = probs @ values
    low, high = metrics.bootstrap_ci(
        per_persona, params.analysis.bootstrap, _cell_seed(params.analysis.seed, country, question)
    )
    return {
        "probs": population.tolist(),
        "expected": float(metrics.expected(population, values)),
        "normalized_variance": float(metrics.normalized_variance(population, values)),
        "persona_ci_low": low, "persona_ci_high": high,
        "persona_sd": float(per_persona.std(ddof=1)) if per_persona.size > 1 else None,
        "temperature": temperature,
    }


def _row(
    item: Item, country: str, dists: Sequence[AnswerDistribution], params: Params,
    calibration: Calibration | None,
) -> dict[str, object]:
    usable = [d for d in dists if not d.flag]
    row: dict[str, object] = {
        "country": country, "question": item.id, "label": item.label, "codes": item.codes,
        "n_personas": len(usable), "flagged": len(dists) - len(usable),
        "estimator": dists[0].estimator if dists else None,
        "answer_rule": dists[0].answer_rule if dists else None,
    }
    if not usable:  # every persona put zero mass on the scale: nothing to average
        return row
    probs = np.asarray([d.probs for d in usable], dtype=np.float64)
    scale = has_scale(item)  # no tilt for unordered options (question_types.NO_TILT)
    t = None if calibration is None or not scale else calibration.temperature(item.id)
    row.update(cell_stats(item.codes, probs, t, params, country, item.id, scale=scale))
    row["mean_coverage"] = float(np.mean([d.coverage for d in usable]))
    if item.order == "rotate":  # dists in persona order: the k-th saw the (k mod n)-th first
        row["first_listed_share"] = first_listed_share([(d.probs, bool(d.flag)) for d in dists])
    return row


def score_units(engine: Engine, units: Sequence[PromptUnit]) -> list[AnswerDistribution]:
    """Every prompt through ``engine`` (its cache first), after the tokenizer check."""
    requests = [engine.request(u.messages, u.answers) for u in units]
    _preflight(engine, units, requests)
    return engine.run(requests)


def summarise(
    units: Sequence[PromptUnit], results: Sequence[AnswerDistribution], items: Sequence[Item],
    countries: Sequence[str], bank: QuestionBank, params: Params,
    calibration: Calibration | None, *, model: str, method: str,
) -> pl.DataFrame:
    """One :data:`RESULT_SCHEMA` row per (country, question), countries then items in
    the order given; ``bank``: the study's bank (without the new items), for ``new``."""
    from valuesim.survey.new_questions import is_new

    by_cell: dict[tuple[str, str], list[AnswerDistribution]] = {}
    for unit, dist in zip(units, results, strict=True):
        by_cell.setdefault((unit.country, unit.question), []).append(dist)
    rows = []
    for country in countries:
        for item in items:
            row = _row(item, country, by_cell.get((country, item.id), []), params, calibration)
            rows.append({**row, "new": is_new(item, bank), "method": method, "model": model})
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


def with_labels(frame: pl.DataFrame, items: Sequence[Item]) -> pl.DataFrame:
    """``frame`` (:data:`RESULT_SCHEMA` rows of ``items``) with the :data:`LABEL_SCHEMA`
    columns: the answers' labels, the modal answer with its label and share, and for an
    option of a multi item, the item and the option."""
    by_id = {i.id: i for i in items}
    extra = []
    for question, probs in frame.select("question", "probs").iter_rows():
        item = by_id[question]
        kind = MULTI if isinstance(item, OptionItem) else item.type
        row: dict[str, object] = {"type": kind, "labels": [a.label for a in item.answers],
                                  "no_expected_reason": None if has_scale(item)
                                  else no_scale_reason(kind)}
        if probs is not None:
            position, share = modal(probs)
            row.update(mode=item.codes[position], mode_label=item.answers[position].label,
                       mode_share=share)
        if isinstance(item, OptionItem):
            row.update(part_of=item.part_of, option=item.option.label)
        extra.append(row)
    labelled = pl.DataFrame(extra, schema=LABEL_SCHEMA)
    return pl.concat([frame, labelled], how="horizontal")


def calibrated_population(
    answers: pl.DataFrame, population: pl.DataFrame, temperature: float, params: Params
) -> pl.DataFrame:
    """``population`` (RESULT_SCHEMA rows, raw) recomputed with every persona's
    distribution of ``answers`` (the persona-level table) tilted at ``temperature``.

    What :func:`run_ask` does with ``calibrate``, from stored answers: the report
    calibrates the study's new questions with each run's overall T this way.
    """
    usable = answers.filter(pl.col("flag") == "")
    cells = {
        (c, q): np.asarray(g["probs"].to_list(), dtype=np.float64)
        for (c, q), g in usable.group_by(["country", "question"], maintain_order=True)
    }
    rows = []
    for row in population.iter_rows(named=True):
        probs = cells.get((row["country"], row["question"]))
        if probs is not None and row["expected"] is not None:
            row = {**row, **cell_stats(row["codes"], probs, temperature, params,
                                       row["country"], row["question"])}
        rows.append(row)
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


def run_ask(
    questions: QuestionsArg,
    countries: CountriesArg,
    *,
    method: str = "value",
    model: str = "smollm2",
    n: int | None = None,
    source: str | Path | None = None,
    calibrate: bool = False,
    level: float = 0.9,
    params_path: str | Path = "params.yaml",
    project_dir: str | Path = ".",
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    dry_run: bool = False,
    spec: ModelSpec | None = None,
) -> AskResult:
    """:func:`ask`, with the run's summary (cache hits, answers sent, tokens, cost,
    calibration, notes, the plan). Before the first request the run is planned
    (:func:`plan_run`): over ``simulate.max_cost_usd`` nothing is sent; a large or paid
    run logs its plan. ``dry_run``: plan only, send nothing (the frame has no rows).
    ``spec``: a model the params do not define (or new settings for one), asked under
    the name ``model`` (:mod:`valuesim.model_flags`: ``valuesim ask --provider ...``)."""
    from valuesim.config import load_params
    from valuesim.methods import get_method
    from valuesim.model_flags import with_model
    from valuesim.personas.on_demand import check_n, personas_for, respondents_for, under
    from valuesim.prediction import add_prediction_intervals, check_level, find_fit
    from valuesim.survey.bank import load_bank

    project = Path(project_dir)
    params = with_model(load_params(under(project, params_path)), model, spec)
    _check_model_and_method(params, model, method)
    level = check_level(level)
    if n is None:  # the study's own personas (and cached answers) unless told otherwise
        n = params.personas.n_per_country
    bank = load_bank(under(project, params.data.questions))
    items = resolve_questions(questions, bank)
    codes = parse_countries(countries)
    notes: list[str] = []
    echoed = _echoed(items, method)
    if echoed:
        notes.append(f"{', '.join(echoed)}: {method} personas state the respondent's answer to "
                     "these items, so the model mostly reads it back; ask them with another method")

    if get_method(method).persona is None:
        personas, where, per_country = pl.DataFrame(), "none (a country-level method)", 1
        notes.append(f"{method} asks once per country: no personas, so n and the source are unused "
                     "and the interval is a single point")
    else:
        respondents, where, _ = respondents_for(
            None if source is None else str(source), params, bank, codes, project
        )
        check_n(n, respondents, codes, where)
        personas = personas_for(params, bank, respondents, codes, method, n, project)
        per_country = n

    calibration, note = find_calibration(project, model, method) if calibrate else (None, "")
    if note:
        notes.append(note)
    # a multi item is named once, by its own id, not by each option's
    unordered = {getattr(i, "part_of", i.id): MULTI if isinstance(i, OptionItem) else i.type
                 for i in items if not has_scale(i)}
    if calibration is not None and unordered:
        notes.append(NO_TILT.format(ids=", ".join(unordered),
                                    kinds="/".join(sorted(set(unordered.values())))))
    _, units = plan_items(params, method, personas, bank, items, codes)

    label = f"ask {model}/{method}"
    with open_engine(params, model, project, label=label, dry_run=dry_run, progress=progress,
                     log=log, carry_over=True) as engine:
        plan = plan_run(params, engine, model, method, units, label=label, project=project,
                        announce=not dry_run, log=log)
        estimator, answer_rule = engine.estimator, engine.answer_rule
        if dry_run:
            return AskResult(pl.DataFrame(schema=ASK_SCHEMA), AskSummary(
                model=model, method=method, provider=engine.factory.name,
                provider_model=engine.spec.model, estimator=estimator, answer_rule=answer_rule,
                source=where, countries=tuple(codes), questions=tuple(i.id for i in items),
                personas_per_country=per_country, requests=plan.requests,
                cache_hits=plan.cached, sent=0, provider_calls=0, wall_s=0.0,
                calibration=calibration, notes=tuple(notes), plan=plan, dry_run=True,
            ))
        results = score_units(engine, units)
        run = engine.summary

    frame = summarise(units, results, items, codes, bank, params, calibration,
                      model=model, method=method)
    fit, fit_note = find_fit(project, model, method, level=level, n=per_country,
                             calibrated=calibration is not None)
    if fit_note:
        notes.append(fit_note)
    frame = add_prediction_intervals(frame, fit, asked_n=per_country, level=level)
    frame = with_labels(frame, items)
    empty = frame.filter(pl.col("n_personas") == 0)
    if empty.height:
        cells = ", ".join(f"{c}/{q}" for c, q in empty.select("country", "question").iter_rows())
        notes.append(f"no persona gave any probability to the scale for {cells}: no distribution")
    summary = AskSummary(
        model=model, method=method, provider=run.provider, provider_model=run.model,
        estimator=estimator, answer_rule=answer_rule, source=where, countries=tuple(codes),
        questions=tuple(i.id for i in items), personas_per_country=per_country,
        requests=run.requests, cache_hits=run.cache_hits, sent=run.sent,
        provider_calls=run.provider_calls, wall_s=run.wall_s, calibration=calibration,
        notes=tuple(notes), tokens=run.prompt_tokens + run.completion_tokens,
        cost_usd=run.cost_usd, plan=plan, earlier_runs=run.earlier_runs,
        earlier_answers=run.earlier_answers,
    )
    return AskResult(frame, summary)


def ask(
    questions: QuestionsArg,
    countries: CountriesArg,
    *,
    method: str = "value",
    model: str = "smollm2",
    n: int | None = None,
    source: str | Path | None = None,
    calibrate: bool = False,
    level: float = 0.9,
    params_path: str | Path = "params.yaml",
    project_dir: str | Path = ".",
    spec: ModelSpec | None = None,
) -> pl.DataFrame:
    """Simulated answers to ``questions`` in ``countries``: one row per (country, question).

    ``questions``: question files (YAML, see :mod:`valuesim.survey.new_questions`), WVS
    item ids of the bank ("Q164") or :class:`~valuesim.survey.bank.Item` objects, one or
    a list. ``countries``: ISO3 codes, "JPN,DEU" or a list. ``method`` and ``model``:
    a prompting method (:mod:`valuesim.methods`) and an entry of the params' ``models``.
    ``n``: personas per country (persona methods; default ``personas.n_per_country``,
    the study's own personas). ``source``: respondents to sample personas from (demo
    ``.json`` aggregates or WVS files; default: the study's). ``calibrate``: apply the
    study's fitted temperature for (model, method); without one the rows stay raw
    (``temperature`` null; :func:`run_ask` says why). ``level``: of the prediction
    interval (0.8, 0.9 or 0.95, the levels the study fitted). ``spec``: a model the
    params do not define, asked under the name ``model``, e.g.
    ``ModelSpec(provider="openai", model="gpt-4o-mini")`` (keys from the environment).

    Columns: see :data:`ASK_SCHEMA` (``probs`` and ``labels`` in the order of ``codes``;
    nominal and binary items have shares, labels and the modal answer, and null expected,
    variance and intervals; a multi item has a row per option, ``part_of`` naming it and
    ``probs[0]`` the share selecting the option: :mod:`valuesim.survey.question_types`).
    ``pred_low``/``pred_high``: prediction interval of the population's mean answer at
    ``pred_level``, from the conformal fit of the study's own questions for (model,
    method) (:mod:`valuesim.prediction`; ``pred_source`` names the fit and its measured
    coverage; null when the study has no fit for it). ``persona_ci_low``/``persona_ci_high``:
    percentile bootstrap 95% interval of the expected answer over personas -- how much
    the answer moves with other personas of the same model, *not* where the population's
    answer lies. Use :func:`run_ask` for the run's summary (answers sent and cached, notes).
    """
    return run_ask(
        questions, countries, method=method, model=model, n=n, source=source,
        calibrate=calibrate, level=level, params_path=params_path, project_dir=project_dir,
        spec=spec,
    ).frame
