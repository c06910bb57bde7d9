"""The monitoring HTTP server: metrics, health probes and info over ``http.server``.

Three layers, each usable alone:

* :class:`~mgit_monitoring.http_app.MonitoringApp` (in :mod:`mgit_monitoring.http_app`) - a
  pure ``route(method, path, headers) -> Response``: no sockets, so most behaviour is
  testable by calling it;
* :class:`MonitoringServer` - a ``ThreadingHTTPServer`` around an app, with HTTP/1.1
  keep-alive, a cap on concurrent connections (excess gets a fast 503), per-request read
  deadlines (slowloris), request line and header size limits, optional TLS and auth, a
  graceful drain on :meth:`~MonitoringServer.close`; :func:`start_monitoring_server` runs
  one in a background thread for applications and tests (port 0 works);
* :func:`serve` - the blocking loop of ``mgit-monitoring server`` (whose options live in
  :mod:`mgit_monitoring.cli`): SIGTERM/SIGINT drain and return.

Endpoints: ``/metrics`` (text 0.0.4 or OpenMetrics by ``Accept``, gzip by
``Accept-Encoding``), ``/metrics/json``, ``/health`` (200 healthy/degraded, 503 unhealthy),
``/health/ready``, ``/health/live``, ``/health/detailed``, ``/info``, ``/status`` and ``/``.
"""

from __future__ import annotations

import io
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Sequence, Tuple
from urllib.parse import urlsplit

from mgit_monitoring.errors import ConfigError, ServerError
from mgit_monitoring.http_app import (
    ENDPOINTS,
    QUIET_ROUTES,
    MonitoringApp,
    Response,
    error_response,
    route_of,
)

if TYPE_CHECKING:  # ssl costs ~4 MB of resident memory: imported only to serve TLS
    import ssl

    from mgit_monitoring.http_auth import HttpAuth  # hashlib and hmac: only when auth is on

__all__ = [
    "ENDPOINTS",
    "MonitoringApp",
    "MonitoringServer",
    "Response",
    "TLSConfig",
    "serve",
    "start_monitoring_server",
]

_log = logging.getLogger("mgit_monitoring.server")
_MAX_LINE = 8192  # request line; longer -> 414
_MAX_HEAD = 16384  # all header lines together; more -> 431
_MAX_HEADER_COUNT = 100
_access_log = logging.getLogger("mgit_monitoring.server.access")


class TLSConfig(NamedTuple):
    """TLS for the server: PEM ``certfile`` (chain), ``keyfile``; ``client_ca`` requires client
    certificates signed by that CA (mutual TLS). TLS 1.2 is the minimum version."""

    certfile: str
    keyfile: str | None = None
    client_ca: str | None = None

    def context(self) -> ssl.SSLContext:
        """Build the server-side ``ssl.SSLContext``; a bad file raises ConfigError."""
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile)
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            msg = f"cannot use TLS certificate {self.certfile!r} / key {self.keyfile!r}: {reason}"
            raise ConfigError(msg) from None
        return ctx


class _DeadlineReader(io.RawIOBase):
    """Socket reads bounded by one deadline for a whole request head (slowloris guard).

    A per-recv timeout alone lets a client pin a thread forever by sending one byte just
    before each timeout; here every recv gets only the time left until the deadline.
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("request read deadline passed")
            self.sock.settimeout(remaining)
        return int(self.sock.recv_into(buffer))


class _Writer:
    """The ``wfile`` stdlib paths expect; our own responses use one ``sendall``."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _busy_response() -> bytes:
    body = b'{"error":"Server busy","status":503}\n'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_BUSY = _busy_response()
_HEX = frozenset("0123456789abcdef")
_PRINTABLE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _request_ids(headers: Any) -> Tuple[str | None, str | None]:
    """(trace id to adopt or None, X-Correlation-ID value to echo or None) from the headers."""
    from mgit_monitoring.context import parse_traceparent

    given = headers.get("X-Correlation-ID")
    echo = given if given and len(given) <= 128 and set(given) <= _PRINTABLE_ID else None
    parent = parse_traceparent(headers.get("traceparent"))
    if parent is not None:
        return parent.trace_id, echo
    # correlation_context maps a foreign id (not 32 hex) to a stable trace-id and logs it.
    return echo, echo


