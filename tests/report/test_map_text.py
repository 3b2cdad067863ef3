"""The report's cultural-map sentences come from the run's tables, not typed numbers."""

from __future__ import annotations

import polars as pl

from valuesim.report.map_text import map_position_findings

HUMAN = pl.DataFrame({
    "country": ["AAA", "BBB", "CCC", "DDD"],
    "secular": [-1.0, 0.0, 1.0, 2.0],
    "self_expression": [-2.0, 1.0, 0.5, 2.5],
})
NAMES = {"m": "m (test model)"}


def _sim(method: str, secular: list[float], self_expression: list[float],
         countries: tuple[str, ...] = ("AAA", "BBB", "CCC")) -> pl.DataFrame:
    return pl.DataFrame({"model": ["m"] * len(countries), "method": [method] * len(countries),
                         "country": list(countries), "secular": secular, "self_expression": self_expression})


def test_positions_inside_the_human_range_are_described_with_the_run_s_numbers() -> None:
    sim = _sim("country", [0.5, 0.6, 0.7], [1.0, 1.2, 1.1])
    (text,) = map_position_findings(HUMAN, sim, NAMES)
    assert text.startswith("Cultural map, m (test model), country: the 3 countries land at secular 0.50 to "
                           "0.70 and self-expression 1.00 to 1.20, inside the human countries' range "
                           "(secular -1.00 to 2.00, self-expression -2.00 to 2.50)")
    # spread across countries against the same countries' human positions (SD ratio)
    sd = sim["secular"].std() / HUMAN.head(3)["secular"].std()
    assert f"vary {sd:.0%} (secular)" in text
    # mean distance to each country's own human position
    own = HUMAN.head(3)
    dist = (((sim["secular"] - own["secular"]) ** 2 + (sim["self_expression"] - own["self_expression"]) ** 2)
            .sqrt().mean())
    assert f"lie {dist:.2f} on average" in text


def test_positions_outside_the_human_range_say_where() -> None:
    sim = _sim("country", [2.7, 2.6, 0.0], [-0.3, -0.6, 0.0])
    (text,) = map_position_findings(HUMAN, sim, NAMES)
    assert "outside the human countries' range (2 of 3: above every human country on secular)" in text
    low = _sim("country", [0.0, 0.0, 0.1], [-3.0, 0.0, 0.0])
    assert "below every human country on self-expression" in map_position_findings(HUMAN, low, NAMES)[0]


def test_a_method_that_names_no_country_is_one_position() -> None:
    sim = _sim("generic", [0.66] * 3, [1.65] * 3)
    (text,) = map_position_findings(HUMAN, sim, NAMES)
    assert "one position for every country" in text
    assert "secular 0.66, self-expression 1.65, inside the human countries' range" in text


def test_nothing_is_said_without_simulated_positions() -> None:
    empty = _sim("country", [], [], countries=())
    assert map_position_findings(HUMAN, empty, NAMES) == []
