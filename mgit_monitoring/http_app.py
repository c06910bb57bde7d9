"""The monitoring server's application layer: a pure ``route(method, path, headers)``.

:class:`MonitoringApp` answers every endpoint without sockets: it renders metrics from a
registry (or anything with ``snapshot()``, such as the cross-process merged view) with
content negotiation and gzip, answers health and probes from a health checker's cached
results, and counts its own requests. :mod:`mgit_monitoring.server` puts it on a socket;
tests call :meth:`MonitoringApp.route` directly.
"""

from __future__ import annotations

import html
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Sequence, Tuple
from urllib.parse import urlsplit

from mgit_monitoring.http_auth import HttpAuth

__all__ = ["ENDPOINTS", "MonitoringApp", "Response"]

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
}
_QUIET = frozenset({"/metrics", "/health/live", "/health/ready"})  # logged at DEBUG
_ALLOW = "GET, HEAD, OPTIONS"
_JSON = "application/json"
_HEALTH_JSON = "application/health+json"
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


def _error(status: int, message: str, extra: Sequence[Tuple[str, str]] = ()) -> Response:
    return _json_response(status, {"error": message, "status": status}, extra)


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

    ``registry`` (or ``collector``, whose registry is used) is what ``/metrics`` exposes;
    ``health_checker`` answers the health endpoints; omitted, the package defaults are used.
    ``auth`` is an :class:`~mgit_monitoring.http_auth.HttpAuth` or None (open). Health comes
    from the checker's cache; stale checks are re-run behind the answer (each within its ttl),
    and outside ``simple`` mode the checker's background refresher keeps them warm too.
    ``settings`` is extra non-secret configuration shown by ``/info``.
    The server's own traffic is counted in ``mgit_monitoring_http_requests_total{handler,code}``
    and ``mgit_monitoring_http_request_duration_seconds{handler}`` (route templates only).
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        collector: Any = None,
        health_checker: Any = None,
        auth: HttpAuth | None = None,
        simple: bool = False,
        instrument: bool = True,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.metrics = _MetricsView(registry, collector)
        self.health = _HealthView(health_checker, background=not simple)
        self.auth = auth
        self.simple = simple
        self.settings: Dict[str, Any] = dict(settings or {})
        self.started = time.time()
        self._started_mono = time.monotonic()
        #: Set while the server drains: readiness turns 503 so traffic moves elsewhere.
        self.draining = False
        self._count_lock = threading.Lock()
        self.request_count = 0
        self._renders = _Coalescer(self.metrics.produce)
        self._instruments = _Instruments(self.metrics.registry) if instrument else None
        self._pages: Dict[str, Callable[[Dict[str, str]], Response]] = {
            "/": self._index,
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

    def uptime(self) -> float:
        """Seconds since the app was created."""
        return time.monotonic() - self._started_mono

    def route(self, method: str, path: str, headers: Any = None) -> Response:
        """Answer one request; HEAD gets GET's headers and no body. Never raises."""
        start = time.perf_counter()
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        target, handler = _route_of(path)
        try:
            response = self._dispatch(method, target, hdrs)
        except Exception:
            # The exception text goes to the log, never to the client.
            _log.exception("error answering %s %s", method, handler)
            response = _error(500, "Internal server error")
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
            return _error(401, "Unauthorized", challenges)
        page = self._pages.get(target)
        if page is None:
            return _error(404, "Not found")
        if method == "OPTIONS":
            return _respond(204, "text/plain; charset=utf-8", b"", [("Allow", _ALLOW)])
        if method not in ("GET", "HEAD"):
            return _error(405, "Method not allowed", [("Allow", _ALLOW)])
        length = hdrs.get("content-length")
        if length is not None and not (length.isdigit() and len(length) < 19):
            return _error(400, "Invalid Content-Length")
        if "transfer-encoding" in hdrs or (length is not None and int(length) > 0):
            return _error(413, "A request body is not accepted here")
        return page(hdrs)

    # -- endpoints --------------------------------------------------------------------------
    def _metrics(self, hdrs: Dict[str, str]) -> Response:
        fmt = self.metrics.negotiate(hdrs.get("accept", ""))
        return self._metrics_body(fmt, hdrs)

    def _metrics_json(self, hdrs: Dict[str, str]) -> Response:
        return self._metrics_body("json", hdrs)

    def _metrics_body(self, fmt: str, hdrs: Dict[str, str]) -> Response:
        self.health.refresh_stale()
        gz = self.metrics.accepts_gzip(hdrs.get("accept-encoding", ""))
        try:
            body = self._renders.get((fmt, gz))
        except Exception:
            # A failing collector gives 500, never a truncated 200 (OpenMetrics: partial
            # expositions are erroneous in their entirety).
            _log.exception("metrics export failed (%s)", fmt)
            return _error(500, "Failed to export metrics")
        extra = [("Cache-Control", "no-store"), ("Vary", "Accept, Accept-Encoding")]
        if gz:
            extra.append(("Content-Encoding", "gzip"))
        return _respond(200, self.metrics.content_type(fmt), body, extra)

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
        body["timestamp"] = _utc_iso(time.time())
        return _json_response(200 if ready else 503, body)

    def _live(self, hdrs: Dict[str, str]) -> Response:
        alive, reason = self.health.alive()
        body = {"status": "alive" if alive else "not_alive", "timestamp": _utc_iso(time.time())}
        if not alive:
            body["reason"] = reason
        return _json_response(200 if alive else 503, body)

    def _detailed(self, hdrs: Dict[str, str]) -> Response:
        return _json_response(200, self.health.detailed())

    def _status(self, hdrs: Dict[str, str]) -> Response:
        state = self.health.report(False)[0].get("status")
        body = {
            "status": "ok" if state == "healthy" else "degraded",
            "healthy": state == "healthy",
            "health": state,
            "timestamp": _utc_iso(time.time()),
            "uptime_seconds": round(self.uptime(), 3),
        }
        return _json_response(200, body)

    def _info(self, hdrs: Dict[str, str]) -> Response:
        from mgit_monitoring import __version__

        now = time.time()
        monitoring = {
            "simple": self.simple,
            "auth": self.auth.describe() if self.auth is not None else "none",
            "public_probes": bool(self.auth and self.auth.public_probes),
            "health_refresh": "on request" if self.simple else "background",
        }
        monitoring.update(self.settings)
        body = {
            "application": "mgit",
            "name": "mgit-monitoring",
            "version": __version__,
            "python": sys.version.split()[0],
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "start_time": _utc_iso(self.started),
            "current_time": _utc_iso(now),
            "uptime_seconds": round(self.uptime(), 3),
            "request_count": self.request_count,
            "monitoring": monitoring,
            "endpoints": {key: path for path, (key, _) in ENDPOINTS.items()},
        }
        return _json_response(200, body)

    def _index(self, hdrs: Dict[str, str]) -> Response:
        rows = "\n".join(
            f'<li><a href="{path}"><code>{path}</code></a> - {html.escape(text)}</li>'
            for path, (_, text) in ENDPOINTS.items()
        )
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>mgit Monitoring</title>'
            "</head>\n<body><h1>mgit Monitoring</h1>\n<ul>\n"
            f"{rows}\n</ul>\n<p>Prometheus scrapes <code>/metrics</code>. Kubernetes probes: "
            "<code>/health/live</code> (liveness) and <code>/health/ready</code> "
            "(readiness).</p>\n</body></html>\n"
        )
        return _respond(200, "text/html; charset=utf-8", page.encode("utf-8"))