class _Headers:
    """A request's header fields: case-insensitive ``get``, ``get_all``, ``in``, ``items``.

    Parsed here rather than by ``http.server``/``email`` (those, with ``http.client`` and
    ``ssl`` behind them, were a third of an idle server's memory).
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: List[Tuple[str, str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: Any = None) -> Any:
        lname = name.lower()
        for key, value in self._fields:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> List[str] | None:
        lname = name.lower()
        values = [v for k, v in self._fields if k.lower() == lname]
        return values or None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> List[Tuple[str, str]]:
        return list(self._fields)


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _parse_headers(head: bytes) -> _Headers | None:
    """The fields of a request head (without its request line); None when malformed."""
    fields: List[Tuple[str, str]] = []
    for raw in head.decode("iso-8859-1").split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        if line[0] in " \t":  # obsolete line folding (RFC 9112 5.2): one value, joined
            if not fields:
                return None
            key, value = fields[-1]
            fields[-1] = (key, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN:
            return None
        fields.append((name, value.strip(" \t")))
    return _Headers(fields)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(ts: float) -> str:
    """An IMF-fixdate (RFC 9110 5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(ts)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class _Handler(socketserver.BaseRequestHandler):
    """One connection: bounded head reads, then ``app.route``, one write per response."""

    protocol_version = "HTTP/1.1"
    server_version = "mgit-monitoring"
    sys_version = ""
    server: _HTTPServer

    def setup(self) -> None:
        srv = self.server
        sock = self.request
        self._ok = True
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        sock.settimeout(srv.request_timeout)
        if srv.ssl_context is not None:
            try:
                # Handshake here, in the connection's thread under its timeout: a client that
                # stalls the handshake must not stall the accept loop.
                sock = srv.ssl_context.wrap_socket(sock, server_side=True)
            except (OSError, ValueError):
                _log.debug("TLS handshake with %s failed", self.client_address, exc_info=True)
                self._ok = False
        self.connection = sock
        self._reader = _DeadlineReader(sock)
        self.rfile = io.BufferedReader(self._reader, 16384)
        self.wfile = _Writer(sock)  # type: ignore[assignment]

    def finish(self) -> None:
        self.server.untrack(self)
        try:
            self.rfile.close()
        except OSError:
            pass
        if self.server.ssl_context is not None and self._ok:
            try:
                self.connection.close()
            except OSError:
                pass

    def handle(self) -> None:
        if not self._ok:
            return
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def date_time_string(self) -> str:
        return _http_date(time.time())

    def parse_request(self, line: bytes, head: bytes) -> bool:
        """Request line and head -> command, path, version, headers, keep-alive; on a bad
        request an error response is sent and False returned."""
        self.close_connection = True
        words = line.decode("iso-8859-1").rstrip("\r\n").split()
        if not words:
            return False
        if len(words) != 3:
            self.send_error(400)  # HTTP/0.9 (two words) is not served either
            return False
        command, path, version = words
        major_minor = version[5:].split(".") if version.startswith("HTTP/") else []
        if len(major_minor) != 2 or not all(p.isdigit() and len(p) <= 10 for p in major_minor):
            self.send_error(400)
            return False
        number = (int(major_minor[0]), int(major_minor[1]))
        if number >= (2, 0):
            self.send_error(505)
            return False
        if number < (1, 0):
            self.send_error(400)
            return False
        self.request_version = version
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        headers = _parse_headers(head)
        if headers is None:
            self.send_error(400)
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = str(headers.get("Connection", "")).lower()
        keep = number >= (1, 1)
        if connection == "close":
            keep = False
        elif connection == "keep-alive":
            keep = True
        self.close_connection = not keep
        return True

    def handle_expect_100(self) -> bool:
        # Never invite a body: the reply (413 or 405) follows without "100 Continue".
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # our access log is structured; see _log_access

    def handle_one_request(self) -> None:
        srv = self.server
        self.close_connection = True
        self._reader.deadline = time.monotonic() + srv.request_timeout
        if not srv.track(self, idle=True):
            return  # draining: take no new request on this connection
        try:
            try:
                line = self.rfile.readline(_MAX_LINE + 1)
                if line in (b"\r\n", b"\n"):  # RFC 9112: ignore one empty line before a request
                    line = self.rfile.readline(_MAX_LINE + 1)
            finally:
                srv.track(self, idle=False)
            if not line:
                return
            self._t0 = time.perf_counter()
            self.command, self.path, self.request_version = "", "", "HTTP/1.1"
            self.headers = None  # type: ignore[assignment]  # not this request's until parsed
            if len(line) > _MAX_LINE:
                self.send_error(414)
                return
            head = self._read_head()
            if head is None:
                return
            if self.parse_request(line, head):
                self._answer()
        except OSError:  # timeouts, resets, TLS errors: the connection is done
            self.close_connection = True
            _log.debug("connection from %s closed", self.client_address[0], exc_info=True)

    def _read_head(self) -> bytes | None:
        lines: List[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(_MAX_HEAD - size + 1)
            size += len(line)
            if size > _MAX_HEAD or len(lines) >= _MAX_HEADER_COUNT:
                self.send_error(431)
                return None
            if not line.endswith(b"\n"):
                return None  # the client went away mid-head
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)

    def send_error(self, code: int, message: str | None = None, explain: Any = None) -> None:
        """JSON errors (never HTML, never exception text); the connection closes after."""
        self.close_connection = True
        phrase = _phrase(code)
        self._send(error_response(code, phrase), "other")

    def _answer(self) -> None:
        from mgit_monitoring.context import correlation_context

        app = self.server.app
        headers = self.headers
        lengths = [v.strip() for v in headers.get_all("Content-Length") or ()]
        if len(set(lengths)) > 1:
            # Conflicting lengths make the framing unknowable (RFC 9112 6.3): 400 and close,
            # or the unread body would be taken as the next request on this connection.
            self.send_error(400)
            return
        if "Transfer-Encoding" in headers or any(v not in ("0", "") for v in lengths):
            self.close_connection = True  # a body we will not read makes the stream unusable
        trace_id, echo = _request_ids(headers)
        with correlation_context(operation="http_request", correlation_id=trace_id) as cid:
            response = app.route(self.command, self.path, headers)
            extra = [("X-Correlation-ID", echo or cid)]
            self._send(response, route_of(self.path)[1], extra)

    def _send(
        self, response: Response, handler: str, extra: Sequence[Tuple[str, str]] = ()
    ) -> None:
        if self.server.closing:
            self.close_connection = True
        parts = [
            f"{self.protocol_version} {response.status} {_phrase(response.status)}\r\n",
            f"Server: {self.server_version}\r\nDate: {self.date_time_string()}\r\n",
        ]
        if not any(k.lower() == "x-content-type-options" for k, _ in response.headers):
            parts.append("X-Content-Type-Options: nosniff\r\n")
        parts.extend(f"{k}: {v}\r\n" for k, v in response.headers)
        parts.extend(f"{k}: {v}\r\n" for k, v in extra)
        if self.close_connection:
            parts.append("Connection: close\r\n")
        elif self.request_version == "HTTP/1.0":
            parts.append("Connection: keep-alive\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("latin-1")
        body = response.body
        # Log before writing, so the line exists by the time a client has the reply.
        self._log_access(response, handler)
        self.connection.settimeout(self.server.write_timeout)
        if len(body) <= 65536:
            self.connection.sendall(head + body)
        else:
            self.connection.sendall(head)
            self.connection.sendall(body)

    def _log_access(self, response: Response, handler: str) -> None:
        level = logging.DEBUG if handler in QUIET_ROUTES and response.status < 500 else logging.INFO
        if not _access_log.isEnabledFor(level):
            return
        t0 = getattr(self, "_t0", None)
        headers = getattr(self, "headers", None)
        fields = {
            "method": self.command,
            "path": urlsplit(self.path).path[:200],
            "route": handler,
            "status_code": response.status,
            "duration_ms": round((time.perf_counter() - t0) * 1000.0, 3) if t0 else None,
            "response_bytes": len(response.body),
            "user_agent": (headers.get("User-Agent", "") if headers is not None else "")[:200],
            "client": self.client_address[0] if self.client_address else "",
        }
        _access_log.log(
            level, "%s %s -> %d", self.command, fields["path"], response.status, extra=fields
        )


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class _HTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """ThreadingHTTPServer with a connection cap, fast 503s, drain and no reverse DNS."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False  # close() drains with its own deadline instead
    request_queue_size = 128

    def __init__(
        self,
        address: Tuple[str, int],
        app: MonitoringApp,
        *,
        family: int,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        request_timeout: float,
        write_timeout: float,
    ) -> None:
        self.address_family = family
        self.app = app
        self.ssl_context = ssl_context
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.closing = False
        self._slots = threading.BoundedSemaphore(max_connections)
        self._reject_slots = threading.BoundedSemaphore(8)
        self._lock = threading.Lock()
        self._workers: set = set()
        self._idle: Dict[_Handler, bool] = {}
        self._last_busy_log = -3600.0
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            try:  # "::" serves IPv4 too where the platform allows it
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except (OSError, AttributeError):
                pass
        socketserver.TCPServer.server_bind(self)
        # No socket.getfqdn() here (http.server's): a DNS lookup that can hang.
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def track(self, handler: _Handler, *, idle: bool) -> bool:
        with self._lock:
            if idle and self.closing:
                return False
            self._idle[handler] = idle
            return True

    def untrack(self, handler: _Handler) -> None:
        with self._lock:
            self._idle.pop(handler, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.closing:
            self.shutdown_request(request)
        elif self._slots.acquire(blocking=False):
            self._spawn(self._work, request, client_address)
        elif self._reject_slots.acquire(blocking=False):
            self._spawn(self._reject, request, client_address)
        else:
            self.shutdown_request(request)

    def _spawn(self, target: Callable[..., None], request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=target, args=(request, client_address), name="mgit-monitoring-http", daemon=True
        )
        with self._lock:
            self._workers.add(thread)
        thread.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _reject(self, request: Any, client_address: Any) -> None:
        """Over the cap: answer 503 at once from a small separate pool, then close."""
        sock = request
        try:
            sock.settimeout(1.0)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            try:
                sock.recv(_MAX_HEAD)  # take the request, so closing does not reset the reply
            except OSError:
                pass
            sock.sendall(_BUSY)
            now = time.monotonic()
            if now - self._last_busy_log > 60.0:  # once a minute, not once per connection
                self._last_busy_log = now
                _log.warning("connection limit reached: answering 503 (max_connections)")
        except (OSError, ValueError):
            pass
        finally:
            if sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass
            self.shutdown_request(request)
            self._reject_slots.release()
            with self._lock:
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("error on connection from %s", client_address, exc_info=True)

    def drain(self, timeout: float) -> None:
        """Stop taking requests, wake idle keep-alive connections, wait for the rest."""
        with self._lock:
            self.closing = True
            idle = [h for h, is_idle in self._idle.items() if is_idle]
        for handler in idle:
            try:  # shut the read side through a dup: works for plain and TLS sockets alike
                dup = socket.fromfd(
                    handler.connection.fileno(), self.address_family, socket.SOCK_STREAM
                )
                try:
                    dup.shutdown(socket.SHUT_RD)
                finally:
                    dup.close()
            except (OSError, ValueError):
                pass
        end = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers)
        for thread in workers:
            thread.join(max(0.0, end - time.monotonic()))


# -- lifecycle ------------------------------------------------------------------------------


class MonitoringServer:
    """The monitoring endpoints on a socket; bound on construction, served by :meth:`start`.

    ``port=0`` picks a free port (see :attr:`port` and :attr:`url`). ``/metrics`` exposes
    ``registry`` (anything with ``snapshot()``), else ``collector``'s registry, else the
    default collector's (:func:`~mgit_monitoring.collector.get_metrics_collector`). Health
    comes from ``health_checker``, else from ``health_factory()``, else from
    :func:`~mgit_monitoring.default_checks.get_health_checker`; a factory is called on the
    first health request, never for a scrape. ``app`` replaces all of these with a ready
    :class:`MonitoringApp`. ``history`` (a :class:`~mgit_monitoring.store.Store` or None)
    feeds ``/history``, the dashboard's last hour. ``tls`` is a :class:`TLSConfig` or an
    ``ssl.SSLContext``; ``auth`` an :class:`HttpAuth`.
    ``max_connections`` caps concurrent connections (each has one thread; the excess gets a
    503 at once); ``request_timeout`` bounds the wait for one request head, keep-alive idle
    time included; ``write_timeout`` bounds sending one response. A port in use or a bad
    address raises :class:`~mgit_monitoring.errors.ServerError` with a one-line message.
    Use it as a context manager, or call :meth:`close` (drains in-flight requests).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registry: Any = None,
        collector: Any = None,
        health_checker: Any = None,
        health_factory: Callable[[], Any] | None = None,
        simple: bool = False,
        auth: HttpAuth | None = None,
        tls: Any = None,
        max_connections: int = 64,
        request_timeout: float = 10.0,
        write_timeout: float = 30.0,
        app: MonitoringApp | None = None,
        history: Any = None,
    ) -> None:
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections!r}")
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        ctx = tls.context() if isinstance(tls, TLSConfig) else tls
        self.scheme = "https" if ctx is not None else "http"
        if app is None:
            if registry is None:
                if collector is None:
                    from mgit_monitoring.collector import get_metrics_collector

                    collector = get_metrics_collector()
                registry = collector.registry
            if health_checker is None and health_factory is None:
                from mgit_monitoring.default_checks import get_health_checker

                health_factory = get_health_checker
            app = MonitoringApp(
                metrics=registry,
                health_checker=health_checker,
                health_factory=health_factory,
                auth=auth,
                simple=simple,
                settings={"tls": ctx is not None, "max_connections": max_connections},
                history=history,
            )
        self.app = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._httpd = _HTTPServer(
                (host, port),
                self.app,
                family=family,
                ssl_context=ctx,
                max_connections=max_connections,
                request_timeout=request_timeout,
                write_timeout=write_timeout,
            )
        except (OSError, OverflowError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ServerError(f"cannot listen on {where}: {reason}") from None
        self.host: str = str(self._httpd.server_address[0])
        self.port: int = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the bound socket (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> MonitoringServer:
        """Serve in a daemon thread and return self (idempotent)."""
        if self._thread is None and not self._closed:
            self.app.start()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="mgit-monitoring-server",
                daemon=True,
            )
            self._thread.start()
            store = self.app.store_info()
            where = store["state_dir"] or "none"
            _log.info(
                "monitoring server listening on %s; state dir %s, store %s",
                self.url,
                where,
                store["store"],
                extra={"url": self.url, **store},
            )
        return self

    @property
    def running(self) -> bool:
        """True while the accept loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def begin_drain(self) -> None:
        """From now on every response carries ``Connection: close`` (the first step of close)."""
        self.app.draining = True
        self._httpd.closing = True

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout`` s), release the port."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.begin_drain()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.drain(timeout)
        self._httpd.server_close()
        self.app.stop()
        _log.info("monitoring server on %s stopped", self.url)

    def __enter__(self) -> MonitoringServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_monitoring_server(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> MonitoringServer:
    """Start a :class:`MonitoringServer` in a background thread; ``.close()`` stops it.

    ``options`` are :class:`MonitoringServer`'s keywords (``registry``, ``collector``,
    ``health_checker``, ``health_factory``, ``simple``, ``auth``, ``tls``,
    ``max_connections``, ...)::

        server = start_monitoring_server(port=0, registry=reg)
        print(server.url)         # http://127.0.0.1:41234
        server.close()
    """
    return MonitoringServer(host, port, **options).start()


def serve(
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    ready: Callable[[MonitoringServer], None] | None = None,
    stop: threading.Event | None = None,
    drain_timeout: float = 5.0,
    switch_interval: float | None = 0.001,
    **options: Any,
) -> int:
    """Run the server until SIGTERM/SIGINT (or ``stop`` is set), drain, and return 0.

    ``ready(server)`` is called once the socket is bound and served (the CLI prints the URL
    there). Signal handlers are installed only when called from the main thread, and the
    previous handlers are restored on return. No ``signal.pause``: this works on Windows.
    ``switch_interval`` (seconds; None leaves it) is set as the interpreter's thread switch
    interval while serving: this process is the server's own, and a 1 ms interval lets a
    probe overtake a large ``/metrics`` render instead of queueing 5 ms per GIL handoff.
    Raises :class:`~mgit_monitoring.errors.ServerError` when the address cannot be used.
    """
    server = MonitoringServer(host, port, **options)
    previous_interval = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    stop = stop if stop is not None else threading.Event()
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
        if ready is not None:
            ready(server)
        # A timed wait, not signal.pause(): signals are handled between waits everywhere.
        while not stop.wait(0.5) and server.running:
            pass
        server.begin_drain()  # before the log line: whoever reads it sees a draining server
        _log.info("shutting down: draining in-flight requests")
        server.close(timeout=drain_timeout)
    finally:
        server.close(timeout=drain_timeout)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.setswitchinterval(previous_interval)
    return 0


if __name__ == "__main__":  # the options moved to the one CLI
    print(
        "error: run the server with: python3 -m mgit_monitoring server [options]", file=sys.stderr
    )
    sys.exit(2)
