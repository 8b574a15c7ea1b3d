"""Summary statistics for latency samples (runs in whichever process builds a report).

Conventions, fixed here so every area reports alike: ``std`` is the sample standard deviation
(n - 1 in the denominator, the usual reading of a published "σ"; 0 for a single sample) and
percentiles interpolate linearly between the two nearest ranks (numpy's default), so p50 of
an even-sized sample is the mean of the middle two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Stats", "summarize", "FIELDS"]

#: The statistic names, in report column order.
FIELDS = ("mean", "std", "min", "max", "p50", "p95", "p99")


@dataclass(frozen=True, slots=True)
class Stats:
    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(values: Iterable[float]) -> Stats:
    """Statistics of ``values``; every statistic is None when there are none (an empty row in
    a report says "never observed", which a 0 would hide)."""
    a = np.asarray([float(v) for v in values], dtype=np.float64)
    if a.size == 0:
        return Stats(0, None, None, None, None, None, None, None)
    if not np.all(np.isfinite(a)):
        raise ValueError("latency samples must be finite")
    p50, p95, p99 = (float(x) for x in np.percentile(a, [50, 95, 99]))
    std = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return Stats(int(a.size), float(a.mean()), std, float(a.min()), float(a.max()), p50, p95, p99)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:,.{digits}f}"
