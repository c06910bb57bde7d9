"""The one table of mgit's metrics: every ``mgit_*`` name, type, help text, labels and buckets.

The collector, the health checker, the performance monitor and the generated Grafana and
Prometheus assets all read this table, so a metric is renamed or re-described in one place
and a stale query breaks a test rather than a dashboard. Nothing here imports the rest of
the package: it is plain data.

``labels`` are the base label names. Two metrics take more at run time, decided by the
collector's settings: ``extra_labels`` are appended to the operation metrics and
``repository`` to ``mgit_git_operations_total`` when repository labels are on.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Tuple

__all__ = [
    "METRICS",
    "MetricDefinition",
    "definition",
    "register",
]


class MetricDefinition(NamedTuple):
    """One metric: what Prometheus sees (name, type, help, labels) and how we keep it."""

    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    name: str
    help: str
    labels: Tuple[str, ...] = ()
    buckets: Tuple[float, ...] | None = None
    """Histogram bucket bounds (None: the registry's DEFAULT_BUCKETS)."""
    merge: str | None = None
    """For gauges: how values from several processes combine (``sum``, ``last``, ...)."""
    group: str = "operations"
    """The dashboard group it belongs to (the seed's six groups, plus ``health``)."""

    def options(self) -> Dict[str, Any]:
        """The keyword arguments the registry's factory for ``kind`` takes besides labels."""
        if self.kind == "gauge":
            return {"merge": self.merge or "last"}
        if self.kind == "histogram" and self.buckets is not None:
            return {"buckets": self.buckets}
        return {}


_OP = ("operation", "provider")
_API = ("method", "provider", "status_code", "endpoint")
_AUTH = ("provider", "organization")

METRICS: Tuple[MetricDefinition, ...] = (
    # operations
    MetricDefinition("counter", "mgit_operations_total",
                     "Total number of mgit operations.", _OP),
    MetricDefinition("counter", "mgit_operations_success_total",
                     "Total number of successful mgit operations.", _OP),
    MetricDefinition("counter", "mgit_operations_failure_total",
                     "Total number of failed mgit operations.", _OP),
    MetricDefinition("histogram", "mgit_operation_duration_seconds",
                     "Duration of mgit operations in seconds.", _OP, group="performance"),
    MetricDefinition("counter", "mgit_git_operations_total",
                     "Total number of Git operations by outcome.", ("operation", "status")),
    MetricDefinition("histogram", "mgit_git_operation_duration_seconds",
                     "Duration of Git operations in seconds.", ("operation",),
                     group="performance"),
    MetricDefinition("histogram", "mgit_git_clone_duration_seconds",
                     "Duration of Git clone operations in seconds.", (), group="performance"),
    MetricDefinition("counter", "mgit_errors_total",
                     "Total number of errors by type.", ("error_type", "operation", "provider")),
    MetricDefinition("gauge", "mgit_concurrent_operations",
                     "Number of mgit operations running now.", (), merge="sum",
                     group="overview"),
    MetricDefinition("gauge", "mgit_repositories_processed",
                     "Repositories processed by the current mgit run (set by the caller).", (),
                     merge="sum", group="overview"),
    # providers
    MetricDefinition("counter", "mgit_api_requests_total",
                     "Total number of provider API requests.", _API, group="providers"),
    MetricDefinition("histogram", "mgit_api_request_duration_seconds",
                     "Duration of provider API requests in seconds.",
                     ("method", "provider", "endpoint"), group="providers"),
    MetricDefinition("counter", "mgit_api_errors_total",
                     "Provider API responses with status >= 400, by status code.",
                     ("provider", "status_code"), group="providers"),
    MetricDefinition("counter", "mgit_api_rate_limit_hits_total",
                     "Provider API rate limit hits (HTTP 429 or reported).", ("provider",),
                     group="providers"),
    # authentication
    MetricDefinition("counter", "mgit_auth_attempts_total",
                     "Total number of authentication attempts.", _AUTH,
                     group="authentication"),
    MetricDefinition("counter", "mgit_auth_success_total",
                     "Total number of successful authentications.", _AUTH,
                     group="authentication"),
    MetricDefinition("counter", "mgit_auth_failures_total",
                     "Total number of failed authentications.", _AUTH,
                     group="authentication"),
    # health
    MetricDefinition("gauge", "mgit_health_overall",
                     "Overall health: 1 healthy, 0.5 degraded, 0 unhealthy, -1 unknown.", (),
                     merge="last", group="health"),
    MetricDefinition("gauge", "mgit_health_percentage",
                     "Health score 0..100: healthy 1, degraded 0.5, unknown checks excluded; "
                     "NaN before any.", (), merge="last", group="health"),
    MetricDefinition("gauge", "mgit_health_check_status",
                     "Status of one health check: 1 healthy, 0.5 degraded, 0 unhealthy, "
                     "-1 unknown.", ("check",), merge="last", group="health"),
    MetricDefinition("histogram", "mgit_health_check_duration_seconds",
                     "Duration of one health check run in seconds.", ("check",),
                     group="health"),
    # performance
    MetricDefinition("counter", "mgit_performance_anomalies_total",
                     "Operations slower than their performance baseline, by anomaly type.",
                     ("operation", "type"), group="performance"),
)  # fmt: skip

_BY_NAME: Dict[str, MetricDefinition] = {d.name: d for d in METRICS}


def definition(name: str) -> MetricDefinition:
    """The definition of ``name`` (KeyError for a name outside the table)."""
    return _BY_NAME[name]


def register(
    registry: Any,
    name: str,
    extra_labels: Tuple[str, ...] = (),
    *,
    series_limit: int | None = None,
) -> Any:
    """Create (or fetch) metric ``name`` on ``registry`` exactly as the table defines it.

    ``extra_labels`` are appended to the table's labels; ``series_limit`` is passed through.
    """
    d = _BY_NAME[name]
    factory = getattr(registry, d.kind)
    options = d.options()
    if series_limit is not None:
        options["series_limit"] = series_limit
    return factory(d.name, d.help, d.labels + tuple(extra_labels), **options)
