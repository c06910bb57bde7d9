"""MetricsCollector: mgit's metric names and ``record_*`` methods over a :class:`Registry`.

::

    metrics = get_metrics_collector()
    metrics.record_operation("clone", success=True, duration=2.5, provider="github")
    metrics.record_git_operation("clone", "repo1", success=True, duration=2.5)
    metrics.record_api_call("GET", "github", 200, 0.5, "/repos")
    metrics.record_authentication("github", "myorg", success=True)
    text = metrics.export_prometheus()      # str, Prometheus text 0.0.4
    doc = metrics.export_json()             # str, the JSON document of exposition.render_json

Every metric exists (with HELP and TYPE) from the first scrape. Operation names such as
``clone-all`` are label values, never parts of a metric name. Repository names are not a
label by default (an organisation has thousands: they belong in logs and traces);
``MetricsCollector(repository_labels=True)`` adds a ``repository`` label to
``mgit_git_operations_total`` only, under the cardinality guard, with credentials masked.

``MetricsCollector(enabled=False)`` makes every ``record_*``/``update_*`` method a
pass-through (``MGIT_MONITORING_ENABLED=false``): the default collector that
:func:`get_metrics_collector` creates before any setup reads that variable once, when it is
created; ``setup_monitoring_integration`` sets ``enabled`` from its configuration. The
generic API below (``inc_counter`` ...) always records: it is an explicit request.

Error policy: the ``record_*``/``update_*`` methods never raise into the application; bad
input is logged once per method and error kind at WARNING (logger
``mgit_monitoring.collector``) and dropped. The lower-level ``register_metric``,
``inc_counter``, ``set_gauge``, ``observe_histogram`` and ``end_operation_timer`` raise
:class:`~mgit_monitoring.errors.MetricError` for programmer errors (unknown metric, wrong
type, bad labels or values).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Tuple, Union

from mgit_monitoring import metric_definitions
from mgit_monitoring.errors import DuplicateMetricError, MetricError
from mgit_monitoring.registry import Registry, get_default_registry, reset_default_registry
from mgit_monitoring.samples import Sample, Snapshot, validate_metric_name

if TYPE_CHECKING:  # pragma: no cover
    from mgit_monitoring.warn_once import WarnOnce

__all__ = [
    "HEALTH_METRICS",
    "MetricsCollector",
    "get_metrics_collector",
    "record_api_call",
    "record_authentication",
    "record_git_operation",
    "record_operation",
    "reset_metrics_collector",
    "setup_metrics",
]


_LOGGER = "mgit_monitoring.collector"


def _logger() -> Any:
    import logging  # on first warning only: keeps ``import`` of this module cheap for a CLI

    return logging.getLogger(_LOGGER)


_ANOMALIES = "mgit_performance_anomalies_total"

#: (kind, name, help, labelnames, options) of the metrics health.py and performance.py record
#: (the table's ``health`` group and the anomaly counter). Every collector registers them
#: too, exactly as :mod:`mgit_monitoring.metric_definitions` defines them, so they exist
#: from the first scrape.
HEALTH_METRICS: Tuple[Tuple[str, str, str, Tuple[str, ...], Dict[str, Any]], ...] = tuple(
    (d.kind, d.name, d.help, d.labels, d.options())
    for d in metric_definitions.METRICS
    if d.group == "health" or d.name == _ANOMALIES
)

_INF = float("inf")
_KINDS = ("counter", "gauge", "histogram")
MAX_OPEN_TIMERS = 10_000
"""start_operation_timer() ids kept waiting for their end; past it the oldest is forgotten."""
_MAX_WARNED = 256  # distinct "dropped" warnings remembered (bounded memory)


class MetricsCollector:
    """mgit's metrics over a registry (a new private one when ``registry`` is None).

    ``repository_labels``: add ``repository`` to ``mgit_git_operations_total`` (opt-in).
    ``extra_labels``: label names ``record_operation(**kw)`` may fill (fixed up front;
    others are dropped with a warning). ``series_limit``: per-metric cardinality limit.
    ``process_metrics``: also expose ``process_*``/``python_info``; the default (None)
    means "when this collector created its own registry". ``enabled``: False makes the
    ``record_*``/``update_*`` methods pass-throughs (the attribute may be changed later).
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        repository_labels: bool = False,
        extra_labels: Sequence[str] = (),
        series_limit: int | None = None,
        process_metrics: bool | None = None,
        enabled: bool = True,
    ) -> None:
        own = registry is None
        self.enabled = bool(enabled)
        self.registry: Registry = Registry() if registry is None else registry
        self.repository_labels = repository_labels
        self.extra_labels: Tuple[str, ...] = tuple(extra_labels)
        self._timers: Dict[str, float] = {}
        self._timers_lock = threading.Lock()
        # register_metric() without label names: definitions waiting for their first use.
        self._pending: Dict[str, Tuple[str, str, Dict[str, Any]]] = {}
        self._pending_lock = threading.Lock()
        self._warned: WarnOnce | None = None  # created on the first dropped measurement
        r = self.registry

        def register(name: str, extra: Tuple[str, ...] = ()) -> Any:
            return metric_definitions.register(r, name, extra, series_limit=series_limit)

        op = self.extra_labels
        self._ops = register("mgit_operations_total", op)
        self._ops_ok = register("mgit_operations_success_total", op)
        self._ops_fail = register("mgit_operations_failure_total", op)
        self._op_duration = register("mgit_operation_duration_seconds", op)
        repo = ("repository",) if repository_labels else ()
        self._git = register("mgit_git_operations_total", repo)
        self._git_duration = register("mgit_git_operation_duration_seconds")
        self._clone_duration = register("mgit_git_clone_duration_seconds")
        self._api = register("mgit_api_requests_total")
        self._api_duration = register("mgit_api_request_duration_seconds")
        self._api_errors = register("mgit_api_errors_total")
        self._rate_limits = register("mgit_api_rate_limit_hits_total")
        self._auth = register("mgit_auth_attempts_total")
        self._auth_ok = register("mgit_auth_success_total")
        self._auth_fail = register("mgit_auth_failures_total")
        self._errors = register("mgit_errors_total")
        self._concurrent = register("mgit_concurrent_operations")
        self._repos = register("mgit_repositories_processed")
        fresh_health = r.get("mgit_health_overall") is None
        shared = {name: metric_definitions.register(r, name) for _k, name, *_ in HEALTH_METRICS}
        # 0 would read as "unhealthy" before any check ran; health.py starts at the same
        # values: overall -1 (unknown), percentage NaN (so "< 80%" alerts cannot fire).
        if fresh_health:
            shared["mgit_health_overall"].set(-1)
            shared["mgit_health_percentage"].set(float("nan"))
        if process_metrics or (process_metrics is None and own):
            from mgit_monitoring.process_metrics import ProcessCollector

            r.register_collector(ProcessCollector())

    # ------------------------------------------------------------------ error policy
    def _drop(self, method: str, exc: BaseException) -> None:
        """Report a dropped measurement: WARNING once per method and error kind, then DEBUG."""
        warned = self._warned
        if warned is None:
            # On the first drop only: keeps ``import`` of this module (and logging) cheap.
            from mgit_monitoring.warn_once import WarnOnce

            warned = self._warned = WarnOnce(_LOGGER, _MAX_WARNED)
        warned.warn(
            (method, type(exc).__name__),
            "MetricsCollector.%s dropped a measurement: %s",
            method,
            exc,
        )

    def _seconds(self, method: str, duration: Any) -> float | None:
        """A valid duration in seconds, or None (a bad one is reported once and ignored)."""
        if duration is None:
            return None
        try:
            d = float(duration)
        except (TypeError, ValueError, OverflowError):
            d = -1.0
        if not 0 <= d < float("inf"):  # also rejects NaN
            self._drop(method, MetricError(f"invalid duration {duration!r}"))
            return None
        return d

    # ------------------------------------------------------------------ mgit recorders
    def record_operation(
        self,
        operation: str,
        success: bool,
        duration: float | None = None,
        provider: str | None = None,
        **extra_labels: Any,
    ) -> None:
        """Count one mgit operation (total + success/failure) and observe its duration.

        ``extra_labels`` fill the label names given as ``extra_labels`` to the constructor;
        unknown ones are dropped with a one-time warning. Never raises.
        """
        if not self.enabled:
            return
        try:
            key: Tuple[Any, ...] = (operation, "" if provider is None else provider)
            if extra_labels or self.extra_labels:
                unknown = set(extra_labels) - set(self.extra_labels)
                if unknown:
                    self._drop(
                        "record_operation", MetricError(f"undeclared labels {sorted(unknown)!r}")
                    )
                key += tuple(extra_labels.get(n, "") for n in self.extra_labels)
            if type(duration) is float and 0.0 <= duration < _INF:  # the usual case
                seconds: float | None = duration
            else:
                seconds = self._seconds("record_operation", duration)
            ops, outcome = self._ops, self._ops_ok if success else self._ops_fail
            with self.registry.batch():  # a scrape sees all of these or none
                # labels(*key) inlined: the children dicts are keyed by the label tuple, so
                # an existing series is one lookup each (about a third of this method).
                try:
                    total_child = ops._children[key]
                    outcome_child = outcome._children[key]
                    hist_child = self._op_duration._children[key] if seconds is not None else None
                except KeyError:  # a new label set (or one past the series limit)
                    total_child = ops.labels(*key)
                    outcome_child = outcome.labels(*key)
                    hist_child = self._op_duration.labels(*key) if seconds is not None else None
                total_child.inc()
                outcome_child.inc()
                if hist_child is not None:
                    hist_child.observe(seconds)
        except Exception as exc:  # noqa: BLE001 - metrics never raise into mgit
            self._drop("record_operation", exc)

    def record_git_operation(
        self, operation: str, repository: str, success: bool, duration: float | None = None
    ) -> None:
        """Count a Git operation by outcome and observe its duration. Never raises.

        ``repository`` is a label only with ``repository_labels=True`` (credentials masked).
        Clones are also observed in ``mgit_git_clone_duration_seconds``.
        """
        if not self.enabled:
            return
        try:
            status = "success" if success else "failure"
            if self.repository_labels:
                child = self._git.labels(operation, status, _mask(repository))
            else:
                child = self._git.labels(operation, status)
            seconds = self._seconds("record_git_operation", duration)
            with self.registry.batch():
                child.inc()
                if seconds is not None:
                    self._git_duration.labels(operation).observe(seconds)
                    if operation == "clone":
                        self._clone_duration.observe(seconds)
        except Exception as exc:  # noqa: BLE001
            self._drop("record_git_operation", exc)

    def record_api_call(
        self,
        method: str,
        provider: str,
        status_code: Union[int, str],
        duration: float | None,
        endpoint: str | None = None,
    ) -> None:
        """Count a provider API call; status >= 400 is an error, 429 also a rate-limit hit.

        ``method`` is upper-cased (``get`` -> ``GET``), except ``unknown``, the package's
        one spelling of "not known" (as a ``status_code`` of ``unknown``). The endpoint's
        query string is dropped (it may carry tokens and unbounded values). Never raises.
        """
        if not self.enabled:
            return
        try:
            m = str(method).upper()
            if m == "UNKNOWN":  # the package spells "not known" one way, as in status_code
                m = "unknown"
            ep = "" if endpoint is None else str(endpoint).split("?", 1)[0]
            code = str(status_code)
            try:
                numeric = int(code)
            except ValueError:
                numeric = 0
            seconds = self._seconds("record_api_call", duration)
            with self.registry.batch():
                self._api.labels(m, provider, code, ep).inc()
                if seconds is not None:
                    self._api_duration.labels(m, provider, ep).observe(seconds)
                if numeric >= 400:
                    self._api_errors.labels(provider, code).inc()
                if numeric == 429:
                    self._rate_limits.labels(provider).inc()
        except Exception as exc:  # noqa: BLE001
            self._drop("record_api_call", exc)

    def record_rate_limit_hit(self, provider: str) -> None:
        """Count a rate-limit hit reported other than by HTTP 429. Never raises."""
        if not self.enabled:
            return
        try:
            self._rate_limits.labels(provider).inc()
        except Exception as exc:  # noqa: BLE001
            self._drop("record_rate_limit_hit", exc)

    def record_authentication(self, provider: str, organization: str, success: bool) -> None:
        """Count an authentication attempt and its outcome. Never raises."""
        if not self.enabled:
            return
        try:
            key = (provider, "" if organization is None else organization)
            with self.registry.batch():
                self._auth.labels(*key).inc()
                (self._auth_ok if success else self._auth_fail).labels(*key).inc()
        except Exception as exc:  # noqa: BLE001
            self._drop("record_authentication", exc)

    def record_error(
        self, error_type: str, operation: str | None = None, provider: str | None = None
    ) -> None:
        """Count an error by type (e.g. an exception class name). Never raises."""
        if not self.enabled:
            return
        try:
            self._errors.labels(error_type, operation or "", provider or "").inc()
        except Exception as exc:  # noqa: BLE001
            self._drop("record_error", exc)

    def update_concurrent_operations(self, count: float) -> None:
        """Set ``mgit_concurrent_operations`` (merge mode "sum" across processes). Never raises."""
        if not self.enabled:
            return
        try:
            self._concurrent.set(count)
        except Exception as exc:  # noqa: BLE001
            self._drop("update_concurrent_operations", exc)

    def update_repositories_processed(self, count: float) -> None:
        """Set the gauge ``mgit_repositories_processed`` (merge "sum"). Never raises."""
        if not self.enabled:
            return
        try:
            self._repos.set(count)
        except Exception as exc:  # noqa: BLE001
            self._drop("update_repositories_processed", exc)

    # ------------------------------------------------------------------ generic API (raises)
    def register_metric(
        self,
        name: str,
        metric_type: str,
        help_text: str,
        labelnames: Sequence[str] | None = None,
        **options: Any,
    ) -> Any:
        """Register (or get the identical) counter/gauge/histogram on the registry.

        ``labelnames`` None, as in the seed's ``register_metric(name, "counter", help)``,
        leaves the label names to the first :meth:`inc_counter` / :meth:`set_gauge` /
        :meth:`observe_histogram` call: its label names (sorted) become the metric's fixed
        ones, and the metric is registered then (this returns None until it is). ``options``
        go to the registry (``buckets``, ``merge``, ``series_limit``). Raises MetricError for
        an unknown type or invalid name/labels, DuplicateMetricError for a conflicting
        definition.
        """
        if metric_type not in _KINDS:
            raise MetricError(f"unknown metric type {metric_type!r}: expected one of {_KINDS!r}")
        if labelnames is not None:
            return getattr(self.registry, metric_type)(name, help_text, labelnames, **options)
        validate_metric_name(name)
        with self._pending_lock:
            existing = self.registry.get(name)
            if existing is not None:
                if existing.type != metric_type:
                    msg = f"metric {name!r} is already a {existing.type}, not a {metric_type}"
                    raise DuplicateMetricError(msg)
                return existing
            self._pending[name] = (metric_type, help_text, options)
        return None

    def _child(self, name: str, kind: str, labels: Mapping[str, Any] | None) -> Any:
        metric = self.registry.get(name)
        if metric is None:
            metric = self._register_pending(name, labels)
        if metric.type != kind:
            raise MetricError(f"metric {name!r} is a {metric.type}, not a {kind}")
        return metric.labels(**labels) if labels else metric.labels()

    def _register_pending(self, name: str, labels: Mapping[str, Any] | None) -> Any:
        with self._pending_lock:
            metric = self.registry.get(name)
            if metric is not None:
                return metric
            pending = self._pending.get(name)
            if pending is None:
                raise MetricError(
                    f"metric {name!r} is not registered: call register_metric() first"
                )
            kind, help_text, options = pending
            metric = getattr(self.registry, kind)(
                name, help_text, tuple(sorted(labels or ())), **options
            )
            del self._pending[name]
            return metric

    def inc_counter(
        self, name: str, value: float = 1, labels: Mapping[str, Any] | None = None
    ) -> None:
        """Increment a registered counter; MetricError if unknown, wrong type/labels or < 0."""
        self._child(name, "counter", labels).inc(value)

    def set_gauge(self, name: str, value: float, labels: Mapping[str, Any] | None = None) -> None:
        """Set a registered gauge. Raises MetricError (unknown, wrong type/labels, not a number)."""
        self._child(name, "gauge", labels).set(value)

    def observe_histogram(
        self, name: str, value: float, labels: Mapping[str, Any] | None = None
    ) -> None:
        """Observe into a registered histogram; MetricError if unknown, wrong type/labels, NaN."""
        self._child(name, "histogram", labels).observe(value)

    def start_operation_timer(self, operation_id: str) -> None:
        """Remember the start time of ``operation_id`` (see :meth:`end_operation_timer`)."""
        with self._timers_lock:
            if len(self._timers) >= MAX_OPEN_TIMERS and operation_id not in self._timers:
                # Timers never ended must not grow without bound: forget the oldest.
                del self._timers[next(iter(self._timers))]
            self._timers[operation_id] = time.perf_counter()

    def end_operation_timer(
        self, operation_id: str, metric_name: str, labels: Mapping[str, Any] | None = None
    ) -> float:
        """Observe the seconds since :meth:`start_operation_timer` into histogram ``metric_name``.

        Returns the duration, or 0.0 (observing nothing) for an unknown id. Raises MetricError
        if ``metric_name`` is not a registered histogram.
        """
        with self._timers_lock:
            start = self._timers.pop(operation_id, None)
        if start is None:
            return 0.0
        elapsed = max(time.perf_counter() - start, 0.0)
        self.observe_histogram(metric_name, elapsed, labels)
        return elapsed

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Snapshot:
        """An immutable snapshot of the registry."""
        return self.registry.snapshot()

    def get_metrics(self) -> List[Sample]:
        """Every sample (histograms expanded into buckets, sum and count)."""
        return list(self.registry.snapshot().samples())

    def reset_metrics(self) -> None:
        """Forget every recorded value; definitions stay (unlabelled metrics go back to 0)."""
        for metric in self.registry.metrics():
            metric.clear()

    def export_prometheus(self) -> str:
        """The registry in Prometheus text format 0.0.4, as a str."""
        from mgit_monitoring.exposition import render_text  # on first export, not at import

        return render_text(self.registry.snapshot()).decode("utf-8")

    def export_openmetrics(self) -> str:
        """The registry in OpenMetrics 1.0 text, as a str."""
        from mgit_monitoring.exposition import render_openmetrics

        return render_openmetrics(self.registry.snapshot()).decode("utf-8")

    def export_json(self, indent: int | None = 2) -> str:
        """The JSON document of :func:`~mgit_monitoring.exposition.render_json`, as a str."""
        from mgit_monitoring.exposition import render_json

        return render_json(self.registry.snapshot(), indent=indent)


