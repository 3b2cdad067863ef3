"""Calibrating simulated answer distributions (paper section 4.4), in three parts.

- :mod:`valuesim.calibration.tilt`: the transforms themselves, temperature scaling and
  the mean-preserving exponential tilt, vectorized over many distributions, plus the
  leave-one-question-out temperature search (:func:`~valuesim.calibration.tilt.fit_temperature_loqo`).
- :mod:`valuesim.calibration.fit`: fitting and applying them to one (model, method)'s
  persona-level answers against the human distributions (what the calibrate stage runs).
- :mod:`valuesim.calibration.objective`: the fit's objective for all questions at once,
  one tilt per answer scale, bitwise the per-question values.
- :mod:`valuesim.calibration.workers`: the stage's (model, method) fits in worker processes.
- :mod:`valuesim.calibration.bench`: a timing benchmark of the vectorized tilt against a
  per-row root-finding loop (``python -m valuesim.calibration.bench``).
- :mod:`valuesim.calibration.fit_bench`: the stage's fits question by question, stacked
  and pooled, in one run, and the paper-scale estimate
  (``python -m valuesim.calibration.fit_bench``).

Nothing is re-exported here: import from the module that holds the thing, so that
importing the transforms never pulls in the fitting code or the benchmark.
"""
