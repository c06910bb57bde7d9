"""The monitoring HTTP server: metrics, health probes and info over :mod:`socketserver`.

Three layers, each usable alone:

* :class:`~mgit_monitoring.http_app.MonitoringApp` (in :mod:`mgit_monitoring.http_app`) - a
  pure ``route(method, path, headers) -> Response``: no sockets, so most behaviour is
  testable by calling it;
* :class:`MonitoringServer` - a ``socketserver.TCPServer`` around an app, with HTTP/1.1
  keep-alive, request line and header size limits, optional TLS and auth, a graceful drain
  on :meth:`~MonitoringServer.close`; :func:`start_monitoring_server` runs one in a
  background thread for applications and tests (port 0 works);
* :func:`serve` - the blocking loop of ``mgit-monitoring server`` (whose options live in
  :mod:`mgit_monitoring.cli`): SIGTERM/SIGINT drain and return.

Idle and slow clients hold no thread. One thread accepts connections and collects request
heads with :mod:`selectors`; only a complete head goes to a worker thread, which parses it
(:class:`_Handler`, by RFC 9112, stricter than ``http.server``: single spaces in the
request line, exactly one ``Host`` on HTTP/1.1, no malformed header line) and answers.
``http.server`` itself is not used: it loads ``http.client``, ``email`` and ``ssl``, about
7 MB of an idle server's memory. A keep-alive connection waiting for its
next request goes back to the selector. A whole-head deadline (``request_timeout``, from
the first byte of a head; the same span bounds a keep-alive connection's idle wait) closes
a client that trickles its head however slowly it sends; at ``max_connections`` the
longest-idle connection is closed to admit a new one, then the slowest partial head; only
when every connection is in a worker does a new one get a fast 503.

Endpoints: ``/metrics`` (text 0.0.4 or OpenMetrics by ``Accept``, gzip by
``Accept-Encoding``), ``/metrics/json``, ``/health`` (200 healthy/degraded, 503 unhealthy),
``/health/ready``, ``/health/live``, ``/health/detailed``, ``/info``, ``/status`` and ``/``.
"""

from __future__ import annotations

import collections
import errno
import io
import logging
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    List,
    NamedTuple,
    Sequence,
    Tuple,
    overload,
)
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

if TYPE_CHECKING:
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
_MAX_HEADER_COUNT = 100  # header fields (folded lines continue one); more -> 431
_RECV = 32768
_WORKER_IDLE = 2.0  # s a worker thread waits for the next request before it ends
_DEFAULT_MAX_CONNECTIONS = 1024
_FD_RESERVE = 64  # descriptors kept free for the listener, workers' files, logs, the store
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


def _busy_response() -> bytes:
    body = b'{"error":"Server busy","status":503}\n'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_BUSY = _busy_response()
