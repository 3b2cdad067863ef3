"""Inglehart-Welzel (IW) cultural map: an ecological fit, applied to anyone.

The published map is a *country-level* analysis: each item is averaged per
country (design-weighted), every country counts once, the country means are
standardized across countries, and each dimension is the first principal
component of its own five items (traditional vs secular-rational: Q164, Y003,
Q184, Q254, Q45; survival vs self-expression: Y002, Q182, Q209, Q57, Q46).
Scores are component scores: item weights = loading / eigenvalue, so countries
have mean 0 and SD 1 on each axis, as on the published maps.

Why principal components (numpy ``eigh``) rather than a common-factor model:
IW computed their map scores from principal components. We also tried
principal-axis and maximum-likelihood factoring (statsmodels ``Factor``) with
regression scores; on WVS-7 the highly collinear God/autonomy items then take
nearly all the weight and abortion gets a *negative* weight (a suppression
artefact), and agreement with the published WVS aggregate indicators drops from
r = 0.97 to 0.90 on the secular axis (README, "The Inglehart-Welzel cultural map").

Respondents are scored with the same item means, scales and weights, so a
country's weighted mean of its respondents' scores is its map position. Missing
answers are handled explicitly:

* a respondent needs ``min_items`` answered items of a dimension, else no score;
* an unanswered item is filled with the respondent's *country* weighted mean on
  it, which keeps the country mean of individual scores equal to the country's
  position (a per-person rescaling over answered items would not);
* an item nobody in a country answered (not asked there: Q164 in Iraq, Q182 in
  Egypt and Tajikistan) is left out, and the component score is predicted from the
  items asked, by regression over the fitted country-level correlations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from valuesim import artifacts
from valuesim.culturalmap.inputs import (
    DIMENSIONS,
    check_respondents,
    country_item_means,
    dimension_items,
    item_matrix,
)
from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank

# Which pole of each item's code scale is secular-rational / self-expression
# (+1: higher code is that pole). Principal components have an arbitrary sign; the
# axes are turned so that the loadings agree with these on balance.
EXPECTED_DIRECTION: dict[str, int] = {
    "Q164": -1,  # God important: 1 not at all .. 10 very -> traditional
    "Y003": +1,  # autonomy index: -2 obedience/faith .. +2 independence/determination
    "Q184": +1,  # abortion justifiable: 1 never .. 10 always
    "Q254": +1,  # national pride: 1 very proud .. 4 not at all proud
    "Q45": +1,  # more respect for authority: 1 good thing .. 3 bad thing
    "Y002": +1,  # post-materialism: 1 materialist .. 3 post-materialist
    "Q182": +1,  # homosexuality justifiable: 1 never .. 10 always
    "Q209": -1,  # signing a petition: 1 have done .. 3 would never
    "Q57": -1,  # trust: 1 most people can be trusted .. 2 need to be very careful
    "Q46": -1,  # happiness: 1 very happy .. 4 not at all happy
}

MIN_FIT_COUNTRIES = 5
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DimensionFit:
    """One axis: standardization, component weights and the fit's diagnostics."""

    name: str
    items: list[str]
    means: list[float]  # mean over countries of the country means
    scales: list[float]  # SD (ddof=1) over countries of the country means
    weights: list[float]  # component score coefficients on standardized items, oriented
    loadings: list[float]  # item-component correlations over countries, oriented
    correlation: list[list[float]]  # item correlations over the fit countries
    explained: float  # share of the standardized variance the component explains
    countries: list[str]  # countries in the fit (all items answered)
    not_asked: dict[str, list[str]] = field(default_factory=dict)  # country -> items
    unexpected_signs: list[str] = field(default_factory=list)  # loadings against the IW pole

    def weights_for(self, available: Sequence[bool]) -> np.ndarray:
        """Item weights for a subset of items (zeros for the others).

        With every item available these are the component weights. Otherwise they
        regress the full component score on the available standardized items over
        the fit countries: beta = R_aa^-1 R_a. w (identical to w when nothing is
        missing).
        """
        mask = np.asarray(available, dtype=bool)
        w = np.asarray(self.weights)
        if mask.all():
            return w
        out = np.zeros_like(w)
        if not mask.any():
            return out
        r = np.asarray(self.correlation)
        out[mask] = np.linalg.solve(r[np.ix_(mask, mask)], r[mask] @ w)
        return out

    def standardize(self, values: np.ndarray) -> np.ndarray:
        return (values - np.asarray(self.means)) / np.asarray(self.scales)


