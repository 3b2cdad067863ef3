"""Real-data validation of pilot mode (PPI++, issue 20 item 5): coverage and width.

For each country, a pool of respondents of the real WVS-7 file (a uniform draw, with
their design weights) is scored once: every respondent's persona (the study's method
and descriptor sets) answers WVS-7 items nobody in the study asked
(``examples/validation/pilot_items.yaml``, three items of
``data/questions/wvs7_heldout.yaml``), through ``ask``'s prompts, engine and response
cache (:func:`valuesim.pilot_asking.score_personas`). Their real answers are in the same
files. Then, with no further model call, pilots of n respondents are drawn from the pool
at random (the rest of the pool is the unlabeled set), many times per (country,
question, n), and each gets the PPI++ and the classical interval
(:func:`valuesim.analysis.ppi.ppi_mean`). The truth is the pool's weighted mean answer.

Reported (aggregates only, never respondent rows): empirical coverage of the truth with
Clopper-Pearson 95% intervals, the width ratio PPI/classical, lambda, the effective
sample size, the PPI correlation, and the model's own error (its mean prediction against
the truth). Two things make coverage differ from nominal on purpose, and the table says
how much:

- the pilot is drawn without replacement from a finite pool and the truth is that
  pool's mean, so the intervals (which assume an infinite population) are conservative
  by the finite-population factor sqrt(1 - n / pool): column ``fpc nominal``;
- respondents who did not answer (don't know, no answer) are in the unlabeled set but
  cannot be in a pilot, as in real use: if the model predicts them differently, the
  PPI estimate is biased. The truth is the mean over those who answered.

``ppi_py``'s own weighted interval (uncentred standard error, see
:mod:`valuesim.analysis.ppi`) is reported beside ours for weighted countries.

    nice .venv/bin/python examples/validation/pilot_ppi.py --countries JPN,AUS \\
        --questions Q30,Q131,Q158 --pool 600 --repeats 200 \\
        --out examples/validation/results/pilot_ppi.md

Scoring 2 countries x 600 respondents x 3 items (3,600 prompts) with the embedded model
takes about 12 minutes on 2 CPU cores; a rerun is answered from the cache.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import binomtest, norm

from valuesim.analysis.ppi import ppi_mean
from valuesim.asking import find_calibration
from valuesim.config import load_params
from valuesim.llm.cache import resolve_cache_dir
from valuesim.llm.engine import Engine
from valuesim.methods import persona_kind
from valuesim.personas.build import persona_id
from valuesim.personas.on_demand import under
from valuesim.pilot_asking import personas_of, score_personas
from valuesim.survey.bank import load_bank
from valuesim.survey.new_questions import extend_bank, load_question_file
from valuesim.survey.readers import read_source

HELDOUT = "examples/validation/pilot_items.yaml"


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def pool_of(respondents: pl.DataFrame, size: int, seed: int, country: str) -> pl.DataFrame:
    """A uniform draw (not weighted: the design weights stay with the respondents)."""
    frame = respondents.sort("respondent_id")
    rng = np.random.default_rng([seed, zlib.crc32(country.encode())])
    idx = np.sort(rng.choice(frame.height, size=min(size, frame.height), replace=False))
    return frame[idx.tolist()]


def score_pools(args: argparse.Namespace) -> tuple[pl.DataFrame, dict[str, object]]:
    """Per (country, respondent, question): y (null: no answer), yhat, weight."""
    project = Path(args.project)
    params = load_params(under(project, "params.yaml"))
    bank = load_bank(under(project, params.data.questions))
    items = [i for i in load_question_file(under(project, args.heldout), bank)
             if i.id in args.questions]
    missing = sorted(set(args.questions) - {i.id for i in items})
    if missing:
        sys.exit(f"{', '.join(missing)} are not in {args.heldout}")
    asked = extend_bank(bank, items)  # the readers then read the held-out items' columns too
    pools = []
    for c in args.countries:
        rows = read_source(Path(args.wvs) / f"{c}.csv.gz", asked,
                           drop_duplicates=params.data.drop_duplicates).respondents
        pools.append(pool_of(rows, args.pool, args.seed, c))
    pool = pl.concat(pools, how="vertical")
    personas = personas_of(params, bank, pool, args.method, project)
    calibration, note = find_calibration(project, args.model, args.method)
    spec, sim = params.models[args.model], params.simulate
    t0 = time.perf_counter()
    with Engine(spec.provider, spec, resolve_cache_dir(sim.cache_dir, cwd=project),
                batch_size=sim.batch_size, max_retries=sim.max_retries, timeout_s=sim.timeout_s,
                prices=sim.prices, label=f"pilot validation {args.model}/{args.method}") as engine:
        yhat = score_personas(engine, params, args.method, personas, bank, items, args.countries,
                              calibration)
        run = engine.summary
    kind, nat = persona_kind(args.method)
    rows = []
    for r in pool.iter_rows(named=True):
        pid = persona_id(r["respondent_id"], str(kind), nat)
        for item in items:
            rows.append({"country": r["country"], "respondent_id": r["respondent_id"],
                         "question": item.id, "y": r[item.id], "yhat": yhat[(pid, item.id)],
                         "weight": r["weight"]})
    meta = {"requests": run.requests, "cache_hits": run.cache_hits, "sent": run.sent,
            "scoring_s": round(time.perf_counter() - t0, 1), "calibration": note,
            "items": {i.id: (i.label, i.min, i.max) for i in items}}
    return pl.DataFrame(rows), meta


PLANTED = (0.5, 1.0)  # noise sd / answer sd of the planted predictors: rho^2 = 0.8, 0.5


def with_planted(scores: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Planted predictors on the real answers: Yhat = Y + N(0, (s * sd(Y))^2), one draw per
    respondent (fixed, like a model's prediction), for the respondents who answered."""
    parts = []
    for (country, question), cell in scores.group_by(["country", "question"], maintain_order=True):
        cell = cell.sort("respondent_id")
        y = cell["y"].to_numpy().astype(np.float64)
        sd = float(np.nanstd(y))
        rng = np.random.default_rng([seed, 7, zlib.crc32(f"{country}:{question}".encode())])
        cell = cell.with_columns([
            pl.Series(f"planted_{s:g}", y + rng.normal(0, s * sd, y.shape[0]), nan_to_null=True)
            for s in PLANTED
        ])
        parts.append(cell)
    return pl.concat(parts, how="vertical")


