"""The cells the prediction intervals are fitted on: simulated and human means per
(country, question), made exactly as ``valuesim ask`` makes its answers.

One row per (model, method, kind, n_personas, country, question) with the item's
scale (lo, hi, number of answer points), its battery, the simulated mean (the
equal-weight mean over the cell's usable personas of each persona's expected answer,
as :func:`valuesim.asking.cell_stats` computes it), the weighted human mean, the
normalized variant's difficulty and the persona bootstrap 95% interval of ask.

Raw and calibrated rows carry the same numbers: the calibration is a mean-preserving
tilt of every persona's distribution (:mod:`valuesim.calibration.tilt`), so each
persona's expected answer, hence the cell mean, the persona SD and the bootstrap over
personas, is unchanged. Both kinds are written so that ``ask --calibrate`` finds its
own rows; they agree by construction, not by coincidence.

Numbers of personas: the run's N, and each ``analysis.sample_sizes`` n < N whose
personas (the draw ``valuesim ask --n n`` makes: :func:`sample_respondents` with
``personas.seed``) all answered in the run; a smaller n whose draw is not part of the
run is skipped. The model-free references (midpoint, other countries) get cells too,
with ``n_personas`` 0, so their widths can sit beside the model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from valuesim.analysis import metrics
from valuesim.analysis.conformal import cell_seed, difficulty
from valuesim.errors import DataError
from valuesim.survey.batteries import battery_of

INTERVAL_CELL_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "method": pl.Utf8(), "kind": pl.Utf8(), "n_personas": pl.Int64(),
    "country": pl.Utf8(), "question": pl.Utf8(), "battery": pl.Utf8(),
    "lo": pl.Int64(), "hi": pl.Int64(), "n_points": pl.Int64(),
    "sim_mean": pl.Float64(), "human_mean": pl.Float64(),
    "difficulty": pl.Float64(),  # null: a country-level method or a reference
    "boot_low": pl.Float64(), "boot_high": pl.Float64(),  # null: a reference
}
KINDS = ("raw", "calibrated")
# the references whose intervals sit beside the model's (valuesim.analysis.references)
INTERVAL_REFERENCES = ("midpoint", "other_countries")


def human_means(human: pl.DataFrame) -> pl.DataFrame:
    """Weighted human mean per (country, question) of data/human/distributions.parquet."""
    return human.group_by("country", "question").agg(
        ((pl.col("code") * pl.col("share")).sum() / pl.col("share").sum()).alias("human_mean")
    )


def persona_expected(answers: pl.DataFrame, questions: Sequence[str]) -> pl.DataFrame:
    """Usable persona rows (flag empty) of ``questions``: persona_id, country, question,
    codes, expected (probs @ codes, as ask's cell_stats computes it), in file order."""
    usable = answers.filter(pl.col("flag").fill_null("") == "") if "flag" in answers.columns else answers
    usable = usable.filter(pl.col("question").is_in(list(questions)))
    expected = [float(np.dot(p, c)) for p, c in zip(usable["probs"].to_list(), usable["codes"].to_list(),
                                                    strict=True)]
    return usable.select("persona_id", "country", "question", "codes").with_columns(
        pl.Series("expected", expected, dtype=pl.Float64)
    )


def drawn_personas(
    respondents: pl.DataFrame, countries: Sequence[str], n: int, seed: int, method: str,
) -> dict[str, int]:
    """persona_id -> draw position of the personas ``valuesim ask --n n`` asks."""
    from valuesim.methods import persona_kind
    from valuesim.personas.build import persona_id
    from valuesim.personas.sampling import sample_respondents

    kind, nationality = persona_kind(method)
    assert kind is not None
    sample = sample_respondents(respondents, list(countries), n, seed)
    return {persona_id(str(r), kind, nationality): int(d)
            for r, d in sample.select("respondent_id", "draw").iter_rows()}


def persona_sizes(
    present: set[str], respondents: pl.DataFrame, countries: Sequence[str], method: str,
    run_n: int, sizes: Sequence[int], seed: int,
) -> dict[int, dict[str, int] | None]:
    """n -> the personas of that n (draw order), for N and every size n < N whose draw
    is ``present`` in the run's answers; None for N when the run's personas are not the seed's draw
    (then the file order is kept)."""
    out: dict[int, dict[str, int] | None] = {}
    for n in sorted({*(s for s in sizes if s < run_n), run_n}):
        try:
            drawn = drawn_personas(respondents, countries, n, seed, method)
        except DataError:  # respondents unlike the run's (a country without them): no draw
            drawn = None
        if drawn is not None and set(drawn) <= present:
            out[n] = drawn
        elif n == run_n:
            out[n] = None
    return out


def _cells_of(
    expected: pl.DataFrame, order: Mapping[str, int] | None, human_mean: Mapping[tuple[str, str], float],
    bootstrap: int, seed: int, persona_method: bool,
) -> list[dict[str, object]]:
    if order is None:  # the run's file order
        frame = expected.with_row_index("_draw")
    else:  # ask's persona order: the draw's
        frame = expected.filter(pl.col("persona_id").is_in(list(order))).with_columns(
            pl.col("persona_id").replace_strict(order, return_dtype=pl.Int64).alias("_draw"))
    grouped = frame.sort("country", "question", "_draw").group_by(["country", "question"], maintain_order=True).agg(
        pl.col("expected"), pl.col("codes").first())
    rows = []
    for country, question, values, codes in grouped.iter_rows():
        key = (str(country), str(question))
        if key not in human_mean:
            continue
        x = np.asarray(values, dtype=np.float64)
        span = float(codes[-1] - codes[0])
        low, high = metrics.bootstrap_ci(x, bootstrap, cell_seed(seed, *key))
        rows.append({
            "country": key[0], "question": key[1], "lo": codes[0], "hi": codes[-1], "n_points": len(codes),
            "sim_mean": float(x.mean()), "human_mean": human_mean[key],
            "difficulty": difficulty(x, span) if persona_method else None,
            "boot_low": low, "boot_high": high,
        })
    return rows


def run_cells(
    model: str, method: str, answers: pl.DataFrame, human: pl.DataFrame, questions: Sequence[str],
    respondents: pl.DataFrame, *, persona_method: bool, run_n: int, sizes: Sequence[int],
    persona_seed: int, bootstrap: int, seed: int, batteries: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """:data:`INTERVAL_CELL_SCHEMA` rows of one (model, method) run, both kinds, for N
    and every smaller n the run holds (see the module docstring)."""
    expected = persona_expected(answers, questions)
    means = {(c, q): float(m) for c, q, m in human_means(human).iter_rows()}
    countries = sorted(set(expected["country"].to_list()))
    sizes_of: dict[int, dict[str, int] | None] = {run_n: None}
    if persona_method:
        present = set(answers["persona_id"].to_list())
        sizes_of = persona_sizes(present, respondents, countries, method, run_n, sizes, persona_seed)
    frames = []
    for n, order in sizes_of.items():
        rows = _cells_of(expected, order, means, bootstrap, seed, persona_method)
        base = pl.DataFrame(rows, schema={k: v for k, v in INTERVAL_CELL_SCHEMA.items()
                                          if k not in ("model", "method", "kind", "n_personas", "battery")})
        for kind in KINDS:
            frames.append(_finish(base, model, method, kind, n, batteries))
    return pl.concat(frames).select(list(INTERVAL_CELL_SCHEMA))


def _finish(
    base: pl.DataFrame, model: str, method: str, kind: str, n: int, batteries: Mapping[str, str] | None,
) -> pl.DataFrame:
    explicit = batteries or {}
    return base.with_columns(
        pl.lit(model).alias("model"), pl.lit(method).alias("method"), pl.lit(kind).alias("kind"),
        pl.lit(n, dtype=pl.Int64).alias("n_personas"),
        pl.col("question").map_elements(lambda q: explicit.get(q) or battery_of(q), return_dtype=pl.Utf8)
        .alias("battery"),
    )


def reference_interval_cells(
    predictions: Mapping[str, pl.DataFrame], human: pl.DataFrame, keys: pl.DataFrame,
    scales: Mapping[str, Sequence[int]], batteries: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Cells of the model-free references: ``predictions`` are their long distributions
    by name (:func:`valuesim.analysis.references.constant_reference` and
    ``other_countries_reference``), restricted to the (country, question) ``keys`` the
    methods have; ``scales``: each question's answer codes."""
    means = human_means(human)
    frames = []
    for name, pred in predictions.items():
        if pred.is_empty():
            continue
        sim = pred.group_by("country", "question").agg(
            ((pl.col("code") * pl.col("share")).sum() / pl.col("share").sum()).alias("sim_mean"))
        cells = sim.join(means, on=["country", "question"]).join(keys, on=["country", "question"], how="semi")
        cells = cells.filter(pl.col("question").is_in(list(scales))).with_columns(
            pl.col("question").replace_strict({q: c[0] for q, c in scales.items()}, return_dtype=pl.Int64).alias("lo"),
            pl.col("question").replace_strict({q: c[-1] for q, c in scales.items()}, return_dtype=pl.Int64)
            .alias("hi"),
            pl.col("question").replace_strict({q: len(c) for q, c in scales.items()}, return_dtype=pl.Int64)
            .alias("n_points"),
            pl.lit(None, dtype=pl.Float64).alias("difficulty"), pl.lit(None, dtype=pl.Float64).alias("boot_low"),
            pl.lit(None, dtype=pl.Float64).alias("boot_high"),
        )
        frames.append(_finish(cells, "reference", name, "raw", 0, batteries).select(list(INTERVAL_CELL_SCHEMA)))
    if not frames:
        return pl.DataFrame(schema=INTERVAL_CELL_SCHEMA)
    return pl.concat(frames).sort(["method", "country", "question"])
