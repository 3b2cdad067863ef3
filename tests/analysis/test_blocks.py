"""valuesim.analysis.blocks: persona answers as dense per-question blocks.

Expected values are worked out here by hand or with plain loops over the input rows,
never with the module's own array code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from valuesim.analysis.blocks import QuestionBlock, build_blocks, simulated_runs
from valuesim.artifacts import read_parquet
from valuesim.errors import DataError

ANSWER_SCHEMA = {
    "persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "flag": pl.Utf8,
}
HUMAN_SCHEMA = {"country": pl.Utf8, "question": pl.Utf8, "code": pl.Int64, "share": pl.Float64}


def block(country_index: list[int], probs: list[list[float]], countries: tuple[str, ...]) -> QuestionBlock:
    k = len(probs[0])
    return QuestionBlock(
        question="Q", codes=tuple(range(1, k + 1)), countries=countries,
        persona_ids=tuple(f"p{i}" for i in range(len(probs))),
        probs=np.asarray(probs, dtype=np.float64),
        country_index=np.asarray(country_index, dtype=np.int64),
        human=np.full((len(countries), k), 1.0 / k),
    )


def test_aggregate_is_the_equal_weight_mean_per_country() -> None:
    # personas of the two countries interleaved; country B has a single persona
    b = block([0, 1, 0, 0], [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], ("A", "B"))
    got = b.aggregate(b.probs)
    # A: ([1,0,0] + [0,1,0] + [.5,.5,0]) / 3; B: its one persona
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(got[1], [0.2, 0.3, 0.5])


def test_aggregate_uses_the_array_it_is_given_not_the_raw_probs() -> None:
    b = block([1, 0], [[0.5, 0.5], [0.5, 0.5]], ("A", "B"))
    other = np.array([[0.9, 0.1], [0.3, 0.7]])
    np.testing.assert_allclose(b.aggregate(other), [[0.3, 0.7], [0.9, 0.1]])


def test_values_are_the_codes_as_floats() -> None:
    b = QuestionBlock("Q", (0, 2, 5), ("A",), ("p",), np.array([[0.2, 0.3, 0.5]]),
                      np.array([0]), np.array([[0.2, 0.3, 0.5]]))
    assert b.values.dtype == np.float64
    assert b.values.tolist() == [0.0, 2.0, 5.0]


def answers_frame() -> pl.DataFrame:
    """Two questions (4- and 2-point scales) over countries A, B and C (C has no human data)."""
    rows = [
        ("a2", "A", "Q2", [1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], None),
        ("a1", "A", "Q2", [1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1], None),
        ("b1", "B", "Q2", [1, 2, 3, 4], [0.0, 0.0, 0.5, 0.5], ""),
        ("b2", "B", "Q2", [1, 2, 3, 4], [0.25, 0.25, 0.25, 0.25], "no_coverage"),  # flagged
        ("c1", "C", "Q2", [1, 2, 3, 4], [1.0, 0.0, 0.0, 0.0], None),  # no human data for C
        ("a1", "A", "Q1", [1, 2], [0.6, 0.4], None),
        ("b1", "B", "Q1", [1, 2], [0.9, 0.1], None),
        ("b2", "B", "Q1", [1, 2], [0.3, 0.7], None),
    ]
    return pl.DataFrame([dict(zip(ANSWER_SCHEMA, r, strict=True)) for r in rows], schema=ANSWER_SCHEMA)


def human_frame() -> pl.DataFrame:
    rows = [
        # A/Q2 leaves code 3 out (share 0) and its shares sum to 2: they are renormalized
        ("A", "Q2", 1, 0.5), ("A", "Q2", 2, 0.5), ("A", "Q2", 4, 1.0),
        ("B", "Q2", 1, 0.25), ("B", "Q2", 2, 0.25), ("B", "Q2", 3, 0.25), ("B", "Q2", 4, 0.25),
        ("A", "Q1", 1, 0.7), ("A", "Q1", 2, 0.3),
        ("B", "Q1", 2, 1.0),
    ]
    return pl.DataFrame([dict(zip(HUMAN_SCHEMA, r, strict=True)) for r in rows], schema=HUMAN_SCHEMA)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, Path]:
    """The answers and human tables as the stages find them: parquet files on disk."""
    answers, human = tmp_path / "answers.parquet", tmp_path / "distributions.parquet"
    answers_frame().write_parquet(answers)
    human_frame().write_parquet(human)
    return answers, human


def test_blocks_from_parquet_files(stored: tuple[Path, Path]) -> None:
    answers, human = stored
    blocks = build_blocks(read_parquet(answers, "simulate"), read_parquet(human, "human"))
    assert [b.question for b in blocks] == ["Q1", "Q2"]
    q1, q2 = blocks

    assert q1.codes == (1, 2)
    assert q1.countries == ("A", "B")
    assert q1.persona_ids == ("a1", "b1", "b2")
    assert q1.country_index.tolist() == [0, 1, 1]
    np.testing.assert_allclose(q1.probs, [[0.6, 0.4], [0.9, 0.1], [0.3, 0.7]])
    np.testing.assert_allclose(q1.human, [[0.7, 0.3], [0.0, 1.0]])

    # the flagged persona b2 and country C (no human answers) are left out;
    # personas are in (country, persona_id) order
    assert q2.codes == (1, 2, 3, 4)
    assert q2.countries == ("A", "B")
    assert q2.persona_ids == ("a1", "a2", "b1")
    assert q2.country_index.tolist() == [0, 0, 1]
    np.testing.assert_allclose(q2.probs, [[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 0.5]])
    np.testing.assert_allclose(q2.human, [[0.25, 0.25, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])


def test_block_means_match_a_group_by_over_the_table(stored: tuple[Path, Path]) -> None:
    """The aggregated raw block is the per-country mean of the usable rows."""
    answers, human = stored
    table = read_parquet(answers, "simulate")
    blocks = {b.question: b for b in build_blocks(table, read_parquet(human, "human"))}
    usable = table.filter((pl.col("flag").fill_null("") == "") & (pl.col("country") != "C"))
    for (country, question), grp in usable.group_by(["country", "question"]):
        expected = np.mean(np.asarray(grp["probs"].to_list()), axis=0)
        b = blocks[str(question)]
        np.testing.assert_allclose(b.aggregate(b.probs)[b.countries.index(str(country))], expected)


def test_questions_restricts_the_blocks(stored: tuple[Path, Path]) -> None:
    answers, human = stored
    blocks = build_blocks(read_parquet(answers, "simulate"), read_parquet(human, "human"), ["Q2"])
    assert [b.question for b in blocks] == ["Q2"]


def test_without_a_flag_column_every_row_counts() -> None:
    blocks = build_blocks(answers_frame().drop("flag"), human_frame(), ["Q2"])
    assert blocks[0].persona_ids == ("a1", "a2", "b1", "b2")


def test_missing_answer_columns_are_named() -> None:
    with pytest.raises(DataError, match=r"lacks columns \['codes', 'probs'\].*simulate"):
        build_blocks(answers_frame().drop("codes", "probs"), human_frame())


def test_rows_of_one_question_must_share_their_codes() -> None:
    bad = answers_frame().with_columns(
        pl.when(pl.col("persona_id") == "b1").then(pl.lit([1, 2, 3, 5])).otherwise(pl.col("codes")).alias("codes")
    )
    with pytest.raises(DataError, match="different answer codes"):
        build_blocks(bad, human_frame(), ["Q2"])


def test_a_human_code_off_the_scale_is_an_error() -> None:
    human = pl.concat([human_frame(), pl.DataFrame(
        [{"country": "A", "question": "Q1", "code": 7, "share": 0.1}], schema=HUMAN_SCHEMA
    )])
    with pytest.raises(DataError, match="human answer code 7 of Q1"):
        build_blocks(answers_frame(), human)


def test_a_missing_answers_file_names_the_simulate_stage(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"answers\.parquet not found.*simulate"):
        read_parquet(tmp_path / "answers.parquet", "simulate")


def test_a_damaged_answers_file_is_one_error(stored: tuple[Path, Path]) -> None:
    answers, _ = stored
    answers.write_bytes(answers.read_bytes()[: 40])  # truncated mid-write
    with pytest.raises(DataError, match=r"answers\.parquet is unreadable.*dvc repro simulate"):
        read_parquet(answers, "simulate")


def test_simulated_runs_finds_every_model_and_method(tmp_path: Path) -> None:
    for model in ("m1", "m2"):
        for method in ("value", "country"):
            (tmp_path / model / method).mkdir(parents=True)
            (tmp_path / model / method / "answers.parquet").write_bytes(b"")
    runs = simulated_runs(tmp_path, ["m1", "m2"], ["value", "country"])
    assert set(runs) == {("m1", "value"), ("m1", "country"), ("m2", "value"), ("m2", "country")}
    assert runs[("m2", "country")] == tmp_path / "m2" / "country" / "answers.parquet"


def test_simulated_runs_names_the_missing_run(tmp_path: Path) -> None:
    (tmp_path / "m1" / "value").mkdir(parents=True)
    (tmp_path / "m1" / "value" / "answers.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"m1/country/answers\.parquet not found \(model m1, method country\).*simulate"):
        simulated_runs(tmp_path, ["m1"], ["value", "country"])
