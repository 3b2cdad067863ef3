"""Study analyses over simulated answers: scores, references and floors, curves, Shapley.

Everything here reuses the simulated persona-level distributions; nothing calls a
model. ``metrics`` holds the per-distribution scores; the calibration fit lives in
:mod:`valuesim.calibration`. The stage modules (evaluate, shapley) only read, call
these functions, and write.
"""
