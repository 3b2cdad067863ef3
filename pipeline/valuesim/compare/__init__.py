"""Comparing experiments: the paper's Figures 5 and 6 across `dvc exp` runs.

``valuesim compare`` reads the evaluate stage's per-cell errors
(``data/eval/cells.parquet``) of several experiments (the workspace, named ``dvc exp``
runs, or result directories), labels each by the params that differ between them
and draws one box plot per varying param, with Benjamini-Hochberg-corrected
two-sided Mann-Whitney U tests between the boxes.

* :mod:`~valuesim.compare.sources`: where an experiment's cells and params come from.
* :mod:`~valuesim.compare.labels`: flattened params and the keys that differ.
* :mod:`~valuesim.compare.significance`: the Mann-Whitney U / BH test table.
* :mod:`~valuesim.compare.figures`: the box plots and their significance brackets.
* :mod:`~valuesim.compare.page`: the comparison's HTML page.
* :mod:`~valuesim.compare.build`: all of it, written to one output folder atomically.
"""
