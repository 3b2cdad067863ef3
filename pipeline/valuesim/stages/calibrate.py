"""`valuesim stage calibrate`: leave-one-question-out mean-preserving calibration.

Reads data/simulated/<model>/<method>/answers.parquet (persona level) and
data/human; writes data/calibrated/population.parquet and temperatures.json.
Nominal and binary target items of the bank are left out (with a line saying why):
the population holds ordinal items only. The fits of the (model, method) runs are
independent and run in ``workers`` processes (default: the usable cores; 1 = in this
process); the outputs are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from valuesim.analysis.blocks import QuestionBlock, build_blocks, simulated_runs
from valuesim.artifacts import kept_questions, output_set, read_parquet, write_json, write_parquet
from valuesim.calibration.fit import POPULATION_SCHEMA, fit_summary, population_rows
from valuesim.calibration.tilt import temperature_grid
from valuesim.calibration.workers import fit_runs, usable_cores
from valuesim.config import Params
from valuesim.errors import ConfigError, DataError
from valuesim.paths import CALIBRATED, HUMAN_DISTRIBUTIONS, SIMULATED
from valuesim.survey.bank import unordered_items
from valuesim.survey.question_types import NO_TILT


def run(params: Params, workers: int | None = None, **_: object) -> None:
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1 (1 = no worker processes); got {workers}")
    cal = params.calibration
    grid = temperature_grid(cal.t_grid_min, cal.t_grid_max, cal.t_grid_size)
    human = read_parquet(HUMAN_DISTRIBUTIONS, "human")
    # T is fitted on ordinal items only: the tilt keeps each persona's expected code,
    # which nominal and binary items lack (their shares stay raw; evaluate scores them)
    unordered = unordered_items(params.data.questions)
    targets = kept_questions()
    kept = [q for q in targets if q not in unordered]
    skipped = {q: unordered[q] for q in targets if q in unordered}
    if skipped:
        print(NO_TILT.format(ids=", ".join(skipped), kinds="/".join(sorted(set(skipped.values())))))
    paths = simulated_runs(SIMULATED, params.simulate.models, params.simulate.methods)

    def runs() -> Iterator[tuple[tuple[str, str], list[QuestionBlock]]]:
        for key, path in paths.items():
            blocks = build_blocks(read_parquet(path, "simulate"), human, kept)
            if not blocks:
                raise DataError(f"{path} has no usable answers to kept questions; re-run simulate")
            yield key, blocks

    n = min(workers or usable_cores(), 2 * len(paths))  # two fits per run
    frames = []
    temperatures: dict[str, object] = {}
    for (model, method), blocks, fit, plain in fit_runs(runs(), grid, workers=n):
        frames.append(population_rows(model, method, blocks, fit, plain))
        temperatures[f"{model}/{method}"] = {**fit_summary(fit), "plain": fit_summary(plain)}
    population = pl.concat(frames) if frames else pl.DataFrame(schema=POPULATION_SCHEMA)
    with output_set():  # both or neither
        write_parquet(population.sort(["model", "method", "country", "question"]),
                      CALIBRATED / "population.parquet")
        write_json(
            {"grid": {"min": cal.t_grid_min, "max": cal.t_grid_max, "size": cal.t_grid_size},
             "temperatures": temperatures},
            CALIBRATED / "temperatures.json",
        )
