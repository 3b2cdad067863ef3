"""Tests of valuesim.calibration, one module per source module."""