# -- thin adapters over the other modules ---------------------------------------------------


class _HealthView:
    """What the endpoints need from a :class:`~mgit_monitoring.health.HealthChecker`.

    ``/health`` waits (bounded by the checker's deadline) only until every check has a first
    result; after that it answers from the cache and stale checks re-run behind the answer.
    Probes use the checker's probe methods, which never wait on a slow check.
    """

    def __init__(self, checker: Any, *, background: bool) -> None:
        self._given = checker
        self._checker: Any = None
        self._background = background
        self._started_refresher = False
        self._warm = False

    @property
    def checker(self) -> Any:
        if self._checker is None:
            if self._given is None:
                from mgit_monitoring.health import get_health_checker

                self._checker = get_health_checker()  # first health request, not start-up
            else:
                self._checker = self._given
        return self._checker

    def start(self) -> None:
        if not self._background:
            return  # --simple: no refresher, and no default checker until health is asked
        checker = self.checker
        if getattr(checker, "_background", None) is None:
            checker.start_background()
            self._started_refresher = True

    def stop(self) -> None:
        if self._started_refresher:
            self._started_refresher = False
            self.checker.stop_background()

    def refresh_stale(self) -> None:
        """Without a background refresher (``--simple``), a scrape re-runs stale checks behind
        its answer: the ``mgit_health_*`` gauges it exposes would otherwise stay at -1
        (unknown) forever on a server nobody probes. Never waits, never raises, and never
        creates the default checker just for a scrape."""
        try:
            checker = self._given
            if checker is not None and getattr(checker, "_background", None) is None:
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
        from mgit_monitoring import __version__
        from mgit_monitoring.health import (
            health_to_dict,
            http_status_for,
            overall_status,
            to_health_json,
        )

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


class _MetricsView:
    """What ``/metrics`` needs from exposition.py: negotiation, rendering and gzip.

    The source is anything with ``snapshot()`` (a Registry, or a merged cross-process view).
    """

    def __init__(self, registry: Any, collector: Any) -> None:
        if registry is None and collector is not None:
            registry = getattr(collector, "registry", None)
        if registry is None:
            from mgit_monitoring.collector import get_metrics_collector

            registry = get_metrics_collector().registry
        self.registry = registry

    @staticmethod
    def negotiate(accept: str) -> str:
        from mgit_monitoring.exposition import choose_format

        return choose_format(accept)[0]

    @staticmethod
    def accepts_gzip(accept_encoding: str) -> bool:
        from mgit_monitoring.exposition import accepts_gzip

        return accepts_gzip(accept_encoding)

    @staticmethod
    def content_type(fmt: str) -> str:
        from mgit_monitoring import exposition as e

        types = {e.FORMAT_OPENMETRICS: e.CONTENT_TYPE_OPENMETRICS, "json": e.CONTENT_TYPE_JSON}
        return types.get(fmt, e.CONTENT_TYPE_TEXT)

    def produce(self, key: Tuple[str, bool]) -> bytes:
        from mgit_monitoring.exposition import gzip_body, render

        fmt, gz = key
        body = render(self.registry.snapshot(), fmt)
        return gzip_body(body, "gzip")[0] if gz else body


# -- the socket layer -----------------------------------------------------------------------


def _route_of(path: str) -> Tuple[str, str]:
    """(path without query or trailing slash, route template: that path or "other")."""
    target = urlsplit(path).path or "/"
    if len(target) > 1 and target.endswith("/"):
        target = target[:-1]
    return target, target if (target in ENDPOINTS or target == "/") else "other"