@dataclass(frozen=True)
class IWTransform:
    """The fitted map: apply it to respondents, personas or simulated answers."""

    dimensions: dict[str, DimensionFit]
    min_items: int
    # Ecological positions of the fitted countries (aggregates, shippable).
    country_positions: dict[str, list[float | None]] = field(default_factory=dict)
    method: str = "ecological principal components of weighted country means (Inglehart-Welzel)"
    version: int = FORMAT_VERSION

    @property
    def items(self) -> list[str]:
        return [i for d in DIMENSIONS for i in self.dimensions[d].items]

    # ---- persistence -------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        artifacts.write_json(self.to_dict(), Path(path), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> IWTransform:
        p = Path(path)
        if not p.exists():
            raise DataError(f"map transform {p} not found; run `valuesim stage map` (or dvc repro map)")
        try:
            raw = json.loads(p.read_text())
            if raw.get("version") != FORMAT_VERSION:
                raise DataError(
                    f"map transform {p} has format version {raw.get('version')}, expected "
                    f"{FORMAT_VERSION}; re-run the map stage"
                )
            dims = {k: DimensionFit(**v) for k, v in raw.pop("dimensions").items()}
            return cls(dimensions=dims, **raw)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise DataError(f"map transform {p} is unreadable ({exc}); re-run the map stage") from exc

    # ---- application -------------------------------------------------------
    def score(self, respondents: pl.DataFrame) -> pl.DataFrame:
        """One row per respondent: country, respondent_id, weight, secular,
        self_expression (null below ``min_items``) and the answered-item counts
        ``secular_items`` / ``self_expression_items``."""
        check_respondents(respondents, self.items)
        keep = [c for c in ("country", "respondent_id", "weight") if c in respondents.columns]
        out = respondents.select(keep)
        country = respondents["country"].to_numpy()
        weight = respondents["weight"].cast(pl.Float64).to_numpy()
        for dim in DIMENSIONS:
            fit = self.dimensions[dim]
            z = fit.standardize(item_matrix(respondents, fit.items))
            answered = ~np.isnan(z)
            n_answered = answered.sum(axis=1)
            scores = np.full(len(z), np.nan)
            for c in np.unique(country):
                rows = country == c
                zc, wc = z[rows], weight[rows]
                ans = answered[rows]
                # country weighted mean of each standardized item over its answerers
                wsum = (wc[:, None] * ans).sum(axis=0)
                asked = wsum > 0
                cmean = np.divide(
                    np.nansum(zc * wc[:, None], axis=0), wsum, out=np.zeros(len(wsum)), where=asked
                )
                filled = np.where(ans, zc, cmean[None, :])
                scores[rows] = filled[:, asked] @ fit.weights_for(asked)[asked]
            scores[n_answered < self.min_items] = np.nan
            out = out.with_columns(
                pl.Series(dim, scores).fill_nan(None),
                pl.Series(f"{dim}_items", n_answered, dtype=pl.Int64),
            )
        return out

    def project_expected(self, expected: Mapping[str, float]) -> tuple[float, float]:
        """(secular, self_expression) of expected item values, e.g. the means of
        simulated answer distributions for a country or a persona. Items outside the
        map are ignored; a dimension needs ``min_items`` of its items."""
        point: list[float] = []
        for dim in DIMENSIONS:
            fit = self.dimensions[dim]
            values = np.array([float(expected.get(i, np.nan)) for i in fit.items])
            available = ~np.isnan(values)
            if available.sum() < self.min_items:
                absent = [i for i, a in zip(fit.items, available, strict=True) if not a]
                raise DataError(
                    f"cannot place on the {dim} axis: expected values for {', '.join(absent)} are "
                    f"missing ({int(available.sum())} of {len(fit.items)} given, map.min_items="
                    f"{self.min_items}); simulate those persona items too"
                )
            z = fit.standardize(np.where(available, values, 0.0))
            point.append(float(z[available] @ fit.weights_for(available)[available]))
        return point[0], point[1]


def _orient(items: Sequence[str], loadings: np.ndarray, dim: str) -> int:
    known = [(EXPECTED_DIRECTION[i], loadings[k]) for k, i in enumerate(items) if i in EXPECTED_DIRECTION]
    if not known:
        raise DataError(
            f"none of the {dim} items ({', '.join(items)}) is a known Inglehart-Welzel item, so "
            "the axis cannot be oriented; use the ten IW items in the question bank"
        )
    return 1 if sum(d * v for d, v in known) >= 0 else -1


