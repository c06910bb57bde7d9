"""Health checks, their runner, and the Kubernetes probes built on them.

A :class:`HealthChecker` holds named checks (plain or ``async`` callables) and runs them so
that asking is always cheap and bounded in time:

- **Never on the caller's thread or event loop.** Each run of a check happens on its own
  daemon thread (an ``async`` check gets a private event loop there), so a check that blocks
  cannot freeze the asyncio loop of the server that asked. The thread copies the caller's
  ``contextvars`` so log lines keep the correlation id.
- **Bounded.** Every check has a timeout (default 5 s) and every evaluation an overall
  deadline (default 10 s). A check that raises becomes ``unhealthy`` with the exception in
  its message; one that runs past its timeout becomes ``unhealthy`` ("timed out"); one that
  returns something that is not a result becomes ``unknown``. Callers never see an exception.
- **Cached and single-flight.** A result is reused for the check's ``ttl`` (``ttl=0``: never
  reused, every request runs the check). While a run is in
  flight every caller - async or sync, on any thread or loop - waits for that same run
  instead of starting another. Python cannot kill a thread, so a check that hangs keeps its
  one thread; single-flight guarantees it is *only* one: until that thread returns, callers
  get the "timed out, still running" result and no new thread is started for the check.

Entry points, async and sync (for the CLI and threaded servers), sharing one cache:
``await get_overall_health()`` / ``check_health_sync()`` (the JSON document),
``await run_checks()`` / ``run_checks_sync()`` and ``run_check(name)`` / ``run_check_sync(name)``
(results), ``await is_ready()`` / ``is_ready_sync()`` and ``await is_alive()`` /
``is_alive_sync()`` (booleans), ``readiness()`` / ``readiness_sync()`` and ``liveness()`` /
``liveness_sync()`` (a :class:`ProbeResult` with the reason), and ``latest_results(refresh=True)``
(the cached results instantly, stale ones re-run in the background: what ``/health`` should use).

Probes (``is_alive``/``is_ready`` and their ``*_sync`` twins) never start a slow run and
wait for it. They answer from the cached results, start a background refresh of the stale
ones and wait at most ``probe_wait`` seconds (default 0.5 s, under the kubelet's 1 s probe
timeout) and only for a check that has never produced a result.

- **Liveness** depends on nothing external - no disk, network or subprocess - because a
  failing liveness probe makes Kubernetes *restart* the container, and restarting cannot fix
  a full disk or an unreachable GitHub (it multiplies the trouble across every pod). It is
  true unless a heartbeat was configured (``heartbeat_timeout``) and :meth:`HealthChecker.beat`
  has not been called within it: a stuck worker loop is what a restart can fix.
- **Readiness** depends only on checks registered ``critical=True`` and is false only when
  one of them is ``unhealthy`` (or has not produced any result yet, i.e. still starting).
  ``degraded`` is still ready: a degraded pod can still do its work (slowly, or with a
  warning), and taking every pod out of service because a shared dependency is slow turns a
  partial problem into a total outage. ``unknown`` is ready for the same reason.

Results, aggregation and rendering live in :mod:`mgit_monitoring.health_report` (the rule
for the overall status and ``health_percentage``, :func:`health_to_dict` in the original
mgit JSON shape and :func:`to_health_json` in the IETF ``application/health+json`` draft);
their names are importable from here too. Metrics, when the checker is given a registry:
``mgit_health_overall`` and ``mgit_health_check_status{check}`` (1 healthy, 0.5 degraded,
0 unhealthy, -1 unknown), ``mgit_health_percentage`` (0..100) and the histogram
``mgit_health_check_duration_seconds{check}``, updated whenever a check result arrives
(before the callers waiting for it get it) and when a check is unregistered (its series
are removed); their names, help and types come from :mod:`mgit_monitoring.metric_definitions`.

This module knows no particular check. The standard ones live in the check modules
(:mod:`~mgit_monitoring.host_checks`, :mod:`~mgit_monitoring.git_check`,
:mod:`~mgit_monitoring.network_checks`, :mod:`~mgit_monitoring.credential_check`), and
:mod:`mgit_monitoring.default_checks` assembles them and holds the process-wide default
checker (``get_health_checker``) and the original module helpers (``readiness_probe``...).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import datetime
import inspect
import logging
import math
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Tuple,
    Union,
)

from mgit_monitoring import metric_definitions
from mgit_monitoring.errors import ConfigError

if TYPE_CHECKING:  # asyncio (~1.5 MB, ssl with it): imported where used, never by a sync caller
    import asyncio
from mgit_monitoring.health_report import (
    DEGRADED,
    HEALTH_JSON_CONTENT_TYPE,
    HEALTHY,
    STATUS_VALUES,
    STATUSES,
    UNHEALTHY,
    UNKNOWN,
    HealthCheckResult,
    ProbeResult,
    health_percentage,
    health_to_dict,
    http_status_for,
    mask_text,
    normalise_status,
    overall_status,
    to_health_json,
    utc_now,
)

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "HEALTH_JSON_CONTENT_TYPE",
    "STATUSES",
    "STATUS_VALUES",
    "UNHEALTHY",
    "UNKNOWN",
    "CheckFunction",
    "HealthCheckResult",
    "HealthChecker",
    "ProbeResult",
    "RegisteredCheck",
    "health_percentage",
    "health_to_dict",
    "http_status_for",
    "mask_text",
    "normalise_status",
    "overall_status",
    "to_health_json",
    "utc_now",
]

_NAN = float("nan")
_LOG = logging.getLogger("mgit_monitoring.health")

CheckFunction = Callable[[], Union[Any, Awaitable[Any]]]
"""What a check is: a callable (or ``async`` callable) taking no arguments."""


class RegisteredCheck(NamedTuple):
    """A check as registered on a :class:`HealthChecker` (:meth:`HealthChecker.get_check`)."""

    name: str
    check: CheckFunction
    """The callable itself (the standard checks are objects whose settings can be read)."""
    critical: bool
    """Whether it counts for readiness."""
    timeout: float
    """Seconds one run may take."""
    ttl: float
    """Seconds a result is reused (0: never, every request runs the check)."""


# --------------------------------------------------------------------------- the runner


class _Run:
    """One execution of a check: its thread, its deadline, and the future all callers share."""

    __slots__ = ("future", "started", "deadline", "alive", "settled")

    def __init__(self, started: float, deadline: float) -> None:
        self.future: concurrent.futures.Future[HealthCheckResult] = concurrent.futures.Future()
        self.started = started
        self.deadline = deadline
        self.alive = True  # the thread has not returned yet
        self.settled = False  # the future has (or is about to have) its result


class _Entry:
    __slots__ = (
        "name",
        "fn",
        "critical",
        "timeout",
        "ttl",
        "result",
        "result_at",
        "run",
        "logged_status",
    )

    def __init__(self, name: str, fn: CheckFunction, critical: bool, timeout: float, ttl: float):
        self.name = name
        self.fn = fn
        self.critical = critical
        self.timeout = timeout
        self.ttl = ttl
        self.result: HealthCheckResult | None = None
        self.result_at = 0.0
        self.run: _Run | None = None
        self.logged_status = HEALTHY  # a first healthy result is not news


def _registration(entry: _Entry) -> RegisteredCheck:
    return RegisteredCheck(entry.name, entry.fn, entry.critical, entry.timeout, entry.ttl)


def _done(result: HealthCheckResult) -> concurrent.futures.Future[HealthCheckResult]:
    future: concurrent.futures.Future[HealthCheckResult] = concurrent.futures.Future()
    future.set_result(result)
    return future


def _positive(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{label}={value!r}: expected a number > 0")
    if not math.isfinite(value):
        raise ConfigError(f"{label}={value!r}: expected a finite number")
    return float(value)


def _non_negative(value: Any, label: str) -> float:
    """A ttl: 0 is allowed and means "never cache"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{label}={value!r}: expected a number >= 0 (0: never cache)")
    if not math.isfinite(value):
        raise ConfigError(f"{label}={value!r}: expected a finite number")
    return float(value)


