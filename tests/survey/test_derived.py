"""The WVS definitions of Y002/Y003 on hand-made code combinations."""

from __future__ import annotations

import polars as pl

from valuesim.survey.derived import autonomy_index, postmaterialist_index


def test_autonomy_index() -> None:
    # Q8 independence, Q14 determination, Q15 faith, Q17 obedience; 1 = mentioned
    frame = pl.DataFrame(
        {
            "Q8": [1, 2, 1, 2, -1],
            "Q14": [1, 2, 2, 1, 1],
            "Q15": [2, 1, 2, 2, 1],
            "Q17": [2, 1, 1, 1, 1],
        }
    )
    assert frame.select(autonomy_index())["Y003"].to_list() == [2, -2, 0, 0, -5]


def test_postmaterialist_index() -> None:
    frame = pl.DataFrame({"Q154": [1, 3, 2, 4, 1, 2, -2, 1], "Q155": [3, 1, 4, 2, 2, 3, 1, -1]})
    assert frame.select(postmaterialist_index())["Y002"].to_list() == [1, 1, 3, 3, 2, 2, -5, -5]