def _fit_dimension(
    dim: str, items: list[str], countries: list[str], means: np.ndarray
) -> DimensionFit:
    complete = ~np.isnan(means).any(axis=1)
    n_fit = int(complete.sum())
    if n_fit < MIN_FIT_COUNTRIES:
        raise DataError(
            f"only {n_fit} countries answered all {dim} items ({', '.join(items)}); the "
            f"country-level map needs at least {MIN_FIT_COUNTRIES}"
        )
    x = means[complete]
    mu, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    flat = [items[k] for k in np.flatnonzero(sd <= 1e-12)]
    if flat:
        raise DataError(
            f"item(s) {', '.join(flat)} have the same mean in every country, so they cannot "
            "define a map axis; check the data source"
        )
    z = (x - mu) / sd
    r = np.corrcoef(z, rowvar=False)
    eigval, eigvec = np.linalg.eigh(r)  # ascending; the first component is the last
    lam, vec = float(eigval[-1]), eigvec[:, -1]
    sign = _orient(items, vec, dim)
    vec = vec * sign
    loadings = vec * np.sqrt(lam)
    weights = vec / np.sqrt(lam)  # unit variance of country scores over the fit countries
    unexpected = [
        i for i, load in zip(items, loadings, strict=True) if EXPECTED_DIRECTION.get(i, 0) * load < 0
    ]
    not_asked = {
        c: [items[k] for k in np.flatnonzero(np.isnan(means[n]))]
        for n, c in enumerate(countries)
        if not complete[n]
    }
    return DimensionFit(
        name=dim,
        items=list(items),
        means=mu.tolist(),
        scales=sd.tolist(),
        weights=weights.tolist(),
        loadings=loadings.tolist(),
        correlation=r.tolist(),
        explained=lam / len(items),
        countries=[c for c, k in zip(countries, complete, strict=True) if k],
        not_asked=not_asked,
        unexpected_signs=unexpected,
    )


def fit(respondents: pl.DataFrame, bank: QuestionBank, *, min_items: int = 3) -> IWTransform:
    """Fit the map on respondents (country, weight and the ten IW item columns)."""
    dims = dimension_items(bank)
    all_items = [i for d in DIMENSIONS for i in dims[d]]
    check_respondents(respondents, all_items, bank)
    if not 1 <= min_items <= min(len(v) for v in dims.values()):
        raise DataError(f"map.min_items={min_items} must be between 1 and the items per dimension")
    countries, means, _ = country_item_means(respondents, all_items)
    fits: dict[str, DimensionFit] = {}
    positions: dict[str, list[float | None]] = {c: [] for c in countries}
    for dim in DIMENSIONS:
        cols = [all_items.index(i) for i in dims[dim]]
        m = means[:, cols]
        fits[dim] = f = _fit_dimension(dim, dims[dim], countries, m)
        for n, c in enumerate(countries):
            asked = ~np.isnan(m[n])
            if asked.sum() < min_items:
                positions[c].append(None)
                continue
            zc = f.standardize(np.where(asked, m[n], 0.0))
            positions[c].append(float(zc[asked] @ f.weights_for(asked)[asked]))
    return IWTransform(dimensions=fits, min_items=min_items, country_positions=positions)


def positions(scores: pl.DataFrame, countries: Sequence[str] | None = None) -> pl.DataFrame:
    """Weighted mean score per country with its standard error.

    ``scores`` is :meth:`IWTransform.score` output. SE is the linearization
    (ratio-estimator) SE of a weighted mean, sqrt(n/(n-1) * sum (w_i/W)^2 (y_i - ybar)^2),
    which reduces to SD/sqrt(n) for equal weights. ``n`` counts respondents,
    ``n_<dim>`` those scored on that axis, ``n_eff`` is Kish's effective sample size.
    """
    present = set(scores["country"].unique().to_list())
    if countries is not None:
        absent = [c for c in countries if c not in present]
        if absent:
            raise DataError(
                f"no respondents for {', '.join(absent)}; these countries are not in the data "
                f"(it has {len(present)}: {', '.join(sorted(present)[:12])}{'...' if len(present) > 12 else ''})"
            )
        scores = scores.filter(pl.col("country").is_in(list(countries)))
    aggs: list[pl.Expr] = [
        pl.len().alias("n"),
        (pl.col("weight").sum() ** 2 / (pl.col("weight") ** 2).sum()).alias("n_eff"),
    ]
    for dim in DIMENSIONS:
        ok = pl.col(dim).is_not_null()
        w = pl.col("weight").filter(ok)
        y = pl.col(dim).filter(ok)
        mean = (w * y).sum() / w.sum()
        n = ok.sum()
        var = (n / (n - 1)) * (((w / w.sum()) ** 2) * (y - mean) ** 2).sum()
        aggs += [mean.alias(dim), var.sqrt().alias(f"se_{dim}"), n.alias(f"n_{dim}")]
    out = scores.group_by("country").agg(aggs).sort("country")
    empty = out.filter((pl.col("n_secular") == 0) | (pl.col("n_self_expression") == 0))
    if empty.height:
        raise DataError(
            f"no respondent in {', '.join(empty['country'].to_list())} answered enough map items "
            "to be scored; drop the country or lower map.min_items"
        )
    return out.select(
        "country", *DIMENSIONS, *(f"se_{d}" for d in DIMENSIONS), "n",
        *(f"n_{d}" for d in DIMENSIONS), "n_eff",
    )
