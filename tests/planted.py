"""Planted-signal studies: simulated answers with KNOWN distortions of real human data.

The calibrate, evaluate and report stages are run on a small project in which the
"model" is us: every simulated answer table is built here from the human answers of
the selected countries, distorted in a way whose effect on the pipeline's outputs is
known in advance. tests/analysis/test_planted_signal.py then checks that the stages
recover what was planted. Four persona-level methods (real method names, so the
stages treat them as persona methods; no model is loaded):

``value`` — COMPRESSED. For each (country, question) with human distribution h, a set
    of *truth* personas is built whose equal-weight average is exactly h (pairs
    h·(1 + s z) and h·(1 - s z), z = (r - mean_h) / max|r - mean_h|, s in [0.3, 0.9]:
    different means and spreads, same average). Each truth persona is then sharpened
    by the mean-preserving tilt at T0 < 1. Tilts compose multiplicatively in T
    (tilt(tilt(p, T0), T) = tilt(p, T0·T), the mean constraint pins β), so
    calibrating every persona at T = 1/T0 returns the truth personas exactly and
    their average is h: the Wasserstein objective is 0 there and > 0 elsewhere, so
    the leave-one-question-out fit must find 1/T0 for every question, and the
    calibrated normalized variance must equal the human one. The truth must be
    heterogeneous *and* soft for this to be a real check: identical personas would
    not test that calibration acts per persona before averaging, and one-hot
    personas cannot be tilted at all (T is then unidentifiable).
``sociodemographic`` — BIASED. The same truth personas, each tilted by exp(gamma r) with
    gamma solved so that its mean moves by exactly b * the scale range, towards the end
    of the scale with more room; b is drawn per (country, question) from
    ``bias`` * [0.8, 1.2] and recorded. Every cell's MAE is therefore exactly its b
    (calibration is mean-preserving, so the calibrated MAE too). (b varies so that no
    two cells tie exactly: scipy's Wilcoxon test turns exact ties into a slow
    permutation test.)
``fewshot`` — TRUTH PLUS SAMPLING NOISE. N respondents per country drawn with
    ``personas.sampling.sample_respondents`` (the pipeline's persona draw), each
    answering with their own survey answer as a one-hot distribution; a respondent
    who did not answer a question has no row for it. Unbiased, with exactly the error
    the sampling floor describes at N personas.
``fewshot_nonat`` — the same with an independent draw (another seed): a second
    unbiased method, the *negative control* for the Wilcoxon test (no planted
    difference between the two).

Human data: the synthetic demo population (shipped aggregates) or real WVS-7 files
read by path (never copied into the repository; the project lives in a tmp dir).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from valuesim.calibration import mean_preserving_tilt
from valuesim.config import Params
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import QuestionBank, load_bank
from valuesim.survey.human import human_distributions
from valuesim.survey.missing_filter import filter_questions

ROOT = Path(__file__).resolve().parents[1]
BANK = ROOT / "data" / "questions" / "wvs7.yaml"
DEMO_AGGREGATES = ROOT / "data" / "demo" / "aggregates.json"

MODEL = "planted"
COMPRESSED = "value"
BIASED = "sociodemographic"
NOISE = "fewshot"
NOISE_TWIN = "fewshot_nonat"
METHODS = (COMPRESSED, BIASED, NOISE, NOISE_TWIN)
# five of the default ten countries, from different cultural zones
COUNTRIES = ("JPN", "COL", "JOR", "ROU", "ZWE")
MAX_MISSING = 0.2
# The demo (unit) variant's target questions: every scale length of the bank (3, 4, 5,
# 7 and 10 answers). Calibration costs ~0.4 s per question and method on a 2-core CPU
# (about 500 objective evaluations per leave-one-question-out fit), so all ~32 kept
# questions would take the unit test past its 30 s budget; the real-data variant uses
# every kept question.
UNIT_QUESTIONS = ("Q1", "Q6", "Q28", "Q47", "Q48", "Q49", "Q71", "Q106", "Q171", "Q173", "Q185", "Q199")

ANSWERS_SCHEMA = {
    "persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "coverage": pl.Float64,
    "estimator": pl.Utf8, "answer_rule": pl.Utf8, "flag": pl.Utf8,
}


@dataclass(frozen=True)
class Plant:
    """What is planted. The defaults are what the tests assert on."""

    t0: float = 0.5  # compression temperature of COMPRESSED (the fit must find 1/t0)
    bias: float = 0.1  # mean shift of BIASED, share of the scale range (its MAE), ±20% per cell
    n_noise: int = 100  # personas per country of NOISE and NOISE_TWIN (the floor's N)
    n_pairs: int = 5  # truth persona pairs per country (2·n_pairs personas)
    seed: int = 2024  # truth personas and the NOISE draw; NOISE_TWIN uses seed + 1
    # target questions to study (those passing the missing-data filter); None: every
    # target question of the bank that passes it
    questions: tuple[str, ...] | None = None


@dataclass
class PlantedStudy:
    root: Path
    plant: Plant
    countries: tuple[str, ...]
    kept: list[str]
    params: Params
    bias: dict[tuple[str, str], float]  # BIASED's planted b per (country, question)
    seconds: dict[str, float] = field(default_factory=dict)

    def read(self, rel: str) -> pl.DataFrame:
        return pl.read_parquet(self.root / rel)

    def json(self, rel: str) -> dict:
        return json.loads((self.root / rel).read_text())


# ---- human data -----------------------------------------------------------------------


def demo_respondents(
    bank: QuestionBank, countries: Sequence[str], n_per_country: int = 1200, seed: int = 0
) -> pl.DataFrame:
    """The synthetic demo population (weight 1, from data/demo/aggregates.json)."""
    from valuesim.survey.demo import generate

    return generate(DEMO_AGGREGATES, bank, n_per_country, seed, countries)


def real_respondents(wvs_dir: Path, bank: QuestionBank, countries: Sequence[str]) -> pl.DataFrame:
    """Real WVS-7 respondents of ``countries`` only, reading one per-country file each."""
    from valuesim.survey.readers import read_source

    frames = [read_source(wvs_dir / f"{c}.csv.gz", bank).respondents for c in countries]
    return pl.concat(frames, how="vertical")


# ---- planted distortions ----------------------------------------------------------------


def truth_personas(h: np.ndarray, values: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """(2·n_pairs, K) persona distributions whose equal-weight mean is exactly ``h``.

    Pair j is h·(1 ± s_j z) with z = (r - mean_h) / max|r - mean_h| in [-1, 1] and
    s_j in [0.3, 0.9]: both members are distributions (Σ h z = 0, entries ≥ h·(1 - s_j)),
    on h's support, with means mean_h ± s_j·Var_h / max|r - mean_h|.
    """
    m = h @ values
    dev = np.abs(values - m).max()
    z = (values - m) / dev if dev > 0 else np.zeros_like(values)
    rows = []
    for s in rng.uniform(0.3, 0.9, n_pairs):
        rows += [h * (1 + s * z), h * (1 - s * z)]
    out = np.asarray(rows)
    return out / out.sum(axis=1, keepdims=True)


def shift_means(p: np.ndarray, values: np.ndarray, shift: float) -> np.ndarray:
    """Each row tilted by exp(gamma r), gamma solved per row so that its mean moves by ``shift``
    (in scale units). Zero entries stay zero; the new mean must lie inside the support."""
    r0, span = values[0], values[-1] - values[0]
    u = (values - r0) / span
    target = (p @ values + shift - r0) / span
    support = p > 0
    top = np.where(support, u, -np.inf).max(axis=1)
    bottom = np.where(support, u, np.inf).min(axis=1)
    if np.any(target >= top - 1e-6) or np.any(target <= bottom + 1e-6):
        raise ValueError("planted bias pushes a persona mean outside its support; use a smaller bias")
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    lo, hi = np.full(len(p), -1e3), np.full(len(p), 1e3)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        w = logp + mid[:, None] * u
        q = np.exp(w - w.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        below = q @ u < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    assert np.abs(q @ values - (p @ values + shift)).max() < 1e-9
    return q


def _human_arrays(dist: pl.DataFrame) -> dict[tuple[str, str], tuple[list[int], np.ndarray]]:
    out = {}
    for (c, q), grp in dist.sort("code").group_by(["country", "question"], maintain_order=True):
        out[(str(c), str(q))] = (grp["code"].to_list(), grp["share"].to_numpy())
    return out


def _rows(persona: str, country: str, question: str, codes: list[int], probs: np.ndarray) -> dict:
    return {"persona_id": persona, "country": country, "question": question, "codes": codes,
            "probs": probs.tolist(), "coverage": 1.0, "estimator": "planted",
            "answer_rule": "answer_eot", "flag": ""}


def planted_answers(
    humans: dict[tuple[str, str], tuple[list[int], np.ndarray]], respondents: pl.DataFrame,
    countries: Sequence[str], kept: Sequence[str], plant: Plant,
) -> tuple[dict[str, pl.DataFrame], dict[tuple[str, str], float]]:
    """answers.parquet frames of every planted method (see the module docstring), and
    the planted bias b of every (country, question)."""
    rng = np.random.default_rng(plant.seed)
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    bias: dict[tuple[str, str], float] = {}
    for c in countries:
        for q in kept:
            codes, h = humans[(c, q)]
            values = np.asarray(codes, dtype=np.float64)
            span = values[-1] - values[0]
            truth = truth_personas(h, values, plant.n_pairs, rng)
            compressed = mean_preserving_tilt(truth, values, plant.t0)
            # towards the end of the scale with more room above/below the human mean
            m = h @ values
            sign = 1.0 if values[-1] - m >= m - values[0] else -1.0
            bias[(c, q)] = plant.bias * rng.uniform(0.8, 1.2)
            biased = shift_means(truth, values, sign * bias[(c, q)] * span)
            for i in range(len(truth)):
                rows[COMPRESSED].append(_rows(f"{c}:truth:{i:03d}", c, q, codes, compressed[i]))
                rows[BIASED].append(_rows(f"{c}:truth:{i:03d}", c, q, codes, biased[i]))
    for method, seed in ((NOISE, plant.seed), (NOISE_TWIN, plant.seed + 1)):
        drawn = sample_respondents(respondents, countries, plant.n_noise, seed)
        for rec in drawn.select("country", "draw", *kept).iter_rows(named=True):
            c = rec["country"]
            for q in kept:
                if rec[q] is None:
                    continue  # no answer, no row: the persona does not count for q
                codes, _ = humans[(c, q)]
                one_hot = np.zeros(len(codes))
                one_hot[codes.index(rec[q])] = 1.0
                rows[method].append(_rows(f"{c}:draw:{rec['draw']:04d}", c, q, codes, one_hot))
    return {m: pl.DataFrame(r, schema=ANSWERS_SCHEMA) for m, r in rows.items()}, bias


# ---- the project ----------------------------------------------------------------------


def planted_params(plant: Plant) -> Params:
    return Params.model_validate({
        "simulate": {"methods": list(METHODS), "models": [MODEL], "map_items": False},
        "models": {MODEL: {"provider": "transformers", "model": "embedded"}},
        "analysis": {"sample_sizes": [1, 3, 10], "subsample_repeats": 20, "bootstrap": 200,
                     "seed": 0},
    })


def build_planted_study(
    root: Path, respondents: pl.DataFrame, bank: QuestionBank, countries: Sequence[str],
    plant: Plant = Plant(), *, synthetic: bool, source: str,
) -> PlantedStudy:
    """Write data/{human,interim,map,simulated} for a planted study under ``root``."""
    countries = tuple(countries)
    items = [i for i in bank.targets if plant.questions is None or i.id in plant.questions]
    targets = [i.id for i in items]
    dist, summary = human_distributions(respondents, None, items=items, countries=countries)
    kept = filter_questions(summary, targets, countries, MAX_MISSING)

    def write(frame: pl.DataFrame, rel: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)

    def write_json(data: object, rel: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    pool = respondents.filter(pl.col("country").is_in(countries)).select(
        "country", "respondent_id", "weight", *kept.kept)
    write(dist, "data/human/distributions.parquet")
    write(summary, "data/human/summary.parquet")
    write_json(kept.to_json(), "data/human/kept_questions.json")
    write(pool, "data/interim/respondents.parquet")
    counts = pool.group_by("country").len().sort("country")
    write_json({"synthetic": synthetic, "source": source,
                "countries": dict(counts.iter_rows()),
                "citation": "Planted-signal test study on " + ("the synthetic demo population."
                                                              if synthetic else "WVS-7 v5.0.")},
               "data/interim/extract_meta.json")
    write_json({"countries": list(countries), "how": "list", "extra": []}, "data/map/selected_countries.json")
    answers, bias = planted_answers(_human_arrays(dist), pool, countries, kept.kept, plant)
    for method, frame in answers.items():
        d = f"data/simulated/{MODEL}/{method}"
        write(frame, f"{d}/answers.parquet")
        write(frame.group_by(["country", "question"]).agg(
            pl.col("codes").first(), pl.len().alias("n_personas")), f"{d}/population.parquet")
        write_json({"requests": frame.height}, f"{d}/summary.json")
    return PlantedStudy(root, plant, countries, list(kept.kept), planted_params(plant), bias)


def run_stages(study: PlantedStudy) -> PlantedStudy:
    """calibrate -> evaluate -> report inside ``study.root``; records each stage's seconds."""
    from valuesim.stages import calibrate, evaluate, report

    old = Path.cwd()
    os.chdir(study.root)
    try:
        for name, stage in (("calibrate", calibrate), ("evaluate", evaluate), ("report", report)):
            start = time.perf_counter()
            stage.run(study.params)
            study.seconds[name] = time.perf_counter() - start
    finally:
        os.chdir(old)
    return study


def planted_study(
    root: Path, countries: Sequence[str] = COUNTRIES, plant: Plant = Plant(),
    *, wvs_dir: Path | None = None,
) -> PlantedStudy:
    """Build and run a planted study on the demo population, or on real WVS files."""
    start = time.perf_counter()
    bank = load_bank(BANK)
    if wvs_dir is None:
        respondents = demo_respondents(bank, countries)
        source = str(DEMO_AGGREGATES.relative_to(ROOT))
    else:
        respondents = real_respondents(wvs_dir, bank, countries)
        source = str(wvs_dir)
    read = time.perf_counter()
    study = build_planted_study(root, respondents, bank, countries, plant,
                                synthetic=wvs_dir is None, source=source)
    study.seconds["respondents"] = read - start
    study.seconds["build"] = time.perf_counter() - read
    return run_stages(study)
