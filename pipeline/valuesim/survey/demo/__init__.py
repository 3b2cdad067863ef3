"""The SYNTHETIC demo population: what `make run` uses on a clone without WVS files.

WVS microdata may not be redistributed, so the repository ships only aggregates
(``data/demo/aggregates.json``) and generates look-alike respondents from them.

- :mod:`~valuesim.survey.demo.population`: the entry points (``fit``, ``generate``,
  ``sample``, ``load_aggregates``, ``write_aggregates``) in one import;
- :mod:`~valuesim.survey.demo.aggregates`: the shipped file's typed schema, loader and writer;
- :mod:`~valuesim.survey.demo.fit`: computing the aggregates from real respondents;
- :mod:`~valuesim.survey.demo.generate`: drawing synthetic respondents from them;
- :mod:`~valuesim.survey.demo.copula`: the Gaussian-copula maths both of those share.

Nothing is re-exported here, so importing one part never loads the others.
"""
