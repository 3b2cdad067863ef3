"""How precisely ``reports/metrics.json`` states its numbers, and why.

What is guaranteed: the same study on the same machine (same CPU kernels, same
libraries) writes byte-identical outputs, whether its answers were computed now or
came from the response cache. Across machines only agreement within a tolerance is:
the embedded model's fp32 sums run in a different order on another CPU's kernels
(a fresh clone on an AMD EPYC host moved per-country MAEs by up to 3.3e-7 against
outputs made on an Intel Xeon), so parquet outputs and ``dvc.lock`` hashes differ.

Every metric is a fraction of the answer scale (0-1). Four decimals keep a metric
60 times finer than the smallest difference the study can resolve (the human
sampling noise, 0.006 in MAE) and 300 times coarser than that fp32 noise: a value
changes in the file only when the noise carries it across a rounding boundary,
which for a difference of 3.3e-7 happens to 0.3% of the values (it was 3.3% at five
decimals). The parquet outputs keep full precision. ``valuesim check-reproduction``
compares a reproduction against a revision's metrics within :data:`DEFAULT_ATOL`.
"""

from __future__ import annotations

import math

METRIC_DECIMALS = 4
# One unit in metrics.json's last digit: a rounding flip, never a real difference.
DEFAULT_ATOL = 10.0**-METRIC_DECIMALS
DEFAULT_RTOL = 0.0


def metric_value(x: object) -> float | None:
    """A metric as metrics.json states it: rounded to METRIC_DECIMALS; NaN and inf as
    None (JSON has neither)."""
    v = float(x)  # type: ignore[arg-type]
    return round(v, METRIC_DECIMALS) if math.isfinite(v) else None
