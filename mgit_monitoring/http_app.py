"""The monitoring server's application layer: a pure ``route(method, path, headers)``.

:class:`MonitoringApp` answers every endpoint without sockets from the sources it is given:
a metrics source (a registry, or anything with ``snapshot()`` such as the cross-process
merged view), exposed through :func:`mgit_monitoring.exposition.expose`; a health checker
(or a factory that builds one on the first health request), whose cached results answer
health and probes; and clocks. It reaches for no process-wide default: the callers
(:mod:`mgit_monitoring.server`'s ``MonitoringServer``, the CLI) choose those.
:mod:`mgit_monitoring.server` puts the app on a socket; tests call :meth:`MonitoringApp.route`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import urlsplit

from mgit_monitoring.exposition import FORMAT_JSON, Exposition, MetricsSource, expose
from mgit_monitoring.health_report import (
    health_to_dict,
    http_status_for,
    overall_status,
    to_health_json,
)
from mgit_monitoring.version import __version__

if TYPE_CHECKING:  # hashlib and hmac (~4 MB): loaded by the CLI only when auth is on
    from mgit_monitoring.http_auth import HttpAuth

__all__ = [
    "ENDPOINTS",
    "QUIET_ROUTES",
    "MonitoringApp",
    "Response",
    "error_response",
    "route_of",
]

_log = logging.getLogger("mgit_monitoring.server")

#: path -> (key in /info's "endpoints", description). The route templates of the server.
ENDPOINTS: Mapping[str, Tuple[str, str]] = {
    "/metrics": ("metrics", "Prometheus metrics (text 0.0.4 or OpenMetrics by Accept; gzip)"),
    "/metrics/json": ("metrics_json", "the same metrics as JSON"),
    "/health": ("health", "overall health: 200 healthy or degraded, 503 unhealthy"),
    "/health/ready": ("readiness", "Kubernetes readiness probe (cached health)"),
    "/health/live": ("liveness", "Kubernetes liveness probe (no external checks)"),
    "/health/detailed": ("detailed_health", "every check with its details"),
    "/info": ("info", "version, process, uptime and non-secret configuration"),
    "/status": ("status", "a one-line status summary"),
    "/history": ("history", "operations per minute over the last hour, from the shared store"),
}
#: Routes whose successful requests are logged at DEBUG (scrapes and probes), not INFO.
QUIET_ROUTES = frozenset({"/metrics", "/health/live", "/health/ready"})
_ALLOW = "GET, HEAD, OPTIONS"
_JSON = "application/json"
_HEALTH_JSON = "application/health+json"
#: A render's inputs: (format or None to negotiate, Accept, Accept-Encoding). Concurrent
#: scrapes with equal keys share one render.
_RenderKey = Tuple[Union[str, None], Union[str, None], Union[str, None]]
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Response(NamedTuple):
    """An HTTP response: status code, header pairs, body bytes (empty for HEAD)."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


def _utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def _respond(
    status: int, ctype: str, body: bytes, extra: Sequence[Tuple[str, str]] = ()
) -> Response:
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
    return Response(status, headers, body)


def _json_response(status: int, obj: Any, extra: Sequence[Tuple[str, str]] = ()) -> Response:
    body = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    return _respond(status, _JSON, body, [("Cache-Control", "no-store"), *extra])


def error_response(status: int, message: str, extra: Sequence[Tuple[str, str]] = ()) -> Response:
    """A JSON error ``{"error": message, "status": status}`` (never exception text)."""
    return _json_response(status, {"error": message, "status": status}, extra)


def route_of(path: str) -> Tuple[str, str]:
    """(path without query or trailing slash, route template: that path or "other").

    Never raises: a target ``urlsplit`` refuses (an absolute URI with a broken bracketed
    host, ``http://[::1/metrics``) is kept whole, which routes to nothing ("other")."""
    try:
        target = urlsplit(path).path or "/"
    except ValueError:
        return path, "other"
    if len(target) > 1 and target.endswith("/"):
        target = target[:-1]
    return target, target if (target in ENDPOINTS or target == "/") else "other"


