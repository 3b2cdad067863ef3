"""The stacked LOQO objective equals the per-question one bit for bit.

Blocks are shaped like the default study's (32 questions on five answer scales, ten
countries, 60 persona rows or ten country rows per question, every probability > 0 as
a language model's are), plus the cases that the stacking must keep apart: a question
with zero probabilities (the tilt's other path), one asked in fewer countries, one with
a single row and one larger than a tilt block. Equality is exact (``array_equal``), at
the grid's temperatures, its T -> infinity limit, T = 1 and temperatures in between:
the fit compares these values, so a last-bit difference could move a fitted T.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from valuesim.analysis import metrics
from valuesim.analysis.blocks import QuestionBlock
from valuesim.calibration.fit import fit_loqo, wasserstein_by_question
from valuesim.calibration.fit_bench import DEFAULT_SCALES, study_shaped_blocks
from valuesim.calibration.objective import StackedObjective
from valuesim.calibration.tilt import BLOCK_ROWS, LIMIT, fit_temperature_loqo, temperature_grid

SCALES = DEFAULT_SCALES  # the default study's 32 kept questions by answer scale
COUNTRIES = tuple(f"C{i:02d}" for i in range(10))
TEMPERATURES = [*temperature_grid(0.25, 8.0, 60)[::3], LIMIT, 1.0, 0.31, 1.0001, 2.7, 13.0, 0.05]


def _block(rng: np.random.Generator, question: str, k: int, personas: int,
           countries: tuple[str, ...] = COUNTRIES, zeros: bool = False) -> QuestionBlock:
    n = personas * len(countries)
    # peaked, like a small model's answer distributions; floored at a tiny positive mass
    probs = rng.dirichlet(np.full(k, 0.3), size=n) + 1e-9
    if zeros:
        probs[rng.random(probs.shape) < 0.3] = 0.0
        probs[np.arange(n), rng.integers(0, k, n)] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    return QuestionBlock(
        question=question, codes=tuple(range(1, k + 1)), countries=countries,
        persona_ids=tuple(f"{question}-{i}" for i in range(n)), probs=probs,
        country_index=np.repeat(np.arange(len(countries)), personas),
        human=rng.dirichlet(np.full(k, 2.0), size=len(countries)),
    )


def study_blocks(personas: int, seed: int = 0) -> list[QuestionBlock]:
    return study_shaped_blocks(personas, countries=len(COUNTRIES), scales=SCALES, seed=seed)


@pytest.fixture(scope="module")
def mixed_blocks() -> list[QuestionBlock]:
    """The study's questions interleaved with every case the stacking keeps apart."""
    rng = np.random.default_rng(7)
    blocks = study_blocks(6, seed=1)
    blocks.insert(3, _block(rng, "Z1", 4, 6, zeros=True))
    blocks.insert(9, _block(rng, "Z2", 4, 6, zeros=True))
    blocks.insert(12, _block(rng, "FEW", 4, 6, countries=COUNTRIES[:7]))
    blocks.insert(20, _block(rng, "ONE", 10, 1, countries=COUNTRIES[:1]))
    blocks.append(_block(rng, "BIG", 10, BLOCK_ROWS // len(COUNTRIES) + 3))
    return blocks


@pytest.mark.parametrize("personas", [6, 1], ids=["value-like", "country-level"])
@pytest.mark.parametrize("mean_preserving", [True, False], ids=["tilt", "plain"])
def test_the_stacked_objective_is_the_per_question_one_bitwise(personas: int, mean_preserving: bool) -> None:
    blocks = study_blocks(personas)
    objective = StackedObjective(blocks, mean_preserving=mean_preserving)
    # one stack per answer scale: 5 tilt calls per evaluation instead of 32
    assert len(objective.stacks) == 5
    for t in TEMPERATURES:
        want = wasserstein_by_question(blocks, t, mean_preserving=mean_preserving)
        np.testing.assert_array_equal(objective(t), want, err_msg=f"T = {t}")


@pytest.mark.parametrize("mean_preserving", [True, False], ids=["tilt", "plain"])
def test_questions_the_stacking_keeps_apart_still_match(mixed_blocks: list[QuestionBlock], mean_preserving: bool) -> None:
    objective = StackedObjective(mixed_blocks, mean_preserving=mean_preserving)
    for t in TEMPERATURES:
        want = wasserstein_by_question(mixed_blocks, t, mean_preserving=mean_preserving)
        np.testing.assert_array_equal(objective(t), want, err_msg=f"T = {t}")


def test_questions_are_grouped_by_scale_and_tilt_path(mixed_blocks: list[QuestionBlock]) -> None:
    stacks = StackedObjective(mixed_blocks).stacks
    names = [{mixed_blocks[i].question for i in s.positions} for s in stacks]
    assert {"Z1", "Z2"} in names  # zeros: the tilt's general path, stacked apart from the 1-4 questions
    assert {"ONE"} in names
    assert {"BIG"} in names
    # FEW (seven countries) stacks with the other 1-4 questions: the mean per question is
    # then taken question by question, which the equality test above checks
    assert any("FEW" in n and "Q00" in n for n in names)
    for s in stacks:
        assert s.probs.shape[0] <= BLOCK_ROWS or len(s.positions) == 1
        assert len({mixed_blocks[i].codes for i in s.positions}) == 1
    # every question in exactly one stack
    assert sorted(i for s in stacks for i in s.positions) == list(range(len(mixed_blocks)))
    # the plain scaling has one path: the questions with zeros join the 1-4 stack
    plain = StackedObjective(mixed_blocks, mean_preserving=False).stacks
    assert not any({mixed_blocks[i].question for i in s.positions} == {"Z1", "Z2"} for s in plain)


def test_the_fit_is_the_per_question_fit() -> None:
    """The whole LOQO fit (every T, every objective value) equals the one that evaluates
    the objective question by question, as the calibrate stage did before stacking."""
    blocks = study_blocks(6, seed=3)[::3]  # eleven questions on all five scales: a shorter fit
    grid = temperature_grid(0.25, 8.0, 20)
    for mp in (True, False):
        got = fit_loqo(blocks, grid, mean_preserving=mp)
        want = fit_temperature_loqo(
            lambda t, mp=mp: wasserstein_by_question(blocks, t, mean_preserving=mp),
            [b.question for b in blocks], grid,
        )
        np.testing.assert_array_equal(got.temperatures, want.temperatures)
        np.testing.assert_array_equal(got.objective, want.objective)
        np.testing.assert_array_equal(got.grid_objective, want.grid_objective)
        assert got.overall == want.overall


@pytest.mark.parametrize("codes", [(1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5), tuple(range(1, 8)),
                                   tuple(range(1, 11)), (0, 1, 2, 3, 5, 8)])
def test_the_stacked_distance_is_scipys_wasserstein(codes: tuple[int, ...]) -> None:
    """The CDF-difference W1 on (questions, countries, K) arrays, as the stacks call it,
    is SciPy's on every answer scale of the study, and on unequally spaced codes."""
    rng = np.random.default_rng(len(codes))
    k, r = len(codes), np.asarray(codes, dtype=float)
    p, h = rng.dirichlet(np.ones(k), size=(5, 10)), rng.dirichlet(np.ones(k), size=(5, 10))
    ours = metrics.wasserstein(p, h, r)
    ref = [[stats.wasserstein_distance(r, r, a, b) / (r[-1] - r[0]) for a, b in zip(pq, hq, strict=True)]
           for pq, hq in zip(p, h, strict=True)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-14)
