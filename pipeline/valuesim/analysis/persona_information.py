"""E[answer | persona items]: what a *perfect* simulator of a persona would answer on average.

A persona states a respondent's answers to a few items (the value and fewshot personas:
the bank's ``persona`` items; the sociodemographic persona: its ``sociodemographic``
items) and, for the methods that name it, the country. A simulator that knew exactly how
answers depend on that information, and nothing more, would give each persona the
conditional distribution of the answer given the persona; its mean is
E[answer | persona items (, country)]. Averaged over the N personas of a country, that
is the best any simulator of *these* personas can do: the persona-information floor of
:mod:`valuesim.analysis.references`.

The conditional expectation is estimated on the human respondents, and out of sample:

* **Estimator**: ridge regression of the answer (rescaled to [0, 1] by its scale) on the
  persona items coded one-hot (one column per answer code, plus one for "not answered";
  a numeric item enters as its value rescaled to [0, 1] and a missing indicator), with
  the respondents' design weights. Items are categorical, a handful per persona, so an
  additive model on their categories is the natural first model; it cannot see
  interactions between items. For methods that name the country it is fitted within each
  country (every coefficient may differ by country: the country is conditioned on
  exactly); for the ``_nonat`` methods it is fitted on the selected countries pooled,
  without the country, as a simulator of a persona that does not name it would have to.
* **Penalty**: chosen per (question, country) from a grid by generalized
  cross-validation on all its respondents, in closed form from weighted sums, then held
  fixed over the folds.
* **Cross-fitting**: respondents are split into ``folds`` random folds (seeded); each
  respondent's expectation comes from the model fitted on the other folds, so an
  overfitted model cannot make personas look more informative than they are.
  Respondents who did not answer a question are left out of that question's fits, but
  still get a prediction (a persona always gets an answer from the simulator).

Why not gradient boosting: it could find interactions, but on the demo (three
countries, all 32 questions, 5 folds, scikit-learn's HistGradientBoostingRegressor with
the items as categorical features and early stopping) it predicts worse out of fold
(mean R-squared 0.062 against ridge's 0.078) at about 25 times the cost, and the floor at
N = 6 barely moves (0.023 against 0.021): the persona items explain little of any answer
here, so the floor is dominated by the N personas' sampling, not by the model's form.
Both biases of an estimated expectation are stated: estimation noise adds spread
between personas (raising the floor a little), missed interactions remove some
(lowering it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from valuesim.errors import DataError
from valuesim.methods import persona_kind
from valuesim.survey.bank import QuestionBank

#: folds of the cross-fitting
FOLDS = 5
#: ridge penalties, as multiples of the fit's total weight (scale-free in the weights)
PENALTIES = tuple(float(a) for a in np.geomspace(1e-4, 10.0, 11))


@dataclass(frozen=True)
class PersonaFeatures:
    """What a persona method's persona states: ``items`` (respondent columns), of which
    ``numeric`` are numbers rather than answer codes, and whether it names the country."""

    items: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    names_country: bool = True


def method_features(method: str, bank: QuestionBank) -> PersonaFeatures | None:
    """What ``method``'s persona states, from the question bank; None for a method
    without personas. Value and fewshot personas state the ``persona`` items, the
    sociodemographic persona the ``sociodemographic`` items."""
    kind, nationality = persona_kind(method)
    if kind is None:
        return None
    items = bank.sociodemographic if kind == "sociodemographic" else bank.persona_items
    return PersonaFeatures(tuple(i.id for i in items), tuple(i.id for i in items if i.numeric), nationality)


def design_matrix(frame: pl.DataFrame, features: PersonaFeatures) -> np.ndarray:
    """One-hot answer codes (plus "not answered") of each categorical item, value in
    [0, 1] plus a missing indicator of each numeric item; one row per respondent."""
    cols: list[np.ndarray] = []
    for item in features.items:
        if item not in frame.columns:
            raise DataError(f"respondents lack the persona item {item}; rerun the extract stage")
        s = frame[item]
        missing = s.is_null().to_numpy()
        if item in features.numeric:
            v = s.cast(pl.Float64).to_numpy()
            lo, hi = np.nanmin(v) if (~missing).any() else 0.0, np.nanmax(v) if (~missing).any() else 1.0
            x = np.where(missing, 0.5, (v - lo) / (hi - lo) if hi > lo else 0.0)
            cols += [x, missing.astype(np.float64)]
            continue
        v = s.to_numpy()
        for code in sorted({int(c) for c in s.drop_nulls().unique().to_list()}):
            cols.append(((v == code) & ~missing).astype(np.float64))
        if missing.any():
            cols.append(missing.astype(np.float64))
    if not cols:
        return np.zeros((frame.height, 0))
    return np.column_stack(cols)


def fold_sums(x: np.ndarray, w: np.ndarray, fold: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fold: (sum w x x' (k, p, p), sum w x (k, p), sum w (k,)): weighted sums that
    add over rows, so a training set's are the total minus its held-out fold's."""
    onehot = (fold[:, None] == np.arange(k)[None, :]).astype(np.float64) * w[:, None]  # (n, k)
    gram = np.einsum("nk,np,nq->kpq", onehot, x, x, optimize=True)
    return gram, onehot.T @ x, onehot.sum(axis=0)


