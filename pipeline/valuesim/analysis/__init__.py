"""Study analyses over simulated answers: calibration fits, scores, curves.

Everything here reuses the simulated persona-level distributions; nothing calls a
model. The stage modules (calibrate, evaluate) only wire these functions to files.
"""