def simulate(scores: pl.DataFrame, args: argparse.Namespace, predictor: str = "yhat") -> pl.DataFrame:
    """One row per (country, question, n, repeat), the model's predictions (``yhat``) or a
    planted predictor's (``planted_<s>``: only respondents who answered are in the pool)."""
    import ppi_py

    rho2 = 1 / (1 + float(predictor.split("_")[1]) ** 2) if predictor != "yhat" else math.nan
    out = []
    for (country, question), cell in scores.group_by(["country", "question"], maintain_order=True):
        cell = cell.filter(pl.col(predictor).is_not_null()).sort("respondent_id")
        y = cell["y"].to_numpy().astype(np.float64)  # nan: no answer
        yhat, w = cell[predictor].to_numpy(), cell["weight"].to_numpy()
        answered = ~np.isnan(y)
        truth = float(np.average(y[answered], weights=w[answered]))
        rng = np.random.default_rng([args.seed, zlib.crc32(f"{country}:{question}".encode())])
        for n in args.sizes:
            for rep in range(args.repeats):
                pick = np.zeros(cell.height, dtype=bool)
                pick[rng.choice(cell.height, size=n, replace=False)] = True
                lab = pick & answered
                res = ppi_mean(y[lab], yhat[lab], yhat[~pick], w[lab], w[~pick], args.level)
                lo, hi = ppi_py.ppi_mean_ci(y[lab], yhat[lab], yhat[~pick], alpha=1 - args.level,
                                            lam=res.lam, w=w[lab], w_unlabeled=w[~pick])
                share = rho2 * res.n_unlabeled / (res.n + res.n_unlabeled)
                out.append({
                    "predictor": predictor, "country": country, "question": question, "n": n,
                    "repeat": rep, "n_answered": int(lab.sum()), "pool_size": cell.height,
                    "truth": truth, "model_mean": float(np.average(yhat, weights=w)),
                    "ppi_cover": res.low <= truth <= res.high,
                    "classical_cover": res.classical_low <= truth <= res.classical_high,
                    "ratio": res.width / res.classical_width, "lam": res.lam,
                    "effective_n": res.effective_n, "corr": res.correlation,
                    "uncentred_cover": float(lo[0]) <= truth <= float(hi[0]),
                    "uncentred_ratio": float(hi[0] - lo[0]) / res.classical_width,
                    "weighted": bool(np.ptp(w) > 0),
                    # the formula at the optimal lam: what the planted predictor should give
                    "formula_ratio": math.sqrt(1 - share), "formula_n": res.n / (1 - share),
                })
    return pl.DataFrame(out)


