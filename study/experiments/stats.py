"""Means, spreads and Student-t intervals over seeds (the few numbers experiments need)."""

from __future__ import annotations

import math
import statistics

# Two-sided 95% quantiles of Student's t by degrees of freedom; between rows the next lower
# row is used (a slightly wider, conservative interval).
T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021,
    60: 2.000, 120: 1.980,
}  # fmt: skip


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("an interval needs at least 2 values")
    return T975[max(k for k in T975 if k <= df)] if df <= 120 else 1.960


def summary(values: list[float]) -> tuple[float, float | None, int]:
    """(mean, standard deviation or None for one value, n)."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), sd, len(values)


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t-interval of the mean of ``values`` (n >= 2)."""
    mean, sd, n = summary(values)
    half = t975(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
