"""Percentiles, the one statistic every section reports."""

from __future__ import annotations

import math


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile, rounded to 0.01; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 2)
