"""Comparing experiments: the paper's Figures 5 and 6 across `dvc exp` runs.

``valuesim compare`` reads the evaluate stage's per-cell errors
(``data/eval/cells.parquet``) of several experiments (the workspace, named ``dvc exp``
runs, or result directories), labels each by the params that differ between them
and draws one box plot per varying param, with Benjamini-Hochberg-corrected tests
between the boxes (paired and clustered by question; Mann-Whitney U on request), and
prints the experiments ranked by their error.

* :mod:`~valuesim.compare.sources`: where an experiment's cells and params come from.
* :mod:`~valuesim.compare.labels`: flattened params and the keys that differ.
* :mod:`~valuesim.compare.significance`: the Mann-Whitney U / BH test table.
* :mod:`~valuesim.compare.figures`: the box plots (a box per method), their significance
  brackets and reference lines.
* :mod:`~valuesim.compare.reference_lines`: the references and floors, from each
  experiment's ``reports/metrics.json``.
* :mod:`~valuesim.compare.ranking`: the experiments ranked, each against the best.
* :mod:`~valuesim.compare.terminal_table`: that ranking as the table the command prints.
* :mod:`~valuesim.compare.page`: the comparison's HTML page.
* :mod:`~valuesim.compare.build`: all of it, written to one output folder atomically.
"""
