"""Statistics of operation durations: percentiles and :class:`OperationMetrics`.

Counts, success rate, min, max and mean come from one window of traces; percentiles use
linear interpolation between closest ranks (Hyndman and Fan type 7, the default of numpy
and R, ``statistics.quantiles(method="inclusive")``), which never leaves the observed
range: for the durations 1..10, p50 = 5.5, p90 = 9.1, p95 = 9.55, p99 = 9.91. ``count`` is
always reported, so a p99 of five samples can be read for what it is.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Sequence

if TYPE_CHECKING:
    from mgit_monitoring.store import TraceRow

__all__ = [
    "PERCENTILE_METHOD",
    "OperationMetrics",
    "PerformanceMetrics",
    "percentile",
]

PERCENTILE_METHOD = "linear"
"""Percentile method: linear interpolation between closest ranks (Hyndman-Fan type 7)."""

_NAN = float("nan")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of already sorted values; NaN when there are none.

    Linear interpolation between closest ranks: rank ``h = (n - 1) * p / 100``, result
    ``v[floor(h)] + (h - floor(h)) * (v[floor(h) + 1] - v[floor(h)])``. p0 is the minimum,
    p100 the maximum, p50 the median, and no result lies outside ``[min, max]``.
    """
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile p={p!r}: expected a value in [0, 100]")
    n = len(sorted_values)
    if n == 0:
        return _NAN
    rank = (n - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, n - 1)
    a, b = sorted_values[low], sorted_values[high]
    value = a + (b - a) * (rank - low)
    return min(max(value, a), b)  # float rounding must not step outside the neighbours


@dataclasses.dataclass(frozen=True)
class OperationMetrics:
    """Statistics of one operation over a time window (durations in seconds).

    ``success_rate`` is a percentage (0..100) of ``count``; all counts and durations come
    from the same window. With ``count == 0`` durations and the rate are NaN (they format as
    ``nan``) and the object is falsy, so ``if metrics:`` still means "there is data".
    """

    operation_name: str
    count: int
    success_count: int
    error_count: int
    success_rate: float
    total_duration: float
    avg_duration: float
    min_duration: float
    max_duration: float
    median_duration: float
    p90_duration: float
    p95_duration: float
    p99_duration: float
    window_hours: float
    error_types: Mapping[str, int] = dataclasses.field(default_factory=dict)
    method: str = PERCENTILE_METHOD

    @property
    def p50_duration(self) -> float:
        """The median (same as :attr:`median_duration`)."""
        return self.median_duration

    def __bool__(self) -> bool:
        return self.count > 0

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        out: Dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, Mapping):
                value = dict(value)
            out[field.name] = value
        out["p50_duration"] = out["median_duration"]
        return out

    @classmethod
    def from_rows(
        cls, operation: str, rows: Iterable[TraceRow], window_hours: float
    ) -> OperationMetrics:
        """Compute the statistics of ``rows`` (already restricted to one operation and window)."""
        durations: List[float] = []
        successes = 0
        errors: Dict[str, int] = {}
        for row in rows:
            durations.append(row.duration)
            if row.success:
                successes += 1
            else:
                key = row.error_type or "unknown"
                errors[key] = errors.get(key, 0) + 1
        durations.sort()
        n = len(durations)
        total = math.fsum(durations)
        return cls(
            operation_name=operation,
            count=n,
            success_count=successes,
            error_count=n - successes,
            success_rate=100.0 * successes / n if n else _NAN,
            total_duration=total,
            avg_duration=total / n if n else _NAN,
            min_duration=durations[0] if n else _NAN,
            max_duration=durations[-1] if n else _NAN,
            median_duration=percentile(durations, 50),
            p90_duration=percentile(durations, 90),
            p95_duration=percentile(durations, 95),
            p99_duration=percentile(durations, 99),
            window_hours=window_hours,
            error_types=errors,
        )


PerformanceMetrics = OperationMetrics
"""The original's name for :class:`OperationMetrics`."""
