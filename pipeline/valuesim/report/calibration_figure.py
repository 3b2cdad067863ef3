"""Figure 9B: the calibration's objective against T, the T -> infinity limit included.

Drawn from temperatures.json's ``curve`` of each run (the all-questions objective that
the fit minimizes), so a reader sees whether the objective has a minimum or keeps
falling to the limit ("T not identified"). A temperatures.json written before the
search reached the limit has no curves: then there is no figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from valuesim.culturalmap.drawing import save_figure
from valuesim.report.study_figures import PALETTE, _plt, _run

CAPTION = ("Figure 9B. The calibration's objective: the mean Wasserstein distance (/ range) between "
           "calibrated and human distributions over all questions, against a common T (log scale), for "
           "mean-preserving (A) and plain (B) scaling. The last point of each line, at the right edge, is "
           "the T → ∞ limit (mean-preserving: each persona's maximum-entropy distribution with its own "
           "mean; plain: uniform answers). A line that is still falling into that point means the data do "
           "not identify T: the calibration then acts as smoothing toward the limit. Open circles: the "
           "all-questions fit.")


TICKS = (0.01, 0.03, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


def has_curves(temperatures: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether temperatures.json carries the objective curves (written since the limit was searched)."""
    return any("curve" in v for v in temperatures.values())


def calibration_objective(temperatures: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Figure 9B from temperatures.json's ``temperatures`` map (run -> fit summary)."""
    plt = _plt()
    n_models = len({k.split("/", 1)[0] for k in temperatures})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, title) in zip(axes, ((None, "A. mean-preserving"), ("plain", "B. plain")), strict=True):
        top, span = None, (1.0, 1.0)
        for i, (run, fit) in enumerate(temperatures.items()):
            entry = fit if key is None else (fit.get(key) or {})
            curve = entry.get("curve")
            if not curve or not curve.get("t"):
                continue
            t = np.asarray(curve["t"], dtype=float)
            obj = np.asarray(curve["objective"], dtype=float)
            # the limit is drawn 15% of the grid's log span beyond its top, joined by a dotted line
            x_limit = float(t[-1] * (t[-1] / t[0]) ** 0.15)
            top, span = x_limit, (float(t[0]), float(t[-1]))
            color = PALETTE[i % len(PALETTE)]
            model, method = run.split("/", 1)
            ax.plot(t, obj, color=color, label=_run(model, method, n_models))
            limit = curve.get("objective_limit")
            if limit is not None:
                ax.plot([t[-1], x_limit], [obj[-1], limit], color=color, ls=":")
                ax.plot([x_limit], [limit], marker="s", color=color, ms=5)
            overall = entry.get("overall")
            if overall is not None:
                x = x_limit if np.isinf(overall) else float(overall)
                y = limit if np.isinf(overall) else float(np.interp(np.log(x), np.log(t), obj))
                ax.plot([x], [y], marker="o", mfc="none", color=color, ms=9)
        ax.set_xscale("log")
        if top is not None:
            ticks = [v for v in TICKS if span[0] <= v <= span[1]]
            ax.set_xticks([*ticks, top], [f"{v:g}" for v in ticks] + ["∞"])
            ax.minorticks_off()
            ax.set_xlim(span[0] / 1.15, top * 1.15)
        ax.set_title(title)
        ax.set_xlabel("temperature T (last point: T → ∞)")
        ax.set_ylabel("mean Wasserstein distance (normalized)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)
