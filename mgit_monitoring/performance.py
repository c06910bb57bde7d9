"""The performance monitor: timed traces of mgit operations, statistics, baselines, anomalies.

A trace is started and ended around an operation (:meth:`PerformanceMonitor.start_trace`
and :meth:`~PerformanceMonitor.end_trace`, the :meth:`~PerformanceMonitor.trace_operation`
context manager, or the :func:`monitor_performance` decorator). Completed traces stay in
memory, bounded by a retention window and a cap, and, when the monitor has a store, go in
batches (periodically, at exit, on :meth:`~PerformanceMonitor.flush`) to the sqlite file
every mgit process shares, so ``get_operation_metrics("clone_repos", hours=24)`` in one
process sees what earlier and concurrent processes did. The statistics themselves
(:class:`~mgit_monitoring.operation_stats.OperationMetrics`, percentiles) live in
:mod:`mgit_monitoring.operation_stats`; their names are importable from here too.

Parent/child nesting follows :mod:`contextvars`, so it is right in threads (a new thread
starts without a parent unless the context is copied) and in asyncio tasks (siblings do
not adopt each other). A trace never ended expires after ``trace_timeout`` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import itertools
import logging
import os
import random
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Tuple,
    TypeVar,
    cast,
)

from mgit_monitoring import fork_hooks, metric_definitions
from mgit_monitoring.config import enabled_from_env
from mgit_monitoring.context import CURRENT_SCOPE, correlation_context, current_scope
from mgit_monitoring.registry import get_default_registry
from mgit_monitoring.wrapping import (
    for_descriptors,
    function_kind,
    is_success,
    qualified_name,
    wrap_generator_function,
)

if TYPE_CHECKING:  # the store (and sqlite3) load when a store is first used, not at import
    from mgit_monitoring.operation_stats import (
        PERCENTILE_METHOD,
        OperationMetrics,
        PerformanceMetrics,
        percentile,
    )
    from mgit_monitoring.store import Store, TraceRow

#: Names of :mod:`mgit_monitoring.operation_stats` importable from here; that module (and
#: dataclasses) loads when statistics are first computed, not at start-up.
_STATS_NAMES = ("PERCENTILE_METHOD", "OperationMetrics", "PerformanceMetrics", "percentile")


def __getattr__(name: str) -> Any:
    if name in _STATS_NAMES:
        from mgit_monitoring import operation_stats

        return getattr(operation_stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PERCENTILE_METHOD",
    "OperationMetrics",
    "PerformanceMetrics",
    "PerformanceMonitor",
    "PerformanceTrace",
    "get_performance_monitor",
    "monitor_async_performance",
    "monitor_performance",
    "percentile",
    "reset_performance_monitor",
    "set_performance_monitor",
]

ANOMALY_METRIC = "mgit_performance_anomalies_total"

logger = logging.getLogger("mgit_monitoring.performance")

_F = TypeVar("_F", bound=Callable[..., Any])
_Record = Tuple[Any, ...]
"""A completed trace in memory: TraceRow's fields in its order, as a plain tuple."""
# TraceRow's field positions (tests/test_performance.py checks them against TraceRow).
_START, _METADATA = 1, 9
_row_type: Any = None


def _trace_row() -> Any:
    """The TraceRow class, imported on first use (its module loads sqlite3)."""
    global _row_type
    row_type = _row_type
    if row_type is None:
        from mgit_monitoring.store import TraceRow

        row_type = _row_type = TraceRow
    return row_type


_SWEEP_EVERY_S = 60.0
_SWEEP_TRIES = 8
_MAX_ERROR_TEXT = 200


class PerformanceTrace:
    """A trace in progress (the original's ``PerformanceTrace`` attribute names)."""

    __slots__ = (
        "_t0",
        "_token",
        "children",
        "correlation_id",
        "metadata",
        "operation_id",
        "operation_name",
        "parent_id",
        "start_time",
        "tags",
    )

    def __init__(
        self,
        operation_id: str,
        operation_name: str,
        start_time: float,
        t0: float,
        correlation_id: str | None,
        parent_id: str | None,
        tags: Dict[str, str] | None,
        metadata: Dict[str, Any] | None,
    ) -> None:
        self.operation_id = operation_id
        self.operation_name = operation_name
        self.start_time = start_time
        self._t0 = t0
        self.correlation_id = correlation_id
        self.parent_id = parent_id
        self.tags = tags
        self.metadata = metadata
        self.children: List[str] = []
        self._token: Any = None

    def __repr__(self) -> str:
        return f"<PerformanceTrace {self.operation_name} {self.operation_id}>"


def _error_fields(error: BaseException | str | None) -> Tuple[str | None, str | None]:
    if error is None:
        return None, None
    if isinstance(error, BaseException):
        return type(error).__name__, str(error)[:_MAX_ERROR_TEXT]
    text = str(error)
    return text[:_MAX_ERROR_TEXT], text[:_MAX_ERROR_TEXT]


