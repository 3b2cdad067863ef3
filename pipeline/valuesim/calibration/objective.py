"""The calibration objective for all questions at once: one tilt per answer scale.

The leave-one-question-out fit evaluates the objective (per question, the mean over
countries of W1(calibrated, human)) ~555 times; question by question that is one
tilt, one aggregation and one distance per question on 10-60-row arrays, where
NumPy's per-call overhead, not arithmetic, is the cost. :class:`StackedObjective`
stacks the questions that share their answer codes and computes each stack in one
call of each.

The result is bitwise the per-question loop's
(:func:`valuesim.calibration.fit.wasserstein_by_question`), not just close: the fitted
temperatures come out of a bounded scalar search that compares objective values, so
a last-bit difference could move a T. Every step treats rows (and country rows)
independently, with two exceptions that the stacking keeps out:

* the tilt picks its arithmetic per block of rows (a fast path when every
  probability is > 0, the general one otherwise), so questions are only stacked
  with questions that take the same path, and a stack never exceeds one block
  (:data:`~valuesim.calibration.tilt.BLOCK_ROWS`), so it is one block, as each of its
  questions was alone;
* NumPy reduces a one-row block differently (pairwise along K rather than row by
  row), so a question with fewer than two rows, or more than one block, keeps its own
  stack and is computed exactly as the per-question loop computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from valuesim.analysis import metrics
from valuesim.analysis.blocks import FloatArray, QuestionBlock
from valuesim.calibration.tilt import (
    BLOCK_ROWS,
    mean_preserving_tilt,
    takes_fast_path,
    temperature_scale,
)

IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class _Stack:
    """Questions on one answer scale, their rows stacked in question order."""

    positions: IntArray  # each question's index in the objective's output
    values: FloatArray  # the shared answer values
    probs: FloatArray  # (rows, K) persona distributions, question after question
    rows: IntArray  # rows of each question, in order
    country_index: IntArray  # (rows,) into the stacked (question, country) rows
    personas: IntArray  # (country rows,) personas behind each (question, country)
    human: FloatArray  # (country rows, K)
    countries: IntArray  # countries of each question, in order

    @classmethod
    def of(cls, positions: list[int], blocks: Sequence[QuestionBlock]) -> _Stack:
        members = [blocks[i] for i in positions]
        offsets = np.cumsum([0, *(len(b.countries) for b in members[:-1])])
        index = np.concatenate([b.country_index + off for b, off in zip(members, offsets, strict=True)])
        return cls(
            positions=np.asarray(positions, dtype=np.intp),
            values=members[0].values,
            probs=np.concatenate([b.probs for b in members]),
            rows=np.asarray([b.probs.shape[0] for b in members], dtype=np.intp),
            country_index=index,
            # as QuestionBlock.aggregate counts them, per question (int64, then / as float)
            personas=np.concatenate([
                np.bincount(b.country_index, minlength=len(b.countries)) for b in members
            ]),
            human=np.concatenate([b.human for b in members]),
            countries=np.asarray([len(b.countries) for b in members], dtype=np.intp),
        )

    def distances(self, t: float, mean_preserving: bool) -> FloatArray:
        """Per question of the stack: the mean over its countries of W1 at ``t``."""
        if mean_preserving:
            # one question: the plain call (it may have one row, or more than a block)
            sizes = self.rows if len(self.rows) > 1 else None
            q = mean_preserving_tilt(self.probs, self.values, t, sizes=sizes)
        else:
            q = temperature_scale(self.probs, t)
        # QuestionBlock.aggregate on all questions at once: np.add.at adds rows in
        # order, so each (question, country) sums its personas as it did alone.
        population = np.zeros((self.human.shape[0], q.shape[1]))
        np.add.at(population, self.country_index, q)
        population /= self.personas[:, None]
        n = self.countries
        if np.all(n == n[0]):
            # The usual case, every question on the same countries: (questions, countries, K)
            # arrays, so that the distance's matrix-vector product runs per question on
            # each question's (countries, K - 1) matrix as it did alone (a BLAS product
            # over all rows at once can sum a row in another order, depending on its place).
            shape = (len(n), int(n[0]), population.shape[1])
            per_country = metrics.wasserstein(population.reshape(shape), self.human.reshape(shape), self.values)
            return per_country.mean(axis=1)
        ends = np.cumsum(n)
        return np.array([
            metrics.wasserstein(population[e - c:e], self.human[e - c:e], self.values).mean()
            for c, e in zip(n, ends, strict=True)
        ])


def _stacks(blocks: Sequence[QuestionBlock], mean_preserving: bool) -> list[_Stack]:
    """Questions grouped by answer codes (and tilt path), packed up to one tilt block."""
    groups: dict[tuple[object, ...], list[list[int]]] = {}
    alone: list[list[int]] = []
    for i, b in enumerate(blocks):
        rows = b.probs.shape[0]
        if rows < 2 or rows > BLOCK_ROWS:
            alone.append([i])
            continue
        path = takes_fast_path(b.probs, b.values) if mean_preserving else None
        packs = groups.setdefault((b.codes, path), [[]])
        if sum(blocks[j].probs.shape[0] for j in packs[-1]) + rows > BLOCK_ROWS:
            packs.append([])
        packs[-1].append(i)
    return [_Stack.of(p, blocks) for packs in groups.values() for p in packs if p] + [
        _Stack.of(p, blocks) for p in alone
    ]


class StackedObjective:
    """``objective(t)``: per question (in ``blocks`` order), the mean over countries of
    W1(calibrated, human) at temperature ``t``, bitwise equal to
    :func:`~valuesim.calibration.fit.wasserstein_by_question` and one tilt call per
    answer scale (and tilt path, up to one tilt block of rows) instead of one per question."""

    def __init__(self, blocks: Sequence[QuestionBlock], *, mean_preserving: bool = True) -> None:
        self.n_questions = len(blocks)
        self.mean_preserving = mean_preserving
        self.stacks = _stacks(blocks, mean_preserving)

    def __call__(self, t: float) -> FloatArray:
        out = np.empty(self.n_questions)
        for s in self.stacks:
            out[s.positions] = s.distances(t, self.mean_preserving)
        return out
