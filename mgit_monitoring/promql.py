"""PromQL text for the generated dashboard and alerts, built from the metric table's names.

Every metric a query names goes through :func:`metric`, which accepts only a name the
package defines: an ``mgit_*`` name from :data:`~mgit_monitoring.metric_definitions.METRICS`
(``_bucket``/``_count``/``_sum`` for histograms), one of the process metrics that
:mod:`mgit_monitoring.process_metrics` exports (:data:`PROCESS_METRICS`), or Prometheus's
own ``up``. A renamed metric therefore fails at import, not in a dashboard.
"""

from __future__ import annotations

from typing import FrozenSet, Iterable, Tuple

from mgit_monitoring.metric_definitions import METRICS

__all__ = [
    "PROCESS_CPU",
    "PROCESS_MEMORY",
    "PROCESS_METRICS",
    "PROCESS_OPEN_FDS",
    "UP",
    "defined_metric_names",
    "histogram_quantile",
    "metric",
    "rate",
    "ratio",
    "sum_by",
]

PROCESS_CPU = "process_cpu_seconds_total"
PROCESS_MEMORY = "process_resident_memory_bytes"
PROCESS_OPEN_FDS = "process_open_fds"
PROCESS_METRICS: Tuple[str, ...] = (PROCESS_CPU, PROCESS_MEMORY, PROCESS_OPEN_FDS)
"""The process metrics (exported by ProcessCollector) the dashboard shows."""
UP = "up"
"""Prometheus's own per-target metric: 1 when the last scrape succeeded."""


def defined_metric_names() -> FrozenSet[str]:
    """Every series name a generated query may use."""
    names = set(PROCESS_METRICS)
    names.add(UP)
    for d in METRICS:
        names.add(d.name)
        if d.kind == "histogram":
            names.update(d.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return frozenset(names)


_DEFINED = defined_metric_names()


def metric(name: str, selector: str = "") -> str:
    """``name{selector}``; ValueError for a name the package does not define."""
    if name not in _DEFINED:
        raise ValueError(f"{name!r} is not a metric mgit_monitoring defines")
    return f"{name}{{{selector}}}" if selector else name


def rate(name: str, window: str, selector: str = "", fn: str = "rate") -> str:
    """``rate(name{selector}[window])`` (or ``increase`` with ``fn``)."""
    return f"{fn}({metric(name, selector)}[{window}])"


def sum_by(labels: Iterable[str], expr: str, op: str = "sum") -> str:
    """``sum by (labels) (expr)``; plain ``sum(expr)`` without labels."""
    labels = tuple(labels)
    if not labels:
        return f"{op}({expr})"
    return f"{op} by ({', '.join(labels)}) ({expr})"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / (denominator > 0)``: no result (rather than NaN) while idle."""
    return f"{numerator} / ({denominator} > 0)"


def histogram_quantile(
    q: float, histogram: str, window: str, labels: Iterable[str] = (), selector: str = ""
) -> str:
    """The q-quantile of ``histogram``'s buckets summed by ``le`` and ``labels``."""
    buckets = sum_by(("le",) + tuple(labels), rate(histogram + "_bucket", window, selector))
    return f"histogram_quantile({q}, {buckets})"