class _ProcessIds:
    """Trace ids: 16 hex like a W3C span id, unique in this process and across processes.

    A random 32-bit prefix per process (renewed in a forked child, with the cached pid)
    plus a counter: ``format % (next(counter) & _ID_MASK)``, as begin_trace spells it
    inline. Cheaper than 64 fresh random bits per trace (os.getpid and getrandbits cost
    ~0.2-0.4 us each on the reference VM), and unique by construction within the process
    (the counter wraps after 2**32 ids; a reused id is skipped by begin_trace).
    """

    __slots__ = ("counter", "format", "pid")

    def __init__(self) -> None:
        self.pid = 0
        self.format = ""
        self.counter: Iterator[int] = iter(())
        self.renew()

    def renew(self) -> None:
        self.pid = os.getpid()
        # The trace ids' prefix, never zero: an id, not a secret.
        self.format = f"{random.getrandbits(32) | 1:08x}%08x"  # nosec B311
        self.counter = itertools.count(1)


_ID_MASK = 0xFFFFFFFF


_ids: _ProcessIds | None = None
_ids_lock = threading.Lock()


def _process_ids() -> _ProcessIds:
    """The process's id source, created on first use (never at import) with a fork hook."""
    global _ids
    with _ids_lock:
        if _ids is None:
            _ids = _ProcessIds()
            fork_hooks.after_fork_in_child(_ids.renew)
    return _ids


class _PerfRun:
    """One traced call of a :func:`monitor_performance` generator function."""

    __slots__ = ("monitor", "trace_id")

    def __init__(self, monitor: PerformanceMonitor, name: str, tags: Any) -> None:
        self.monitor = monitor
        self.trace_id = monitor.start_trace(name, None, tags)

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        if is_success(exc):
            self.monitor.end_trace(self.trace_id, True)
        else:
            self.monitor.end_trace(self.trace_id, False, exc)