_BUSY_HEAD = _BUSY[: _BUSY.index(b"\r\n\r\n") + 4]  # to a HEAD: the same headers, no body
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


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(ts: float) -> str:
    """An IMF-fixdate (RFC 9110 5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(ts)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class _Conn:
    """One client connection and the bytes of its next request head read so far."""

    __slots__ = ("sock", "addr", "buf", "since", "eol", "scanned", "handshaking", "closed")

    def __init__(self, sock: Any, addr: Any, handshaking: bool) -> None:
        self.sock = sock
        self.addr = addr
        self.handshaking = handshaking
        self.closed = False
        self.reset(b"")

    def reset(self, buf: bytes) -> None:
        """Start waiting for the next request head, ``buf`` being its first bytes if any."""
        self.buf = bytearray(buf)
        self.since = time.monotonic()
        self.eol = -1  # end of the request line, once seen
        self.scanned = 0  # no head end before this offset

    def head_ready(self) -> bool:
        """True once the buffer holds a whole head, or enough to refuse it (414, 431)."""
        buf = self.buf
        skip = 2 if buf[:2] == b"\r\n" else 1 if buf[:1] == b"\n" else 0  # RFC 9112 2.2
        if self.eol < 0:
            eol = buf.find(b"\n", max(skip, self.scanned))
            if eol < 0:
                self.scanned = len(buf)
                return len(buf) - skip > _MAX_LINE
            self.eol = self.scanned = eol
            if eol - skip >= _MAX_LINE:
                return True
        start = max(self.eol, self.scanned - 2)
        if buf.find(b"\n\r\n", start) >= 0 or buf.find(b"\n\n", start) >= 0:
            return True
        self.scanned = len(buf)
        return len(buf) > skip + _MAX_LINE + _MAX_HEAD + 4


class _Headers:
    """A request's header fields in order; names match case-insensitively.

    What the handler and the app ask of them: ``get`` (the first value), ``get_all``,
    ``in`` and ``items``.
    """

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: List[Tuple[str, str]]) -> None:
        self._fields = fields
        self._first: Dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field ``name``, else ``default``."""
        return self._first.get(name.lower(), default)

    def get_all(self, name: str) -> List[str] | None:
        """Every value of field ``name`` in order, None when there is none."""
        lname = name.lower()
        return [v for k, v in self._fields if k.lower() == lname] or None

    def items(self) -> List[Tuple[str, str]]:
        return list(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first


# A field name: visible ASCII but the colon (RFC 9110 tokens, plus what http.server took).
_NAME_CHARS = frozenset(map(chr, range(0x21, 0x7F))) - {":"}


def _parse_fields(lines: List[bytes]) -> _Headers | None:
    """The header lines of a head (each ending in LF) as fields; None when one is no field.

    A line with no colon, an empty name, whitespace or other bytes than visible ASCII in the
    name, or CR or NUL anywhere is malformed: the caller answers 400. (``http.server`` took
    such a line for the end of the head and dropped the fields after it, a
    ``Content-Length`` among them, whose body would then be read as the next request.)
    An obs-fold continues the field with one space (RFC 9112 5.2); a whitespace-led line
    before the first field is ignored (RFC 9112 2.2). Values lose surrounding blanks.
    """
    fields: List[Tuple[str, str]] = []
    for raw in lines:
        line = raw.decode("iso-8859-1")
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
        if "\r" in line or "\0" in line:
            return None
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, " ".join(v for v in (value, line.strip(" \t")) if v))
            continue
        colon = line.find(":")
        if colon < 1 or not _NAME_CHARS.issuperset(line[:colon]):
            return None
        fields.append((line[:colon], line[colon + 1 :].strip(" \t")))
    return _Headers(fields)


def _parse_version(word: str) -> Tuple[int, int] | None:
    """``HTTP/x.y`` as ``(x, y)``, else None: one dot, digits only, at most 10 of them each
    (the rules of ``http.server`` since Python 3.11, on every version)."""
    if not word.startswith("HTTP/"):
        return None
    parts = word[5:].split(".")
    # ASCII digits only: str.isdigit() holds for "²", which int() refuses, and for "١".
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