def _coerce(entry: _Entry, value: Any, started: datetime.datetime) -> HealthCheckResult:
    """Turn whatever a check returned into a result; garbage becomes ``unknown``."""
    status: str | None = None
    message = ""
    details: dict[str, Any] = {}
    if isinstance(value, HealthCheckResult):
        status = normalise_status(value.status)
        if status is not None:
            kept = dict(value.details) if isinstance(value.details, Mapping) else {}
            return dataclasses.replace(
                value,
                name=entry.name,
                status=status,
                details=kept,
                critical=entry.critical,
                timestamp=started,
            )
        what = f"a result with status {value.status!r}"
    elif value is None:
        status, message = HEALTHY, "ok"
    elif isinstance(value, bool):
        status, message = (HEALTHY if value else UNHEALTHY), f"check returned {value}"
    elif isinstance(value, str) and normalise_status(value):
        status = normalise_status(value)
    elif isinstance(value, Mapping) and normalise_status(value.get("status")):
        status = normalise_status(value.get("status"))
        message = str(value.get("message", ""))
        raw = value.get("details")
        details = dict(raw) if isinstance(raw, Mapping) else {}
    else:
        what = f"a value of type {type(value).__name__}"
    if status is None:
        status, message = UNKNOWN, f"check returned {what}, expected a HealthCheckResult"
    return HealthCheckResult(
        entry.name, status, message, details, critical=entry.critical, timestamp=started
    )