def crossfit_ridge(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, fold: np.ndarray,
    penalties: Sequence[float] = PENALTIES,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, float]:
    """Cross-fitted weighted ridge: each row predicted by the fit on the other folds.

    Ridge with an unpenalized intercept, the penalty (a multiple of the total weight)
    chosen once from ``penalties`` by generalized cross-validation on all rows
    (Golub, Heath and Wahba 1979: RSS / (1 - df / n)^2, df the trace of the hat matrix),
    then held fixed over the folds: one scalar chosen on all rows leaks nothing that
    matters, and the folds need no nested search. Rows with NaN ``y`` are not fitted
    on but are predicted. ``fold``: 0..k-1 per row; ``sums``: :func:`fold_sums` of
    ``x`` over all rows (shared by every outcome of the same rows; the NaN rows'
    part is taken off here). Returns (predictions, penalty).
    """
    k = int(fold.max()) + 1
    seen = ~np.isnan(y)
    ws = np.where(seen, w, 0.0)
    yz = np.where(seen, y, 0.0)
    gram, sx, sw = sums if sums is not None else fold_sums(x, w, fold, k)
    if not seen.all():  # the unseen rows' part comes off the shared sums
        gram_m, sx_m, sw_m = fold_sums(x[~seen], w[~seen], fold[~seen], k)
        gram, sx, sw = gram - gram_m, sx - sx_m, sw - sw_m
    onehot = (fold[:, None] == np.arange(k)[None, :]).astype(np.float64)
    sxy = onehot.T @ (x * (ws * yz)[:, None])  # (k, p)
    sy, syy = onehot.T @ (ws * yz), onehot.T @ (ws * yz * yz)
    n_seen = int(seen.sum())
    if n_seen < 2 or sw.sum() <= 0:
        raise DataError("ridge needs at least two weighted answers; check the respondents' weights")

    def centred(g: np.ndarray, a: np.ndarray, t: float, b: np.ndarray, u: float) -> tuple[np.ndarray, np.ndarray]:
        mean_x = a / t
        return g - np.outer(a, mean_x), b - mean_x * u

    # the penalty: GCV on all rows, from the sums alone (RSS = y'y - 2 beta'b + beta'C beta)
    total_w = float(sw.sum())
    c_all, b_all = centred(gram.sum(axis=0), sx.sum(axis=0), total_w, sxy.sum(axis=0), float(sy.sum()))
    yy = float(syy.sum() - sy.sum() ** 2 / total_w)
    # one batched solve per penalty: (C + aI)^-1 [b, C] gives beta and the hat matrix's
    # trace (an eigendecomposition would too, but LAPACK's threads make it slower here)
    alphas = total_w * np.asarray(penalties, dtype=np.float64)
    p = x.shape[1]
    sol = np.linalg.solve(c_all[None] + alphas[:, None, None] * np.eye(p)[None],
                          np.concatenate([b_all[:, None], c_all], axis=1)[None].repeat(len(alphas), axis=0))
    beta_a = sol[:, :, 0]  # (A, p)
    rss = yy - 2 * beta_a @ b_all + np.einsum("ap,pq,aq->a", beta_a, c_all, beta_a)
    df = 1.0 + np.trace(sol[:, :, 1:], axis1=1, axis2=2)  # the intercept counts one
    gcv = np.maximum(rss, 0.0) / np.maximum(1.0 - df / n_seen, 1e-12) ** 2
    best = int(np.argmin(gcv))
    alpha = float(alphas[best])

    pred = np.empty(x.shape[0])
    for f in range(k):
        tw = total_w - sw[f]
        rows = fold == f
        if tw <= 0:
            pred[rows] = np.nan
            continue
        ax, ty = sx.sum(axis=0) - sx[f], float(sy.sum() - sy[f])
        c, b = centred(gram.sum(axis=0) - gram[f], ax, tw, sxy.sum(axis=0) - sxy[f], ty)
        beta = np.linalg.solve(c + alpha * np.eye(p), b)
        pred[rows] = ty / tw + (x[rows] - ax / tw) @ beta
    return pred, float(penalties[best])


