"""`map` stage: respondents -> Inglehart-Welzel transform, positions, selection, plot."""

from __future__ import annotations

from valuesim.artifacts import output_set, read_parquet
from valuesim.config import Params
from valuesim.culturalmap.compute import build_map, write_map_dir, write_plot_data
from valuesim.culturalmap.drawing import draw_map
from valuesim.paths import FIGURES, MAP, PLOTS, RESPONDENTS
from valuesim.survey.bank import load_bank

FIGURE = FIGURES / "cultural_map.png"
PLOT_DATA = PLOTS / "map.csv"


def run(params: Params, **_: object) -> None:
    respondents = read_parquet(RESPONDENTS, "extract")
    bank = load_bank(params.data.questions)
    result = build_map(
        respondents,
        bank,
        min_items=params.map.min_items,
        select=params.countries.select,
        extra=params.countries.extra,
    )
    with output_set():  # the map folder, the plot data and the figure: all or none
        write_map_dir(result, MAP)
        write_plot_data(result, PLOT_DATA)
        draw_map(result.positions, result.selection.countries, zones=params.map.zones, path=FIGURE)
    t = result.transform
    gaps = "; ".join(
        f"{d}: {c} lacks {', '.join(items)}"
        for d, fit in t.dimensions.items()
        for c, items in fit.not_asked.items()
    )
    print(
        f"map: {result.positions.height} countries placed; fit on "
        f"{len(t.dimensions['secular'].countries)}/{len(t.dimensions['self_expression'].countries)} "
        f"countries{f' ({gaps})' if gaps else ''}; selected ({result.selection.how}) "
        f"{', '.join(result.selection.countries)} -> {MAP}, {FIGURE}"
    )
