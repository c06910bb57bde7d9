"""make_wsgi_app: the monitoring routes inside a WSGI server (wsgiref in a thread, waitress in a
subprocess), mounted at the root or under a prefix next to another application."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import unittest
import wsgiref.simple_server
import wsgiref.util
from typing import Any, Callable, Dict, List, Tuple

import mgit_monitoring
from mgit_monitoring.collector import (
    MetricsCollector,
    get_metrics_collector,
    reset_metrics_collector,
)
from mgit_monitoring.health import HealthChecker
from mgit_monitoring.http_auth import HttpAuth
from mgit_monitoring.wsgi import make_wsgi_app
from tests.support import ROOT, TempDirCase, need_executable, need_module

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Reply = Tuple[int, Dict[str, str], bytes]


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _request(port: int, method: str, path: str, headers: Dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _mgit_lines(body: bytes) -> List[bytes]:
    """The mgit_* lines of an exposition (process_* values move between two scrapes)."""
    return [line for line in body.splitlines() if line.startswith(b"mgit_")]


def _source() -> Tuple[MetricsCollector, HealthChecker]:
    metrics = MetricsCollector()
    metrics.record_git_operation("clone", "org/repo", True, 1.5)
    metrics.record_operation("sync", True, 2.0, "github")
    checker = HealthChecker()
    checker.register_check("always_ok", lambda: None, critical=True)
    return metrics, checker


class WsgirefCase(unittest.TestCase):
    """Serve a WSGI app with the standard library's reference server on port 0 in a thread."""

    def serve(self, app: Callable[..., Any]) -> int:
        server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(10)

        self.addCleanup(stop)
        return server.server_address[1]


