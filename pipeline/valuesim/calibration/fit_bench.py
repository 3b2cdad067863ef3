"""Benchmark: the calibrate stage's fits, question by question against stacked and pooled.

``python -m valuesim.calibration.fit_bench [--workers N] [--synthetic] [--paper-scale PARAMS]``

Run from the project root after simulate, it fits every (model, method) of
params.yaml three ways in one run: the objective evaluated question by question (the
stage before issue 25), stacked by answer scale
(:class:`~valuesim.calibration.objective.StackedObjective`), and stacked in ``N``
worker processes (:func:`~valuesim.calibration.workers.fit_runs`, what the stage
runs); it prints the times, their ratios and whether all three fitted the same
temperatures (bit for bit). ``--synthetic`` uses inputs shaped like the default
study's instead (32 questions on five scales, ten countries, 1 and 6 personas).

``--paper-scale PARAMS`` also times objective evaluations on inputs shaped like that
study (its countries, personas per country, models and methods; this study's question
count) and prints how long its calibrate stage would take on one core and on N
workers: evaluations per fit (measured above) x time per evaluation x fits. Timings
only; nothing is asserted but the equal temperatures.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from valuesim.analysis.blocks import QuestionBlock
from valuesim.calibration.fit import wasserstein_by_question
from valuesim.calibration.objective import StackedObjective
from valuesim.calibration.tilt import LoqoFit, fit_temperature_loqo, temperature_grid
from valuesim.calibration.workers import fit_runs, usable_cores

# the default study's kept questions by answer scale: 19 on 1-4, 10 on 1-10, one each on 1-3, 1-5, 1-7
DEFAULT_SCALES = (4,) * 19 + (10,) * 10 + (3, 5, 7)

Runs = list[tuple[str, list[QuestionBlock]]]


def study_shaped_blocks(
    personas: int, *, countries: int = 10, scales: Sequence[int] = DEFAULT_SCALES, seed: int = 0
) -> list[QuestionBlock]:
    """Synthetic blocks: peaked persona distributions (as a small model's), all > 0."""
    rng = np.random.default_rng(seed)
    names = tuple(f"C{i:02d}" for i in range(countries))
    blocks = []
    for i, k in enumerate(scales):
        n = personas * countries
        probs = rng.dirichlet(np.full(k, 0.3), size=n) + 1e-9
        probs /= probs.sum(axis=1, keepdims=True)
        blocks.append(QuestionBlock(
            question=f"Q{i:02d}", codes=tuple(range(1, k + 1)), countries=names,
            persona_ids=tuple(f"Q{i:02d}-{j}" for j in range(n)), probs=probs,
            country_index=np.repeat(np.arange(countries), personas),
            human=rng.dirichlet(np.full(k, 2.0), size=countries),
        ))
    return blocks


def study_runs(params_file: str) -> Runs:
    """Every (model, method) of the study as the calibrate stage reads it."""
    from valuesim.analysis.blocks import build_blocks, simulated_runs
    from valuesim.artifacts import kept_questions, read_parquet
    from valuesim.config import load_params
    from valuesim.paths import HUMAN_DISTRIBUTIONS, SIMULATED

    params = load_params(params_file)
    human = read_parquet(HUMAN_DISTRIBUTIONS, "human")
    kept = kept_questions()
    return [
        (f"{model}/{method}", build_blocks(read_parquet(path, "simulate"), human, kept))
        for (model, method), path in simulated_runs(SIMULATED, params.simulate.models, params.simulate.methods).items()
    ]


class _Counted:
    """An objective that counts its evaluations."""

    def __init__(self, objective: StackedObjective) -> None:
        self.objective, self.calls = objective, 0

    def __call__(self, t: float) -> np.ndarray:
        self.calls += 1
        return self.objective(t)


def _per_question_fit(blocks: list[QuestionBlock], grid: np.ndarray, mp: bool) -> LoqoFit:
    return fit_temperature_loqo(
        lambda t: wasserstein_by_question(blocks, t, mean_preserving=mp), [b.question for b in blocks], grid
    )


def _timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _same(a: LoqoFit, b: LoqoFit) -> bool:
    return bool(np.array_equal(a.temperatures, b.temperatures) and a.overall == b.overall
                and np.array_equal(a.grid_objective, b.grid_objective))


def compare(runs: Runs, grid: np.ndarray, workers: int) -> dict[str, float]:
    """Fit every run three ways; print and return times, ratios, evaluations per fit."""
    fits = [(key, mp) for key, _ in runs for mp in (True, False)]
    blocks = dict(runs)
    old, old_wall, old_cpu = _timed(lambda: [_per_question_fit(blocks[k], grid, mp) for k, mp in fits])
    counted = [_Counted(StackedObjective(blocks[k], mean_preserving=mp)) for k, mp in fits]
    new, new_wall, new_cpu = _timed(lambda: [
        fit_temperature_loqo(c, [b.question for b in blocks[k]], grid) for c, (k, _) in zip(counted, fits, strict=True)
    ])
    pooled_runs, pool_wall, _ = _timed(lambda: list(fit_runs(runs, grid, workers=workers)))
    pooled = [f for _, _, fit, plain in pooled_runs for f in (fit, plain)]
    same = all(_same(a, b) and _same(a, c) for a, b, c in zip(old, new, pooled, strict=True))
    evals = [c.calls for c in counted]
    print(f"{len(runs)} runs, {len(fits)} fits, {sum(len(blocks[k]) for k, _ in runs) // len(runs)} questions "
          f"per run, {min(evals)}-{max(evals)} objective evaluations per fit")
    print(f"per question:  {old_cpu:7.2f} CPU-s {old_wall:7.2f} s wall")
    print(f"stacked:       {new_cpu:7.2f} CPU-s {new_wall:7.2f} s wall   "
          f"ratio {old_cpu / new_cpu:.2f}x CPU, {old_wall / new_wall:.2f}x wall")
    print(f"stacked, {workers} workers:              {pool_wall:7.2f} s wall   ratio {old_wall / pool_wall:.2f}x wall")
    print(f"same fitted temperatures (bitwise): {'yes' if same else 'NO'}")
    return {"per_question_cpu_s": old_cpu, "stacked_cpu_s": new_cpu, "pool_wall_s": pool_wall,
            "per_question_wall_s": old_wall, "evaluations_per_fit": float(np.mean(evals)), "same": float(same)}


def paper_scale(params_file: str, questions: int, evaluations_per_fit: float, grid: np.ndarray,
                evaluations: int) -> None:
    """Time objective evaluations on blocks shaped like ``params_file``'s study and scale up."""
    from valuesim.config import load_params
    from valuesim.methods import get_method

    params = load_params(params_file)
    countries = len(params.countries.select) + len(params.countries.extra)
    methods = params.simulate.methods
    persona_methods = [m for m in methods if get_method(m).persona is not None]
    models = len(params.simulate.models)
    scales = (DEFAULT_SCALES * math.ceil(questions / len(DEFAULT_SCALES)))[:questions]
    ts = [*np.geomspace(grid[0], grid[-1], evaluations - 1), float("inf")]
    per_eval: dict[int, tuple[float, float]] = {}  # personas -> (tilt, plain) CPU-s per evaluation
    for personas in sorted({params.personas.n_per_country, 1}):
        blocks = study_shaped_blocks(personas, countries=countries, scales=scales)
        secs = []
        for mp in (True, False):
            objective = StackedObjective(blocks, mean_preserving=mp)
            start = time.process_time()
            for t in ts:
                objective(t)
            secs.append((time.process_time() - start) / len(ts))
        per_eval[personas] = (secs[0], secs[1])
        print(f"{questions} questions x {countries} countries x {personas} personas: {secs[0]:.3f} CPU-s per "
              f"evaluation (mean-preserving), {secs[1]:.3f} (plain)")
    tilt_fit = per_eval[params.personas.n_per_country][0] * evaluations_per_fit
    persona_s = sum(per_eval[params.personas.n_per_country]) * evaluations_per_fit
    country_s = sum(per_eval[1]) * evaluations_per_fit
    runs_p, runs_c = models * len(persona_methods), models * (len(methods) - len(persona_methods))
    total = runs_p * persona_s + runs_c * country_s
    print(f"{models} models x {len(methods)} methods: {runs_p} persona runs at {persona_s / 60:.1f} CPU-min "
          f"each and {runs_c} country-level runs at {country_s:.1f} CPU-s ({evaluations_per_fit:.0f} "
          f"evaluations per fit, two fits per run)")
    print(f"calibrate on one core: {total / 3600:.2f} h")
    for n in (2, 4, 8, 16, 32, 64, 2 * (runs_p + runs_c)):
        # fits are the unit of work: no fewer rounds than the longest fit
        rounds = max(total / n, tilt_fit)
        print(f"  {n:>3} workers: {rounds / 3600:.2f} h")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m valuesim.calibration.fit_bench",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="the study (default: params.yaml)")
    ap.add_argument("--workers", type=int, default=usable_cores(), help="processes (default: usable cores)")
    ap.add_argument("--synthetic", action="store_true", help="default-study-shaped inputs, not the study's")
    ap.add_argument("--questions", type=int, default=len(DEFAULT_SCALES),
                    help="--synthetic: the first this many of the default study's 32 question scales")
    ap.add_argument("--grid-size", type=int, default=None, help="default: the params' calibration grid")
    ap.add_argument("--paper-scale", metavar="PARAMS", help="also estimate that study's calibrate time")
    ap.add_argument("--evaluations", type=int, default=12, help="--paper-scale: timed evaluations per fit")
    args = ap.parse_args(argv)
    from valuesim.config import load_params

    cal = load_params(args.params).calibration if Path(args.params).exists() else None
    lo, hi, size = (cal.t_grid_min, cal.t_grid_max, cal.t_grid_size) if cal else (0.25, 8.0, 60)
    grid = temperature_grid(lo, hi, args.grid_size or size)
    if args.synthetic:
        scales = DEFAULT_SCALES[: max(args.questions, 2)]
        runs = [(f"synthetic{i}/{p}", study_shaped_blocks(p, scales=scales, seed=i)) for i, p in enumerate((1, 1, 6))]
    else:
        runs = study_runs(args.params)
    result = compare(runs, grid, max(args.workers, 1))
    if args.paper_scale:
        questions = max(len(b) for _, b in runs)
        paper_scale(args.paper_scale, questions, result["evaluations_per_fit"], grid, args.evaluations)


if __name__ == "__main__":
    main()
