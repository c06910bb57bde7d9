"""Helpers shared by the test modules: interop peers, temporary state, clean environment.

Interop tests talk to real tools (promtool, prometheus, jq, node_exporter, Pushgateway,
prometheus_client's parsers). When one is missing the test skips with a one-line reason,
unless MGIT_MONITORING_REQUIRE_INTEROP=1 (set by .ci/run), where it fails instead.
"""

from __future__ import annotations

import base64
import http.server
import importlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from types import ModuleType
from typing import Any, Callable, NoReturn

REQUIRE_ENV = "MGIT_MONITORING_REQUIRE_INTEROP"
ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
"""The repository root: what a child Python process needs on PYTHONPATH."""


def interop_required() -> bool:
    """True when a missing interop peer must fail the run instead of skipping."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it when interop is required."""
    if interop_required():
        raise AssertionError(f"{REQUIRE_ENV}=1 but {reason} (run `make test-deps`)")
    raise unittest.SkipTest(reason)


MATRIX_LANE_ENV = "MGIT_MONITORING_MATRIX_LANE"


def once_per_ci_run(reason: str) -> Callable[[Any], Any]:
    """Skip in the extra Python lanes of ``make test-matrix`` (which sets
    MGIT_MONITORING_MATRIX_LANE=1) what does not depend on the Python version; ``.ci/run``
    runs it in its main pass, with interop required. ``reason`` says why it is the same on
    every Python."""
    return unittest.skipIf(
        os.environ.get(MATRIX_LANE_ENV) == "1", f"run once, in the main pass: {reason}"
    )


class Clock:
    """A hand-driven clock: tests advance ``now`` instead of sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def need_executable(name: str, *alternatives: str) -> str:
    """Return the path of the first of ``name``/``alternatives`` found on PATH."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    unavailable(f"{name} is not installed")


def need_module(name: str) -> ModuleType:
    """Import a test-only third-party module or skip/fail when it is absent."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python module {name} is not installed")


def record_factory(test: unittest.TestCase, change: Callable[[Any], None]) -> None:
    """Install, until ``test`` ends, a LogRecord factory (a host's) that builds the record
    as the one before it did, then applies ``change`` to it."""
    import logging

    old = logging.getLogRecordFactory()
    test.addCleanup(logging.setLogRecordFactory, old)

    def factory(*args: Any, **kwargs: Any) -> Any:
        record = old(*args, **kwargs)
        change(record)
        return record

    logging.setLogRecordFactory(factory)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter with the package importable."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_unprivileged(test: unittest.TestCase, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a forked child for which file modes apply, and fail ``test`` if it fails.

    As root (CI runs as root) the child first drops to the ``nobody`` user, because root
    ignores file modes; otherwise it runs as the current user. Paths ``fn`` uses must be
    reachable by that user (see :func:`open_to_all`).
    """
    if not hasattr(os, "fork"):
        test.skipTest("needs os.fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fn()
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode("utf-8", "replace")
    _pid, status = os.waitpid(pid, 0)
    test.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report or status)


def open_to_all(path: str) -> str:
    """Let every user traverse ``path`` and its temporary parents (for run_unprivileged)."""
    current = os.path.abspath(path)
    top = os.path.abspath(tempfile.gettempdir())
    while current.startswith(top + os.sep):
        os.chmod(current, os.stat(current).st_mode | 0o755)
        current = os.path.dirname(current)
    return path


class TempDirCase(unittest.TestCase):
    """A fresh temporary directory per test (``self.tmp``) and :meth:`write` to fill it."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def write(self, relative: str, text: str, mode: int | None = None) -> str:
        """Write ``text`` to ``relative`` under ``self.tmp`` (parents created); its path."""
        path = os.path.join(self.tmp, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(path, mode)
        return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def basic_auth(user: str, secret: str) -> str:
    """The ``Authorization`` value of HTTP basic auth for ``user:secret``."""
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


# Fake provider credentials (the shapes of a GitHub PAT, an Azure DevOps PAT, a Bitbucket
# app password) that the provider API server below accepts.
GH_TOKEN = "ghp_" + "V4L1DT0K3N" * 3 + "abcdef"
ADO_PAT = "adopat" + "Q" * 46
BB_PASSWORD = "ATBB" + "p4ssw0rd" * 4
_JSON_OK = (200, "application/json", b'{"ok": true}')
_SIGN_IN = (203, "text/html; charset=utf-8", b"<html><title>Sign In</title></html>")


class ProviderApiHandler(http.server.BaseHTTPRequestHandler):
    """Plays the providers' credential-check APIs, one behaviour per route.

    An "ok" route answers 401 unless the Authorization header is the one it expects. Every
    request is recorded as ``(path, Authorization)`` in ``server.seen``.
    """

    # path -> (status, content type, body, required Authorization or None, extra headers)
    routes = {
        "/gh-ok/rate_limit": _JSON_OK + ("Bearer " + GH_TOKEN, {"X-RateLimit-Remaining": "4999"}),
        "/gh-expiring/rate_limit": _JSON_OK
        + ("Bearer " + GH_TOKEN, {"GitHub-Authentication-Token-Expiration": "2031-01-01 UTC"}),
        "/gh-bad/rate_limit": (401, "application/json", b'{"message": "Bad credentials"}'),
        "/gh-html/rate_limit": (200, "text/html", b"<html>portal</html>"),
        "/gh-limited/rate_limit": (429, "application/json", b"{}"),
        "/gh-down/rate_limit": (503, "text/plain", b"maintenance"),
        "/org-ok/_apis/connectionData": _JSON_OK + (basic_auth("", ADO_PAT), {}),
        "/org-203/_apis/connectionData": _SIGN_IN,
        "/org-html/_apis/connectionData": (200, "text/html", b"<html>Sign in</html>"),
        "/org-redirect/_apis/connectionData": (302, "text/html", b"", None, {"Location": "/in"}),
        "/bb/2.0/user": _JSON_OK + (basic_auth("me", BB_PASSWORD), {}),
        "/bb-scope/2.0/user": (403, "application/json", b'{"error": {}}'),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        route = self.routes.get(self.path, (404, "text/plain", b"no such route"))
        code, ctype, body = route[:3]
        required = route[3] if len(route) > 3 else None
        extra = route[4] if len(route) > 4 else {}
        if required is not None and self.headers.get("Authorization") != required:
            code, ctype, body, extra = 401, "application/json", b'{"message": "no"}', {}
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class ProviderApiCase(TempDirCase):
    """A loopback :class:`ProviderApiHandler` server (port 0) per class: ``self.base`` is its
    URL and ``self.server.seen`` the requests of the current test."""

    server: http.server.ThreadingHTTPServer
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProviderApiHandler)
        cls.server.seen = []
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)

    def setUp(self) -> None:
        super().setUp()
        self.server.seen.clear()


def open_sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open (from /proc/<pid>/fd)."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def await_condition(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_prometheus(test: unittest.TestCase, binary: str, config: str, workdir: str) -> str:
    """Start a real Prometheus on a free loopback port with ``config``; return its URL.

    Its TSDB and log live in ``workdir``; a cleanup asks it to quit (``/-/quit``) and
    terminates it if it does not. Prometheus cannot listen on port 0, so a free port is
    borrowed from the kernel first.
    """
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = open(os.path.join(workdir, "prometheus.log"), "wb")  # noqa: SIM115
    test.addCleanup(log.close)
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is not None:
            return
        try:
            quit_request = urllib.request.Request(f"{api}/-/quit", method="POST")
            urllib.request.urlopen(quit_request, timeout=5).close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    test.addCleanup(stop)
    return api