def _mask(repository: Any) -> str:
    from mgit_monitoring.masking import mask_credentials  # only for the opt-in repository label

    return mask_credentials(str(repository))


# ---------------------------------------------------------------------- the default collector

_default_lock = threading.Lock()
_default: MetricsCollector | None = None


def get_metrics_collector() -> MetricsCollector:
    """The process-wide collector on :func:`~mgit_monitoring.registry.get_default_registry`,
    created on first use (thread-safe).

    Once it exists this is one global read and no lock: the integration decorators call it
    on every operation.
    """
    collector = _default
    if collector is not None:
        return collector
    return setup_metrics()


def _enabled_from_env() -> bool:
    """``MGIT_MONITORING_ENABLED`` (via the configuration), read when the default is created;
    a bad value is one warning and "off" (:func:`~mgit_monitoring.config.enabled_from_env`)."""
    try:
        from mgit_monitoring.config import enabled_from_env

        return enabled_from_env(strict=False)
    except Exception as exc:  # noqa: BLE001 - a broken environment must not break mgit
        _logger().warning("metrics disabled: the environment cannot be read: %s", exc)
        return False


def setup_metrics(registry: Registry | None = None, **options: Any) -> MetricsCollector:
    """Create the default collector with these options if none exists yet; return the default.

    Without an ``enabled`` option the new collector honours ``MGIT_MONITORING_ENABLED``.

    Unlike the original, an existing default is never replaced (objects holding it would
    keep writing to an orphan); call :func:`reset_metrics_collector` first to start over.
    """
    global _default
    with _default_lock:
        if _default is None:
            if "enabled" not in options:
                options["enabled"] = _enabled_from_env()
            if registry is None:
                registry = get_default_registry()
                options.setdefault("process_metrics", True)
            _default = MetricsCollector(registry, **options)
        elif registry is not None or options:
            _logger().warning("setup_metrics: a metrics collector already exists; options ignored")
        return _default