class _Coalescer:
    """Concurrent scrapes share one render, never one that started before they arrived.

    A request that finds a render of its key running waits for the *next* render, which
    every request arriving meanwhile joins; so under load one render serves many scrapes,
    and a scrape still sees every update made before it was received.
    """

    class _Flight:
        __slots__ = ("done", "error", "result")

        def __init__(self) -> None:
            self.done = threading.Event()
            self.result: Any = None
            self.error: BaseException | None = None

    def __init__(self, produce: Callable[[Any], Any], timeout: float = 30.0) -> None:
        self._produce = produce
        self._timeout = timeout
        self._lock = threading.Lock()
        self._running: Dict[Any, _Coalescer._Flight] = {}
        self._pending: Dict[Any, _Coalescer._Flight] = {}

    def get(self, key: Any) -> Any:
        """The value for ``key`` from a render that started after this call."""
        flight = self._Flight()
        with self._lock:
            joined = self._pending.get(key)
            ahead = self._running.get(key)
            if joined is None:
                if ahead is None:
                    self._running[key] = flight
                else:
                    self._pending[key] = flight
        if joined is not None:  # wait outside the lock: the runner needs it to finish
            return self._wait(joined)
        if ahead is not None:
            ahead.done.wait(self._timeout)
            with self._lock:
                if self._pending.get(key) is flight:
                    del self._pending[key]
                self._running[key] = flight
        try:
            flight.result = self._produce(key)
        except Exception as exc:  # handed to every waiter
            flight.error = exc
        finally:
            with self._lock:
                if self._running.get(key) is flight:
                    del self._running[key]
            flight.done.set()
        return self._wait(flight)

    def _wait(self, flight: _Coalescer._Flight) -> Any:
        if not flight.done.wait(self._timeout):
            raise TimeoutError("metrics render timed out")
        if flight.error is not None:
            raise flight.error
        return flight.result


