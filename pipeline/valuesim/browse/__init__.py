"""Browsing a study below its aggregates: ``valuesim export --sqlite`` writes the study's
long tables (:mod:`valuesim.study_tables`) into one SQLite file with Datasette metadata
(:mod:`valuesim.browse.metadata`), and ``valuesim view`` serves it with Datasette (the
optional ``browse`` extra)."""
