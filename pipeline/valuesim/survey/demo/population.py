"""The SYNTHETIC demo population: what `make run` uses on a clone without WVS files.

WVS microdata may not be redistributed, so the repository ships only aggregates
(``data/demo/aggregates.json``: per-country weighted answer shares, missing shares and
a Gaussian-copula correlation matrix) and generates look-alike respondents from them.
The generated rows are synthetic, carry ids like ``JPN-demo-000001`` and weight 1.0,
and follow the extract contract of :mod:`valuesim.survey.readers`.

- :func:`fit` computes the aggregates from real respondents (`valuesim demo fit`);
- :func:`generate` / :func:`sample` draw a synthetic population from them.

The parts live in the sibling modules (see :mod:`valuesim.survey.demo`); this module
gathers the entry points that the commands, stages and tests call, in one import.
"""

from __future__ import annotations

from valuesim.survey.demo.aggregates import DemoAggregates, load_aggregates, write_aggregates
from valuesim.survey.demo.fit import fit
from valuesim.survey.demo.generate import DemoSample, generate, sample

__all__ = [
    "DemoAggregates",
    "DemoSample",
    "fit",
    "generate",
    "load_aggregates",
    "sample",
    "write_aggregates",
]