def summarise(draws: pl.DataFrame, by: list[str], level: float) -> pl.DataFrame:
    agg = draws.group_by(by, maintain_order=True).agg(
        repeats=pl.len(), ppi_k=pl.col("ppi_cover").sum(), classical_k=pl.col("classical_cover").sum(),
        uncentred_k=pl.col("uncentred_cover").sum(), ratio=pl.col("ratio").mean(),
        uncentred_ratio=pl.col("uncentred_ratio").mean(), lam=pl.col("lam").mean(),
        effective_n=pl.col("effective_n").mean(), n_answered=pl.col("n_answered").mean(),
        corr=pl.col("corr").mean(), weighted=pl.col("weighted").any(),
        fpc=(pl.col("n") / pl.col("pool_size")).mean(),
        formula_ratio=pl.col("formula_ratio").mean(), formula_n=pl.col("formula_n").mean(),
    )
    z = float(norm.ppf(1 - (1 - level) / 2))
    rows = []
    for r in agg.iter_rows(named=True):
        k, m = int(r["ppi_k"]), int(r["repeats"])
        lo, hi = clopper_pearson(k, m)
        ck = int(r["classical_k"])
        clo, chi = clopper_pearson(ck, m)
        rows.append({**{b: r[b] for b in by}, "repeats": m, "n_answered": r["n_answered"],
                     "ppi_coverage": k / m, "ppi_lo": lo, "ppi_hi": hi,
                     "classical_coverage": ck / m, "classical_lo": clo, "classical_hi": chi,
                     "fpc_nominal": 2 * norm.cdf(z / math.sqrt(1 - r["fpc"])) - 1,
                     "width_ratio": r["ratio"], "lam": r["lam"], "effective_n": r["effective_n"],
                     "ppi_corr": r["corr"], "weighted": r["weighted"],
                     "ppi_py_uncentred_coverage": int(r["uncentred_k"]) / m,
                     "ppi_py_uncentred_width_ratio": r["uncentred_ratio"],
                     "formula_width_ratio": r["formula_ratio"], "formula_effective_n": r["formula_n"]})
    return pl.DataFrame(rows)