class _Handler(socketserver.BaseRequestHandler):
    """A connection's complete request head(s): ``app.route``, one write per response.

    The selector hands over a :class:`_Conn` whose buffer holds a whole head; ``rfile`` is
    those bytes. After a keep-alive response the connection goes back to the selector,
    unless the buffer already holds the next request (pipelining).
    """

    protocol_version = "HTTP/1.1"
    server_version = "mgit-monitoring"
    server: _HTTPServer
    request: _Conn

    def setup(self) -> None:
        conn = self.request
        self.close_connection = True
        self.keep = False
        self.connection = conn.sock
        self.command, self.path, self.request_version = "", "", "HTTP/1.1"
        self.headers: _Headers | None = None
        self.head = False  # a HEAD request: every response to it goes without its body
        conn.sock.settimeout(self.server.write_timeout)
        self.rfile = io.BytesIO(bytes(conn.buf))

    def handle(self) -> None:
        conn = self.request
        while True:
            self.handle_one_request()
            if self.close_connection:
                return
            conn.reset(self.rfile.read())
            if not conn.head_ready():
                self.keep = True  # back to the selector for the rest of the next head
                return
            self.rfile = io.BytesIO(bytes(conn.buf))

    def finish(self) -> None:
        self.server.release(self.request, keep=self.keep and not self.close_connection)

    def handle_one_request(self) -> None:
        self.close_connection = True
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):  # RFC 9112: ignore one empty line before a request
                line = self.rfile.readline(_MAX_LINE + 1)
            if not line:
                return
            self._t0 = time.perf_counter()
            self.command, self.path, self.request_version = "", "", "HTTP/1.1"
            self.headers = None  # not this request's until parsed
            # Known before the line is parsed: a 414 or 431 to a HEAD has no body either.
            self.head = line.startswith(b"HEAD ")
            if len(line) > _MAX_LINE:
                self.send_error(414)
                return
            lines = self._read_head()
            if lines is None:
                return
            headers = self.parse_request(line, lines)
            if headers is not None:
                self._answer(headers)
        except OSError:  # timeouts, resets, TLS errors: the connection is done
            self.close_connection = True
            _log.debug("connection from %s closed", self.client_address[0], exc_info=True)

    def parse_request(self, line: bytes, lines: List[bytes]) -> _Headers | None:
        """The request line and header lines into ``command``, ``path``,
        ``request_version``, ``close_connection`` and the fields; None once an error reply
        went out, or for an empty request line (closed unanswered: no request).

        The request line is ``method SP request-target SP HTTP-version`` (RFC 9112 3): split
        on single spaces only, so any other whitespace or control character in it (a tab,
        NBSP, the separators 0x1C-0x1F, NEL 0x85, a bare CR), two spaces in a row, or other
        than three parts is a 400. The version is ``HTTP/x.y`` (:func:`_parse_version`);
        one of 2.0 or more gets 400, not 505: on an HTTP/1.1 connection it is the client's
        mistake (the HTTP/2 preface ``PRI * HTTP/2.0`` too), and 5xx stays the sign of a
        server fault. Header lines: :func:`_parse_fields`. An HTTP/1.1 request needs exactly
        one ``Host`` field, any request at most one (RFC 9112 3.2), else 400. ``Connection``
        tokens (every field, comma-separated, any case) decide keep-alive (RFC 9112 9.3).
        """
        self.close_connection = True
        text = line.decode("iso-8859-1")
        text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        if not text:  # an empty line where the request line belongs is no request: closed
            return None
        words = text.split(" ")
        # isprintable(): no control character, no NBSP or other whitespace than SP.
        if len(words) != 3 or not text.isprintable() or not all(words):
            self.send_error(400)
            return None
        version = _parse_version(words[2])
        if version is None or version >= (2, 0):
            self.send_error(400)
            return None
        self.command, self.path, self.request_version = words
        self.close_connection = version < (1, 1)
        if self.path.startswith("//"):  # never read as a scheme-relative URL
            self.path = "/" + self.path.lstrip("/")
        headers = _parse_fields(lines[:-1])
        if headers is None:
            self.send_error(400)
            return None
        self.headers = headers
        hosts = headers.get_all("Host")
        if (hosts is None and version >= (1, 1)) or (hosts is not None and len(hosts) > 1):
            self.send_error(400)
            return None
        connection = headers.get_all("Connection")
        if connection is not None:
            tokens = {t.strip(" \t").lower() for value in connection for t in value.split(",")}
            if "close" in tokens:
                self.close_connection = True
            elif "keep-alive" in tokens:
                self.close_connection = False
        try:
            urlsplit(self.path)
        except ValueError:  # an absolute URI with a broken bracketed host: http://[::1/x
            self.send_error(400)
            return None
        return headers

    def _read_head(self) -> List[bytes] | None:
        """The head's lines after the request line, its empty line last; None when it is too
        large (431 sent) or ends without the empty line."""
        lines: List[bytes] = []
        size = 0
        fields = 0
        while True:
            line = self.rfile.readline(_MAX_HEAD - size + 1)
            size += len(line)
            if size > _MAX_HEAD:
                self.send_error(431)
                return None
            if not line.endswith(b"\n"):
                return None  # the head ends without its empty line
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return lines
            if line[:1] not in (b" ", b"\t"):  # not an obs-fold: a field of its own
                fields += 1
                if fields > _MAX_HEADER_COUNT:
                    self.send_error(431)
                    return None

    def send_error(self, code: int) -> None:
        """A JSON error (never HTML, never exception text); the connection closes after.
        To a HEAD request, its headers alone (:meth:`_send`)."""
        self.close_connection = True
        self._send(error_response(code, _phrase(code)), "other")

    def _answer(self, headers: _Headers) -> None:
        from mgit_monitoring.context import correlation_context

        app = self.server.app
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
            f"Server: {self.server_version}\r\nDate: {_http_date(time.time())}\r\n",
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
        # HEAD: GET's headers, Content-Length included, and no body (RFC 9110 9.3.2), errors
        # too (the app leaves out the bodies of its own answers).
        body = b"" if self.head else response.body
        # Log before writing, so the line exists by the time a client has the reply.
        self._log_access(response, handler, len(body))
        self.connection.settimeout(self.server.write_timeout)
        if len(body) <= 65536:
            self.connection.sendall(head + body)
        else:
            self.connection.sendall(head)
            self.connection.sendall(body)

    def _log_access(self, response: Response, handler: str, size: int) -> None:
        level = logging.DEBUG if handler in QUIET_ROUTES and response.status < 500 else logging.INFO
        if not _access_log.isEnabledFor(level):
            return
        t0 = getattr(self, "_t0", None)
        headers = self.headers
        fields = {
            "method": self.command,
            "path": _path_of(self.path)[:200],
            "route": handler,
            "status_code": response.status,
            "duration_ms": round((time.perf_counter() - t0) * 1000.0, 3) if t0 else None,
            "response_bytes": size,
            "user_agent": (headers.get("User-Agent", "") if headers is not None else "")[:200],
            "client": self.client_address[0] if self.client_address else "",
        }
        _access_log.log(
            level, "%s %s -> %d", self.command, fields["path"], response.status, extra=fields
        )


