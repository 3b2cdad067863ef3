"""Pilot files (valuesim.survey.pilot): what they may hold, and every bad file failing in
one line before any model is called (through valuesim.pilot_asking.run_pilot)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.fixtures.paths import ROOT
from tests.fixtures.study_files import write_ask_params
from valuesim.errors import ConfigError, DataError
from valuesim.pilot_asking import run_pilot
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.demo.population import generate
from valuesim.survey.new_questions import load_question_file
from valuesim.survey.pilot import read_pilot

AGGREGATES = ROOT / "data/demo/aggregates.json"
QUESTION = {"id": "FAMILY_NEW", "label": "Family important", "text": "How important is family?",
            "answers": [{"code": c, "label": lab} for c, lab in enumerate(
                ["Very", "Rather", "Not very", "Not at all"], start=1)],
            "missing": {-1: "dont_know", -2: "no_answer"}}


@pytest.fixture
def items(tmp_path: Path, bank: QuestionBank) -> list[Item]:
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump({"items": [QUESTION]}))
    return load_question_file(path, bank)


def demo_pilot(bank: QuestionBank, rows: int = 15, country: str = "JPN") -> pl.DataFrame:
    """``rows`` synthetic demo respondents: the value persona items and an answer to
    FAMILY_NEW (their Q1 answer), as a user's pilot file would hold them."""
    frame = generate(AGGREGATES, bank, 60, 0, countries=[country]).filter(pl.col("Q1").is_not_null())
    persona = [i.id for i in bank.persona_items]
    return frame.head(rows).select("country", "respondent_id", *persona, pl.col("Q1").alias("FAMILY_NEW"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_ask_params(tmp_path, model="smollm2", provider=None, demo_respondents=50,
                     countries={"select": ["JPN"]})
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"items": [QUESTION]}))
    return tmp_path


def fails(project: Path, frame: pl.DataFrame | None, message: str, *, name: str = "pilot.csv",
          error: type[Exception] = DataError, **kw: object) -> str:
    """run_pilot on ``frame`` written as ``name``: one line containing ``message``, and no
    engine was created (no response cache)."""
    path = project / name
    if frame is not None:
        frame.write_parquet(path) if name.endswith(".parquet") else frame.write_csv(path)
    with pytest.raises(error) as err:
        run_pilot(path, project / "q.yaml", project_dir=project, progress=False, **kw)  # type: ignore[arg-type]
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    assert not (project / ".cache").exists()
    return text


# -- bad files: one test per fault ----------------------------------------------------


def test_missing_persona_items_fail(project: Path, bank: QuestionBank) -> None:
    text = fails(project, demo_pilot(bank).drop("Q46", "Y002"),
                 "lacks the persona items the value personas are built from: Y002 "
                 "(or its sources Q154, Q155), Q46; add their columns")
    assert text.startswith(f"pilot file {project / 'pilot.csv'}: ")


def test_a_missing_question_column_fails(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank).drop("FAMILY_NEW"), "has no column for question FAMILY_NEW")


def test_unknown_countries_fail(project: Path, bank: QuestionBank) -> None:
    jpn = demo_pilot(bank, 12)
    gbr = jpn.with_columns(country=pl.lit("GBR"), respondent_id="GBR-" + pl.col("respondent_id"))
    fails(project, pl.concat([jpn, gbr]), "GBR not in the demo population")


def test_a_country_code_that_is_not_iso3_fails(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank).with_columns(country=pl.lit("Japan")),
          "country 'Japan' is not an ISO3 code")


def test_codes_off_the_scale_fail(project: Path, bank: QuestionBank) -> None:
    frame = demo_pilot(bank)
    frame = frame.with_columns(Q46=pl.when(pl.int_range(pl.len()) == 3).then(7).otherwise(pl.col("Q46")))
    rid = frame["respondent_id"][3]
    fails(project, frame, f"Q46 has code 7 in 1 rows (e.g. {rid}), which is not on its scale 1..4 "
          "nor a missing code (-5, -4, -2, -1)")


def test_an_answer_off_the_new_question_s_scale_fails(project: Path, bank: QuestionBank) -> None:
    frame = demo_pilot(bank).with_columns(FAMILY_NEW=pl.lit(5))
    fails(project, frame, "FAMILY_NEW has code 5 in 15 rows")


def test_fewer_than_ten_usable_respondents_fail(project: Path, bank: QuestionBank) -> None:
    # 12 rows, three of them "don't know" (-1, a missing code): 9 answers
    frame = demo_pilot(bank, 12).with_columns(
        FAMILY_NEW=pl.when(pl.int_range(pl.len()) < 3).then(-1).otherwise(pl.col("FAMILY_NEW")))
    fails(project, frame, "fewer than 10 usable answers for JPN/FAMILY_NEW (9)")


def test_duplicate_ids_fail(project: Path, bank: QuestionBank) -> None:
    frame = demo_pilot(bank)
    frame = frame.with_columns(respondent_id=pl.when(pl.int_range(pl.len()) == 5)
                               .then(pl.lit(frame["respondent_id"][0])).otherwise(pl.col("respondent_id")))
    fails(project, frame, f"respondent id {frame['respondent_id'][0]} is in 2 rows (1 ids repeat)")