class _TraceScope:
    """What :meth:`PerformanceMonitor.trace_operation` returns: a sync and async context manager."""

    __slots__ = ("_args", "_monitor", "trace_id")

    def __init__(self, monitor: PerformanceMonitor, args: Tuple[Any, ...]) -> None:
        self._monitor = monitor
        self._args = args
        self.trace_id = ""

    def __enter__(self) -> str:
        name, operation_id, tags, metadata = self._args
        self.trace_id = self._monitor.start_trace(name, operation_id, tags, metadata)
        return self.trace_id

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if is_success(exc):
            self._monitor.end_trace(self.trace_id, success=True)
        else:  # BaseException too: KeyboardInterrupt, SystemExit(1), task cancellation
            self._monitor.end_trace(self.trace_id, success=False, error=exc)

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class PerformanceMonitor:
    """Traces, statistics, baselines and anomaly detection for mgit operations.

    Args:
        max_traces: completed traces kept in memory (and unflushed ones awaiting the
            store); also the cap on traces in progress. Memory stays bounded whatever
            the traffic.
        retention_hours: completed traces older than this leave memory, and (with a
            store) are deleted from the store by its periodic cleanup.
        registry: a metrics registry; ``mgit_performance_anomalies_total{operation,type}``
            is registered on it and counts anomalies. Optional.
        store: a :class:`~mgit_monitoring.store.Store` to share history with other
            processes, or ``state_dir`` to open ``<state_dir>/monitoring.sqlite3``, or
            ``store_opener``, a function returning the store (or None), called once, when
            the store is first needed (the first completed trace, a query, a flush): what
            ``setup_monitoring_integration`` passes, so that sqlite3 is not loaded at
            start-up. None of them: memory only.
        trace_timeout: seconds after which a trace never ended is dropped (expired).
        anomaly_avg_factor / anomaly_p95_factor: a trace slower than baseline average x
            the first factor is a ``slow_operation`` anomaly, else slower than baseline p95 x
            the second is ``p95_exceeded``.
        learn_baselines: when an operation has no baseline set by hand, learn one from the
            last ``baseline_hours`` of history once ``baseline_min_count`` traces exist
            (re-learned at most hourly).
        clock / wall_clock: monotonic seconds for durations, epoch seconds for timestamps
            (injectable, so tests never sleep).
    """

    def __init__(
        self,
        max_traces: int = 10000,
        retention_hours: float = 24.0,
        *,
        registry: Any = None,
        store: Store | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        store_opener: Callable[[], Store | None] | None = None,
        flush_interval: float = 5.0,
        store_timeout: float = 5.0,
        trace_timeout: float = 6 * 3600.0,
        anomaly_avg_factor: float = 3.0,
        anomaly_p95_factor: float = 2.0,
        learn_baselines: bool = False,
        baseline_hours: float = 7 * 24.0,
        baseline_min_count: int = 20,
        enabled: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_traces, bool) or not isinstance(max_traces, int) or max_traces < 1:
            raise ValueError(f"max_traces={max_traces!r}: expected an integer >= 1")
        for label, value in (
            ("retention_hours", retention_hours),
            ("trace_timeout", trace_timeout),
            ("anomaly_avg_factor", anomaly_avg_factor),
            ("anomaly_p95_factor", anomaly_p95_factor),
        ):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{label}={value!r}: expected a number > 0")
        self.max_traces = max_traces
        self.retention_hours = float(retention_hours)
        self.trace_timeout = float(trace_timeout)
        self.anomaly_avg_factor = float(anomaly_avg_factor)
        self.anomaly_p95_factor = float(anomaly_p95_factor)
        self.learn_baselines = learn_baselines
        self.baseline_hours = float(baseline_hours)
        self.baseline_min_count = int(baseline_min_count)
        self.enabled = bool(enabled)
        self.expired_traces = 0
        """Traces dropped because they were never ended (timeout or cap on active traces)."""
        self.dropped_traces = 0
        """Completed traces that never reached the store (buffer overflow while it failed)."""
        self._clock = clock
        self._wall = wall_clock
        self._ids = _process_ids()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._active: Dict[str, PerformanceTrace] = {}
        # Completed traces as plain tuples in TraceRow's field order (a TraceRow costs ~0.3 us
        # more per trace to build); made TraceRows when read (_rows, recent_traces, flush).
        self._completed: Deque[_Record] = collections.deque(maxlen=max_traces)
        # Unbounded as a deque: kept within max_traces by _drop_oldest_pending, which counts.
        self._pending: Deque[_Record] = collections.deque()
        self._baselines: Dict[str, Dict[str, float]] = {}
        self._learned_at: Dict[str, float] = {}
        self._since_learned: Dict[str, int] = {}
        self._next_sweep = clock() + min(self.trace_timeout, _SWEEP_EVERY_S)
        # Per monitor, so two monitors (tests, a library and its host) never cross-link.
        self._current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"mgit_monitoring_trace_{id(self):x}", default=None
        )
        self._owned_store: Store | None = None
        if store is None and state_dir is not None:
            from mgit_monitoring.store import Store

            store = self._owned_store = Store.open(
                state_dir,
                timeout=store_timeout,
                flush_interval=flush_interval,
            )
        self._store: Store | None = None
        self._opener: Callable[[], Store | None] | None = None
        # Whether completed traces go to a store (one given, or one opened on first need).
        self._persist = False
        if self.enabled:
            if store is not None:
                self._attach(store)
            elif store_opener is not None:
                self._opener = store_opener
                self._persist = True
        self._persisting = False
        self._anomalies: Any = None
        if registry is not None:
            self._anomalies = metric_definitions.register(registry, ANOMALY_METRIC)

    @classmethod
    def from_config(cls, config: Any, registry: Any = None, **kwargs: Any) -> PerformanceMonitor:
        """A monitor set up from a :class:`~mgit_monitoring.config.MonitoringConfig`."""
        options: Dict[str, Any] = {
            "max_traces": config.performance_max_traces,
            "retention_hours": config.performance_retention_hours,
            "registry": registry,
            "state_dir": config.store_dir,
            "flush_interval": config.flush_interval_seconds,
            "store_timeout": config.store_timeout_seconds,
            "trace_timeout": config.trace_timeout_seconds,
            "anomaly_avg_factor": config.anomaly_avg_factor,
            "anomaly_p95_factor": config.anomaly_p95_factor,
            "enabled": config.enabled,
        }
        options.update(kwargs)
        return cls(**options)

    @property
    def store(self) -> Store | None:
        """The shared store (opened now if it was to be opened on first need), or None for a
        memory-only monitor."""
        return self._open_store()

    def _attach(self, store: Store) -> None:
        self._store = store
        self._persist = True
        store.register_retention("perf_traces", "start_time", self.retention_hours * 3600)

    def _open_store(self) -> Store | None:
        """The store, opening it through ``store_opener`` the first time; never raises."""
        store = self._store
        if store is not None or self._opener is None:
            return store
        with self._flush_lock:
            opener, self._opener = self._opener, None
            if opener is not None and self._store is None:
                try:
                    opened = opener()
                except Exception as exc:  # noqa: BLE001 - persistence is best effort
                    logger.warning("trace history stays in memory: the store: %s", exc)
                    opened = None
                if opened is not None:
                    self._attach(opened)
                else:
                    self._persist = False
                    self._pending.clear()
            return self._store

    # -- traces ----------------------------------------------------------------------------

    def start_trace(
        self,
        operation_name: str,
        operation_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """Start timing ``operation_name``; returns the trace id to pass to :meth:`end_trace`.

        Keyword arguments other than ``operation_id``, ``tags`` and ``metadata`` are added to
        the metadata. The trace becomes the parent of traces started later in the same
        context (thread or asyncio task) until it ends.
        """
        if not self.enabled:
            return ""
        if metadata:
            meta: Dict[str, Any] | None = dict(metadata)
            if extra:
                meta.update(extra)  # type: ignore[union-attr]
        else:
            meta = extra or None  # **extra is a fresh dict already
        name = operation_name if type(operation_name) is str else str(operation_name)
        trace = self.begin_trace(name, dict(tags) if tags else None, meta, operation_id)
        return cast(PerformanceTrace, trace).operation_id

    def begin_trace(
        self,
        operation_name: str,
        tags: Dict[str, str] | None = None,
        metadata: Dict[str, Any] | None = None,
        operation_id: str | None = None,
    ) -> PerformanceTrace | None:
        """Start a trace and return it (None when the monitor is disabled), for a caller
        that keeps it and ends it with :meth:`finish_trace`: the monitoring decorators.

        The trace :meth:`start_trace` would start, its id ``operation_id``, but without
        copies: ``tags`` and ``metadata`` are kept as given and must not change afterwards.

        No lock is taken: the active traces are a dict changed one whole operation at a
        time (``setdefault`` and ``pop``, atomic on every CPython build), and a parent's
        children a list that is only appended to.
        """
        if not self.enabled:
            return None
        t0 = self._clock()
        current = self._current
        parent = current.get()
        ids = self._ids
        trace_id = operation_id or ids.format % (next(ids.counter) & _ID_MASK)
        try:
            state = CURRENT_SCOPE.get()  # current_scope() without a call when one is active
            correlation: str | None = (
                state.trace_id if state is not None else current_scope().trace_id
            )
        except Exception:  # noqa: BLE001 - a broken context must not break the caller
            correlation = None
        trace = PerformanceTrace(
            trace_id, operation_name, self._wall(), t0, correlation, parent, tags, metadata
        )
        active = self._active
        while active.setdefault(trace_id, trace) is not trace:  # an id in use: a new one
            trace_id = trace.operation_id = ids.format % (next(ids.counter) & _ID_MASK)
        if parent is not None:
            parent_trace = active.get(parent)
            if parent_trace is not None and len(parent_trace.children) < self.max_traces:
                parent_trace.children.append(trace_id)
        if len(active) > self.max_traces or t0 >= self._next_sweep:
            self._expire(t0)
        trace._token = current.set(trace_id)
        return trace

    def end_trace(
        self,
        operation_id: str,
        success: bool = True,
        error: BaseException | str | None = None,
        additional_metadata: Mapping[str, Any] | None = None,
    ) -> float | None:
        """End a trace; returns its duration in seconds (None for an unknown or expired id).

        ``error`` may be an exception (its type name is recorded) or a short text.
        """
        error_type = error_text = None
        if error is not None:
            error_type, error_text = _error_fields(error)
        added = dict(additional_metadata) if additional_metadata else None
        trace = self._active.get(operation_id)
        if trace is None:
            if self.enabled:
                logger.debug("end_trace: unknown or expired trace id %r", operation_id)
            return None
        return self.finish_trace(trace, bool(success), error_type, error_text, added)

    def finish_trace(
        self,
        trace: PerformanceTrace,
        success: bool = True,
        error_type: str | None = None,
        error_text: str | None = None,
        additional_metadata: Dict[str, Any] | None = None,
    ) -> float | None:
        """End a trace :meth:`begin_trace` returned; its duration in seconds, or None when
        it had already ended or expired.

        ``error_type`` names a failure (``"unknown"`` when omitted); ``error_text``, a short
        description of it, stays in this process's memory and never reaches the store.
        Without a lock, like :meth:`begin_trace`: the completed and pending traces are
        deques, which append and pop atomically at either end (a lock is taken only to
        count traces dropped from a full buffer, and once to start persisting).
        """
        now = self._clock()
        ended = _take(self._active, trace)
        current = self._current
        try:
            current.reset(trace._token)  # the parent again (also when a child never ended)
        except (ValueError, RuntimeError, TypeError):
            # Ended in another context (a thread, a callback), a second time, or while its
            # begin_trace has not returned yet.
            if current.get() == trace.operation_id:
                current.set(trace.parent_id)
        if not ended:  # already ended, or expired: recorded once, or counted as expired
            return None
        duration = now - trace._t0
        if duration < 0:  # time can go backwards on some clocks (prometheus_client)
            duration = 0.0
        if not success and error_type is None:
            error_type = "unknown"
        meta = trace.metadata
        tags = trace.tags
        failed_text = error_text if not success else None
        if additional_metadata or tags or failed_text:
            meta = dict(meta) if meta else {}
            if additional_metadata:
                meta.update(additional_metadata)
            if tags:
                meta["tags"] = tags
            if failed_text:
                meta["error"] = failed_text
        start = trace.start_time
        record = (
            trace.operation_name,
            start,
            duration,
            success,
            None if success else error_type,
            trace.correlation_id,
            trace.operation_id,
            trace.parent_id,
            self._ids.pid,
            meta,
        )
        completed = self._completed
        completed.append(record)
        horizon = start - self.retention_hours * 3600.0
        try:
            while completed[0][_START] < horizon:
                completed.popleft()
        except IndexError:  # pragma: no cover - another thread emptied it first
            pass
        if self._persist:
            # The store gets metadata without the error text: exception messages can carry
            # URLs with credentials, and the shared file outlives us.
            pending = self._pending
            pending.append(
                record if not (meta and "error" in meta) else record[:_METADATA] + (_without(meta),)
            )
            if len(pending) > self.max_traces:
                self._drop_oldest_pending()
            if not self._persisting:
                self._start_persisting()
        if self._baselines or self.learn_baselines:
            self._check_anomaly(_trace_row()(*record))
        return duration

    def trace_operation(
        self,
        operation_name: str,
        operation_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> _TraceScope:
        """``with monitor.trace_operation("clone_repos") as trace_id:`` (also ``async with``).

        Any exception, BaseException included (KeyboardInterrupt, cancellation), ends the
        trace as failed with the exception's type, and propagates unchanged.
        """
        meta = {**metadata, **extra} if metadata and extra else (extra or metadata)
        return _TraceScope(self, (operation_name, operation_id, tags, meta))

    async_trace_operation = trace_operation

    def get_current_trace_id(self) -> str | None:
        """The innermost trace in progress in this context (thread / task), or None."""
        return self._current.get()

    get_current_operation_id = get_current_trace_id

    def add_trace_metadata(self, operation_id: str, metadata: Mapping[str, Any]) -> bool:
        """Add metadata to a trace in progress; False when the id is unknown, or when the
        trace ended meanwhile (it may have been recorded without this metadata)."""
        trace = self._active.get(operation_id)
        if trace is None:
            return False
        with self._lock:  # two callers adding at once both keep theirs
            trace.metadata = {**(trace.metadata or {}), **metadata}
        # A trace that ended meanwhile may have been recorded without it.
        return self._active.get(operation_id) is trace

    @property
    def active_trace_count(self) -> int:
        """Traces started and not yet ended (nor expired)."""
        return len(self._active)

    def recent_traces(self, operation_name: str | None = None) -> List[TraceRow]:
        """The completed traces this process still holds in memory, oldest first (all
        operations, or only ``operation_name``); bounded by ``max_traces`` and the
        retention window. Unlike the statistics, traces of other processes are not read."""
        completed = self._completed.copy()  # one atomic copy, however many threads append
        return [_detached(r) for r in completed if operation_name is None or r[0] == operation_name]

    def _expire(self, now: float) -> None:
        """Drop traces older than the timeout, and the oldest beyond the cap.

        One thread sweeps at a time (another one skips it: the next start sweeps again).
        Traces start and end meanwhile, so the scan starts over when the dict changes under
        it, a few times at most.
        """
        if not self._lock.acquire(blocking=False):
            return
        dropped: List[PerformanceTrace] = []
        try:
            self._next_sweep = now + min(self.trace_timeout, _SWEEP_EVERY_S)
            deadline = now - self.trace_timeout
            active = self._active
            expired: List[PerformanceTrace] = []
            for _ in range(_SWEEP_TRIES):
                expired.clear()
                try:
                    # Insertion order is start order: the scan stops at the first live trace.
                    for trace in active.values():
                        if trace._t0 >= deadline and len(active) - len(expired) <= self.max_traces:
                            break
                        expired.append(trace)
                    break
                except RuntimeError:  # changed size during the scan
                    continue
            dropped = [t for t in expired if _take(active, t)]
            if dropped:
                self.expired_traces += len(dropped)
        finally:
            self._lock.release()
        if dropped:
            logger.debug(
                "expired %d trace(s) never ended, e.g. %s (%s)",
                len(dropped),
                dropped[0].operation_name,
                dropped[0].operation_id,
            )

    # -- persistence -----------------------------------------------------------------------

    def _start_persisting(self) -> None:
        with self._lock:  # once, by the first thread that gets here
            if self._persisting:
                return
            self._persisting = True
        store = self._open_store()
        if store is not None:
            # Starts the store's flush thread and its atexit hook: first use, never import.
            store.add_flush_callback(self.flush)

    def flush(self) -> bool:
        """Write buffered traces to the store now; True when nothing is left unwritten."""
        store = self._store if not self._pending else self._open_store()
        if store is None:
            return True
        with self._flush_lock:
            batch = _drain(self._pending)
            if not batch:
                return True
            if not store.persistent:
                # The store fell back to memory: keep history in our own bounded memory
                # instead of an in-memory database that would only grow.
                self._store = None
                self._persist = False
                return False
            row = _trace_row()
            if store.insert_traces([row(*r) for r in batch]):
                return True
            # Put back ahead of the traces that ended meanwhile; beyond the cap the oldest
            # are dropped (and counted).
            self._pending.extendleft(reversed(batch))
            self._drop_oldest_pending()
            return False

    def _drop_oldest_pending(self) -> None:
        """Drop the oldest unwritten traces beyond ``max_traces``, counting each one: every
        thread that finds the buffer over the cap removes records until it is not, and a
        record is removed (and counted) by one of them only."""
        pending = self._pending
        dropped = 0
        try:
            while len(pending) > self.max_traces:
                pending.popleft()
                dropped += 1
        except IndexError:  # pragma: no cover - a flush took the rest meanwhile
            pass
        if dropped:
            with self._lock:
                self.dropped_traces += dropped

    def close(self) -> None:
        """Flush; close the store when this monitor opened it from ``state_dir``."""
        self.flush()
        if self._owned_store is not None:
            self._owned_store.close()

    # -- statistics ------------------------------------------------------------------------

    def _rows(self, hours: float, operation: str | None) -> List[TraceRow]:
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
            raise ValueError(f"hours={hours!r}: expected a number > 0")
        since = self._wall() - float(hours) * 3600.0
        store = self._open_store()
        if store is not None:
            from mgit_monitoring.errors import StoreError

            # The flush lock keeps a batch from being counted twice (pending and stored)
            # or not at all (in flight).
            with self._flush_lock:
                try:
                    rows = store.query_traces(since, operation, strict=True, light=True)
                except StoreError:
                    pass  # unreadable now: answer from this process's memory
                else:
                    rows.extend(_select(self._pending.copy(), since, operation))
                    return rows
        return _select(self._completed.copy(), since, operation)

    def get_operation_metrics(self, operation_name: str, hours: float = 24) -> OperationMetrics:
        """Statistics of ``operation_name`` over the last ``hours`` (by start time).

        With a store this includes every process's traces; otherwise this process's traces
        still in memory. An operation without traces gives ``count == 0`` (falsy result).
        """
        from mgit_monitoring.operation_stats import OperationMetrics

        rows = self._rows(hours, operation_name)
        return OperationMetrics.from_rows(operation_name, rows, float(hours))

    def get_operation_durations(self, operation_name: str, hours: float = 24) -> List[float]:
        """The sorted durations (seconds) of ``operation_name`` over the last ``hours``.

        The same traces :meth:`get_operation_metrics` summarises; the CLI draws its
        distribution chart from them.
        """
        return sorted(row.duration for row in self._rows(hours, operation_name))

    def get_all_operation_metrics(self, hours: float = 24) -> Dict[str, OperationMetrics]:
        """Statistics of every operation seen in the last ``hours``, by operation name."""
        from mgit_monitoring.operation_stats import OperationMetrics

        grouped: Dict[str, List[TraceRow]] = {}
        for row in self._rows(hours, None):
            grouped.setdefault(row.operation, []).append(row)
        return {
            name: OperationMetrics.from_rows(name, rows, float(hours))
            for name, rows in sorted(grouped.items())
        }

    get_all_operations_summary = get_all_operation_metrics

    def get_summary(self, hours: float = 24) -> Dict[str, Any]:
        """A JSON-ready summary: every operation's statistics plus the monitor's own state."""
        from mgit_monitoring.operation_stats import PERCENTILE_METHOD

        operations = self.get_all_operation_metrics(hours)
        store = self._open_store()
        return {
            "window_hours": float(hours),
            "percentile_method": PERCENTILE_METHOD,
            "operations": {name: m.as_dict() for name, m in operations.items()},
            "active_traces": self.active_trace_count,
            "expired_traces": self.expired_traces,
            "store": None if store is None else (store.path if store.persistent else ":memory:"),
            "baselines": {name: dict(b) for name, b in self._baselines.items()},
        }

    # -- baselines and anomalies -----------------------------------------------------------

    def set_performance_baseline(self, operation_name: str, baseline: Mapping[str, Any]) -> None:
        """Set the expected ``avg_duration`` and/or ``p95_duration`` (seconds) of an operation."""
        clean: Dict[str, float] = {}
        for key in ("avg_duration", "p95_duration"):
            if key in baseline and baseline[key] is not None:
                value = baseline[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"baseline {key}={value!r}: expected a number >= 0")
                clean[key] = float(value)
        if not clean:
            raise ValueError(
                f"baseline for {operation_name!r} has neither avg_duration nor p95_duration"
            )
        with self._lock:
            self._baselines[operation_name] = clean
            self._learned_at.pop(operation_name, None)
        logger.info("performance baseline set for %s: %s", operation_name, clean)

    def get_performance_baseline(self, operation_name: str) -> Dict[str, float] | None:
        """The baseline of an operation (set by hand or learned), or None."""
        baseline = self._baselines.get(operation_name)
        return dict(baseline) if baseline is not None else None

    def learn_baseline(
        self, operation_name: str, hours: float | None = None, min_count: int | None = None
    ) -> Dict[str, float] | None:
        """Set the baseline from history (avg and p95 of the window) if it has enough traces."""
        window = self.baseline_hours if hours is None else hours
        needed = self.baseline_min_count if min_count is None else min_count
        metrics = self.get_operation_metrics(operation_name, window)
        with self._lock:
            self._learned_at[operation_name] = self._clock()
        if metrics.count < max(needed, 1):
            return None
        baseline = {"avg_duration": metrics.avg_duration, "p95_duration": metrics.p95_duration}
        with self._lock:
            self._baselines[operation_name] = baseline
            self._learned_at[operation_name] = self._clock()
        return dict(baseline)

    def _check_anomaly(self, row: TraceRow) -> None:
        name = row.operation
        baseline = self._baselines.get(name)
        if self.learn_baselines and (baseline is None or name in self._learned_at):
            # Learn on the first trace (history from other processes may suffice), then
            # hourly, or as soon as enough new traces exist when there is still none.
            learned = self._learned_at.get(name)
            seen = self._since_learned[name] = self._since_learned.get(name, 0) + 1
            if (
                learned is None
                or self._clock() - learned > 3600.0
                or (baseline is None and seen >= self.baseline_min_count)
            ):
                self._since_learned[name] = 1  # this trace is already part of the history
                try:
                    self.learn_baseline(name)
                except Exception:  # noqa: BLE001 - learning is best effort
                    logger.debug("learning a baseline for %s failed", name, exc_info=True)
                baseline = self._baselines.get(name)
        if not baseline:
            return
        avg = baseline.get("avg_duration") or 0.0
        p95 = baseline.get("p95_duration") or 0.0
        if avg > 0 and row.duration > avg * self.anomaly_avg_factor:
            kind, limit = "slow_operation", avg * self.anomaly_avg_factor
        elif p95 > 0 and row.duration > p95 * self.anomaly_p95_factor:
            kind, limit = "p95_exceeded", p95 * self.anomaly_p95_factor
        else:
            return
        self._report_anomaly(row, kind, limit, avg, p95)

    def _report_anomaly(
        self, row: TraceRow, kind: str, limit: float, avg: float, p95: float
    ) -> None:
        try:
            if self._anomalies is not None:
                self._anomalies.labels(row.operation, kind).inc()
        except Exception:  # noqa: BLE001 - metrics never raise into the application
            logger.debug("could not count anomaly", exc_info=True)
        message = "performance anomaly (%s): %s took %.3fs, limit %.3fs (correlation_id=%s)"
        args = (kind, row.operation, row.duration, limit, row.correlation_id)
        extra = {
            "anomaly_type": kind,
            "duration_seconds": round(row.duration, 6),
            "baseline_avg_seconds": avg,
            "baseline_p95_seconds": p95,
            "perf_trace_id": row.trace_id,
        }
        try:
            # Logged inside the trace's correlation scope, so JSON logs carry its id even
            # when end_trace runs elsewhere (another thread, a callback).
            if row.correlation_id:
                with correlation_context(
                    operation=row.operation, correlation_id=row.correlation_id
                ):
                    logger.warning(message, *args, extra=extra)
            else:
                logger.warning(message, *args, extra=extra)
        except Exception:  # noqa: BLE001 - e.g. a record factory that refuses our extra keys
            with contextlib.suppress(Exception):  # the logger itself is broken: nowhere to say it
                logger.warning(message, *args)


def _select(records: Iterable[_Record], since: float, operation: str | None) -> List[TraceRow]:
    """The records started at or after ``since`` (of ``operation`` when given), as TraceRows
    for the statistics, which read no metadata (a row handed out gets :func:`_detached`)."""
    row = _trace_row()
    return [
        row(*r) for r in records if r[_START] >= since and (operation is None or r[0] == operation)
    ]


def _detached(record: _Record) -> TraceRow:
    """The TraceRow of an in-memory record, with metadata of its own: a trace keeps the
    metadata (and tags) it was given without copies, often one dict shared by every call
    of a decorated function, which a caller changing a row's metadata must not reach."""
    meta = record[_METADATA]
    if meta:
        meta = {k: dict(v) if type(v) is dict else v for k, v in meta.items()}
        return cast("TraceRow", _trace_row()(*record[:_METADATA], meta))
    return cast("TraceRow", _trace_row()(*record))


def _take(active: Dict[str, PerformanceTrace], trace: PerformanceTrace) -> bool:
    """Remove ``trace`` from the active ones; False when it is not among them (ended or
    expired), leaving alone another trace that now has its id."""
    trace_id = trace.operation_id
    if active.get(trace_id) is not trace:
        return False
    taken = active.pop(trace_id, None)
    if taken is trace:
        return True
    if taken is not None:  # pragma: no cover - ended and its id reused between the two
        active.setdefault(trace_id, taken)
    return False


def _drain(records: Deque[_Record]) -> List[_Record]:
    """Take the records ``records`` holds now out of it, oldest first, while other threads
    may append (theirs wait for the next drain)."""
    batch: List[_Record] = []
    take, keep = records.popleft, batch.append
    try:
        for _ in range(len(records)):
            keep(take())
    except IndexError:  # pragma: no cover - the oldest were dropped meanwhile
        pass
    return batch


def _without(meta: Dict[str, Any]) -> Dict[str, Any] | None:
    rest = {k: v for k, v in meta.items() if k != "error"}
    return rest or None


# -- the default monitor and the decorator -------------------------------------------------

_default_lock = threading.Lock()
_default: PerformanceMonitor | None = None


def get_performance_monitor() -> PerformanceMonitor:
    """The process-wide default monitor, created (memory only) on first use.

    Once it exists this is one global read and no lock: the decorators call it on every
    operation. Before any setup it counts anomalies on the default registry
    (:func:`~mgit_monitoring.registry.get_default_registry`, the one the default metrics
    collector exports) and is disabled by ``MGIT_MONITORING_ENABLED=false``.
    ``setup_monitoring_integration()`` or an application installs a configured one with
    :func:`set_performance_monitor`; tests reset it with :func:`reset_performance_monitor`.
    """
    monitor = _default
    if monitor is not None:
        return monitor
    return _create_default()


def _create_default() -> PerformanceMonitor:
    global _default
    with _default_lock:
        if _default is None:
            try:
                enabled = enabled_from_env(strict=False)  # a bad value: one warning, off
            except Exception as exc:  # noqa: BLE001 - a broken environment must not break mgit
                logger.warning("performance monitor disabled: %s", exc)
                enabled = False
            _default = PerformanceMonitor(registry=get_default_registry(), enabled=enabled)
        return _default


def set_performance_monitor(monitor: PerformanceMonitor) -> PerformanceMonitor | None:
    """Make ``monitor`` the default; returns the previous one (or None)."""
    global _default
    if not isinstance(monitor, PerformanceMonitor):
        raise TypeError(f"expected a PerformanceMonitor, got {type(monitor).__name__}")
    with _default_lock:
        previous, _default = _default, monitor
    return previous


def reset_performance_monitor() -> PerformanceMonitor | None:
    """Forget the default monitor (the next :func:`get_performance_monitor` makes a new one);
    returns the one forgotten (or None)."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    return previous


def monitor_performance(
    operation_name: str | Callable[..., Any] | None = None,
    tags: Mapping[str, str] | None = None,
    monitor: PerformanceMonitor | None = None,
) -> Any:
    """Decorator: trace every call of a sync or async function.

    ``@monitor_performance("git_clone")``, ``@monitor_performance()`` or bare
    ``@monitor_performance`` (name ``module.qualname``). The monitor is looked up at call
    time (:func:`get_performance_monitor`) unless one is given, so installing a configured
    monitor later takes effect for functions decorated earlier. Name, docstring and
    signature are preserved; exceptions propagate unchanged and end the trace as failed
    (``SystemExit(0)`` excepted). Methods, classmethods/staticmethods (either order) and
    ``functools.partial`` objects work. A generator or async generator function is traced
    over its iteration, from the first step until it is exhausted, fails or is closed
    (closing early is not a failure); calls made by its body are children of that trace.
    """
    if callable(operation_name) or isinstance(operation_name, (classmethod, staticmethod)):
        return monitor_performance(None, tags, monitor)(operation_name)

    @for_descriptors
    def decorate(func: _F) -> _F:
        name = operation_name or qualified_name(func)

        kind = function_kind(func)
        if kind in ("generator", "async_generator"):

            def begin(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> _PerfRun:
                return _PerfRun(monitor or get_performance_monitor(), name, tags)

            return cast(_F, wrap_generator_function(func, begin))

        if kind == "coroutine":

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                m = monitor or get_performance_monitor()
                trace_id = m.start_trace(name, None, tags)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:  # cancellation too: the trace ends as failed
                    m.end_trace(trace_id, is_success(exc), exc)
                    raise
                m.end_trace(trace_id, True)
                return result

            return cast(_F, async_wrapper)

        # start_trace/end_trace directly rather than trace_operation(): the same steps
        # without a scope object per call.
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            m = monitor or get_performance_monitor()
            trace_id = m.start_trace(name, None, tags)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                m.end_trace(trace_id, is_success(exc), exc)
                raise
            m.end_trace(trace_id, True)
            return result

        return cast(_F, wrapper)

    return decorate


monitor_async_performance = monitor_performance
"""The original's async decorator name; :func:`monitor_performance` handles both."""
