"""Total variation and Jensen-Shannon scores of nominal and binary items (no pipeline run)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon

from valuesim.analysis import unordered_scores as us
from valuesim.survey.bank import Answer, Item


def _item(qid: str, kind: str, labels: list[str]) -> Item:
    return Item(id=qid, roles=["target"], label=qid, text=qid, type=kind,  # type: ignore[arg-type]
                answers=[Answer(code=k + 1, label=lab) for k, lab in enumerate(labels)])


NEWS = _item("NEWS", "nominal", ["Television", "Newspapers", "Social media"])
VOTED = _item("VOTED", "binary", ["Yes", "No"])


def test_distances_are_0_for_equal_and_1_for_disjoint_distributions() -> None:
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(us.total_variation(p, q), [0.0, 1.0, 1.0])
    np.testing.assert_allclose(us.js_distance(p, q), [0.0, 1.0, 1.0])


def test_js_is_scipys_base_2_and_never_nan_for_distributions() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=400)
    q = rng.dirichlet(np.ones(5), size=400)
    want = np.array([jensenshannon(a, b, base=2) for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(us.js_distance(p, q), want, atol=1e-12)
    # a distribution against itself perturbed by rounding: SciPy gives NaN for some of
    # these pairs (the divergence sums to a hair below 0); the distance is 0
    near = p * (1 + 1e-16 * rng.standard_normal(p.shape))
    with np.errstate(invalid="ignore"):
        assert np.isnan(jensenshannon(p, near, base=2, axis=-1)).any()
    got = us.js_distance(p, near)
    assert not np.isnan(got).any()
    assert got.max() < 1e-7


def test_cells_of_a_run_average_its_personas_and_name_the_modes() -> None:
    answers = pl.DataFrame({
        "persona_id": ["a", "b", "c", "a", "b"],
        "country": ["JPN", "JPN", "JPN", "JPN", "JPN"],
        "question": ["NEWS", "NEWS", "NEWS", "VOTED", "VOTED"],
        "codes": [[1, 2, 3]] * 3 + [[1, 2]] * 2,
        "probs": [[0.6, 0.2, 0.2], [0.4, 0.4, 0.2], [0.9, 0.1, 0.0], [0.7, 0.3], [0.5, 0.5]],
        "flag": ["", "", "no_answer", "", ""],  # c is not usable
    })
    human = pl.DataFrame({
        "country": ["JPN"] * 5, "question": ["NEWS"] * 3 + ["VOTED"] * 2,
        "code": [1, 2, 3, 1, 2], "share": [0.1, 0.3, 0.6, 0.8, 0.2],
    })
    cells = us.unordered_cells({("m", "value"): answers}, human, {"NEWS": NEWS, "VOTED": VOTED})
    news = cells.filter(pl.col("question") == "NEWS").row(0, named=True)
    p, h = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.3, 0.6])
    assert news["n_personas"] == 2
    assert news["tv"] == pytest.approx(0.4)
    assert news["js"] == pytest.approx(jensenshannon(p, h, base=2))
    assert (news["mode_sim_label"], news["mode_sim_share"]) == ("Television", pytest.approx(0.5))
    assert (news["mode_human_label"], news["mode_human_share"]) == ("Social media", pytest.approx(0.6))
    assert news["share_first_diff"] is None
    voted = cells.filter(pl.col("question") == "VOTED").row(0, named=True)
    assert voted["share_first_diff"] == pytest.approx(0.6 - 0.8)
    assert voted["tv"] == pytest.approx(0.2)


def test_summary_is_the_mean_over_countries_of_per_country_means() -> None:
    rows = [("m", "value", c, q, t, j) for c, q, t, j in [
        ("A", "NEWS", 0.1, 0.2), ("A", "VOTED", 0.3, 0.4), ("B", "NEWS", 0.5, 0.6)]]
    cells = pl.DataFrame(rows, schema=["model", "method", "country", "question", "tv", "js"], orient="row")
    summary = us.summary(cells, n_resamples=200, seed=0).row(0, named=True)
    assert summary["tv"] == pytest.approx((0.2 + 0.5) / 2)  # A: (0.1 + 0.3) / 2, B: 0.5
    assert summary["js"] == pytest.approx((0.3 + 0.6) / 2)
    assert (summary["n_countries"], summary["n_questions"]) == (2, 2)
    assert summary["tv_lo"] <= summary["tv"] <= summary["tv_hi"]
    metrics = us.metrics_json(us.summary(cells, 200, 0), us.by_country(cells), {"NEWS": NEWS, "VOTED": VOTED})
    assert metrics["items"] == {"NEWS": "nominal", "VOTED": "binary"}
    assert metrics["tv"] == {"m/value": 0.35}
    assert metrics["by_country"] == {"m/value": {"A": {"tv": 0.2, "js": 0.3}, "B": {"tv": 0.5, "js": 0.6}}}
