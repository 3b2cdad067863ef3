"""Simulated answers as dense per-question blocks, aligned with human distributions.

A :class:`QuestionBlock` holds, for one (model, method, question), every usable
persona distribution as an (n, K) array with the index of its country, and the human
distribution of each country on the same K answer values. Calibration, scores and
curves are array code over these blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from valuesim.analysis import metrics
from valuesim.artifacts import missing
from valuesim.errors import DataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class QuestionBlock:
    question: str
    codes: tuple[int, ...]
    countries: tuple[str, ...]
    persona_ids: tuple[str, ...]
    probs: FloatArray  # (n_personas_total, K)
    country_index: IntArray  # (n_personas_total,) into countries
    human: FloatArray  # (n_countries, K)

    @property
    def values(self) -> FloatArray:
        return np.asarray(self.codes, dtype=np.float64)

    def aggregate(self, persona_probs: FloatArray) -> FloatArray:
        """Equal-weight mean of persona distributions per country: (n_countries, K)."""
        out = np.zeros((len(self.countries), persona_probs.shape[1]))
        np.add.at(out, self.country_index, persona_probs)
        counts = np.bincount(self.country_index, minlength=len(self.countries))
        return out / counts[:, None]


def build_blocks(
    answers: pl.DataFrame, human: pl.DataFrame, questions: list[str] | None = None
) -> list[QuestionBlock]:
    """Blocks for every question of ``answers`` (persona level) that humans answered.

    Flagged rows (no admissible answer) are left out, as in the simulate stage's
    population means. Countries without human data are dropped.
    """
    need = {"persona_id", "country", "question", "codes", "probs"}
    missing = need - set(answers.columns)
    if missing:
        raise DataError(f"answers table lacks columns {sorted(missing)}; re-run simulate")
    usable = answers
    if "flag" in answers.columns:
        usable = answers.filter(pl.col("flag").fill_null("") == "")
    human_keys = human.select("country", "question").unique()
    usable = usable.join(human_keys, on=["country", "question"], how="semi")
    if questions is not None:
        usable = usable.filter(pl.col("question").is_in(questions))
    blocks = []
    for (question,), grp in usable.sort(["question", "country", "persona_id"]).group_by(
        ["question"], maintain_order=True
    ):
        codes, probs = metrics.dense(grp, "probs")
        countries = tuple(sorted(set(grp["country"].to_list())))
        pos = {c: i for i, c in enumerate(countries)}
        keys = pl.DataFrame({"country": list(countries), "question": [question] * len(countries)})
        blocks.append(QuestionBlock(
            question=str(question), codes=codes, countries=countries,
            persona_ids=tuple(grp["persona_id"].to_list()), probs=probs,
            country_index=np.array([pos[c] for c in grp["country"].to_list()], dtype=np.int64),
            human=metrics.human_arrays(human, keys, codes),
        ))
    return blocks


def simulated_runs(root: Path, models: list[str], methods: list[str]) -> dict[tuple[str, str], Path]:
    """answers.parquet of every (model, method) the params ask for; all must exist."""
    runs = {}
    for model in models:
        for method in methods:
            path = root / model / method / "answers.parquet"
            if not path.exists():
                raise missing(path, "simulate", f"model {model}, method {method}")
            runs[(model, method)] = path
    return runs
