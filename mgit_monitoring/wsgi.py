"""The monitoring endpoints as a WSGI application, for mounting inside an existing web app.

:func:`make_wsgi_app` is prometheus_client's ``make_wsgi_app`` for this package: a PEP 3333
callable that answers every route of the standalone server (``/metrics`` with ``Accept``
negotiation and gzip, ``/metrics/json``, ``/health`` and ``/health/detailed``, the probes,
``/info``, ``/status``, the page at ``/`` and ``/history``) from the same pure
:class:`~mgit_monitoring.http_app.MonitoringApp`, so the answers are byte for byte the ones
``mgit-monitoring server`` gives. Run it under any WSGI server (waitress, gunicorn,
mod_wsgi, ``wsgiref``), or mount it under a prefix next to an existing application::

    from mgit_monitoring.wsgi import make_wsgi_app

    monitoring = make_wsgi_app()

    def application(environ, start_response):     # the site's own app, plus /monitoring
        path = environ.get("PATH_INFO", "")
        if path == "/monitoring" or path.startswith("/monitoring/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/monitoring"
            environ["PATH_INFO"] = path[len("/monitoring"):]
            return monitoring(environ, start_response)
        return site(environ, start_response)

Routing uses ``PATH_INFO`` only, so a mount point in ``SCRIPT_NAME`` (what
``DispatcherMiddleware``-style mounting and ``WSGIScriptAlias`` set) needs no
configuration; the prefix itself without a slash is redirected to ``prefix/`` so the page's
relative links resolve. Nothing here starts a thread: health checks are refreshed on
request (as with ``server --simple``); the host application owns its processes and threads.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Mapping
from urllib.parse import quote

from mgit_monitoring.http_app import MonitoringApp, Response
from mgit_monitoring.http_auth import HttpAuth

__all__ = ["MonitoringWSGIApp", "make_wsgi_app"]

#: PEP 3333 forbids an application to set these (the server owns the connection).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

StartResponse = Callable[..., Any]


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _request_headers(environ: Mapping[str, Any]) -> Dict[str, str]:
    """The request headers a WSGI server put into ``environ``, by lower-case name."""
    headers: Dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            headers[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(key)
        if value:  # servers set "" for an absent header
            headers[key.replace("_", "-").lower()] = value
    return headers


class MonitoringWSGIApp:
    """A WSGI callable around a :class:`~mgit_monitoring.http_app.MonitoringApp` (``.app``)."""

    def __init__(self, app: MonitoringApp) -> None:
        self.app = app

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        path = str(environ.get("PATH_INFO") or "")
        script_name = str(environ.get("SCRIPT_NAME") or "")
        if not path and script_name and method in ("GET", "HEAD"):
            # Mounted at /prefix and asked for /prefix: the page's relative links ("metrics",
            # "health/detailed") only resolve under /prefix/.
            return self._redirect(script_name, environ, start_response)
        response = self.app.route(method, path or "/", _request_headers(environ))
        return self._send(response, start_response)

    @staticmethod
    def _send(response: Response, start_response: StartResponse) -> List[bytes]:
        headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
        start_response(_status_line(response.status), headers)
        return [response.body] if response.body else []

    def _redirect(
        self, script_name: str, environ: Mapping[str, Any], start_response: StartResponse
    ) -> List[bytes]:
        # SCRIPT_NAME is the decoded path as latin-1 text (PEP 3333): quote its bytes back.
        location = quote(script_name.encode("latin-1", "replace"), safe="/") + "/"
        query = environ.get("QUERY_STRING")
        if query:
            location += "?" + str(query)
        headers = [
            ("Location", location),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "0"),
        ]
        start_response(_status_line(308), headers)
        return []


def make_wsgi_app(
    metrics: Any = None,
    health_checker: Any = None,
    *,
    health_factory: Callable[[], Any] | None = None,
    auth: HttpAuth | None = None,
    history: Any = None,
    instrument: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> MonitoringWSGIApp:
    """A WSGI application serving the monitoring endpoints; see the module docstring.

    ``metrics`` is what ``/metrics`` exposes: a :class:`~mgit_monitoring.registry.Registry`,
    a :class:`~mgit_monitoring.collector.MetricsCollector`, or anything with ``snapshot()``
    (such as :class:`~mgit_monitoring.shared_state.SharedMetrics`, the merged view of every
    process that flushed to the store: the right source under a multi-process WSGI server).
    None: the default collector's registry, the one the ``monitor_*`` decorators record into.
    Health comes from ``health_checker``, else from ``health_factory()`` (called once, on
    the first health request), else from the process-wide default checker
    (:func:`~mgit_monitoring.default_checks.get_health_checker`), so an app that is only
    scraped builds no checker. ``auth`` (an :class:`~mgit_monitoring.http_auth.HttpAuth`)
    protects the routes as on the standalone server; ``history`` (a
    :class:`~mgit_monitoring.store.Store`) feeds ``/history``. ``instrument=False`` leaves
    out the app's own ``mgit_monitoring_http_*`` request metrics. ``settings`` is shown by
    ``/info``. Building the app starts no thread and opens no socket or file.
    """
    if metrics is None:
        from mgit_monitoring.collector import get_metrics_collector

        metrics = get_metrics_collector().registry
    if health_checker is None and health_factory is None:
        from mgit_monitoring.default_checks import get_health_checker

        health_factory = get_health_checker
    app = MonitoringApp(
        metrics=metrics,
        health_checker=health_checker,
        health_factory=health_factory,
        auth=auth,
        simple=True,  # no background refresher: health is refreshed on request
        instrument=instrument,
        settings={"served_by": "wsgi", **dict(settings or {})},
        history=history,
    )
    return MonitoringWSGIApp(app)
