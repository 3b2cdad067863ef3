"""Build small study inputs of the contract shapes for the calibrate/evaluate/report tests.

Everything is synthetic and generated here with NumPy (no project code makes the
distributions), so the stage tests check our code against independent inputs.
Persona distributions are made *sharper* than the human ones by raising them to a
known power, so calibration has a known right answer: tilting each persona at
``true_t`` gives back the human distribution exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

COUNTRIES = ("AAA", "BBB", "CCC")
# question id -> answer codes (scales of different lengths, one not starting at 1)
QUESTIONS = {"Q1": list(range(1, 11)), "Q2": [1, 2, 3, 4], "Q3": [0, 1, 2, 3, 4, 5], "Q4": [1, 2]}


#: respondents per country; human distributions are exactly their answer shares
RESPONDENTS = 1000


def human_distribution(rng: np.random.Generator, k: int) -> np.ndarray:
    """Dirichlet shares rounded to whole respondents (largest remainder), no zero share."""
    p = rng.dirichlet(np.full(k, 2.0))
    counts = np.maximum(1, np.floor(p * RESPONDENTS)).astype(int)
    while counts.sum() < RESPONDENTS:
        counts[np.argmax(p * RESPONDENTS - counts)] += 1
    while counts.sum() > RESPONDENTS:
        counts[np.argmax(counts)] -= 1
    return counts / RESPONDENTS


def sharpen(h: np.ndarray, codes: list[int], power: float) -> np.ndarray:
    """h^power tilted by exp(b r) so that the mean stays that of h (bisection on b)."""
    r = np.asarray(codes, dtype=float)
    target = h @ r
    lo, hi = -200.0, 200.0
    for _ in range(200):
        b = 0.5 * (lo + hi)
        w = power * np.log(h) + b * r
        q = np.exp(w - w.max())
        q /= q.sum()
        lo, hi = (b, hi) if q @ r < target else (lo, b)
    return q


def build_study(
    root: Path,
    methods: tuple[str, ...] = ("generic", "value"),
    model: str = "tiny",
    personas: int = 3,
    true_t: float = 2.0,
    seed: int = 0,
    map_items: bool = False,
) -> dict[tuple[str, str], dict]:
    """Write data/{human,simulated,map,interim} under ``root``; return the truth used.

    With ``map_items``, the country-level methods also get map_answers.parquet and the
    map a transform.json; ``truth["map"]`` then holds each country's expected map
    items, computed here by enumeration.
    """
    rng = np.random.default_rng(seed)
    human_rows, summary_rows = [], []
    humans: dict[tuple[str, str], np.ndarray] = {}
    respondent_frames = []
    for c in COUNTRIES:
        answers_of: dict[str, list[int]] = {}
        for q, codes in QUESTIONS.items():
            h = human_distribution(rng, len(codes))
            humans[(c, q)] = h
            # respondents whose answers have exactly these shares (weight 1 each)
            answers_of[q] = rng.permutation(np.repeat(codes, np.rint(h * RESPONDENTS).astype(int))).tolist()
        respondent_frames.append(pl.DataFrame({
            "country": [c] * RESPONDENTS,
            "respondent_id": [f"{c}-{i:04d}" for i in range(RESPONDENTS)],
            "weight": [1.0] * RESPONDENTS, **answers_of,
        }))
        for q, codes in QUESTIONS.items():
            h = humans[(c, q)]
            human_rows += [{"country": c, "question": q, "code": code, "share": float(s)}
                           for code, s in zip(codes, h, strict=True) if s > 0]
            summary_rows.append({"country": c, "question": q, "mean": float(h @ np.array(codes)),
                                 "n": 1000, "n_eff": 900.0, "missing_share": 0.01})
    hd = root / "data" / "human"
    hd.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(human_rows, schema={"country": pl.Utf8, "question": pl.Utf8, "code": pl.Int64,
                                     "share": pl.Float64}).write_parquet(hd / "distributions.parquet")
    pl.DataFrame(summary_rows).write_parquet(hd / "summary.parquet")
    (hd / "kept_questions.json").write_text(json.dumps(
        {"kept": list(QUESTIONS), "dropped": [], "max_missing": 0.2}))

    truth: dict[tuple[str, str], dict] = {}
    for mi, method in enumerate(methods):
        rows = []
        n = 1 if method in ("generic", "country", "default") else personas
        for c in COUNTRIES:
            for q, codes in QUESTIONS.items():
                h = humans[(c, q)]
                for i in range(n):
                    # method 0 is sharpened exactly; later methods also shift the mean a bit
                    p = sharpen(h, codes, true_t)
                    if mi > 0:
                        p = 0.8 * p + 0.2 * rng.dirichlet(np.ones(len(codes)))
                    rows.append({
                        "persona_id": f"{c}:{method}:{i}", "country": c, "question": q,
                        "codes": codes, "probs": p.tolist(), "coverage": 0.9,
                        "estimator": "logprobs", "flag": "",
                    })
        # one flagged row, which every consumer must ignore
        rows.append({"persona_id": "AAA:flagged", "country": "AAA", "question": "Q1",
                     "codes": QUESTIONS["Q1"], "probs": [1.0] + [0.0] * 9, "coverage": 0.0,
                     "estimator": "logprobs", "flag": "no admissible answer"})
        answers = pl.DataFrame(rows, schema={
            "persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
            "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "coverage": pl.Float64,
            "estimator": pl.Utf8, "flag": pl.Utf8})
        d = root / "data" / "simulated" / model / method
        d.mkdir(parents=True, exist_ok=True)
        answers.write_parquet(d / "answers.parquet")
        pop = answers.filter(pl.col("flag") == "").group_by(["country", "question"]).agg(
            pl.col("codes").first(), pl.len().alias("n_personas"))
        pop.write_parquet(d / "population.parquet")
        (d / "summary.json").write_text(json.dumps({"requests": answers.height}))
        truth[(model, method)] = {"exact": mi == 0, "personas": n}

    md = root / "data" / "map"
    md.mkdir(parents=True, exist_ok=True)
    if map_items:
        truth["map"] = _write_map_items(root, model, methods, md, seed + 1)
    pos = pl.DataFrame({
        "country": list(COUNTRIES), "secular": [-1.0, 0.2, 1.1], "self_expression": [-0.8, 0.5, 1.3],
        "se_secular": [0.05] * 3, "se_self_expression": [0.05] * 3, "n": [1000] * 3})
    pos.write_csv(md / "positions.csv")
    (md / "selected_countries.json").write_text(json.dumps(
        {"countries": list(COUNTRIES), "how": "list", "extra": []}))
    im = root / "data" / "interim"
    im.mkdir(parents=True, exist_ok=True)
    pl.concat(respondent_frames).write_parquet(im / "respondents.parquet")
    (im / "extract_meta.json").write_text(json.dumps({
        "synthetic": True, "source": "data/demo/aggregates.json",
        "countries": dict.fromkeys(COUNTRIES, 1000), "citation": "Test citation (synthetic)."}))
    return truth


# ---- map items (Figure 1) -----------------------------------------------------------

SECULAR = ("Q164", "Y003", "Q184", "Q254", "Q45")
SELF_EXPRESSION = ("Y002", "Q182", "Q209", "Q57", "Q46")
MAP_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)
MAP_ANSWERS_SCHEMA = {
    "persona_id": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8, "given": pl.Int64,
    "codes": pl.List(pl.Int64), "probs": pl.List(pl.Float64), "coverage": pl.Float64,
    "estimator": pl.Utf8, "flag": pl.Utf8,
}


def _y002(a: int, b: int) -> int:
    return 1 if {a, b} == {1, 3} else 3 if {a, b} == {2, 4} else 2


def _write_map_items(root: Path, model: str, methods: tuple[str, ...], md: Path, seed: int) -> dict:
    """Random map answers per country (one prompt per country) and a transform with
    zero means, unit scales and MAP_WEIGHTS, so a position is sum(weight x expected)."""
    import itertools

    rng = np.random.default_rng(seed)
    direct = ("Q164", "Q184", "Q254", "Q45", "Q182", "Q209", "Q57", "Q46")
    expected: dict[str, dict[str, float]] = {}
    rows_by_country: dict[str, list[dict]] = {}
    for c in COUNTRIES:
        rows, e = [], {}
        def add(q, codes, probs, given=None, rows=rows, c=c):
            rows.append({"persona_id": f"{c}:map", "country": c, "question": q, "given": given,
                         "codes": list(codes), "probs": [float(x) for x in probs], "coverage": 1.0,
                         "estimator": "logprobs", "flag": ""})
        for q in direct:
            p = rng.dirichlet(np.ones(4))
            add(q, [1, 2, 3, 4], p)
            e[q] = float(p @ np.arange(1, 5))
        mentioned = {q: float(rng.uniform()) for q in ("Q8", "Q14", "Q15", "Q17")}
        for q, m in mentioned.items():
            add(q, [1, 2], [m, 1 - m])
        # Y003 by enumerating the 16 answer patterns (independent draws)
        e["Y003"] = 0.0
        for pat in itertools.product((1, 2), repeat=4):
            pr = np.prod([mentioned[q] if v == 1 else 1 - mentioned[q]
                          for q, v in zip(("Q8", "Q14", "Q15", "Q17"), pat, strict=True)])
            e["Y003"] += pr * ((pat[2] + pat[3]) - (pat[0] + pat[1]))
        first = rng.dirichlet(np.ones(4))
        add("Q154", [1, 2, 3, 4], first)
        e["Y002"] = 0.0
        for a in (1, 2, 3, 4):
            rest = [b for b in (1, 2, 3, 4) if b != a]
            second = rng.dirichlet(np.ones(3))
            add("Q155", rest, second, given=a)
            e["Y002"] += sum(first[a - 1] * pb * _y002(a, b) for b, pb in zip(rest, second, strict=True))
        expected[c], rows_by_country[c] = e, rows
    for method in methods:
        if method in ("generic", "country", "default"):
            frame = pl.DataFrame([r for c in COUNTRIES for r in rows_by_country[c]], schema=MAP_ANSWERS_SCHEMA)
            frame.write_parquet(root / "data" / "simulated" / model / method / "map_answers.parquet")
    dims = {}
    for name, items in (("secular", SECULAR), ("self_expression", SELF_EXPRESSION)):
        dims[name] = {
            "name": name, "items": list(items), "means": [0.0] * 5, "scales": [1.0] * 5,
            "weights": list(MAP_WEIGHTS), "loadings": list(MAP_WEIGHTS),
            "correlation": np.eye(5).tolist(), "explained": 0.5, "countries": list(COUNTRIES),
            "not_asked": {}, "unexpected_signs": [],
        }
    (md / "transform.json").write_text(json.dumps({
        "dimensions": dims, "min_items": 3, "country_positions": {},
        "method": "test", "version": 1}))
    return expected
