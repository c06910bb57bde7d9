"""Textfile export and Pushgateway pushes, against a recording HTTP server on loopback."""

from __future__ import annotations

import base64
import os
import pathlib
import socket
import stat
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List

from mgit_monitoring.errors import ConfigError, PushError
from mgit_monitoring.push import (
    CONTENT_TYPE_PUSH,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
    try_push_to_gateway,
    write_textfile,
)
from mgit_monitoring.registry import Registry

LOGGER = "mgit_monitoring.push"


class _Recorder(BaseHTTPRequestHandler):
    """Records every request and answers with the server's configured status and body."""

    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        status, text = self.server.answer  # type: ignore[attr-defined]
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayCase(unittest.TestCase):
    def setUp(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        self.httpd.requests: List[Any] = []  # type: ignore[misc]
        self.httpd.answer = (200, "")  # type: ignore[attr-defined]
        thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(self.httpd.server_close)
        self.addCleanup(self.httpd.shutdown)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.registry = Registry()
        self.registry.counter("mgit_ops_total", "Ops.", ("op",)).labels("clone").inc(3)

    @property
    def last(self):
        return self.httpd.requests[-1]


class TestPush(GatewayCase):
    def test_put_sends_text_format(self):
        """PUT goes to /metrics/job/<job> with the text exposition and its content type."""
        self.assertEqual(push_to_gateway(self.url, "mgit", self.registry), 200)
        method, path, headers, body = self.last
        self.assertEqual((method, path), ("PUT", "/metrics/job/mgit"))
        self.assertEqual(headers["Content-Type"], CONTENT_TYPE_PUSH)
        self.assertIn(b'mgit_ops_total{op="clone"} 3\n', body)

    def test_post_and_delete(self):
        """pushadd uses POST; delete_from_gateway sends DELETE without a body."""
        pushadd_to_gateway(self.url, "mgit", self.registry.snapshot())
        self.assertEqual(self.last[0], "POST")
        delete_from_gateway(self.url, "mgit", {"instance": "ci"})
        self.assertEqual(self.last[:2], ("DELETE", "/metrics/job/mgit/instance/ci"))
        self.assertEqual(self.last[3], b"")

    def test_grouping_key_encoding(self):
        """Values with '/' and empty values are base64-encoded; others percent-encoded."""
        push_to_gateway(self.url, "a/b", self.registry, {"repo": "org/x", "empty": "", "sp": "a b"})
        job = base64.urlsafe_b64encode(b"a/b").decode()
        repo = base64.urlsafe_b64encode(b"org/x").decode()
        self.assertEqual(
            self.last[1],
            f"/metrics/job@base64/{job}/repo@base64/{repo}/empty@base64/=/sp/a%20b",
        )

    def test_dot_segments_are_base64_encoded(self):
        """'.' and '..' as job or label values are sent base64-encoded, never as dot segments."""
        push_to_gateway(self.url, ".", self.registry, {"instance": ".."})
        self.assertEqual(self.last[1], "/metrics/job@base64/Lg==/instance@base64/Li4=")

    def test_line_break_in_a_credential_is_refused_without_showing_it(self):
        """A token with a trailing newline (read from a file) gives ConfigError, secret unshown."""
        cases = [
            {"token": "s3cret-token\n"},
            {"auth": ("user", "s3cret-token\r\n")},
            {"headers": {"X-Api-Key": "s3cret-token\n"}},
        ]
        for options in cases:
            with self.subTest(options=list(options)):
                with self.assertRaisesRegex(ConfigError, "line break") as ctx:
                    push_to_gateway(self.url, "mgit", self.registry, **options)
                self.assertNotIn("s3cret", str(ctx.exception))
                with self.assertLogs(LOGGER, "WARNING") as logs:
                    self.assertFalse(
                        try_push_to_gateway(self.url, "mgit", self.registry, **options)
                    )
                self.assertNotIn("s3cret", logs.output[0])
        self.assertEqual(self.httpd.requests, [])

    def test_basic_auth_and_bearer(self):
        """auth=(user, password) sends Basic, token= sends Bearer."""
        push_to_gateway(self.url, "mgit", self.registry, auth=("u", "p:w"))
        self.assertEqual(
            self.last[2]["Authorization"], "Basic " + base64.b64encode(b"u:p:w").decode()
        )
        push_to_gateway(self.url, "mgit", self.registry, token="t0k")
        self.assertEqual(self.last[2]["Authorization"], "Bearer t0k")

    def test_credentials_in_url_are_used_but_never_shown(self):
        """user:password in the URL become Basic auth and do not appear in error messages."""
        self.httpd.answer = (401, "unauthorized")  # type: ignore[attr-defined]
        url = self.url.replace("http://", "http://alice:s3cret@")
        with self.assertRaises(PushError) as ctx:
            push_to_gateway(url, "mgit", self.registry)
        self.assertIn("HTTP 401", str(ctx.exception))
        self.assertNotIn("s3cret", str(ctx.exception))
        self.assertIn("Basic", self.last[2]["Authorization"])

    def test_refused_push_names_status_and_reason(self):
        """A 400 from the gateway raises PushError with the status and its one-line reason."""
        self.httpd.answer = (400, "pushed metrics are invalid\nline two")  # type: ignore[attr-defined]
        with self.assertRaisesRegex(PushError, "HTTP 400: pushed metrics are invalid line two"):
            push_to_gateway(self.url, "mgit", self.registry)

    def test_bad_arguments(self):
        """Bad method, job, URL, grouping key or auth combination raise ConfigError."""
        cases = [
            ({"method": "GET"}, "GET"),
            ({"job": ""}, "job"),
            ({"gateway": "ftp://x"}, "ftp"),
            ({"grouping_key": {"job": "x"}}, "job"),
            ({"grouping_key": {"bad-name": "x"}}, "bad-name"),
            ({"auth": ("u", "p"), "token": "t"}, "not both"),
            ({"timeout": 0}, "timeout"),
        ]
        for change, text in cases:
            args = dict(gateway=self.url, job="mgit", source=self.registry)
            args.update(change)
            with self.subTest(change=change), self.assertRaisesRegex(ConfigError, text):
                push_to_gateway(**args)

    def test_dead_gateway(self):
        """A gateway that is down gives PushError, and False plus one warning from try_."""
        url = f"http://127.0.0.1:{free_port()}"
        with self.assertRaisesRegex(PushError, "cannot PUT metrics to .*/metrics/job/mgit"):
            push_to_gateway(url, "mgit", self.registry, timeout=2)
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertFalse(try_push_to_gateway(url, "mgit", self.registry, timeout=2))
        self.assertEqual(len(logs.records), 1)

    def test_timeout(self):
        """A gateway that accepts but never answers times out with PushError."""
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            with self.assertRaisesRegex(PushError, "timed out"):
                push_to_gateway(url, "mgit", self.registry, timeout=0.2)

    def test_try_push_succeeds(self):
        """try_push_to_gateway returns True on success."""
        self.assertTrue(try_push_to_gateway(self.url, "mgit", self.registry, method="POST"))
        self.assertEqual(self.last[0], "POST")


class TestTextfile(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.registry = Registry()
        self.registry.counter("mgit_ops_total", "Ops.").inc(2)

    def test_writes_atomically_with_0644(self):
        """The file holds the exposition, mode 0644, and no temporary file is left behind."""
        path = os.path.join(self.dir, "mgit.prom")
        pathlib.Path(path).write_text("old\n")
        size = write_textfile(path, self.registry)
        data = pathlib.Path(path).read_bytes()
        self.assertEqual(size, len(data))
        self.assertIn(b"mgit_ops_total 2\n", data)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        self.assertEqual(os.listdir(self.dir), ["mgit.prom"])

    def test_process_families_are_left_out(self):
        """The writer's own process_* series are not written (node_exporter serves its own)."""
        from mgit_monitoring.collector import MetricsCollector

        metrics = MetricsCollector()  # with the process_* and python_info collectors
        metrics.record_operation("clone", True, 0.1, provider="github")
        self.assertIsNotNone(metrics.registry.snapshot().family("process_cpu_seconds"))
        path = os.path.join(self.dir, "mgit.prom")
        write_textfile(path, metrics.registry)
        text = pathlib.Path(path).read_text()
        self.assertNotIn("process_", text)
        self.assertIn('mgit_operations_total{operation="clone",provider="github"} 1\n', text)
        self.assertIn("python_info{", text)

    def test_formats(self):
        """openmetrics ends in # EOF, json is a JSON document; an unknown format is refused."""
        path = os.path.join(self.dir, "m.txt")
        write_textfile(path, self.registry.snapshot(), format="openmetrics")
        self.assertTrue(pathlib.Path(path).read_text().endswith("# EOF\n"))
        write_textfile(path, self.registry, format="json")
        self.assertIn('"mgit_ops_total"', pathlib.Path(path).read_text())
        with self.assertRaisesRegex(ConfigError, "'yaml'"):
            write_textfile(path, self.registry, format="yaml")
        with self.assertRaisesRegex(ConfigError, "int"):
            write_textfile(path, 42)

    def test_unwritable_target_keeps_the_old_file(self):
        """A failed write raises PushError naming the path and leaves no temporary file."""
        missing = os.path.join(self.dir, "no-such-dir", "mgit.prom")
        with self.assertRaisesRegex(PushError, "no-such-dir"):
            write_textfile(missing, self.registry)
        target = os.path.join(self.dir, "is-a-dir.prom")
        os.mkdir(target)
        with self.assertRaisesRegex(PushError, "is-a-dir.prom"):
            write_textfile(target, self.registry)
        self.assertEqual(sorted(os.listdir(self.dir)), ["is-a-dir.prom"])


if __name__ == "__main__":
    unittest.main()