def markdown(cells: pl.DataFrame, pooled: pl.DataFrame, model_err: pl.DataFrame,
             planted: pl.DataFrame, meta: dict[str, object], args: argparse.Namespace) -> str:
    lines = [
        "# Pilot mode (PPI++) on real WVS-7 files",
        "",
        f"Made by `examples/validation/pilot_ppi.py --countries {','.join(args.countries)} "
        f"--questions {','.join(args.questions)} --pool {args.pool} --sizes "
        f"{','.join(map(str, args.sizes))} --repeats {args.repeats} --level {args.level:g} "
        f"--model {args.model} --method {args.method}` (seed {args.seed}).",
        "",
        f"Pools: {args.pool} respondents per country drawn uniformly from {args.wvs} (design "
        f"weights kept); each respondent's {args.method} persona scored once "
        f"({meta['requests']} prompts, {meta['sent']} sent, {meta['cache_hits']} cached, "
        f"{meta['scoring_s']} s). Pilots: n respondents drawn without replacement from the "
        "pool, those without an answer dropped (n answered = the mean pilot size used); "
        "unlabeled set = the rest of the pool; truth = the pool's weighted mean answer. "
        f"Level {args.level:g}; coverage with Clopper-Pearson 95% intervals over the repeats. "
        f"{meta['calibration']}.",
        "",
        "`fpc nominal`: the coverage a correct interval has here, because the truth is the "
        "mean of a finite pool the pilot is drawn from without replacement. Width ratio: "
        "PPI++ width / classical width (mean over repeats). `ppi_py uncentred`: ppi_py's own "
        "weighted interval (standard error of the uncentred weighted values), shown where "
        "weights vary.",
        "",
        "## Pooled over countries and questions",
        "",
        "| n | repeats | PPI++ coverage [CP 95%] | classical coverage [CP 95%] | fpc nominal "
        "| width ratio | effective n | lambda | PPI corr. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in pooled.iter_rows(named=True):
        lines.append(
            f"| {r['n']} | {r['repeats']} | {r['ppi_coverage']:.3f} [{r['ppi_lo']:.3f}, "
            f"{r['ppi_hi']:.3f}] | {r['classical_coverage']:.3f} [{r['classical_lo']:.3f}, "
            f"{r['classical_hi']:.3f}] | {r['fpc_nominal']:.3f} | {r['width_ratio']:.3f} | "
            f"{r['effective_n']:.0f} | {r['lam']:.2f} | {r['ppi_corr']:.2f} |")
    lines += [
        "",
        "## Per country, question and n",
        "",
        "| country | question | n | n answered | PPI++ coverage [CP 95%] | classical coverage "
        "[CP 95%] | fpc nominal | width ratio | effective n | lambda | PPI corr. | ppi_py "
        "uncentred: coverage, width ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cells.iter_rows(named=True):
        unc = (f"{r['ppi_py_uncentred_coverage']:.3f}, {r['ppi_py_uncentred_width_ratio']:.3f}"
               if r["weighted"] else "(unweighted: identical)")
        lines.append(
            f"| {r['country']} | {r['question']} | {r['n']} | {r['n_answered']:.1f} | "
            f"{r['ppi_coverage']:.3f} [{r['ppi_lo']:.3f}, {r['ppi_hi']:.3f}] | "
            f"{r['classical_coverage']:.3f} [{r['classical_lo']:.3f}, {r['classical_hi']:.3f}] | "
            f"{r['fpc_nominal']:.3f} | {r['width_ratio']:.3f} | {r['effective_n']:.0f} | "
            f"{r['lam']:.2f} | {r['ppi_corr']:.2f} | {unc} |")
    lines += [
        "",
        "## The model alone",
        "",
        "The model's mean prediction over the pool against the truth (what `ask` without a "
        "pilot would say for these respondents), in scale points and as a share of the range.",
        "",
        "| country | question | scale | truth | model mean | error | error / range |",
        "|---|---|---|---|---|---|---|",
    ]
    items = meta["items"]
    assert isinstance(items, dict)
    for r in model_err.iter_rows(named=True):
        label, lo, hi = items[r["question"]]
        err = r["model_mean"] - r["truth"]
        lines.append(f"| {r['country']} | {r['question']} ({label}) | {lo}-{hi} | {r['truth']:.3f} "
                     f"| {r['model_mean']:.3f} | {err:+.3f} | {abs(err) / (hi - lo):.3f} |")
    lines += [
        "",
        "## Planted predictors on the real answers",
        "",
        "Yhat = Y + N(0, (s sd(Y))^2) drawn once per respondent who answered (so rho^2 = "
        "1 / (1 + s^2)), the same pilots and pools otherwise (respondents without an answer "
        "left out). `formula`: the width ratio sqrt(1 - rho^2 N / (n + N)) and effective n "
        "n / (1 - rho^2 N / (n + N)) of PPI++ at the optimal lambda. Pooled over countries "
        "and questions.",
        "",
        "| noise s | rho^2 | n | PPI++ coverage [CP 95%] | fpc nominal | width ratio | formula "
        "| effective n | formula | lambda |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in planted.iter_rows(named=True):
        s = float(r["predictor"].split("_")[1])
        lines.append(
            f"| {s:g} | {1 / (1 + s * s):.2f} | {r['n']} | {r['ppi_coverage']:.3f} "
            f"[{r['ppi_lo']:.3f}, {r['ppi_hi']:.3f}] | {r['fpc_nominal']:.3f} | "
            f"{r['width_ratio']:.3f} | {r['formula_width_ratio']:.3f} | {r['effective_n']:.0f} | "
            f"{r['formula_effective_n']:.0f} | {r['lam']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wvs", default="../shared/data/wvs7/v5", help="directory of per-country WVS-7 files")
    ap.add_argument("--countries", default="JPN,AUS")
    ap.add_argument("--questions", default="Q30,Q131,Q158")
    ap.add_argument("--heldout", default=HELDOUT)
    ap.add_argument("--pool", type=int, default=600)
    ap.add_argument("--sizes", default="50,100,200")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--method", default="value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", default=".", help="the project whose params, descriptors and cache to use")
    ap.add_argument("--out", default="examples/validation/results/pilot_ppi.md")
    args = ap.parse_args(argv)
    args.countries = [c.strip() for c in args.countries.split(",") if c.strip()]
    args.questions = [q.strip() for q in args.questions.split(",") if q.strip()]
    args.sizes = [int(s) for s in args.sizes.split(",")]

    scores, meta = score_pools(args)
    draws = simulate(scores, args)
    cells = summarise(draws, ["country", "question", "n"], args.level)
    pooled = summarise(draws, ["n"], args.level)
    scores = with_planted(scores, args.seed)
    planted_draws = pl.concat([simulate(scores, args, f"planted_{s:g}") for s in PLANTED])
    planted = summarise(planted_draws, ["predictor", "n"], args.level)
    model_err = draws.group_by(["country", "question"], maintain_order=True).agg(
        pl.col("truth").first(), pl.col("model_mean").first())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(cells, pooled, model_err, planted, meta, args))
    pl.concat([cells.with_columns(predictor=pl.lit("model")), planted], how="diagonal").write_csv(
        out.with_suffix(".csv"))
    print(out.read_text())


if __name__ == "__main__":
    main()
