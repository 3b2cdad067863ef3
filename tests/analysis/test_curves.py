"""valuesim.analysis.curves: the sample-size and temperature curves and the per-question
table, checked on blocks small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from valuesim.analysis.blocks import QuestionBlock
from valuesim.analysis.curves import per_question, sample_size_curve, temperature_curve

# Two-point scale (codes 1, 2): a distribution's mean is 1 + p(2), so the absolute
# error per range of a (p, h) pair is |p(2) - h(2)|.


def two_point(question: str, persona_p2: dict[str, list[float]], human_p2: dict[str, float]) -> QuestionBlock:
    countries = tuple(sorted(persona_p2))
    probs, index, ids = [], [], []
    for ci, c in enumerate(countries):
        for pi, p2 in enumerate(persona_p2[c]):
            probs.append([1 - p2, p2])
            index.append(ci)
            ids.append(f"{c}-{pi}")
    return QuestionBlock(
        question=question, codes=(1, 2), countries=countries, persona_ids=tuple(ids),
        probs=np.asarray(probs), country_index=np.asarray(index, dtype=np.int64),
        human=np.asarray([[1 - human_p2[c], human_p2[c]] for c in countries]),
    )


def test_sample_size_curve_with_every_persona_is_the_full_mean() -> None:
    b1 = two_point("Q1", {"A": [0.0, 0.5, 1.0], "B": [0.2, 0.4]}, {"A": 0.2, "B": 0.3})
    b2 = two_point("Q2", {"A": [0.9, 0.9, 0.6], "B": [0.5, 0.5]}, {"A": 0.4, "B": 0.5})
    curve = sample_size_curve("m", "value", [b1, b2], sizes=[2, 3], repeats=4, seed=0)
    assert curve.columns == ["model", "method", "country", "n", "repeat", "mae"]
    # n = 3: only A has three personas; its error is that of the full mean, every repeat
    full = curve.filter(pl.col("n") == 3)
    assert full["country"].unique().to_list() == ["A"]
    assert full["repeat"].to_list() == [0, 1, 2, 3]
    expected_a = (abs(0.5 - 0.2) + abs(0.8 - 0.4)) / 2
    assert full["mae"].to_list() == pytest.approx([expected_a] * 4)
    # n = 2 is all of B's personas
    b = curve.filter((pl.col("n") == 2) & (pl.col("country") == "B"))
    assert b.height == 4
    assert b["mae"].to_list() == pytest.approx([(abs(0.3 - 0.3) + abs(0.5 - 0.5)) / 2] * 4)


def test_sample_size_curve_keeps_the_same_personas_across_questions() -> None:
    # persona i of A answers p2 = i/10 on Q1 and 1 - i/10 on Q2 against humans at 0 and 1,
    # so one persona used for both questions scores exactly i/10; mixing two personas
    # across the questions would score something else
    p = [0.1, 0.3, 0.6, 0.8]
    b1 = two_point("Q1", {"A": p}, {"A": 0.0})
    b2 = two_point("Q2", {"A": [1 - x for x in p]}, {"A": 1.0})
    curve = sample_size_curve("m", "value", [b1, b2], sizes=[1], repeats=30, seed=3)
    maes = curve["mae"].to_numpy()
    assert all(np.isclose(maes[:, None], p).any(axis=1))
    assert len({round(x, 9) for x in maes}) > 1  # the draw does vary between repeats


def test_sample_size_curve_is_reproducible_from_its_seed() -> None:
    b = two_point("Q1", {"A": [0.1, 0.2, 0.7, 0.9], "B": [0.3, 0.5, 0.6]}, {"A": 0.5, "B": 0.5})
    one = sample_size_curve("m", "value", [b], sizes=[1, 2], repeats=5, seed=11)
    two = sample_size_curve("m", "value", [b], sizes=[1, 2], repeats=5, seed=11)
    assert one.equals(two)


def plain_scaled(p: np.ndarray, t: float) -> np.ndarray:
    q = p ** (1.0 / t)
    return q / q.sum(axis=-1, keepdims=True)


def test_temperature_curve() -> None:
    rng = np.random.default_rng(5)
    k = 4
    probs = rng.dirichlet(np.ones(k), size=5)
    human = rng.dirichlet(np.ones(k), size=2)
    b = QuestionBlock("Q", (1, 2, 3, 4), ("A", "B"), tuple("abcde"), probs,
                      np.array([0, 0, 1, 1, 1]), human)
    temps = [0.5, 1.0, 2.0]
    curve = temperature_curve("m", "value", [b], temps, n_resamples=100, seed=0)
    assert curve.height == 6
    assert curve["scaling"].to_list() == ["plain"] * 3 + ["mean_preserving"] * 3
    assert curve["temperature"].to_list() == temps * 2
    codes = np.arange(1, k + 1, dtype=float)

    def mean_error(pop: np.ndarray) -> float:
        return float(np.mean(np.abs(pop @ codes - human @ codes) / 3))

    def per_country(q: np.ndarray) -> np.ndarray:
        return np.stack([q[:2].mean(axis=0), q[2:].mean(axis=0)])

    rows = {(r["scaling"], r["temperature"]): r for r in curve.iter_rows(named=True)}
    for t in temps:
        assert rows[("plain", t)]["mae"] == pytest.approx(mean_error(per_country(plain_scaled(probs, t))))
        # the mean-preserving scaling leaves every persona's mean, so the MAE, unchanged
        assert rows[("mean_preserving", t)]["mae"] == pytest.approx(mean_error(per_country(probs)))
    for r in curve.iter_rows(named=True):
        assert r["mae_lo"] <= r["mae"] <= r["mae_hi"]
        assert r["wasserstein_lo"] <= r["wasserstein"] <= r["wasserstein_hi"]
    # at T = 1 both scalings are the identity
    assert rows[("plain", 1.0)]["wasserstein"] == pytest.approx(rows[("mean_preserving", 1.0)]["wasserstein"])


def test_per_question_means_over_countries_with_sorted_method_columns() -> None:
    cells = pl.DataFrame({
        "model": ["m"] * 6 + ["n"] * 2,
        "method": ["value", "value", "country", "country", "value", "country", "value", "country"],
        "country": ["A", "B", "A", "B", "A", "A", "A", "A"],
        "question": ["Q2", "Q2", "Q2", "Q2", "Q1", "Q1", "Q1", "Q1"],
        "mae": [0.1, 0.3, 0.5, 0.7, 0.2, 0.4, 0.9, 0.8],
    })
    table = per_question(cells)
    assert table.columns == ["model", "question", "country", "value"]
    assert table.rows() == [
        ("m", "Q1", pytest.approx(0.4), pytest.approx(0.2)),
        ("m", "Q2", pytest.approx(0.6), pytest.approx(0.2)),
        ("n", "Q1", pytest.approx(0.8), pytest.approx(0.9)),
    ]
