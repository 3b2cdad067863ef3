"""Calibrating simulated answer distributions (paper section 4.4), in three parts.

- :mod:`valuesim.calibration.tilt`: the transforms themselves, temperature scaling and
  the mean-preserving exponential tilt, vectorized over many distributions, plus the
  leave-one-question-out temperature search (:func:`~valuesim.calibration.tilt.fit_temperature_loqo`).
- :mod:`valuesim.calibration.fit`: fitting and applying them to one (model, method)'s
  persona-level answers against the human distributions (what the calibrate stage runs).
- :mod:`valuesim.calibration.bench`: a timing benchmark of the vectorized tilt against a
  per-row root-finding loop (``python -m valuesim.calibration.bench``).

Nothing is re-exported here: import from the module that holds the thing, so that
importing the transforms never pulls in the fitting code or the benchmark.
"""
