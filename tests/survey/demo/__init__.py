"""Tests of valuesim.survey.demo, one module per source module (fixtures: ../conftest.py)."""