def _call(fn: CheckFunction) -> Any:
    value = fn()
    if inspect.isawaitable(value):

        async def _await() -> Any:
            return await value

        import asyncio

        # A private loop on this worker thread: a coroutine that blocks cannot hurt the caller.
        return asyncio.run(_await())
    return value


class HealthChecker:
    """A set of named checks with caching, single-flight, timeouts, probes and metrics.

    ``registry`` (a :class:`mgit_monitoring.registry.Registry`, optional) receives the health
    metrics. ``default_timeout``/``default_ttl`` apply to checks registered without their own;
    ``deadline`` bounds one full evaluation; ``probe_wait`` bounds how long a probe waits for a
    check that has never produced a result; ``heartbeat_timeout`` (seconds, None = off) makes
    liveness require :meth:`beat` within that time. ``clock`` is a monotonic clock (tests).
    """

    def __init__(
        self,
        registry: Any = None,
        *,
        default_timeout: float = 5.0,
        default_ttl: float = 30.0,
        deadline: float = 10.0,
        probe_wait: float = 0.5,
        heartbeat_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_timeout = _positive(default_timeout, "default_timeout")
        self.default_ttl = _positive(default_ttl, "default_ttl")
        self.deadline = _positive(deadline, "deadline")
        self.probe_wait = float(probe_wait) if probe_wait >= 0 else 0.0
        self.heartbeat_timeout = (
            None if heartbeat_timeout is None else _positive(heartbeat_timeout, "heartbeat_timeout")
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: Dict[str, _Entry] = {}
        self._last_beat = clock()
        self._background: Tuple[threading.Thread, threading.Event] | None = None
        self._metrics: Tuple[Any, Any, Any, Any] | None = None
        # One check's gauges and the overall ones change together for a scrape.
        self._batch: Callable[[], Any] = getattr(registry, "batch", contextlib.nullcontext)
        if registry is not None:
            self._metrics = _register_metrics(registry)
            self._metrics[0].set(STATUS_VALUES[UNKNOWN])
            # NaN, not 0: "below 80%" must not fire before any check has a known result.
            self._metrics[1].set(_NAN)

    # ------------------------------------------------------------------ registration

    def register_check(
        self,
        name: str,
        check: CheckFunction,
        *,
        critical: bool = False,
        timeout: float | None = None,
        ttl: float | None = None,
        interval: float | None = None,
    ) -> None:
        """Add (or replace) the check ``name``: a callable or ``async`` callable with no arguments.

        It may return a :class:`HealthCheckResult`, ``None`` (healthy), a bool, a status string
        or a ``{"status", "message", "details"}`` mapping; raising means unhealthy.
        ``critical`` makes it count for readiness; ``timeout`` bounds one run; ``ttl`` is how
        long a result is reused (``interval`` is the original's name for it). ``ttl=0`` never
        reuses a result: every request runs the check again, and concurrent requests still
        share one run (single-flight), so a burst of probes starts one thread, not one each.
        """
        if not isinstance(name, str) or not name.strip() or any(c in name for c in " :\n\t"):
            raise ConfigError(
                f"check name {name!r}: expected a non-empty name without spaces or ':'"
            )
        if not callable(check):
            raise ConfigError(f"check {name!r}: {check!r} is not callable")
        ttl = ttl if ttl is not None else interval
        entry = _Entry(
            name,
            check,
            bool(critical),
            self.default_timeout if timeout is None else _positive(timeout, f"{name}.timeout"),
            self.default_ttl if ttl is None else _non_negative(ttl, f"{name}.ttl"),
        )
        with self._lock:
            self._entries[name] = entry
        if self._metrics is not None:
            # The series exists (as unknown) from the first scrape, before the first run.
            self._safe_metric(lambda m: m[2].labels(name).set(STATUS_VALUES[UNKNOWN]))

    def unregister_check(self, name: str) -> bool:
        """Remove the check ``name`` and its metric series; True if it existed."""
        with self._lock:
            existed = self._entries.pop(name, None) is not None
        if existed and self._metrics is not None:
            # A stale series would keep its last value (and any alert on it) forever.
            def forget(m: Tuple[Any, Any, Any, Any]) -> None:
                m[2].remove(name)
                m[3].remove(name)

            self._safe_metric(forget)
            self._update_overall(self.latest_results())
        return existed

    @property
    def check_names(self) -> List[str]:
        """The registered check names, in registration order."""
        with self._lock:
            return list(self._entries)

    @property
    def registered_checks(self) -> List[RegisteredCheck]:
        """Every registered check with its settings, in registration order."""
        with self._lock:
            return [_registration(e) for e in self._entries.values()]

    def get_check(self, name: str) -> RegisteredCheck | None:
        """The registration of the check ``name``, or None when there is none."""
        with self._lock:
            entry = self._entries.get(name)
            return None if entry is None else _registration(entry)

    # ------------------------------------------------------------------ running

    def _acquire(
        self, entry: _Entry, use_cache: bool
    ) -> Tuple[concurrent.futures.Future[HealthCheckResult], float]:
        """The future of ``entry``'s current result and the time it is due by.

        Returns the cached result while fresh, joins a run in flight, and otherwise starts a
        run on a new daemon thread. Never blocks and never calls the check on this thread.
        """
        settle: Tuple[_Run, HealthCheckResult] | None = None
        with self._lock:
            now = self._clock()
            run = entry.run
            if run is not None and not run.settled and now >= run.deadline:
                settle = (run, self._timeout_locked(entry, run, now))
            if run is not None and (not run.settled or run.alive):
                # In flight, or hung past its timeout: never a second thread for one check.
                future, due = run.future, run.deadline
            elif use_cache and entry.result is not None and now - entry.result_at < entry.ttl:
                future, due = _done(entry.result), now
            else:
                run = entry.run = _Run(now, now + entry.timeout)
                future, due = run.future, run.deadline
                context = contextvars.copy_context()
                thread = threading.Thread(
                    target=context.run,
                    args=(self._work, entry, run),
                    name=f"mgit-health-{entry.name}",
                    daemon=True,  # a hung check must not keep the interpreter alive
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # cannot start threads (shutdown, limits)
                    run.alive = False
                    result = HealthCheckResult(entry.name, UNKNOWN, f"could not start: {exc}")
                    settle = (run, self._store_locked(entry, run, result, now))
        if settle is not None:
            self._publish(entry, *settle)
        return future, due

    def _work(self, entry: _Entry, run: _Run) -> None:
        started = utc_now()
        t0 = time.perf_counter()
        try:
            result = _coerce(entry, _call(entry.fn), started)
        except BaseException as exc:  # noqa: B036 - a check must never kill its caller
            # Mask before shortening: a cut through a token would hide it from the masker.
            text = mask_text(str(exc))
            message = f"check raised {type(exc).__name__}: {text}"
            details = {"error_type": type(exc).__name__, "error": text[:500]}
            result = HealthCheckResult(
                entry.name, UNHEALTHY, message, details, critical=entry.critical, timestamp=started
            )
        result.duration_ms = (time.perf_counter() - t0) * 1000.0
        with self._lock:
            run.alive = False
            if entry.run is run:
                entry.run = None
            # A late result after a timeout is still the freshest truth: keep it.
            first = not run.settled
            self._store_locked(entry, run, result, self._clock())
        self._publish(entry, run, result, settle=first)

    def _timeout_locked(self, entry: _Entry, run: _Run, now: float) -> HealthCheckResult:
        message = f"timed out after {entry.timeout:g} s (the check is still running)"
        result = HealthCheckResult(
            entry.name,
            UNHEALTHY,
            message,
            {"timeout_seconds": entry.timeout},
            duration_ms=(now - run.started) * 1000.0,
            critical=entry.critical,
        )
        return self._store_locked(entry, run, result, now)

    def _store_locked(
        self, entry: _Entry, run: _Run, result: HealthCheckResult, now: float
    ) -> HealthCheckResult:
        run.settled = True
        entry.result, entry.result_at = result, now
        return result

    def _publish(
        self, entry: _Entry, run: _Run, result: HealthCheckResult, settle: bool = True
    ) -> None:
        """Outside the lock: log status changes, update metrics, then resolve the shared future.

        Metrics first, so a caller that got this result and then scrapes sees it counted.
        """
        try:
            if result.status != entry.logged_status:
                # Log transitions only: a probe every few seconds must not flood the log.
                entry.logged_status = result.status
                level = logging.WARNING if result.status in (UNHEALTHY, DEGRADED) else logging.INFO
                _LOG.log(
                    level,
                    "health check %s is %s: %s",
                    entry.name,
                    result.status,
                    mask_text(result.message),
                )
            with self._lock:
                current = self._entries.get(entry.name) is entry
            if self._metrics is not None and current:  # not a replaced or removed check's run
                name = entry.name

                def update(m: Tuple[Any, Any, Any, Any]) -> None:
                    m[2].labels(name).set(STATUS_VALUES[result.status])
                    m[3].labels(name).observe(result.duration_ms / 1000.0)

                results = self.latest_results()  # outside the batch: it takes our lock
                with self._batch():
                    self._safe_metric(update)
                    self._update_overall(results)
        finally:
            if settle and not run.future.done():
                try:
                    run.future.set_result(result)
                except concurrent.futures.InvalidStateError:  # pragma: no cover - lost a race
                    pass

    def _safe_metric(self, fn: Callable[[Tuple[Any, Any, Any, Any]], None]) -> None:
        if self._metrics is None:
            return
        try:
            fn(self._metrics)
        except Exception:  # metrics never raise into the application
            _LOG.debug("health metric update failed", exc_info=True)

    def _update_overall(self, results: List[HealthCheckResult]) -> None:
        def update(m: Tuple[Any, Any, Any, Any]) -> None:
            m[0].set(STATUS_VALUES[overall_status(results)])
            known = any(r.status != UNKNOWN for r in results)
            m[1].set(health_percentage(results) if known else _NAN)

        self._safe_metric(update)

    def _entries_for(self, names: Iterable[str] | None) -> List[_Entry]:
        with self._lock:
            if names is None:
                return list(self._entries.values())
            return [self._entries[n] for n in names if n in self._entries]

    def _missing(self, name: str) -> HealthCheckResult:
        return HealthCheckResult(name, UNKNOWN, f"Health check '{name}' not found")

    def _late(self, entry: _Entry, run_due: float, deadline: float) -> HealthCheckResult:
        """A caller stopped waiting: a timed-out run, or the overall deadline came first."""
        now = self._clock()
        if now >= run_due:
            future, _ = self._acquire(entry, True)  # settles the run as timed out
            if future.done():
                return future.result()
        msg = f"no result within the overall deadline of {self.deadline:g} s"
        return HealthCheckResult(entry.name, UNKNOWN, msg, critical=entry.critical)

    def run_checks_sync(
        self, names: Iterable[str] | None = None, use_cache: bool = True
    ) -> List[HealthCheckResult]:
        """Run (or reuse) the checks concurrently and wait, at most ``deadline`` seconds."""
        deadline = self._clock() + self.deadline
        pending = [(e, *self._acquire(e, use_cache)) for e in self._entries_for(names)]
        results = []
        for entry, future, due in pending:
            wait = max(0.0, min(due, deadline) - self._clock())
            try:
                results.append(future.result(timeout=wait))
            except concurrent.futures.TimeoutError:
                results.append(self._late(entry, due, deadline))
        return results

    async def run_checks(
        self, names: Iterable[str] | None = None, use_cache: bool = True
    ) -> List[HealthCheckResult]:
        """The async twin of :meth:`run_checks_sync`; the event loop keeps running meanwhile."""
        import asyncio

        deadline = self._clock() + self.deadline
        pending = [(e, *self._acquire(e, use_cache)) for e in self._entries_for(names)]

        async def one(
            entry: _Entry, future: concurrent.futures.Future[HealthCheckResult], due: float
        ) -> HealthCheckResult:
            if future.done():  # cached: no task, no timer
                return future.result()
            wait = max(0.0, min(due, deadline) - self._clock())
            try:
                return await asyncio.wait_for(_bridge(future), wait)
            except asyncio.TimeoutError:
                return self._late(entry, due, deadline)

        return list(await asyncio.gather(*(one(*p) for p in pending)))

    async def run_check(self, name: str, use_cache: bool = True) -> HealthCheckResult:
        """Run (or reuse) one check; an unknown name gives an ``unknown`` result."""
        results = await self.run_checks([name], use_cache)
        return results[0] if results else self._missing(name)

    def run_check_sync(self, name: str, use_cache: bool = True) -> HealthCheckResult:
        """The sync twin of :meth:`run_check`."""
        results = self.run_checks_sync([name], use_cache)
        return results[0] if results else self._missing(name)

    async def get_overall_health(self, use_cache: bool = True) -> Dict[str, Any]:
        """Run (or reuse) every check and return :func:`health_to_dict` of the results."""
        results = await self.run_checks(None, use_cache)
        self._update_overall(results)
        return health_to_dict(results)

    def check_health_sync(self, use_cache: bool = True) -> Dict[str, Any]:
        """The sync twin of :meth:`get_overall_health`, for the CLI and threaded servers."""
        results = self.run_checks_sync(None, use_cache)
        self._update_overall(results)
        return health_to_dict(results)

    def latest_results(self, refresh: bool = False) -> List[HealthCheckResult]:
        """The last known result of every check, instantly; ``unknown`` for never-run checks.

        With ``refresh`` the stale ones (older than their ttl) are re-run in the background,
        so a server can answer ``/health`` from this without ever waiting on a slow check.
        """
        entries = self._entries_for(None)
        if refresh:
            for entry in entries:
                self._acquire(entry, True)
        out = []
        with self._lock:
            for entry in entries:
                if entry.result is not None:
                    out.append(entry.result)
                else:
                    msg = "not evaluated yet"
                    out.append(HealthCheckResult(entry.name, UNKNOWN, msg, critical=entry.critical))
        return out

    # ------------------------------------------------------------------ probes

    def _probe_prepare(self) -> List[Tuple[_Entry, concurrent.futures.Future[HealthCheckResult]]]:
        """Kick stale critical checks; the futures of those with no result at all."""
        waits = []
        for entry in self._entries_for(None):
            if entry.critical:
                future, _ = self._acquire(entry, True)
                if entry.result is None and not future.done():
                    waits.append((entry, future))
        return waits

    def _readiness(self) -> ProbeResult:
        checks, failing = [], []
        with self._lock:
            entries = [e for e in self._entries.values() if e.critical]
            for entry in entries:
                result = entry.result
                if result is None:
                    result = HealthCheckResult(
                        entry.name, UNKNOWN, "no result yet (starting)", critical=True
                    )
                    failing.append(f"{entry.name}: no result yet")
                elif result.status == UNHEALTHY:
                    failing.append(f"{entry.name}: {result.message}")
                checks.append(result)
        if failing:
            return ProbeResult(False, "not ready: " + "; ".join(failing), checks)
        return ProbeResult(True, "ready", checks)

    def readiness_sync(self) -> ProbeResult:
        """Readiness with reasons; waits at most ``probe_wait`` s, only for never-run checks."""
        end = self._clock() + self.probe_wait
        for _entry, future in self._probe_prepare():
            try:
                future.result(timeout=max(0.0, end - self._clock()))
            except concurrent.futures.TimeoutError:
                pass
        return self._readiness()

    async def readiness(self) -> ProbeResult:
        """The async twin of :meth:`readiness_sync`."""
        import asyncio

        waits = [asyncio.ensure_future(_bridge(f)) for _e, f in self._probe_prepare()]
        if waits:
            await asyncio.wait(waits, timeout=self.probe_wait)
            for task in waits:
                task.cancel()  # only our waiter; the shared run goes on
        return self._readiness()

    def is_ready_sync(self) -> bool:
        """True when no critical check is unhealthy (degraded and unknown are ready)."""
        return self.readiness_sync().ok

    async def is_ready(self) -> bool:
        """The async twin of :meth:`is_ready_sync`."""
        return (await self.readiness()).ok

    def beat(self) -> None:
        """Record progress of the worker loop (liveness, when ``heartbeat_timeout`` is set)."""
        self._last_beat = self._clock()

    def liveness_sync(self) -> ProbeResult:
        """Liveness with a reason: no I/O at all; only the heartbeat age when configured."""
        if self.heartbeat_timeout is None:
            return ProbeResult(True, "alive")
        age = self._clock() - self._last_beat
        if age > self.heartbeat_timeout:
            msg = f"no heartbeat for {age:.1f} s (limit {self.heartbeat_timeout:g} s)"
            return ProbeResult(False, msg)
        return ProbeResult(True, f"alive (last heartbeat {age:.1f} s ago)")

    async def liveness(self) -> ProbeResult:
        """The async twin of :meth:`liveness_sync` (answering proves the loop still runs)."""
        return self.liveness_sync()

    def is_alive_sync(self) -> bool:
        """True unless the configured heartbeat is overdue."""
        return self.liveness_sync().ok

    async def is_alive(self) -> bool:
        """The async twin of :meth:`is_alive_sync`."""
        return self.liveness_sync().ok

    # ------------------------------------------------------------------ background refresh

    def start_background(self, interval: float | None = None) -> None:
        """Re-run stale checks every ``interval`` s on a daemon thread.

        The default period is the smallest non-zero ttl (``default_ttl`` when every check has
        ``ttl=0``: such a check is re-run on each pass, it does not set the pace).

        Optional: probes and :meth:`latest_results` already refresh on demand; this keeps
        results warm (and the metrics current) when nobody asks. :meth:`stop_background` ends it.
        """
        period = _positive(interval, "interval") if interval is not None else None
        with self._lock:
            if self._background is not None:
                return
            stop = threading.Event()

            def loop() -> None:
                while True:
                    ttls = [e.ttl for e in self._entries_for(None) if e.ttl > 0]
                    if stop.wait(period or min(ttls or [self.default_ttl])):
                        return
                    self.latest_results(refresh=True)

            thread = threading.Thread(target=loop, name="mgit-health-refresh", daemon=True)
            self._background = (thread, stop)
        self.latest_results(refresh=True)
        thread.start()

    @property
    def background_running(self) -> bool:
        """Whether the refresh thread of :meth:`start_background` is running."""
        return self._background is not None

    def stop_background(self, timeout: float | None = 5.0) -> None:
        """Stop the refresh thread started by :meth:`start_background` (no-op if none)."""
        with self._lock:
            background, self._background = self._background, None
        if background is not None:
            background[1].set()
            background[0].join(timeout)


async def _bridge(future: concurrent.futures.Future[HealthCheckResult]) -> HealthCheckResult:
    """Await a concurrent future without ever cancelling it (it is shared with other callers)."""
    import asyncio

    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[HealthCheckResult] = loop.create_future()

    def copy(done: concurrent.futures.Future[HealthCheckResult]) -> None:
        if not waiter.done():
            waiter.set_result(done.result())

    def callback(done: concurrent.futures.Future[HealthCheckResult]) -> None:
        try:
            loop.call_soon_threadsafe(copy, done)
        except RuntimeError:  # the loop closed while the check ran
            pass

    future.add_done_callback(callback)
    return await waiter


def _register_metrics(registry: Any) -> Tuple[Any, Any, Any, Any]:
    """The four health metrics, exactly as :mod:`mgit_monitoring.metric_definitions` has them."""
    return (
        metric_definitions.register(registry, "mgit_health_overall"),
        metric_definitions.register(registry, "mgit_health_percentage"),
        metric_definitions.register(registry, "mgit_health_check_status"),
        metric_definitions.register(registry, "mgit_health_check_duration_seconds"),
    )