class TestRoutesUnderWsgiref(WsgirefCase):
    def setUp(self) -> None:
        self.metrics, self.checker = _source()
        self.port = self.serve(make_wsgi_app(self.metrics, self.checker, instrument=False))

    def get(self, path: str, **headers: str) -> Reply:
        return _request(
            self.port, "GET", path, {k.replace("_", "-"): v for k, v in headers.items()}
        )

    def test_metrics_text(self) -> None:
        """/metrics is Prometheus text 0.0.4 with what the collector recorded."""
        status, headers, body = self.get("/metrics")
        self.assertEqual(200, status)
        self.assertEqual("text/plain; version=0.0.4; charset=utf-8", headers["content-type"])
        self.assertEqual(str(len(body)), headers["content-length"])
        text = body.decode()
        self.assertIn('mgit_git_operations_total{operation="clone",status="success"} 1\n', text)
        self.assertNotIn("# EOF", text)

    def test_metrics_openmetrics_by_accept(self) -> None:
        """Accept: OpenMetrics gives OpenMetrics 1.0, ending in # EOF."""
        status, headers, body = self.get("/metrics", Accept=OPENMETRICS)
        self.assertEqual(200, status)
        self.assertTrue(headers["content-type"].startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"), body[-40:])

    def test_metrics_gzip(self) -> None:
        """Accept-Encoding: gzip compresses the same exposition."""
        _, _, plain = self.get("/metrics")
        status, headers, zipped = self.get("/metrics", Accept_Encoding="gzip")
        self.assertEqual(200, status)
        self.assertEqual("gzip", headers.get("content-encoding"))
        self.assertEqual(_mgit_lines(plain), _mgit_lines(gzip.decompress(zipped)))
        self.assertIn("Accept-Encoding", headers.get("vary", ""))

    def test_health_and_probes(self) -> None:
        """/health, /health/ready and /health/live answer from the given checker."""
        status, headers, body = self.get("/health")
        self.assertEqual((200, "application/json"), (status, headers["content-type"]))
        doc = json.loads(body)
        self.assertEqual("healthy", doc["status"])
        self.assertIn("always_ok", json.dumps(doc))
        for path, word in (("/health/ready", "ready"), ("/health/live", "alive")):
            status, _, body = self.get(path)
            self.assertEqual((200, word), (status, json.loads(body)["status"]), path)
        status, headers, _ = self.get("/health", Accept="application/health+json")
        self.assertEqual("application/health+json", headers["content-type"])

    def test_head_has_get_headers_and_no_body(self) -> None:
        """HEAD /metrics: GET's status and Content-Length, no body."""
        # process_* values (CPU seconds, RSS) move between two scrapes and can change the
        # length by a digit, so this app exposes only what was recorded.
        metrics = MetricsCollector(process_metrics=False)
        metrics.record_git_operation("clone", "org/repo", True, 1.5)
        port = self.serve(make_wsgi_app(metrics, self.checker, instrument=False))
        _, get_headers, get_body = _request(port, "GET", "/metrics")
        self.assertIn(b"mgit_git_operations_total", get_body)
        self.assertNotIn(b"process_", get_body)
        status, headers, body = _request(port, "HEAD", "/metrics")
        self.assertEqual(200, status)
        self.assertEqual(b"", body)
        self.assertEqual(str(len(get_body)), headers["content-length"])
        self.assertEqual(get_headers["content-type"], headers["content-type"])

    def test_unknown_path_and_method(self) -> None:
        """Unknown paths are a JSON 404; POST is a 405 naming the allowed methods."""
        status, _, body = self.get("/nope")
        self.assertEqual((404, "Not found"), (status, json.loads(body)["error"]))
        status, headers, _ = _request(self.port, "POST", "/metrics")
        self.assertEqual(405, status)
        self.assertIn("GET", headers["allow"])

    def test_info_says_wsgi_and_query_strings_are_ignored(self) -> None:
        """/info names the WSGI embedding; a query string does not change the route."""
        status, _, body = self.get("/info?x=1")
        self.assertEqual(200, status)
        info = json.loads(body)
        self.assertEqual("wsgi", info["monitoring"]["served_by"])
        self.assertEqual(mgit_monitoring.__version__, info["version"])

    def test_page_and_history(self) -> None:
        """/ is the HTML page and /history answers (no store: an empty history)."""
        status, headers, body = self.get("/")
        self.assertEqual(200, status)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn(b'href="metrics"', body)
        status, _, _ = self.get("/history")
        self.assertEqual(200, status)


class TestMountedUnderAPrefix(WsgirefCase):
    """Next to an existing application, mounted at /monitoring through SCRIPT_NAME."""

    def setUp(self) -> None:
        metrics, checker = _source()
        monitoring = make_wsgi_app(metrics, checker)

        def site(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
            if wsgiref.util.shift_path_info(environ) == "monitoring":
                return monitoring(environ, start_response)
            body = b"the site itself"
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "15")])
            return [body]

        self.port = self.serve(site)

    def test_routes_under_the_prefix(self) -> None:
        """/monitoring/metrics and /monitoring/health/live are served; the site keeps the rest."""
        status, _, body = _request(self.port, "GET", "/monitoring/metrics")
        self.assertEqual(200, status)
        self.assertIn(b"mgit_git_operations_total", body)
        status, _, body = _request(self.port, "GET", "/monitoring/health/live")
        self.assertEqual((200, "alive"), (status, json.loads(body)["status"]))
        self.assertEqual((200, b"the site itself"), _request(self.port, "GET", "/metrics")[::2])

    def test_prefix_without_slash_redirects_so_relative_links_work(self) -> None:
        """GET /monitoring redirects to /monitoring/, where the page's relative links resolve."""
        status, headers, _ = _request(self.port, "GET", "/monitoring?refresh=1")
        self.assertEqual(308, status)
        self.assertEqual("/monitoring/?refresh=1", headers["location"])
        status, headers, body = _request(self.port, "GET", "/monitoring/")
        self.assertEqual(200, status)
        self.assertTrue(headers["content-type"].startswith("text/html"))

    def test_own_request_metrics_name_the_route_not_the_prefix(self) -> None:
        """The app's own request counter labels the route template, prefix stripped."""
        _request(self.port, "GET", "/monitoring/health/live")
        _, _, body = _request(self.port, "GET", "/monitoring/metrics")
        self.assertIn(
            b'mgit_monitoring_http_requests_total{handler="/health/live",code="200"} 1\n', body
        )


