"""The Registry: it creates and holds metrics and collectors, and snapshots them for exposition.

A :class:`Registry` is an ordinary object; the package's default components share one,
:func:`get_default_registry`, created on first use::

    reg = Registry()
    c = reg.counter("mgit_x_total", "Help.", ("a", "b"))  # family mgit_x, sample mgit_x_total
    c.labels("1", "2").inc(); c.labels(a="1", b="2").inc(2.5)
    g = reg.gauge("mgit_g", "Help.", merge="sum"); g.set(3)
    h = reg.histogram("mgit_h_seconds", "Help.", ("op",)); h.labels("clone").observe(1.2)
    snap = reg.snapshot()        # an immutable value that exposition.py renders

The metric types are in :mod:`mgit_monitoring.metric_types`, the snapshot values and the
name rules in :mod:`mgit_monitoring.samples`. Design choices, and why:

* Registering an identical definition again returns the existing metric (two components
  may both declare a metric they share); a different definition, or a name whose samples
  would collide with another family's (``x`` and ``x_total``...), raises
  :class:`~mgit_monitoring.errors.DuplicateMetricError`.
* Composite updates that must look atomic to a scrape run inside ``with registry.batch():``;
  :meth:`Registry.snapshot` copies under that same lock and renders nothing while holding it.
* Label sets dropped by a metric's cardinality guard are counted in
  ``mgit_monitoring_series_dropped_total{metric}`` (:data:`DROPPED_SERIES_METRIC`).
* After ``os.fork()`` every registry gets new locks in the child (a lock held by a thread of
  the parent would otherwise never be released there).
* ``_created`` series are not produced (OpenMetrics makes them a SHOULD; they double the
  series a counter costs in Prometheus), and units are not modelled (no ``# UNIT``).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Type, TypeVar

from mgit_monitoring.errors import DuplicateMetricError, MetricError
from mgit_monitoring.fork_hooks import after_fork_in_child
from mgit_monitoring.metric_types import DEFAULT_SERIES_LIMIT, Counter, Gauge, Histogram, Metric
from mgit_monitoring.samples import MetricFamily, Snapshot

__all__ = [
    "DROPPED_SERIES_METRIC",
    "Collector",
    "Registry",
    "get_default_registry",
    "reset_default_registry",
]

_M = TypeVar("_M", bound=Metric)

#: The self-metric counting label sets dropped by the cardinality guard.
DROPPED_SERIES_METRIC = "mgit_monitoring_series_dropped_total"


class Collector:
    """Protocol of objects given to :meth:`Registry.register_collector` (duck-typed)."""

    def collect(self) -> Iterable[MetricFamily]:  # pragma: no cover - protocol only
        """Return the families to expose, computed at scrape time."""
        raise NotImplementedError


# Every live registry, so a forked child can replace locks held by threads that do not
# exist in it (a child forked while another thread was inside inc() or batch() would
# otherwise deadlock on its first update). The hook is registered by the first Registry.
_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    for registry in list(_registries):
        registry._lock = threading.RLock()
        for metric in set(registry._metrics.values()):
            metric.renew_locks()


class Registry:
    """Holds metrics and collectors; snapshots them for exposition.

    ``series_limit`` is the default per-metric cardinality limit of metrics created here.
    """

    def __init__(self, *, series_limit: int = DEFAULT_SERIES_LIMIT) -> None:
        if type(series_limit) is not int or series_limit < 1:
            raise MetricError(f"series_limit must be a positive int, got {series_limit!r}")
        self.series_limit = series_limit
        self._metrics: Dict[str, Metric] = {}  # registered name and family name -> metric
        self._owners: Dict[str, str] = {}  # every sample/family name -> owning family name
        self._collectors: List[Any] = []
        # The batch lock: held by composite updates and by the snapshot copy. Re-entrant so a
        # batch may create metrics or nest another batch.
        self._lock = threading.RLock()
        _registries.add(self)
        after_fork_in_child(_renew_locks_after_fork)

    # -- creation
    def counter(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
    ) -> Counter:
        """Create (or return the identical existing) counter; may raise DuplicateMetricError."""
        return self._register(Counter, name, help, labelnames, series_limit, {})

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        merge: str = "last",
        series_limit: int | None = None,
    ) -> Gauge:
        """Create (or return the identical existing) gauge; ``merge`` in
        :data:`~mgit_monitoring.metric_types.MERGE_MODES`."""
        return self._register(Gauge, name, help, labelnames, series_limit, {"merge": merge})

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        series_limit: int | None = None,
    ) -> Histogram:
        """Create (or return the identical existing) histogram; ``buckets=None``: defaults."""
        return self._register(Histogram, name, help, labelnames, series_limit, {"buckets": buckets})

    def _register(
        self,
        cls: Type[_M],
        name: str,
        help: str,
        labelnames: Sequence[str],
        series_limit: int | None,
        extra: Dict[str, Any],
    ) -> _M:
        limit = self.series_limit if series_limit is None else series_limit
        metric = cls(
            name,
            help,
            labelnames,
            series_limit=limit,
            on_series_dropped=self._series_dropped,
            **extra,
        )
        family = metric.family_name
        with self._lock:
            existing = self._metrics.get(name) or self._metrics.get(family)
            if existing is not None and existing.family_name == family:
                # Equal definitions mean the same type, so the same class.
                if isinstance(existing, cls) and (
                    existing.definition() == metric.definition()
                    or (
                        cls is Histogram
                        and extra.get("buckets") is None
                        and existing.definition()[:2] == metric.definition()[:2]
                    )
                ):
                    return existing
                raise DuplicateMetricError(
                    f"metric {name!r} is already registered as {existing.type} with labels "
                    f"{existing.labelnames!r}; cannot re-register as {metric.type} "
                    f"with {metric.labelnames!r}"
                )
            taken = self._clash(MetricFamily(family, metric.type, "", (), ()).sample_names())
            if taken:
                raise DuplicateMetricError(
                    f"metric {name!r} clashes with the name {taken!r} already registered"
                )
            for n in MetricFamily(family, metric.type, "", (), ()).sample_names():
                self._owners[n] = family
            self._metrics[family] = metric
            self._metrics[name] = metric
            if isinstance(metric, Counter):  # get("x_total") works however it was named
                self._metrics[metric.sample_name] = metric
        return metric

    def _clash(self, names: Iterable[str]) -> str | None:
        for n in names:
            if n in self._owners:
                return n
        return None

    def get(self, name: str) -> Any | None:
        """The metric called ``name`` (a counter under both ``x`` and ``x_total``), or None."""
        return self._metrics.get(name)

    def unregister(self, name: str) -> None:
        """Remove a metric (by registered or family name); no error if absent."""
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                return
            for key in [k for k, m in self._metrics.items() if m is metric]:
                del self._metrics[key]
            for key in [k for k, f in self._owners.items() if f == metric.family_name]:
                del self._owners[key]

    def metrics(self) -> List[Metric]:
        """Every registered metric, in registration order."""
        with self._lock:
            seen: Dict[int, Metric] = {}
            for m in self._metrics.values():
                seen.setdefault(id(m), m)
            return list(seen.values())

    def register_collector(self, collector: Any) -> None:
        """Add an object whose ``collect()`` returns families computed at scrape time."""
        if not callable(getattr(collector, "collect", None)):
            raise MetricError(f"collector {collector!r} has no collect() method")
        with self._lock:
            if collector not in self._collectors:
                self._collectors.append(collector)

    def unregister_collector(self, collector: Any) -> None:
        """Remove a collector added by :meth:`register_collector` (no error if absent)."""
        with self._lock:
            if collector in self._collectors:
                self._collectors.remove(collector)

    # -- consistency
    def batch(self) -> Any:
        """``with registry.batch():`` makes several updates appear atomically to snapshots."""
        return self._lock

    def _series_dropped(self, metric_name: str) -> None:
        if metric_name == DROPPED_SERIES_METRIC:
            return
        c = self._metrics.get(DROPPED_SERIES_METRIC)  # one dict lookup per drop, not a register
        if c is None:
            c = self.counter(
                DROPPED_SERIES_METRIC,
                "Label sets discarded because a metric reached its series limit.",
                ("metric",),
                series_limit=1_000_000,
            )
        c.labels(metric_name).inc()

    # -- reading
    def snapshot(self) -> Snapshot:
        """Copy every metric (under the batch lock), then run collectors (outside it).

        Families are sorted by name. Raises DuplicateMetricError if a collector returns a
        family whose names another family already uses; a collector's own exception
        propagates (a partial exposition must not be served).
        """
        with self._lock:
            families = [m.collect() for m in self.metrics()]
            collectors = list(self._collectors)
            ts = time.time()
        owners = dict(self._owners)
        for collector in collectors:
            for fam in collector.collect():
                for n in fam.sample_names():
                    if n in owners:
                        raise DuplicateMetricError(
                            f"collector {type(collector).__name__} returned family {fam.name!r}, "
                            f"whose name {n!r} is already used by {owners[n]!r}"
                        )
                for n in fam.sample_names():
                    owners[n] = fam.name
                families.append(fam)
        families.sort(key=lambda f: f.name)
        return Snapshot(tuple(families), ts)

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The current value of one sample (e.g. ``"x_total"``, ``"h_count"``), or None."""
        return self.snapshot().get_sample_value(name, labels)


# --------------------------------------------------------------------------- the default registry

_default_lock = threading.Lock()
_default_registry: Registry | None = None


def get_default_registry() -> Registry:
    """The process-wide registry, created on first use (thread-safe; nothing at import).

    The default metrics collector, health checker and performance monitor all register on
    it, so one scrape of it shows every mgit metric.
    """
    global _default_registry
    registry = _default_registry
    if registry is None:
        with _default_lock:
            registry = _default_registry
            if registry is None:
                registry = _default_registry = Registry()
    return registry


def reset_default_registry() -> None:
    """Forget the default registry (tests); the next :func:`get_default_registry` makes one."""
    global _default_registry
    with _default_lock:
        _default_registry = None