def _path_of(target: str) -> str:
    """The path of a request target, for the access log (never raises)."""
    try:
        return urlsplit(target).path
    except ValueError:
        return target.split("?", 1)[0]


# The reason phrases this server sends, as RFC 9110 names them (Python 3.13's HTTPStatus
# does; older ones say "Request Entity Too Large", "Request-URI Too Long"). Any other status
# asks http.HTTPStatus, an enum of some 60 members, built only then.
_PHRASES = {
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _phrase(code: int) -> str:
    phrase = _PHRASES.get(code)
    if phrase is not None:
        return phrase
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _fd_limit() -> int | None:
    """The soft limit on open files, None when unknown or unlimited."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _raise_fd_limit(wanted: int) -> Callable[[], None]:
    """Raise the soft open-files limit toward ``wanted`` (never past the hard limit); returns
    a function that restores the previous limit."""
    try:
        import resource
    except ImportError:
        return lambda: None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return lambda: None
    new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if new <= soft:
        return lambda: None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (OSError, ValueError):
        return lambda: None
    _log.debug("open-files limit raised from %d to %d", soft, new)
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _HTTPServer(socketserver.TCPServer):
    """A TCP server whose request heads are read by one selector thread.

    ``serve_forever`` runs the selector: it accepts, completes TLS handshakes, collects
    request heads and enforces the head deadline; a complete head is queued for a pool of
    worker threads (started on demand, ended after ``_WORKER_IDLE`` s without work) that
    run :class:`_Handler`. No reverse DNS, a cap on held connections, fast 503s, a drain.
    """

    allow_reuse_address = True  # as http.server: a restarted server binds at once
    request_queue_size = 1024  # the listen backlog: a burst of probes and scrapers

    def __init__(
        self,
        address: Tuple[str, int],
        app: MonitoringApp,
        *,
        family: int,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        max_workers: int,
        request_timeout: float,
        write_timeout: float,
    ) -> None:
        self.address_family = family
        self.app = app
        self.ssl_context = ssl_context
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_workers = max_workers
        limit = _fd_limit()
        # Every held connection is a descriptor: stay below the soft limit, so accept()
        # never fails with EMFILE while a connection could be evicted instead.
        room = max_connections if limit is None else min(max_connections, limit - _FD_RESERVE)
        self.capacity = max(1, room)
        self.closing = False
        if ssl_context is not None:
            import ssl

            self._tls_wait: Tuple[type[BaseException], ...] = (
                ssl.SSLWantReadError,
                ssl.SSLWantWriteError,
            )
        else:
            self._tls_wait = ()
        self._lock = threading.Lock()
        self._jobs = threading.Condition(self._lock)
        self._queue: Deque[_Conn] = collections.deque()
        self._waiting_workers = 0
        self._pool = 0  # worker threads, busy or waiting for a job
        self._workers: set[threading.Thread] = set()
        self._returns: Deque[_Conn] = collections.deque()
        self._held = 0
        self._loop_done = False
        self._stop = False
        self._stopped = threading.Event()
        self._reject_slots = threading.BoundedSemaphore(8)
        self._last_busy_log = -3600.0
        # Waiting connections, oldest first: no byte of a next request yet, and partial heads.
        self._idle: collections.OrderedDict[_Conn, None] = collections.OrderedDict()
        self._partial: collections.OrderedDict[_Conn, None] = collections.OrderedDict()
        self._accept_paused_until = 0.0
        self._selector = selectors.DefaultSelector()
        if isinstance(self._selector, selectors.SelectSelector):  # Windows: FD_SETSIZE 512
            self.capacity = min(self.capacity, 500)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        super().__init__(address, _Handler)  # binds; on failure it calls server_close()

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            try:  # "::" serves IPv4 too where the platform allows it
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except (OSError, AttributeError):
                pass
        socketserver.TCPServer.server_bind(self)
        # No socket.getfqdn() as http.server's has: a DNS lookup that can hang.
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    # -- the selector thread ----------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and read request heads until :meth:`shutdown`."""
        sel = self._selector
        self.socket.setblocking(False)
        sel.register(self.socket, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        try:
            while not self._stop:
                self._dispatch(sel.select(self._timeout(poll_interval)))
                self._take_returns()
                self._expire()
        finally:
            with self._lock:
                self._loop_done = True
            for conn in [*self._idle, *self._partial]:
                self._drop(conn)
            for conn in self._returns:
                self._close(conn)
            self._idle.clear()
            self._partial.clear()
            self._returns.clear()
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
            self._stopped.set()

    def _dispatch(self, events: List[Tuple[selectors.SelectorKey, int]]) -> None:
        for key, _events in events:
            data = key.data
            if data is None:
                self._accept()
            elif data is self._wake_r:
                self._drain_wakeups()
            elif not data.closed:  # (closed: evicted earlier in this round)
                try:
                    self._readable(data)
                except Exception:  # one connection's trouble never stops the loop
                    _log.exception("error reading from %s", data.addr)
                    self._forget(data)
                    self._drop(data)

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it to return."""
        self._stop = True
        self._wake()
        self._stopped.wait()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed
            pass

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _timeout(self, poll_interval: float) -> float:
        timeout = poll_interval
        now = time.monotonic()
        for waiting in (self._idle, self._partial):
            if waiting:
                oldest = next(iter(waiting))
                timeout = min(timeout, oldest.since + self.request_timeout - now)
        if self._accept_paused_until:
            timeout = min(timeout, self._accept_paused_until - now)
        return max(0.0, timeout)

    def _expire(self) -> None:
        """Close connections whose idle wait or head deadline has passed."""
        now = time.monotonic()
        if self.closing:
            while self._idle:  # draining: no new request on a waiting connection
                self._drop(self._idle.popitem(last=False)[0])
        cutoff = now - self.request_timeout
        if any(w and next(iter(w)).since <= cutoff for w in (self._idle, self._partial)):
            # Judge on every byte that arrived by the deadline: bytes that came while this
            # round was busy (a slow round on a loaded machine) are read before any close.
            self._dispatch(self._selector.select(0))
        for waiting in (self._idle, self._partial):
            while waiting:
                oldest = next(iter(waiting))
                if oldest.since > cutoff:
                    break
                del waiting[oldest]
                self._drop(oldest)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self.socket, selectors.EVENT_READ, None)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, addr = self.get_request()
            except BlockingIOError:
                return
            except OSError as exc:
                out_of_room = exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
                if out_of_room and not self._evict():  # no descriptor: pause accepting a moment
                    self._selector.unregister(self.socket)
                    self._accept_paused_until = time.monotonic() + 0.1
                    _log.warning("cannot accept connections: %s", exc.strerror)
                return
            if self.closing:
                self.shutdown_request(sock)
                continue
            with self._lock:
                full = self._held >= self.capacity
            if full and not self._evict():
                self._busy(sock, addr)
                continue
            self._admit(sock, addr)

    def _admit(self, sock: Any, addr: Any) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        tls = self.ssl_context is not None
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except (OSError, ValueError):
                self.shutdown_request(sock)
                return
        conn = _Conn(sock, addr, handshaking=tls)
        with self._lock:
            self._held += 1
        self._selector.register(sock, selectors.EVENT_READ, conn)
        self._idle[conn] = None

    def _evict(self) -> bool:
        """At capacity: close the longest-idle connection, else the oldest partial head."""
        for waiting in (self._idle, self._partial):
            if waiting:
                self._drop(waiting.popitem(last=False)[0])
                return True
        return False

    def _readable(self, conn: _Conn) -> None:
        if conn in self._idle:  # the first bytes of a head: its deadline starts now
            del self._idle[conn]
            conn.since = time.monotonic()
            self._partial[conn] = None
        sock = conn.sock
        if conn.handshaking:
            try:
                sock.do_handshake()
            except self._tls_wait:
                return
            except (OSError, ValueError):
                _log.debug("TLS handshake with %s failed", conn.addr, exc_info=True)
                self._forget(conn)
                self._drop(conn)
                return
            conn.handshaking = False
        while True:
            try:
                data = sock.recv(_RECV)
            except BlockingIOError:
                return
            except OSError as exc:
                if isinstance(exc, self._tls_wait):
                    return
                self._forget(conn)
                self._drop(conn)
                return
            if not data:  # the client went away (mid-head or between requests)
                self._forget(conn)
                self._drop(conn)
                return
            conn.buf += data
            if conn.head_ready():
                self._forget(conn)
                self._selector.unregister(sock)
                self._submit(conn)
                return
            if self.ssl_context is None or not sock.pending():
                return  # plain sockets: the selector reports what is left; TLS may buffer

    def _forget(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        self._partial.pop(conn, None)

    def _drop(self, conn: _Conn) -> None:
        """Close a connection the selector holds."""
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        with self._lock:  # before the close: a client that sees EOF finds the room free
            self._held -= 1
        self.shutdown_request(conn.sock)

    def _take_returns(self) -> None:
        """Keep-alive connections back from the workers: wait for their next request."""
        while self._returns:
            conn = self._returns.popleft()
            if self.closing:
                self._close(conn)
                continue
            try:
                conn.sock.setblocking(False)
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                self._close(conn)
                continue
            (self._partial if conn.buf else self._idle)[conn] = None

    def _busy(self, sock: Any, addr: Any) -> None:
        """Every held connection is in a worker: a fast 503 from a small pool, or a close."""
        if self._reject_slots.acquire(blocking=False):
            thread = threading.Thread(
                target=self._reject, args=(sock,), name="mgit-monitoring-busy", daemon=True
            )
            with self._lock:
                self._workers.add(thread)
            thread.start()
        else:
            self.shutdown_request(sock)

    def _reject(self, request: Any) -> None:
        """Answer 503 at once, then close."""
        sock = request
        try:
            sock.settimeout(1.0)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            try:
                data = sock.recv(_MAX_HEAD)  # take the request: closing then resets no reply
            except OSError:
                data = b""
            sock.sendall(_BUSY_HEAD if data.lstrip(b"\r\n").startswith(b"HEAD ") else _BUSY)
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

    # -- the worker threads -----------------------------------------------------------

    def _submit(self, conn: _Conn) -> None:
        with self._jobs:
            self._queue.append(conn)
            if len(self._queue) > self._waiting_workers and self._pool < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name="mgit-monitoring-http", daemon=True
                )
                self._workers.add(thread)
                self._pool += 1
                thread.start()
            else:
                self._jobs.notify()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._jobs:
                idle_until = time.monotonic() + _WORKER_IDLE
                while not self._queue:
                    remaining = idle_until - time.monotonic()
                    if remaining <= 0 or self.closing:
                        self._workers.discard(me)
                        self._pool -= 1
                        return
                    self._waiting_workers += 1
                    self._jobs.wait(remaining)
                    self._waiting_workers -= 1
                conn = self._queue.popleft()
            try:
                self.finish_request(conn, conn.addr)  # type: ignore[arg-type]  # a _Conn
            except Exception:  # the handler's finish() released it unless setup() failed
                self.handle_error(conn, conn.addr)
                self._close(conn)

    def release(self, conn: _Conn, *, keep: bool) -> None:
        """A worker is done with ``conn``: back to the selector, or closed."""
        if conn.closed:
            return
        if keep and not self.closing:
            with self._lock:
                if not self._loop_done:
                    self._returns.append(conn)
                    keep = True
                else:
                    keep = False
            if keep:
                self._wake()
                return
        self._close(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("error on connection from %s", client_address, exc_info=True)

    def drain(self, timeout: float) -> None:
        """Stop taking requests, answer those already read, wait for the workers."""
        with self._jobs:
            self.closing = True
            self._jobs.notify_all()  # idle workers end now instead of lingering
            workers = list(self._workers)
        end = time.monotonic() + timeout
        for thread in workers:
            thread.join(max(0.0, end - time.monotonic()))

    def server_close(self) -> None:
        super().server_close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


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
    ``max_connections`` caps the connections held open (idle and slow ones hold a file
    descriptor, not a thread; it is lowered to fit the open-files limit): at the cap the
    longest-idle connection is closed to admit a new one, then the oldest partial head, and
    only when all are being answered does a new one get a 503 at once. ``max_workers`` caps
    the threads answering complete requests (started on demand, ended when idle).
    ``request_timeout`` bounds the time to send one whole request head from its first byte,
    however slowly it trickles, and separately a keep-alive connection's wait for its next
    request; ``write_timeout`` bounds sending one response. A port in use or a bad
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
        max_connections: int = _DEFAULT_MAX_CONNECTIONS,
        max_workers: int = 32,
        request_timeout: float = 10.0,
        write_timeout: float = 30.0,
        app: MonitoringApp | None = None,
        history: Any = None,
    ) -> None:
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections!r}")
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers!r}")
        if not request_timeout > 0:
            raise ConfigError(f"request_timeout must be > 0, got {request_timeout!r}")
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
                settings={
                    "tls": ctx is not None,
                    "max_connections": max_connections,
                    "max_workers": max_workers,
                },
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
                max_workers=max_workers,
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
    host: str = "0.0.0.0",  # nosec B104 # the documented default (README): a container server
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
    For the same reason the soft open-files limit is raised (up to the hard limit) to fit
    ``max_connections``, and restored on return.
    Raises :class:`~mgit_monitoring.errors.ServerError` when the address cannot be used.
    """
    wanted = int(options.get("max_connections", _DEFAULT_MAX_CONNECTIONS)) + _FD_RESERVE
    restore_fd_limit = _raise_fd_limit(wanted)
    try:
        server = MonitoringServer(host, port, **options)
    except BaseException:
        restore_fd_limit()
        raise
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
        restore_fd_limit()
    return 0


if __name__ == "__main__":  # the options moved to the one CLI
    print(
        "error: run the server with: python3 -m mgit_monitoring server [options]", file=sys.stderr
    )
    sys.exit(2)
