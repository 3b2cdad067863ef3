"""`valuesim stage evaluate`: scores, references, noise floors, tests and curves.

Reads the calibrated population, the persona-level answers, the human data and the
map; writes data/eval/*.parquet (with the prediction intervals: intervals.parquet,
interval_fits.parquet, interval_choice.json), reports/metrics.json (DVC metrics) and
the DVC plot data under reports/plots/. Nominal and binary targets of the bank are
scored apart (data/eval/unordered_*.parquet and metrics.json's ``unordered``, written
only when the study has such items). The computation is ``valuesim.analysis.evaluation`` and
``valuesim.culturalmap.positions``.
"""

from __future__ import annotations

import polars as pl

from valuesim import artifacts
from valuesim.analysis.blocks import simulated_runs
from valuesim.analysis.evaluation import evaluate
from valuesim.analysis.persona_information import PersonaFeatures, method_features
from valuesim.config import Params
from valuesim.culturalmap.positions import map_positions
from valuesim.culturalmap.sampled_respondents import (
    HUMAN_SCHEMA,
    POSITION_SCHEMA,
    human_positions,
    independent_human_positions,
    sampled_positions,
    spread_countries,
)
from valuesim.culturalmap.transform import IWTransform
from valuesim.paths import (
    CALIBRATED,
    EVAL,
    HUMAN_DISTRIBUTIONS,
    MAP_POSITIONS,
    MAP_TRANSFORM,
    METRICS,
    PLOTS,
    RESPONDENTS,
    SIMULATED,
)
from valuesim.survey.bank import Item


def explicit_batteries(params: Params) -> dict[str, str]:
    """Items of the bank that set their ``battery`` (the rest follow their Q-number)."""
    from pathlib import Path

    from valuesim.survey.bank import load_bank

    path = Path(params.data.questions)
    if not path.exists():  # a study assembled without the bank: every battery from its id
        return {}
    return {i.id: i.battery for i in load_bank(path).items if i.battery}


def persona_features(params: Params) -> dict[str, PersonaFeatures]:
    """What each persona method of the study states (its persona-information floor), from
    the question bank; empty for a study assembled without the bank."""
    from pathlib import Path

    from valuesim.survey.bank import load_bank

    path = Path(params.data.questions)
    if not path.exists():
        return {}
    bank = load_bank(path)
    return {m: f for m in params.simulate.methods if (f := method_features(m, bank)) is not None}


def unordered_targets(params: Params) -> dict[str, Item]:
    """The bank's nominal and binary targets (scored by total variation and
    Jensen-Shannon); empty for a study assembled without the bank."""
    from pathlib import Path

    from valuesim.survey.bank import load_bank

    path = Path(params.data.questions)
    if not path.exists():
        return {}
    return {i.id: i for i in load_bank(path).targets if i.type != "ordinal"}


def run(params: Params, **_: object) -> None:
    from valuesim.methods import persona_kind

    population = artifacts.read_parquet(CALIBRATED / "population.parquet", "calibrate")
    human = artifacts.read_parquet(HUMAN_DISTRIBUTIONS, "human")
    kept = artifacts.kept_questions()
    respondents = artifacts.read_parquet(RESPONDENTS, "extract")
    runs = simulated_runs(SIMULATED, params.simulate.models, params.simulate.methods)
    result = evaluate(
        population=population, human=human, kept=kept, respondents=respondents,
        answers={key: artifacts.read_parquet(path, "simulate") for key, path in runs.items()},
        persona_methods={m for m in params.simulate.methods if persona_kind(m)[0]},
        an=params.analysis, persona_seed=params.personas.seed, batteries=explicit_batteries(params),
        persona_features=persona_features(params), unordered=unordered_targets(params),
    )
    # a map-answer file is read only when there is a map to place it on
    transform = IWTransform.load(MAP_TRANSFORM) if MAP_TRANSFORM.exists() else None
    map_answers = {
        key: artifacts.read_parquet(path.with_name("map_answers.parquet"), "simulate")
        for key, path in runs.items()
        if transform is not None and path.with_name("map_answers.parquet").exists()
    }

    positions = map_positions(map_answers, transform)
    # Figure 1B: sampled model respondents and the human respondents of four selected
    # countries spread over the map, both projected with the map's transform (empty
    # tables when there is nothing to sample or no map items in the respondents: the
    # report says why); the human respondents also drawn item by item, as the model
    # respondents are, are the like-for-like reference (map_humans_independent)
    sample, humans = pl.DataFrame(schema=POSITION_SCHEMA), pl.DataFrame(schema=HUMAN_SCHEMA)
    independent = pl.DataFrame(schema=HUMAN_SCHEMA)
    if transform is not None and map_answers:
        panels = spread_countries(artifacts.read_csv(MAP_POSITIONS, "map"), artifacts.selected_countries())
        sample = sampled_positions(map_answers, transform, panels, params.analysis.seed)
        if set(transform.items) <= set(respondents.columns):
            humans = human_positions(respondents, transform, panels)
            independent = independent_human_positions(respondents, transform, panels, params.analysis.seed)

    # data/eval/ and reports/ together or not at all: a full or read-only reports/
    # leaves the old data/eval/ too, so the metrics always describe the tables
    with artifacts.output_set():
        for name, frame in result.tables.items():
            artifacts.write_parquet(frame, EVAL / name)
        artifacts.write_parquet(positions, EVAL / "map_positions.parquet")
        artifacts.write_parquet(sample, EVAL / "map_sample.parquet")
        artifacts.write_parquet(humans, EVAL / "map_humans.parquet")
        artifacts.write_parquet(independent, EVAL / "map_humans_independent.parquet")
        for name, data in result.json.items():
            artifacts.write_json(data, EVAL / name)
        for name, frame in result.plots.items():
            artifacts.write_csv(frame, PLOTS / name)
        # metrics last: DVC's metrics file is the run's summary
        artifacts.write_json(result.metrics, METRICS)
