"""The server's application layer: the pure route function, called without sockets."""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import unittest
from typing import Any, List, Tuple

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.http_app import ENDPOINTS, MonitoringApp
from mgit_monitoring.http_auth import HttpAuth
from mgit_monitoring.registry import Registry
from tests.test_server import (
    PROMETHEUS_ACCEPT,
    _Base,
    _checker,
    _FailingRegistry,
    _own_series,
    _random_request,
)


class _Fields:
    """Header fields in order, repeats included: what the server hands to ``route``."""

    def __init__(self, fields: List[Tuple[str, str]]) -> None:
        self.fields = fields

    def items(self) -> List[Tuple[str, str]]:
        return list(self.fields)


class TestRoute(_Base):
    """The pure routing function, without sockets."""

    def setUp(self) -> None:
        super().setUp()
        self.app = MonitoringApp(metrics=self.registry, health_checker=self.checker, simple=True)

    def test_every_endpoint_answers_with_type_and_length(self) -> None:
        """Every endpoint is 200 with a Content-Type and an exact Content-Length."""
        for path in [*ENDPOINTS, "/"]:
            response = self.app.route("GET", path, {})
            self.assertEqual(200, response.status, path)
            self.assertTrue(response.header("Content-Type"), path)
            self.assertEqual(str(len(response.body)), response.header("Content-Length"), path)

    def test_head_has_get_headers_and_no_body(self) -> None:
        """HEAD mirrors GET's status and headers, with an empty body."""
        for path in ["/health/ready", "/health/live", "/"]:  # bodies of stable length
            get = self.app.route("GET", path, {})
            head = self.app.route("HEAD", path, {})
            self.assertEqual(get.status, head.status)
            self.assertEqual(get.header("Content-Length"), head.header("Content-Length"))
            self.assertEqual(b"", head.body)

    def test_not_found_and_method_not_allowed_are_json(self) -> None:
        """404 for unknown paths, 405 with Allow for other methods; both JSON."""
        missing = self.app.route("GET", "/favicon.ico", {})
        self.assertEqual(404, missing.status)
        self.assertEqual("Not found", json.loads(missing.body)["error"])
        post = self.app.route("POST", "/metrics", {})
        self.assertEqual(405, post.status)
        self.assertEqual("GET, HEAD, OPTIONS", post.header("Allow"))
        self.assertEqual("application/json", post.header("Content-Type"))
        self.assertEqual(204, self.app.route("OPTIONS", "/metrics", {}).status)

    def test_query_string_and_trailing_slash_tolerated(self) -> None:
        """``/metrics?x=1`` and ``/info/`` reach their endpoints."""
        self.assertEqual(200, self.app.route("GET", "/metrics?name[]=x", {}).status)
        self.assertEqual(200, self.app.route("GET", "/info/", {}).status)

    def test_request_body_refused(self) -> None:
        """A GET with a body is 413; an unparsable Content-Length is 400."""
        self.assertEqual(413, self.app.route("GET", "/metrics", {"Content-Length": "5"}).status)
        self.assertEqual(
            413, self.app.route("GET", "/metrics", {"Transfer-Encoding": "chunked"}).status
        )
        self.assertEqual(400, self.app.route("GET", "/metrics", {"Content-Length": "x"}).status)
        self.assertEqual(200, self.app.route("GET", "/metrics", {"Content-Length": "0"}).status)

    def test_content_length_of_ascii_digits_only(self) -> None:
        """Digits str.isdigit() takes but int() refuses ("²") or reads ("١", "٠") are a 400,
        never a 500 with a traceback logged, nor a length."""
        for value in ("\xb2", "\u0661", "\u0660", "0\u0660", "\uff10"):
            with self.subTest(value=value), self.assertLogs("mgit_monitoring", "DEBUG") as logs:
                response = self.app.route("GET", "/metrics", {"Content-Length": value})
                logging.getLogger("mgit_monitoring").debug("route returned")
                self.assertEqual(400, response.status)
                self.assertEqual("Invalid Content-Length", json.loads(response.body)["error"])
                self.assertEqual(["route returned"], [r.getMessage() for r in logs.records])

    def test_repeated_fields_first_value_counts(self) -> None:
        """Given fields in order with repeats (as the server passes them), the first value of
        a repeated field counts, in any case of its name; repeated Content-Length fields that
        differ are a 400 (RFC 9112 6.3), equal ones are one."""
        om = self.app.route(
            "GET", "/metrics", _Fields([("Accept", PROMETHEUS_ACCEPT), ("accept", "text/plain")])
        )
        self.assertTrue(om.header("Content-Type").startswith("application/openmetrics-text"))
        text = self.app.route(
            "GET", "/metrics", _Fields([("ACCEPT", "text/plain"), ("Accept", PROMETHEUS_ACCEPT)])
        )
        self.assertTrue(text.header("Content-Type").startswith("text/plain"))
        for lengths, code in ((("0", "5"), 400), (("5", "0"), 400), (("0", "0"), 200)):
            with self.subTest(lengths=lengths):
                fields = _Fields([("Content-Length", lengths[0]), ("content-length", lengths[1])])
                self.assertEqual(code, self.app.route("GET", "/metrics", fields).status)
        conflict = self.app.route(
            "GET", "/metrics", _Fields([("Content-Length", "0"), ("Content-Length", "1")])
        )
        self.assertEqual("Conflicting Content-Length", json.loads(conflict.body)["error"])

    def test_metrics_content_negotiation(self) -> None:
        """Prometheus's Accept gets OpenMetrics; anything else text 0.0.4."""
        om = self.app.route("GET", "/metrics", {"Accept": PROMETHEUS_ACCEPT})
        self.assertTrue(om.header("Content-Type").startswith("application/openmetrics-text"))
        self.assertTrue(om.body.endswith(b"# EOF\n"))
        prometheus3 = (
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf8;q=0.5,"
            "application/openmetrics-text;version=0.0.1;q=0.4,"
            "text/plain;version=1.0.0;escaping=allow-utf8;q=0.3,"
            "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        )
        om3 = self.app.route("GET", "/metrics", {"Accept": prometheus3})
        self.assertEqual(
            "application/openmetrics-text; version=1.0.0; charset=utf-8", om3.header("Content-Type")
        )
        text = self.app.route("GET", "/metrics", {"Accept": "application/json"})
        self.assertEqual("text/plain; version=0.0.4; charset=utf-8", text.header("Content-Type"))
        self.assertIn(b'mgit_operations_total{operation="clone"} 3', text.body)

    def test_metrics_json(self) -> None:
        """/metrics/json is JSON holding our series."""
        doc = json.loads(self.app.route("GET", "/metrics/json", {}).body)
        names = {m["name"] for m in doc["metrics"]}
        self.assertIn("mgit_operations_total", names)

    def test_failing_export_is_500_without_exception_text(self) -> None:
        """A broken registry gives a JSON 500 that does not leak the exception."""
        app = MonitoringApp(metrics=_FailingRegistry(), health_checker=self.checker, simple=True)
        with self.assertLogs("mgit_monitoring.server", "ERROR"):
            response = app.route("GET", "/metrics", {})
        self.assertEqual(500, response.status)
        self.assertNotIn(b"secret-internal-detail", response.body)

    def test_health_status_codes(self) -> None:
        """/health: 200 healthy and degraded, 503 unhealthy; readiness follows critical checks."""
        for status, code, ready in (
            ("healthy", 200, 200),
            ("degraded", 200, 200),
            ("unhealthy", 503, 503),
        ):
            checker = _checker(Registry(), status)
            app = MonitoringApp(metrics=self.registry, health_checker=checker, simple=True)
            response = app.route("GET", "/health", {})
            self.assertEqual(code, response.status, status)
            self.assertEqual("no-store", response.header("Cache-Control"))
            self.assertEqual(status, json.loads(response.body)["status"])
            self.assertEqual(ready, app.route("GET", "/health/ready", {}).status, status)
            self.assertEqual(200, app.route("GET", "/health/live", {}).status)
            self.assertEqual(200, app.route("GET", "/health/detailed", {}).status)

    def test_health_json_by_accept(self) -> None:
        """Accept: application/health+json gets the IETF draft shape."""
        response = self.app.route("GET", "/health", {"Accept": "application/health+json"})
        self.assertEqual("application/health+json", response.header("Content-Type"))
        self.assertEqual("pass", json.loads(response.body)["status"])

    def test_draining_turns_readiness_off(self) -> None:
        """While the server drains, readiness is 503 so traffic moves away."""
        self.app.draining = True
        response = self.app.route("GET", "/health/ready", {})
        self.assertEqual(503, response.status)
        self.assertEqual("shutting down", json.loads(response.body)["reason"])

    def test_info_fields(self) -> None:
        """/info names the version, process, UTC start time and endpoints, and no secrets."""
        app = MonitoringApp(
            metrics=self.registry, health_checker=self.checker, auth=HttpAuth(token="tok3n")
        )
        response = app.route("GET", "/info", {"Authorization": "Bearer tok3n"})
        info = json.loads(response.body)
        for key in ("version", "python", "pid", "hostname", "uptime_seconds", "endpoints"):
            self.assertIn(key, info)
        self.assertTrue(info["start_time"].endswith("Z"))
        self.assertEqual("/health/ready", info["endpoints"]["readiness"])
        self.assertEqual("bearer", info["monitoring"]["auth"])
        self.assertNotIn(b"tok3n", response.body)

    def test_own_metrics_use_route_templates(self) -> None:
        """Requests are counted by route template; raw paths never become label values."""
        self.app.route("GET", "/health/live", {})
        self.app.route("GET", "/secret/token/abc", {})
        text = self.app.route("GET", "/metrics", {}).body.decode()
        self.assertIn(
            'mgit_monitoring_http_requests_total{handler="/health/live",code="200"} 1', text
        )
        self.assertIn('mgit_monitoring_http_requests_total{handler="other",code="404"} 1', text)
        self.assertNotIn("/secret/token", text)
        self.assertNotIn("mgit_api_", text)

    def test_ten_thousand_random_paths_keep_series_bounded(self) -> None:
        """10,000 random paths and methods add no series: labels are route templates only."""
        collector = MetricsCollector(process_metrics=False)
        app = MonitoringApp(metrics=collector.registry, health_checker=self.checker, simple=True)
        rnd = random.Random(7)
        for _ in range(10000):
            app.route(*_random_request(rnd), {})
        text = app.route("GET", "/metrics", {}).body.decode()
        series = _own_series(text)
        counted = [x for x in series if x.startswith("mgit_monitoring_http_requests_total{")]
        # /metrics 200 plus what random paths reach: other 404, / 200 and / 405.
        self.assertLessEqual(len(counted), 4, counted)
        self.assertLess(len(series), 100, "one series per path would be thousands")
        handlers = {line.split('handler="', 1)[1].split('"', 1)[0] for line in series}
        self.assertLessEqual(handlers, {*ENDPOINTS, "/", "other"})
        # Never mixed into the provider API metrics of the same registry.
        api = [x for x in text.splitlines() if x.startswith("mgit_api_")]
        self.assertEqual([], api)
        self.assertIn("# TYPE mgit_api_requests_total counter", text)

    def test_scrape_sees_updates_made_before_it(self) -> None:
        """Concurrent scrapes share renders but each sees every increment made before it."""
        gauge = self.registry.gauge("mgit_seq", "Sequence.")
        errors: List[str] = []

        def worker(offset: int) -> None:
            for i in range(20):
                value = offset * 1000 + i
                gauge.set(value)
                body = self.app.route("GET", "/metrics", {}).body.decode()
                line = next(x for x in body.splitlines() if x.startswith("mgit_seq "))
                seen = float(line.split()[1])
                # Another thread may have set a different value since; ours must not be lost
                # to a render that started before we asked, so the value is one set no earlier
                # than our own set (same thread: >= ours; other thread: anything).
                if seen // 1000 == offset and seen < value:
                    errors.append(f"stale {seen} < {value}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual([], errors)

    def test_concurrent_scrapes_during_slow_render_all_answer(self) -> None:
        """Scrapes arriving during a slow render share the next one and all get 200."""
        started, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)
        calls: List[int] = []
        arrived = threading.Semaphore(0)

        class Slow(Registry):
            def snapshot(inner) -> Any:  # noqa: N805 - inner: the registry, self: the test
                calls.append(1)
                if len(calls) == 1:
                    started.set()
                    release.wait(30)
                return Registry.snapshot(inner)

        class Arriving(dict):
            """Request headers that tell the test when route() reads them."""

            def items(inner) -> Any:  # noqa: N805
                arrived.release()
                return super().items()

        headers = {"Accept": "text/plain"}
        app = MonitoringApp(metrics=Slow(), health_checker=self.checker, simple=True)
        codes: List[int] = []

        def scrape(given: Any) -> None:
            codes.append(app.route("GET", "/metrics", given).status)

        first = threading.Thread(target=scrape, args=(headers,))
        first.start()
        self.assertTrue(started.wait(10))
        others = [threading.Thread(target=scrape, args=(Arriving(headers),)) for _ in range(5)]
        for thread in others:
            thread.start()
        for _ in others:
            self.assertTrue(arrived.acquire(timeout=10))
        # From reading the headers to queueing behind the slow render takes microseconds.
        threading.Event().wait(0.1)
        release.set()
        for thread in [first, *others]:
            thread.join(10)
            self.assertFalse(thread.is_alive(), "a scrape is stuck")
        self.assertEqual([200] * 6, codes)
        self.assertLess(len(calls), 6)


class TestSources(_Base):
    """What the app is given: metrics source, health checker or factory, clocks."""

    def test_health_factory_is_called_once_on_the_first_health_request(self) -> None:
        """Scrapes and start() in simple mode build no checker; the first health request does."""
        built: List[int] = []

        def factory() -> Any:
            built.append(1)
            return self.checker

        app = MonitoringApp(metrics=self.registry, health_factory=factory, simple=True)
        app.start()
        self.addCleanup(app.stop)
        self.assertEqual(200, app.route("GET", "/metrics").status)
        self.assertEqual(200, app.route("GET", "/health/live").status)  # probes need one
        self.assertEqual(200, app.route("GET", "/health").status)
        self.assertEqual([1], built)

    def test_exactly_one_health_source(self) -> None:
        """Neither or both of health_checker and health_factory is a TypeError."""
        with self.assertRaises(TypeError):
            MonitoringApp(metrics=self.registry)
        with self.assertRaises(TypeError):
            MonitoringApp(
                metrics=self.registry, health_checker=self.checker, health_factory=lambda: None
            )

    def test_any_snapshot_source(self) -> None:
        """A metrics source needs only snapshot() when the app does not count its own requests."""

        class View:
            def snapshot(inner) -> Any:  # noqa: N805
                return self.registry.snapshot()

        app = MonitoringApp(
            metrics=View(), health_checker=self.checker, simple=True, instrument=False
        )
        for path in ("/metrics", "/metrics/json"):
            response = app.route("GET", path, {"Accept-Encoding": "gzip"})
            self.assertEqual(200, response.status, path)
            self.assertEqual("gzip", response.header("Content-Encoding"), path)
            self.assertIn(b"mgit_operations_total", gzip.decompress(response.body), path)

    def test_clocks(self) -> None:
        """Uptime comes from the monotonic clock, timestamps from the wall clock."""
        mono, wall = [100.0], [1_700_000_000.0]
        app = MonitoringApp(
            metrics=self.registry,
            health_checker=self.checker,
            simple=True,
            clock=lambda: mono[0],
            wall_clock=lambda: wall[0],
        )
        mono[0] += 12.5
        wall[0] += 60.0
        info = json.loads(app.route("GET", "/info").body)
        self.assertEqual(12.5, info["uptime_seconds"])
        self.assertEqual("2023-11-14T22:13:20.000Z", info["start_time"])
        self.assertEqual("2023-11-14T22:14:20.000Z", info["current_time"])
        status = json.loads(app.route("GET", "/status").body)
        self.assertEqual(12.5, status["uptime_seconds"])
        self.assertEqual("2023-11-14T22:14:20.000Z", status["timestamp"])
        self.assertEqual(
            "2023-11-14T22:14:20.000Z",
            json.loads(app.route("GET", "/health/live").body)["timestamp"],
        )


if __name__ == "__main__":
    unittest.main()