@dataclass(frozen=True)
class Expectations:
    """Cross-fitted E[answer | persona] on the [0, 1]-rescaled scale.

    ``values``: (respondents, questions), rows in ``respondent_ids`` order, columns in
    ``questions`` order; ``r2``: per (country, question), the weighted out-of-fold
    R-squared (NaN where undefined)."""

    respondent_ids: tuple[str, ...]
    countries: tuple[str, ...]  # each respondent's country
    questions: tuple[str, ...]
    values: np.ndarray
    r2: pl.DataFrame


def persona_expectations(
    respondents: pl.DataFrame, countries: Sequence[str], questions: Sequence[str],
    scales: Mapping[str, Sequence[int]], features: PersonaFeatures, seed: int, folds: int = FOLDS,
) -> Expectations:
    """E[answer | persona] for every respondent of ``countries`` and every question,
    cross-fitted (see the module docstring); ``scales``: each question's answer codes."""
    pool = respondents.filter(pl.col("country").is_in(list(countries))).sort(["country", "respondent_id"])
    if pool.is_empty():
        raise DataError("no respondents in the selected countries; check countries.select")
    absent = [q for q in questions if q not in pool.columns]
    if absent:
        raise DataError(f"respondents lack the question columns {', '.join(absent)}; rerun the extract stage")
    country_of = pool["country"].to_numpy()
    weights = pool["weight"].to_numpy().astype(np.float64)
    groups = ([np.flatnonzero(country_of == c) for c in countries] if features.names_country
              else [np.arange(pool.height)])
    values = np.full((pool.height, len(questions)), np.nan)
    rng = np.random.default_rng(seed)
    r2_rows = []
    for rows in groups:
        if rows.size == 0:
            continue
        x = design_matrix(pool[rows.tolist()], features)
        w = weights[rows]
        k = max(2, min(folds, rows.size))
        fold = rng.permutation(rows.size) % k
        sums = fold_sums(x, w, fold, k)  # shared by every question of these rows
        for j, q in enumerate(questions):
            codes = np.asarray(scales[q], dtype=np.float64)
            raw = pool[q].cast(pl.Float64).to_numpy()[rows]
            y = (raw - codes.min()) / (codes.max() - codes.min())
            seen = ~np.isnan(y)
            pred, _ = crossfit_ridge(x, y, w, fold, sums=sums)
            pred = np.clip(pred, 0.0, 1.0)  # an expectation lies on the scale
            values[rows, j] = pred
            for c in (countries if not features.names_country else [str(country_of[rows[0]])]):
                in_c = seen & (country_of[rows] == c) & ~np.isnan(pred)
                r2_rows.append((c, q, _r2(y[in_c], pred[in_c], w[in_c])))
    r2 = pl.DataFrame(r2_rows, schema={"country": pl.Utf8, "question": pl.Utf8, "r2": pl.Float64}, orient="row")
    return Expectations(tuple(pool["respondent_id"].to_list()), tuple(str(c) for c in country_of),
                        tuple(questions), values, r2)


def _r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    if y.size < 2 or w.sum() <= 0:
        return float("nan")
    mu = float(w @ y / w.sum())
    total = float(w @ (y - mu) ** 2)
    return float(1.0 - w @ (y - pred) ** 2 / total) if total > 0 else float("nan")
