"""Analyses that reuse simulated answers (no model calls): paper Figures 3, 8 and 9."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from valuesim.analysis import metrics
from valuesim.analysis.blocks import QuestionBlock
from valuesim.calibration.fit import calibrated_population


def sample_size_curve(
    model: str, method: str, blocks: Sequence[QuestionBlock], sizes: Sequence[int],
    repeats: int, seed: int,
) -> pl.DataFrame:
    """MAE per country when only n personas per country are used (Figure 3).

    For each repeat, n personas are drawn without replacement per country (the same
    personas for every question, as a smaller study would), their distributions are
    averaged and scored. Sizes above a country's persona count are skipped. The mean-
    preserving calibration leaves means unchanged, so raw distributions suffice.
    """
    rng = np.random.default_rng(seed)
    personas: dict[str, list[str]] = {}
    for b in blocks:
        for pid, ci in zip(b.persona_ids, b.country_index, strict=True):
            lst = personas.setdefault(b.countries[ci], [])
            if pid not in lst:
                lst.append(pid)
    rows = []
    for n in sizes:
        for rep in range(repeats):
            chosen = {
                c: set(rng.choice(np.array(p, dtype=object), size=n, replace=False).tolist())
                for c, p in sorted(personas.items()) if len(p) >= n
            }
            errs: dict[str, list[float]] = {}
            for b in blocks:
                mask = np.array([
                    pid in chosen.get(b.countries[ci], ())
                    for pid, ci in zip(b.persona_ids, b.country_index, strict=True)
                ])
                for i, country in enumerate(b.countries):
                    sel = mask & (b.country_index == i)
                    if not sel.any():
                        continue
                    pred = b.probs[sel].mean(axis=0)
                    errs.setdefault(country, []).append(
                        float(metrics.abs_error(pred, b.human[i], b.values))
                    )
            rows.extend(
                {"model": model, "method": method, "country": c, "n": n, "repeat": rep,
                 "mae": float(np.mean(v))}
                for c, v in errs.items()
            )
    schema = {"model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "n": pl.Int64,
              "repeat": pl.Int64, "mae": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def temperature_curve(
    model: str, method: str, blocks: Sequence[QuestionBlock], temperatures: Sequence[float],
    n_resamples: int, seed: int,
) -> pl.DataFrame:
    """MAE and Wasserstein vs a common T, plain vs mean-preserving scaling (Figure 9).

    Values are means over (country, question) cells with bootstrap 95% CIs.
    """
    rows = []
    for scaling, mean_preserving in (("plain", False), ("mean_preserving", True)):
        for t in temperatures:
            mae, w = [], []
            for b in blocks:
                pop = calibrated_population(b, float(t), mean_preserving=mean_preserving)
                mae.append(metrics.abs_error(pop, b.human, b.values))
                w.append(metrics.wasserstein(pop, b.human, b.values))
            mae_a, w_a = np.concatenate(mae), np.concatenate(w)
            mlo, mhi = metrics.bootstrap_ci(mae_a, n_resamples, seed)
            wlo, whi = metrics.bootstrap_ci(w_a, n_resamples, seed)
            rows.append({
                "model": model, "method": method, "scaling": scaling, "temperature": float(t),
                "mae": float(mae_a.mean()), "mae_lo": mlo, "mae_hi": mhi,
                "wasserstein": float(w_a.mean()), "wasserstein_lo": wlo, "wasserstein_hi": whi,
            })
    return pl.DataFrame(rows)


def per_question(cells: pl.DataFrame) -> pl.DataFrame:
    """MAE per (model, question) for each method, averaged over countries (Figure 8)."""
    wide = (
        cells.group_by(["model", "question", "method"]).agg(pl.col("mae").mean())
        .sort(["model", "question", "method"])
        .pivot(on="method", index=["model", "question"], values="mae")
        .sort(["model", "question"])
    )
    # method columns in a fixed order: the output is hashed by DVC
    return wide.select("model", "question", *sorted(c for c in wide.columns if c not in ("model", "question")))