def test_a_file_without_ids_fails(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank).drop("respondent_id"), "has no respondent id column")


def test_an_unreadable_file_fails(project: Path) -> None:
    (project / "pilot.parquet").write_bytes(b"PAR1 this is not a parquet file")
    fails(project, None, "cannot read it as .parquet", name="pilot.parquet")


def test_a_cut_off_csv_fails(project: Path, bank: QuestionBank) -> None:
    path = project / "pilot.csv"
    demo_pilot(bank).write_csv(path)
    path.write_text(path.read_text()[:-12])  # the last row loses its last fields
    fails(project, None, "the file is cut off")


def test_an_unsupported_format_and_a_missing_file_fail(project: Path) -> None:
    (project / "pilot.xlsx").write_bytes(b"x")
    fails(project, None, "unsupported format 'pilot.xlsx'", name="pilot.xlsx")
    fails(project, None, "not found", name="nothere.csv")


def test_bad_weights_fail(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank).with_columns(weight=pl.lit(0.0)),
          "weight (weight) is missing, non-numeric, not positive or over 1000 in 15 rows")
    # one absurd weight would decide every mean (1e308 makes them inf)
    heavy = demo_pilot(bank).with_columns(weight=pl.when(pl.int_range(pl.len()) == 3)
                                          .then(1e308).otherwise(1.0))
    fails(project, heavy, "weight (weight) is missing, non-numeric, not positive or over 1000 in 1 rows")


def test_a_country_level_method_is_refused(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank), "a pilot needs a persona method", error=ConfigError,
          method="country")


def test_a_country_asked_that_the_pilot_lacks_fails(project: Path, bank: QuestionBank) -> None:
    fails(project, demo_pilot(bank), "has no respondents of DEU; it has JPN", countries="DEU")


# -- what a pilot file may hold -------------------------------------------------------


def test_wvs_style_columns_are_read_like_the_wvs_files(tmp_path: Path, bank: QuestionBank, items: list[Item]) -> None:
    # WVS names (capitals, D_INTERVIEW, W_WEIGHT, B_COUNTRY_ALPHA), the derived indexes
    # given by their source items, missing codes as in the files
    persona = [i.id for i in bank.persona_items if i.id not in ("Y002", "Y003")]
    n = 12
    frame = pl.DataFrame({
        "B_COUNTRY_ALPHA": ["DEU"] * n,
        "D_INTERVIEW": list(range(276001, 276001 + n)),
        "W_WEIGHT": [0.5, 2.0] * (n // 2),
        **{c: [1] * n for c in persona},
        # Q8, Q14 independence/determination mentioned (1), Q15/Q17 not (2): Y003 = 2;
        # row 0 has Q8 "don't know" (-1): Y003 is missing
        "Q8": [-1] + [1] * (n - 1), "Q14": [1] * n, "Q15": [2] * n, "Q17": [2] * n,
        # Q154 = 1 (order), Q155 = 3 (prices): both materialist, Y002 = 1; row 1 mixed: 2
        "Q154": [1] * n, "Q155": [3, 4] + [3] * (n - 2),
        "q254": [5] + [2] * (n - 1),  # 5: "I am not [nationality]", a missing code of Q254
        "family_new": [-2] + [2] * (n - 1),
    })
    path = tmp_path / "wvs_style.csv"
    frame.write_csv(path)
    pilot = read_pilot(path, bank, items, "value", countries_known=["DEU", "JPN"])
    out = pilot.frame
    assert out["respondent_id"].to_list()[:2] == ["DEU-276001", "DEU-276002"]
    assert out["weight"].to_list()[:2] == [0.5, 2.0]
    assert pilot.weighted
    assert out["Y003"].to_list()[:3] == [None, 2, 2]
    assert out["Y002"].to_list()[:3] == [1, 2, 1]
    assert out["Q254"].to_list()[:2] == [None, 2]
    assert out["FAMILY_NEW"].to_list()[:2] == [None, 2]
    assert out["Q262"].null_count() == n  # sociodemographic columns: there, and null
    assert pilot.answered("DEU", "FAMILY_NEW").height == n - 1
    assert (pilot.countries, pilot.questions) == (("DEU",), ("FAMILY_NEW",))
    with pytest.raises(DataError, match=r"countries DEU are not in the study's source; it has JPN"):
        read_pilot(path, bank, items, "value", countries_known=["JPN"])


def test_sociodemographic_personas_need_the_sociodemographic_items(
    tmp_path: Path, bank: QuestionBank, items: list[Item]
) -> None:
    path = tmp_path / "pilot.parquet"
    demo_pilot(bank).write_parquet(path)
    assert read_pilot(path, bank, items, "value").frame.height == 15
    with pytest.raises(DataError, match="lacks the sociodemographic items the sociodemographic "
                       "personas are built from: Q260, Q262"):
        read_pilot(path, bank, items, "sociodemographic")