class MonitoringApp:
    """The endpoints as a pure function: ``route(method, path, headers) -> Response``.

    ``metrics`` is what ``/metrics`` exposes: a registry, or anything with ``snapshot()``.
    Health comes from ``health_checker``, or from the checker ``health_factory()`` returns,
    called once, on the first health request (so a ``simple`` app that is only scraped
    builds none). ``auth`` is an :class:`~mgit_monitoring.http_auth.HttpAuth` or None (open).
    Health answers come from the checker's cache; stale checks are re-run behind the answer
    (each within its ttl), and outside ``simple`` mode :meth:`start` starts the checker's
    background refresher too. ``settings`` is extra non-secret configuration shown by
    ``/info``; ``clock`` (monotonic, for uptime) and ``wall_clock`` (for timestamps) are
    ``time.monotonic`` and ``time.time`` unless a test gives its own.
    With ``instrument`` the app counts its own traffic on ``metrics`` (which then needs
    ``counter()`` and ``histogram()``) in ``mgit_monitoring_http_requests_total{handler,code}``
    and ``mgit_monitoring_http_request_duration_seconds{handler}`` (route templates only).
    """

    def __init__(
        self,
        *,
        metrics: MetricsSource,
        health_checker: Any = None,
        health_factory: Callable[[], Any] | None = None,
        auth: HttpAuth | None = None,
        simple: bool = False,
        instrument: bool = True,
        settings: Mapping[str, Any] | None = None,
        history: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if (health_checker is None) == (health_factory is None):
            raise TypeError("MonitoringApp needs exactly one of health_checker, health_factory")
        self.metrics = metrics
        self.health = _HealthView(health_checker, health_factory, background=not simple)
        self.auth = auth
        self.simple = simple
        self.settings: Dict[str, Any] = dict(settings or {})
        #: Where /history reads past operations: a Store (``query_traces``) or None.
        self.history = history
        self._clock = clock
        self._wall_clock = wall_clock
        self.started = wall_clock()
        self._started_mono = clock()
        #: Set while the server drains: readiness turns 503 so traffic moves elsewhere.
        self.draining = False
        self._count_lock = threading.Lock()
        self.request_count = 0
        self._renders = _Coalescer(self._render)
        # The server's own request metrics live on the source's registry when it has one
        # (SharedMetrics, MetricsCollector), else on the source itself (a Registry).
        own = getattr(metrics, "registry", metrics)
        self._instruments = _Instruments(own) if instrument else None
        self._pages: Dict[str, Callable[[Dict[str, str]], Response]] = {
            "/": self._page,
            "/history": self._history,
            "/metrics": self._metrics,
            "/metrics/json": self._metrics_json,
            "/health": self._health,
            "/health/ready": self._ready,
            "/health/live": self._live,
            "/health/detailed": self._detailed,
            "/info": self._info,
            "/status": self._status,
        }

    def start(self) -> None:
        """Start background work (the health refresher; nothing in simple mode)."""
        self.health.start()

    def stop(self) -> None:
        """Stop background work."""
        self.health.stop()

    def store_info(self) -> Dict[str, Any]:
        """``state_dir`` and ``store`` mode (read-write, read-only, memory or unusable, with
        ``store_problem`` then) of the store ``history`` reads, for /info and the log."""
        store = self.history
        path = getattr(store, "path", None)
        if store is None or not hasattr(store, "mode"):
            return {"state_dir": None, "store": "memory"}
        info: Dict[str, Any] = {
            "state_dir": os.path.dirname(path) if path else None,
            "store": store.mode,
        }
        problem = getattr(store, "problem", None)
        if problem:
            info["store_problem"] = problem
        return info

    def uptime(self) -> float:
        """Seconds since the app was created."""
        return self._clock() - self._started_mono

    def route(self, method: str, path: str, headers: Any = None) -> Response:
        """Answer one request; HEAD gets GET's headers and no body. Never raises.

        ``headers`` is anything with ``items()`` (a dict, or the server's fields in order,
        repeats included); names match in any case and the first value of a repeated field
        counts, as ``get`` of the server's fields says. Repeated ``Content-Length`` fields
        that differ are a 400 (RFC 9112 6.3)."""
        start = time.perf_counter()
        hdrs: Dict[str, str] = {}
        conflict = False
        for key, value in (headers or {}).items():
            name = key.lower()
            first = hdrs.setdefault(name, value)
            if name == "content-length" and first.strip() != value.strip():
                conflict = True
        target, handler = route_of(path)
        try:
            if conflict:
                response = error_response(400, "Conflicting Content-Length")
            else:
                response = self._dispatch(method, target, hdrs)
        except Exception:
            # The exception text goes to the log, never to the client.
            _log.exception("error answering %s %s", method, handler)
            response = error_response(500, "Internal server error")
        if method == "HEAD":
            response = Response(response.status, response.headers, b"")
        with self._count_lock:
            self.request_count += 1
        if self._instruments is not None:
            self._instruments.record(handler, response.status, time.perf_counter() - start)
        return response

    def _dispatch(self, method: str, target: str, hdrs: Dict[str, str]) -> Response:
        auth = self.auth
        if auth is not None and not auth.allows(target, hdrs.get("authorization")):
            challenges = [("WWW-Authenticate", c) for c in auth.challenges()]
            return error_response(401, "Unauthorized", challenges)
        page = self._pages.get(target)
        if page is None:
            return error_response(404, "Not found")
        if method == "OPTIONS":
            return _respond(204, "text/plain; charset=utf-8", b"", [("Allow", _ALLOW)])
        if method not in ("GET", "HEAD"):
            return error_response(405, "Method not allowed", [("Allow", _ALLOW)])
        length = hdrs.get("content-length")
        # ASCII digits only: str.isdigit() holds for "²", which int() refuses.
        if length is not None and not (length.isascii() and length.isdigit() and len(length) < 19):
            return error_response(400, "Invalid Content-Length")
        if "transfer-encoding" in hdrs or (length is not None and int(length) > 0):
            return error_response(413, "A request body is not accepted here")
        return page(hdrs)

    # -- endpoints --------------------------------------------------------------------------
    def _metrics(self, hdrs: Dict[str, str]) -> Response:
        return self._exposition((None, hdrs.get("accept"), hdrs.get("accept-encoding")))

    def _metrics_json(self, hdrs: Dict[str, str]) -> Response:
        return self._exposition((FORMAT_JSON, None, hdrs.get("accept-encoding")))

    def _render(self, key: _RenderKey) -> Exposition:
        fmt, accept, accept_encoding = key
        return expose(self.metrics, accept, accept_encoding, fmt=fmt)

    def _exposition(self, key: _RenderKey) -> Response:
        self.health.refresh_stale()
        try:
            # Concurrent scrapes with the same key share one render (see _Coalescer).
            out = self._renders.get(key)
        except Exception:
            # A failing collector gives 500, never a truncated 200 (OpenMetrics: partial
            # expositions are erroneous in their entirety).
            _log.exception("metrics export failed")
            return error_response(500, "Failed to export metrics")
        extra = [("Cache-Control", "no-store"), ("Vary", "Accept, Accept-Encoding")]
        if out.content_encoding:
            extra.append(("Content-Encoding", out.content_encoding))
        return _respond(200, out.content_type, out.body, extra)

    def _health(self, hdrs: Dict[str, str]) -> Response:
        ietf = _HEALTH_JSON in hdrs.get("accept", "")
        report, code = self.health.report(ietf)
        body = (json.dumps(report, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        return _respond(
            code, _HEALTH_JSON if ietf else _JSON, body, [("Cache-Control", "no-store")]
        )

    def _ready(self, hdrs: Dict[str, str]) -> Response:
        ready, reason = self.health.ready()
        if self.draining:
            ready, reason = False, "shutting down"
        body: Dict[str, Any] = {"status": "ready" if ready else "not_ready"}
        if not ready:
            body["reason"] = reason
        body["timestamp"] = _utc_iso(self._wall_clock())
        return _json_response(200 if ready else 503, body)

    def _live(self, hdrs: Dict[str, str]) -> Response:
        alive, reason = self.health.alive()
        body = {
            "status": "alive" if alive else "not_alive",
            "timestamp": _utc_iso(self._wall_clock()),
        }
        if not alive:
            body["reason"] = reason
        return _json_response(200 if alive else 503, body)

    def _detailed(self, hdrs: Dict[str, str]) -> Response:
        return _json_response(200, self.health.detailed())

    def _status(self, hdrs: Dict[str, str]) -> Response:
        state = self.health.report(False)[0].get("status")
        body = {
            # One word per state: the overall health, as /health and `health --json` say it.
            "status": state,
            "healthy": state == "healthy",
            "timestamp": _utc_iso(self._wall_clock()),
            "uptime_seconds": round(self.uptime(), 3),
        }
        return _json_response(200, body)

    def _info(self, hdrs: Dict[str, str]) -> Response:
        monitoring = {
            "simple": self.simple,
            "auth": self.auth.describe() if self.auth is not None else "none",
            "public_probes": bool(self.auth and self.auth.public_probes),
            "health_refresh": "on request" if self.simple else "background",
        }
        monitoring.update(self.store_info())
        monitoring.update(self.settings)
        body = {
            "application": "mgit",
            "name": "mgit-monitoring",
            "version": __version__,
            "python": sys.version.split()[0],
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "start_time": _utc_iso(self.started),
            "current_time": _utc_iso(self._wall_clock()),
            "uptime_seconds": round(self.uptime(), 3),
            "request_count": self.request_count,
            "monitoring": monitoring,
            "endpoints": {key: path for path, (key, _) in ENDPOINTS.items()},
        }
        return _json_response(200, body)

    def _page(self, hdrs: Dict[str, str]) -> Response:
        from mgit_monitoring.page import page_response  # hashlib: only when the page is asked

        body, headers = page_response()
        return Response(200, list(headers), body)

    def _history(self, hdrs: Dict[str, str]) -> Response:
        from mgit_monitoring.page import history_response

        body, headers = history_response(self.history, now=self._wall_clock())
        return Response(200, list(headers), body)


# -- thin adapters over the other modules ---------------------------------------------------


class _HealthView:
    """What the endpoints need from a :class:`~mgit_monitoring.health.HealthChecker`.

    ``/health`` waits (bounded by the checker's deadline) only until every check has a first
    result; after that it answers from the cache and stale checks re-run behind the answer.
    Probes use the checker's probe methods, which never wait on a slow check.
    """

    def __init__(
        self, checker: Any, factory: Callable[[], Any] | None, *, background: bool
    ) -> None:
        self._checker = checker
        self._factory = factory
        self._lock = threading.Lock()
        self._background = background
        self._started_refresher = False
        self._warm = False

    @property
    def checker(self) -> Any:
        checker = self._checker
        if checker is None:
            with self._lock:  # the factory runs once, on the first health request
                if self._checker is None:
                    self._checker = self._factory()  # type: ignore[misc]
                checker = self._checker
        return checker

    def start(self) -> None:
        if not self._background:
            return  # --simple: no refresher, and no checker built until health is asked
        checker = self.checker
        # A refresher someone else started is theirs to stop: start (and later stop) only
        # when none runs.
        if not getattr(checker, "background_running", False):
            checker.start_background()
            self._started_refresher = True

    def stop(self) -> None:
        if self._started_refresher:
            self._started_refresher = False
            self.checker.stop_background()

    def refresh_stale(self) -> None:
        """A scrape re-runs stale checks behind its answer, so the ``mgit_health_*`` gauges it
        exposes do not stay at -1 (unknown) on a ``--simple`` server nobody probes. Never
        waits, never raises, and never builds a checker just for a scrape."""
        checker = self._checker
        if checker is None:
            return
        try:
            checker.latest_results(refresh=True)
        except Exception:
            _log.debug("health refresh on scrape failed", exc_info=True)

    def _results(self) -> Any:
        checker = self.checker
        if not self._warm:
            results = checker.run_checks_sync(None, use_cache=True)
            self._warm = True
            return results
        return checker.latest_results(refresh=True)

    def report(self, ietf: bool) -> Tuple[Dict[str, Any], int]:
        results = self._results()
        code = http_status_for(overall_status(results))
        if ietf:
            doc = to_health_json(results, service_id="mgit-monitoring", version=__version__)
            return doc, code
        return health_to_dict(results), code

    def detailed(self) -> Dict[str, Any]:
        self._warm = True
        return self.checker.check_health_sync(use_cache=True)  # type: ignore[no-any-return,unused-ignore]

    def ready(self) -> Tuple[bool, str]:
        probe = self.checker.readiness_sync()
        if probe.ok:
            return True, "ready"
        # Names only: the probe may be public, and check messages can hold details.
        failing = [r.name for r in probe.checks if r.status in ("unhealthy", "unknown")]
        return False, "failing checks: " + ", ".join(failing) if failing else "not ready"

    def alive(self) -> Tuple[bool, str]:
        probe = self.checker.liveness_sync()
        return bool(probe.ok), "alive" if probe.ok else "heartbeat overdue"


class _Instruments:
    """The server's own request counter and duration histogram (route templates as labels)."""

    def __init__(self, registry: Any) -> None:
        self._requests = registry.counter(
            "mgit_monitoring_http_requests_total",
            "HTTP requests answered by the monitoring server, by route and status code.",
            ("handler", "code"),
        )
        self._duration = registry.histogram(
            "mgit_monitoring_http_request_duration_seconds",
            "Time to build a monitoring server response in seconds, by route.",
            ("handler",),
            buckets=_HTTP_BUCKETS,
        )
        self._children: Dict[Tuple[str, int], Tuple[Any, Any]] = {}

    def record(self, handler: str, code: int, seconds: float) -> None:
        try:
            pair = self._children.get((handler, code))
            if pair is None:
                pair = (self._requests.labels(handler, str(code)), self._duration.labels(handler))
                self._children[(handler, code)] = pair
            pair[0].inc()
            pair[1].observe(seconds)
        except Exception:  # metrics never break a response
            _log.debug("request metric update failed", exc_info=True)
