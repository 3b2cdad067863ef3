"""The report's sentences about the cultural map, computed from the run's own tables.

``map_position_findings`` says where each method's answers place the selected
countries (``data/eval/map_positions.parquet``) against the human country positions
(``data/map/positions.csv``); ``independence_sentence`` says, for Figure 1B, what
drawing items independently does to the human respondents' spread
(``data/eval/map_humans*.parquet``) and how the model respondents compare with the
humans drawn the same way. Nothing here is typed in: every number is the run's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from valuesim.culturalmap.sampled_respondents import spread_by_group
from valuesim.methods import country_blind, method_label

AXES = ("secular", "self_expression")
AXIS_NAMES = {"secular": "secular", "self_expression": "self-expression"}


def _span(values: np.ndarray) -> str:
    lo, hi = float(np.min(values)), float(np.max(values))
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f} to {hi:.2f}"


def _range_phrase(ratios: list[float]) -> str:
    lo, hi = min(ratios), max(ratios)
    if round(lo, 2) == round(hi, 2):
        return f"{lo:.2f}"
    return f"between {lo:.2f} and {hi:.2f}" if lo < 0 else f"{lo:.2f}-{hi:.2f}"


def _where(points: np.ndarray, box: np.ndarray) -> str:
    """'inside the human range' or how many points lie outside it, and on which side."""
    outside = ((points < box[0]) | (points > box[1])).any(axis=1)
    if not outside.any():
        return "inside the human countries' range"
    sides = []
    for k, axis in enumerate(AXES):
        if (points[:, k] > box[1, k]).any():
            sides.append(f"above every human country on {AXIS_NAMES[axis]}")
        if (points[:, k] < box[0, k]).any():
            sides.append(f"below every human country on {AXIS_NAMES[axis]}")
    n = int(outside.sum())
    return f"outside the human countries' range ({n} of {len(points)}: {', '.join(sides)})"


def map_position_findings(human: pl.DataFrame, sim_pos: pl.DataFrame,
                          model_names: Mapping[str, str]) -> list[str]:
    """One sentence per (model, method) placed on the map: the range of its positions,
    whether they fall inside the human country positions' range, how much they vary
    across countries compared with the same countries' human positions (SD ratio) and
    their mean distance to each country's own human position. ``human`` is the map
    stage's positions.csv (country, secular, self_expression)."""
    if sim_pos.is_empty() or human.is_empty():
        return []
    hum = human.select("country", *AXES).drop_nulls()
    box = np.array([[hum[a].min() for a in AXES], [hum[a].max() for a in AXES]], dtype=np.float64)
    human_range = (f"secular {_span(hum['secular'].to_numpy())}, "
                   f"self-expression {_span(hum['self_expression'].to_numpy())}")
    out = []
    for (model, method), grp in sim_pos.sort("model", "method", "country").group_by(
            ["model", "method"], maintain_order=True):
        name = f"{model_names.get(str(model), str(model))}, {method_label(str(method))}"
        joined = grp.join(hum, on="country", suffix="_human")
        pts = grp.select(*AXES).to_numpy()
        where = _where(pts, box)
        one_point = bool((np.ptp(pts, axis=0) < 1e-9).all())
        if one_point and (country_blind(str(method)) or grp.height == 1):
            out.append(
                f"Cultural map, {name}: one position for every country (the prompt names no country), "
                f"secular {pts[0, 0]:.2f}, self-expression {pts[0, 1]:.2f}, {where} "
                f"({human_range}).")
            continue
        text = (f"Cultural map, {name}: the {grp.height} countries land at secular {_span(pts[:, 0])} "
                f"and self-expression {_span(pts[:, 1])}, {where} ({human_range})")
        if joined.height >= 2:
            own = joined.select(*(f"{a}_human" for a in AXES)).to_numpy()
            sim = joined.select(*AXES).to_numpy()
            sd_h, sd_m = own.std(axis=0, ddof=1), sim.std(axis=0, ddof=1)
            ratio = [f"{m / h:.0%} ({AXIS_NAMES[a]})" for a, m, h in zip(AXES, sd_m, sd_h, strict=True)
                     if h > 0]
            distance = float(np.linalg.norm(sim - own, axis=1).mean())
            if ratio:
                text += (f"; across countries they vary {' and '.join(ratio)} as much as the same "
                         "countries' human positions (SD)")
            text += f", and lie {distance:.2f} on average from each country's own human position"
        out.append(text + ".")
    return out


def independence_sentence(bias: pl.DataFrame | None, sample: pl.DataFrame) -> str:
    """Figure 1B's statement of the independence bias, with this run's numbers when the
    evaluate stage drew the human respondents item by item (``bias``: the output of
    :func:`valuesim.culturalmap.sampled_respondents.independence_bias`)."""
    direction = ("Drawing items independently narrows the cloud and removes the correlation "
                 "between the two axes, so comparing the markers with the shading (humans as "
                 "they answered) makes the model look narrower than it is; the like-for-like "
                 "reference is the human respondents drawn item by item the same way")
    if bias is None or bias.is_empty():
        return (direction + " (not drawn for this run: re-run the evaluate stage).")
    ratios = {a: (bias[f"sd_{a}_independent"] / bias[f"sd_{a}_joint"]).drop_nans().to_list() for a in AXES}
    all_ratios = [r for v in ratios.values() for r in v]
    text = direction + " (dashed contours)."
    if all_ratios:
        text += (f" On this run independence alone shrinks the human respondents' SD to "
                 f"{_range_phrase(all_ratios)} of its size (secular {_range_phrase(ratios['secular'])}, "
                 f"self-expression {_range_phrase(ratios['self_expression'])}) and moves the axes' "
                 f"correlation from {_range_phrase(bias['corr_joint'].drop_nans().to_list())} to "
                 f"{_range_phrase(bias['corr_independent'].drop_nans().to_list())}.")
    model = spread_by_group(sample).join(bias, on="country") if sample.height else pl.DataFrame()
    if model.height:
        vs = [r for a in AXES for r in (model[f"sd_{a}"] / model[f"sd_{a}_independent"]).drop_nans().to_list()]
        if vs:
            text += (f" The sampled model respondents' SD is {_range_phrase(vs)} times the item-by-item "
                     "humans' (per model, method, country and axis).")
    return text