def reset_metrics_collector() -> None:
    """Drop the default collector and the default registry (tests): the next
    :func:`get_metrics_collector` (and the default health checker and performance monitor)
    start on a fresh registry."""
    global _default
    with _default_lock:
        _default = None
        reset_default_registry()


def record_operation(
    operation: str,
    success: bool,
    duration: float | None = None,
    provider: str | None = None,
    **kw: Any,
) -> None:
    """:meth:`MetricsCollector.record_operation` on the default collector."""
    get_metrics_collector().record_operation(operation, success, duration, provider, **kw)


def record_git_operation(
    operation: str, repository: str, success: bool, duration: float | None = None
) -> None:
    """:meth:`MetricsCollector.record_git_operation` on the default collector."""
    get_metrics_collector().record_git_operation(operation, repository, success, duration)


def record_api_call(
    method: str,
    provider: str,
    status_code: Union[int, str],
    duration: float | None,
    endpoint: str | None = None,
) -> None:
    """:meth:`MetricsCollector.record_api_call` on the default collector."""
    get_metrics_collector().record_api_call(method, provider, status_code, duration, endpoint)


def record_authentication(provider: str, organization: str, success: bool) -> None:
    """:meth:`MetricsCollector.record_authentication` on the default collector."""
    get_metrics_collector().record_authentication(provider, organization, success)