class TestConstruction(unittest.TestCase):
    def call(self, app: Any, path: str, **environ: Any) -> Tuple[str, Dict[str, str], bytes]:
        env: Dict[str, Any] = {}
        wsgiref.util.setup_testing_defaults(env)
        env.update(PATH_INFO=path, **environ)
        seen: Dict[str, Any] = {}

        def start_response(status: str, headers: List[Tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = status, dict(headers)

        body = b"".join(app(env, start_response))
        return seen["status"], seen["headers"], body

    def test_health_is_built_on_first_health_request_not_for_a_scrape(self) -> None:
        """A health_factory runs once, on the first health request; scrapes never build it."""
        metrics, checker = _source()
        calls: List[int] = []

        def factory() -> HealthChecker:
            calls.append(1)
            return checker

        app = make_wsgi_app(metrics, health_factory=factory)
        self.assertEqual("200 OK", self.call(app, "/metrics")[0])
        self.assertEqual([], calls)
        self.assertEqual("200 OK", self.call(app, "/health")[0])
        self.assertEqual("200 OK", self.call(app, "/health/ready")[0])
        self.assertEqual([1], calls)

    def test_no_thread_is_left_running(self) -> None:
        """Building the app and answering scrapes and probes leaves no thread running."""
        before = set(threading.enumerate())
        metrics, checker = _source()
        app = make_wsgi_app(metrics, checker)
        for path in ("/metrics", "/health/live", "/info"):
            self.assertEqual("200 OK", self.call(app, path)[0], path)
        # A stale check re-runs behind a scrape in a short-lived thread; nothing may stay.
        deadline = time.monotonic() + 10
        while set(threading.enumerate()) - before and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(set(), set(threading.enumerate()) - before)

    def test_auth_protects_the_routes(self) -> None:
        """With auth, no credentials is a 401 with a challenge; the bearer token opens it."""
        metrics, checker = _source()
        app = make_wsgi_app(metrics, checker, auth=HttpAuth(token="t0ken"))
        status, headers, _ = self.call(app, "/metrics")
        self.assertEqual("401 Unauthorized", status)
        self.assertIn("Bearer", headers["WWW-Authenticate"])
        status, _, body = self.call(app, "/metrics", HTTP_AUTHORIZATION="Bearer t0ken")
        self.assertEqual("200 OK", status)
        self.assertIn(b"mgit_git_operations_total", body)

    def test_empty_content_length_is_no_body(self) -> None:
        """Servers that set CONTENT_LENGTH to "" for no body still get a 200."""
        metrics, checker = _source()
        app = make_wsgi_app(metrics, checker)
        self.assertEqual("200 OK", self.call(app, "/metrics", CONTENT_LENGTH="")[0])
        status = self.call(app, "/metrics", CONTENT_LENGTH="5")[0]
        self.assertTrue(status.startswith("413 "), status)

    def test_defaults_serve_the_default_collector(self) -> None:
        """make_wsgi_app() exposes what the module-level recorders put in the default
        collector, and is exported from the package root."""
        reset_metrics_collector()
        self.addCleanup(reset_metrics_collector)
        get_metrics_collector().record_git_operation("pull", "org/repo", False, 0.5)
        app = mgit_monitoring.make_wsgi_app()
        status, _, body = self.call(app, "/metrics")
        self.assertEqual("200 OK", status)
        self.assertIn(b'mgit_git_operations_total{operation="pull",status="failure"} 1\n', body)


_WAITRESS_MAIN = """
import sys
from waitress import create_server
from mgit_monitoring import get_metrics_collector, make_wsgi_app

get_metrics_collector().record_git_operation("clone", "org/repo", True, 1.5)
server = create_server(make_wsgi_app(), host="127.0.0.1", port=0, threads=2)
print(server.effective_port, flush=True)
server.run()
"""


class TestUnderWaitress(TempDirCase):
    """A real WSGI server in its own process: waitress (test-only dependency)."""

    def setUp(self) -> None:
        super().setUp()
        need_module("waitress")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.update(PYTHONPATH=ROOT, HOME=self.tmp, MGIT_MONITORING_PERSIST="false")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WAITRESS_MAIN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.tmp,
            text=True,
        )
        self.addCleanup(self._stop)
        line = self.proc.stdout.readline().strip()  # the child prints its port, or exits
        if not line.isdigit():
            self.fail(f"waitress did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line)

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def test_scrape_probe_gzip_and_head(self) -> None:
        """waitress serves /metrics (text, OpenMetrics, gzip), /health/live, and HEAD."""
        status, headers, body = _request(self.port, "GET", "/metrics")
        self.assertEqual(200, status)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertIn(b'mgit_git_operations_total{operation="clone",status="success"} 1\n', body)
        status, headers, zipped = _request(
            self.port, "GET", "/metrics", {"Accept-Encoding": "gzip"}
        )
        self.assertEqual(("gzip", 200), (headers.get("content-encoding"), status))
        self.assertIn(b"mgit_git_operations_total", gzip.decompress(zipped))
        _, headers, body = _request(self.port, "GET", "/metrics", {"Accept": OPENMETRICS})
        self.assertTrue(body.endswith(b"# EOF\n"))
        status, _, body = _request(self.port, "GET", "/health/live")
        self.assertEqual((200, "alive"), (status, json.loads(body)["status"]))
        status, headers, body = _request(self.port, "HEAD", "/metrics")
        self.assertEqual((200, b""), (status, body))
        self.assertGreater(int(headers["content-length"]), 0)
        # The connection survived HEAD: the next request on the server still works.
        self.assertEqual(200, _request(self.port, "GET", "/health/live")[0])

    def test_promtool_accepts_the_exposition(self) -> None:
        """promtool check metrics parses and lints what waitress served, with no findings."""
        promtool = need_executable("promtool")
        _request(self.port, "GET", "/health/live")  # so the server's own series exist too
        _, _, body = _request(self.port, "GET", "/metrics")
        out = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
        )
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        self.assertEqual(b"", out.stdout.strip() + out.stderr.strip())


if __name__ == "__main__":
    unittest.main()
