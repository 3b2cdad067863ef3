"""A study's results as polars frames, for notebooks.

::

    from valuesim import load_study, ask

    study = load_study(".")                 # the project directory (where dvc.yaml is)
    human = study.human()                   # country, question, code, share
    sim = study.simulated()                 # model, method, country, question, codes, probs, ...
    cal = study.calibrated()                # probs_raw, probs_cal, temperature, ...
    study.metrics().filter(pl.col("metric") == "mae")
    study.scoreboard()                      # the report's main table, the same frame
    study.distributions()                   # per code: human beside simulated (raw, calibrated, plain)
    study.cells()                           # per (model, method, country, question): the errors
    study.country_results(); study.tests()  # per country; every paired/Wilcoxon/Mann-Whitney test
    study.prompts(); study.questions()      # the exact system and user messages the stage sends
    new = ask("my_items.yaml", "JPN,DEU", n=20)   # or study.ask(...): same, in this project

Each method reads its file when called (nothing is cached: a rerun of the pipeline
shows at once), so a study that has run only some stages still answers what it has;
a file that is not there is the one-line error naming it and the stage that writes it
(``... not found; run the human stage first (`dvc repro human`)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from valuesim import artifacts, paths, study_tables
from valuesim.errors import DataError

if TYPE_CHECKING:
    from valuesim.asking import CountriesArg, QuestionsArg
    from valuesim.config import Params

Level = Literal["population", "answers"]
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "metric": pl.Utf8(),  # top-level key of metrics.json, e.g. "mae", "coverage"
    "run": pl.Utf8(),  # "<model>/<method>" or "reference/<name>"; null for study-wide values
    "country": pl.Utf8(),  # ISO3 for per-country metrics (by_country), else null
    "stat": pl.Utf8(),  # the innermost key when it is neither run nor country ("mean", "p5", ...)
    "value": pl.Float64(),
}


def _is_country(key: str) -> bool:
    return len(key) == 3 and key.isalpha() and key.isupper()


def _flatten(value: Any, keys: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, (*keys, str(k)))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield keys, float(value)


def metrics_frame(metrics: Mapping[str, Any]) -> pl.DataFrame:
    """``reports/metrics.json`` in long form: one row per number (see METRICS_SCHEMA)."""
    rows = []
    for keys, value in _flatten(metrics, ()):
        metric, rest = keys[0], keys[1:]
        run = next((k for k in rest if "/" in k), None)
        country = next((k for k in rest if _is_country(k)), None)
        others = [k for k in rest if k not in (run, country)]
        rows.append({"metric": metric, "run": run, "country": country,
                     "stat": ".".join(others) or None, "value": value})
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)


@dataclass(frozen=True)
class Study:
    """The outputs of one project's pipeline run, read on demand (see the module docstring)."""

    project: Path

    def path(self, relative: str | Path) -> Path:
        return self.project / relative

    def _parquet(self, relative: Path, stage: str) -> pl.DataFrame:
        return artifacts.read_parquet(self.path(relative), stage)

    # -- human answers (the human stage) -------------------------------------------

    def human(self) -> pl.DataFrame:
        """Weighted human answer shares: country, question, code, share."""
        return self._parquet(paths.HUMAN_DISTRIBUTIONS, "human")

    def human_summary(self) -> pl.DataFrame:
        """Per (country, question): mean, n, Kish effective n, missing share."""
        return self._parquet(paths.HUMAN_SUMMARY, "human")

    # -- simulated answers (simulate@<model>-<method>) ----------------------------

    def runs(self) -> list[tuple[str, str]]:
        """The (model, method) runs whose outputs are on disk, sorted."""
        root = self.path(paths.SIMULATED)
        found = sorted(root.glob("*/*/population.parquet")) if root.is_dir() else []
        return [(p.parent.parent.name, p.parent.name) for p in found]

    def simulated(
        self, model: str | None = None, method: str | None = None, *, level: Level = "population"
    ) -> pl.DataFrame:
        """Simulated distributions of every run on disk (or of one model and/or method).

        ``level="population"``: per country and question (codes, probs, n_personas,
        mean_coverage); ``"answers"``: per persona (coverage, estimator, flag, ...).
        Columns ``model`` and ``method`` come first.
        """
        if level not in ("population", "answers"):
            raise DataError(f"unknown level {level!r}; use population or answers")
        name = f"{level}.parquet"
        if model is not None and method is not None:
            chosen = [(model, method)]
        else:
            chosen = [(m, k) for m, k in self.runs()
                      if model in (None, m) and method in (None, k)]
        if not chosen:
            which = f"{model or '<model>'}/{method or '<method>'}"
            raise artifacts.missing(paths.SIMULATED / which / name, "simulate", "no simulated run")
        frames = [
            self._parquet(paths.simulated_dir(m, k) / name, f"simulate@{m}-{k}").select(
                pl.lit(m).alias("model"), pl.lit(k).alias("method"), pl.all()
            )
            for m, k in chosen
        ]
        return pl.concat(frames, how="vertical")

    # -- calibration (the calibrate stage) --------------------------------------------

    def calibrated(self) -> pl.DataFrame:
        """Per (model, method, country, question): probs_raw, probs_cal (mean-preserving),
        probs_plain (plain temperature scaling) and their temperatures."""
        return self._parquet(paths.CALIBRATED / "population.parquet", "calibrate")

    def temperatures(self) -> pl.DataFrame:
        """Fitted temperatures: model, method, question (null: the fit on all questions),
        temperature (mean-preserving), temperature_plain."""
        data = artifacts.read_json(
            self.path(paths.CALIBRATED / "temperatures.json"), "calibrate", keys=("temperatures",)
        )
        rows = []
        for run, fit in data["temperatures"].items():
            model, _, method = run.partition("/")
            plain = fit.get("plain", {})
            rows.append({"model": model, "method": method, "question": None,
                         "temperature": fit.get("overall"), "temperature_plain": plain.get("overall")})
            for q, t in fit.get("loqo", {}).items():
                rows.append({"model": model, "method": method, "question": q, "temperature": t,
                             "temperature_plain": plain.get("loqo", {}).get(q)})
        schema = {"model": pl.Utf8, "method": pl.Utf8, "question": pl.Utf8,
                  "temperature": pl.Float64, "temperature_plain": pl.Float64}
        return pl.DataFrame(rows, schema=schema)

    # -- evaluation and the map -----------------------------------------------------------

    def metrics(self) -> pl.DataFrame:
        """``reports/metrics.json`` as a long frame: metric, run, country, stat, value."""
        return metrics_frame(artifacts.read_json(self.path(paths.METRICS), "evaluate"))

    def map_positions(self) -> pl.DataFrame:
        """Human positions on the Inglehart-Welzel map: country, secular,
        self_expression, standard errors and counts (the map stage)."""
        return artifacts.read_csv(self.path(paths.MAP_POSITIONS), "map")

    def simulated_map_positions(self) -> pl.DataFrame:
        """Where each (model, method) places each country on the map (the evaluate stage;
        methods whose personas state the map items have no rows)."""
        return self._parquet(paths.EVAL / "map_positions.parquet", "evaluate")

    def intervals(self) -> pl.DataFrame:
        """How far to trust a new answer: the empirical coverage and width of every
        prediction-interval variant and level, validated holding out whole questions
        (``loqo``) and whole batteries (``lobo``), overall and per country, battery and
        scale length, beside the references and the persona bootstrap (the evaluate stage)."""
        return self._parquet(paths.EVAL / "intervals.parquet", "evaluate")

    def interval_fits(self) -> pl.DataFrame:
        """The conformal thresholds fitted on all the study's questions, which ``ask`` and
        the new_questions stage apply (:mod:`valuesim.prediction`)."""
        return self._parquet(paths.EVAL / "interval_fits.parquet", "evaluate")

    # -- below the aggregates (valuesim.study_tables; also what `valuesim export` writes) --

    def scoreboard(self) -> pl.DataFrame:
        """The report's scoreboard: per model its methods by error (``rank``), the references
        and the floors, each method against the best reference by the paired test. The same
        frame the report renders (:func:`valuesim.report.scoreboard.scoreboard`)."""
        from valuesim.report.scoreboard import scoreboard

        paired = paths.EVAL / "paired_tests.parquet"
        return scoreboard(self._parquet(paths.EVAL / "summary.parquet", "evaluate"),
                          self._parquet(paths.EVAL / "reference_summary.parquet", "evaluate"),
                          self._parquet(paired, "evaluate") if self.path(paired).exists() else None)

    def distributions(self) -> pl.DataFrame:
        """One row per (model, method, country, question, code): ``human`` (weighted share)
        beside ``simulated`` (raw persona mean), ``calibrated`` and ``plain``, joined on
        (country, question, code). The errors of each cell are :meth:`cells`."""
        return study_tables.distributions(self.calibrated(), self.human())

    def cells(self) -> pl.DataFrame:
        """One row per (model, method, country, question): MAE, Wasserstein, normalized
        variances (raw, calibrated, plain), the temperature, and for the runs the persona
        count and mean coverage; the references' cells (model "reference") follow."""
        pops = self.simulated() if self.runs() else None
        return study_tables.cells(self._parquet(paths.EVAL / "cells.parquet", "evaluate"),
                                  self._parquet(paths.EVAL / "reference_cells.parquet", "evaluate"), pops)

    def country_results(self) -> pl.DataFrame:
        """One row per (model, method, country): the errors averaged over the questions,
        references below (the report's per-country figures)."""
        return study_tables.country_results(self._parquet(paths.EVAL / "by_country.parquet", "evaluate"),
                                            self._parquet(paths.EVAL / "reference_by_country.parquet", "evaluate"))

    def tests(self) -> pl.DataFrame:
        """Every comparison evaluate tested, one row each: ``test`` paired (clustered by
        question; the report's paired table), wilcoxon (per country) or mann_whitney."""
        paired_path = self.path(paths.EVAL / "paired_tests.parquet")
        paired = artifacts.read_parquet(paired_path, "evaluate") if paired_path.exists() else None
        return study_tables.tests(paired, self._parquet(paths.EVAL / "wilcoxon.parquet", "evaluate"),
                                  self._parquet(paths.EVAL / "mann_whitney.parquet", "evaluate"))

    def personas(self, method: str | None = None) -> pl.DataFrame:
        """The persona table of each simulated method (or of one): method, persona_id,
        respondent_id, country, kind, nationality, text (the descriptor), missing_items."""
        from valuesim.methods import get_method
        from valuesim.personas.build import SCHEMA

        methods = sorted({k for _, k in self.runs()}) if method is None else [method]
        frames = [self._parquet(paths.personas_for(k), "personas").select(pl.lit(k).alias("method"), pl.all())
                  for k in methods if get_method(k).persona is not None]
        # country-level methods only: no personas, but the same columns
        return pl.concat(frames) if frames else pl.DataFrame(schema={"method": pl.Utf8(), **SCHEMA})

    def prompts(self, method: str | None = None) -> pl.DataFrame:
        """The system message of every prompt, once per (method, persona_id): the guidance
        and, for persona methods, the persona, as the simulate stage renders them
        (:mod:`valuesim.prompts`, with this project's params.yaml). A prompt is this
        message followed by its question's user message (:meth:`questions`)."""
        from valuesim.methods import get_method

        params = self._params()
        countries = artifacts.selected_countries(self.path(paths.SELECTED_COUNTRIES))
        methods = sorted({k for _, k in self.runs()}) if method is None else [method]
        frames = [study_tables.prompt_heads(
            k, self._parquet(paths.personas_for(k), "personas") if get_method(k).persona else pl.DataFrame(),
            countries, params.prompts.guidance) for k in methods]
        return pl.concat(frames) if frames else pl.DataFrame(schema=study_tables.PROMPT_HEAD_SCHEMA)

    def questions(self) -> pl.DataFrame:
        """The study's questions (those the human stage kept): wording, scale and the exact
        user message the simulate stage sends."""
        from valuesim.survey.bank import load_bank

        bank = load_bank(self.path(self._params().data.questions))
        return study_tables.question_prompts(bank, artifacts.kept_questions(self.path(paths.KEPT_QUESTIONS)))

    def _params(self) -> Params:
        from valuesim.config import load_params

        return load_params(self.path("params.yaml"))

    # -- new questions --------------------------------------------------------------------

    def new_questions(self) -> pl.DataFrame:
        """The new_questions stage's answers to ``data.new_questions``, every run: one
        row per (model, method, country, question), raw (:data:`valuesim.asking.RESULT_SCHEMA`;
        no rows when the setting is unset). Never evaluated: there are no human answers."""
        from valuesim.asking import RESULT_SCHEMA

        root = self.path(paths.NEW_QUESTIONS)
        artifacts.require(root, "new_questions")
        frames = [artifacts.read_parquet(p, "new_questions")
                  for p in sorted(root.glob("*/*/population.parquet"))]
        frames = [f for f in frames if f.height]
        return pl.concat(frames) if frames else pl.DataFrame(schema=RESULT_SCHEMA)

    def ask(self, questions: QuestionsArg, countries: CountriesArg, **options: Any) -> pl.DataFrame:
        """:func:`valuesim.asking.ask` in this project (its params, personas and cache)."""
        from valuesim.asking import ask

        return ask(questions, countries, project_dir=self.project, **options)


def load_study(project_dir: str | Path = ".") -> Study:
    """The study in ``project_dir`` (the directory with dvc.yaml and params.yaml)."""
    project = Path(project_dir)
    if not project.is_dir():
        raise DataError(f"project directory {project} not found; pass the directory with dvc.yaml")
    return Study(project)
