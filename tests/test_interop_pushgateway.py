"""Interop: pushes to a real Prometheus Pushgateway on loopback, read back from its /metrics."""

from __future__ import annotations

import socket
import subprocess
import time
import unittest
import urllib.request

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.errors import PushError
from mgit_monitoring.push import (
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
    try_push_to_gateway,
)
from mgit_monitoring.registry import Registry
from mgit_monitoring.samples import MetricFamily, Series, Snapshot
from tests.support import need_executable

DEADLINE_S = 20.0


def _free_port() -> int:
    # The Pushgateway cannot listen on port 0, so borrow a free port from the kernel.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


class TestPushgateway(unittest.TestCase):
    def setUp(self) -> None:
        exe = need_executable("prometheus-pushgateway", "pushgateway")
        port = _free_port()
        self.proc = subprocess.Popen(
            [
                exe,
                f"--web.listen-address=127.0.0.1:{port}",
                # Debian's default is /var/lib/prometheus/pushgateway.data: keep to memory.
                "--persistence.file=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(self._stop)
        self.url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + DEADLINE_S
        delay = 0.02
        while True:
            try:
                _get(self.url + "/-/ready")
                break
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    self.fail("the Pushgateway did not become ready")
                time.sleep(delay)  # another process starting: no event to wait on
                delay = min(delay * 2, 0.25)

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self) -> str:
        return _get(self.url + "/metrics")

    def test_put_then_read_back(self) -> None:
        """A PUT push of mgit's metrics shows up under job and grouping key, without errors."""
        metrics = MetricsCollector(process_metrics=False)
        for _ in range(3):
            metrics.record_operation("clone", True, 0.4, provider="github")
        status = push_to_gateway(
            self.url, "mgit", metrics.registry, {"instance": "ci/runner-1"}, timeout=5
        )
        self.assertIn(status, (200, 202))
        body = self.metrics()
        labels = 'instance="ci/runner-1",job="mgit",operation="clone",provider="github"'
        self.assertIn(f"mgit_operations_total{{{labels}}} 3\n", body)
        self.assertIn(f'mgit_operation_duration_seconds_bucket{{{labels},le="0.5"}} 3\n', body)
        self.assertIn('push_failure_time_seconds{instance="ci/runner-1",job="mgit"} 0\n', body)

    def test_grouping_values_that_need_escaping(self) -> None:
        """Job and grouping values with '/', dot segments, spaces, '%' and non-ASCII reach
        the gateway as they were, each in its own group."""
        registry = Registry()
        registry.counter("mgit_e_total", "E.").inc(2)
        values = ["org/repo", ".", "..", "a b", "50%", "ünï€", ""]
        for value in values:
            with self.subTest(value=value):
                push_to_gateway(self.url, "esc", registry, {"instance": value}, timeout=5)
        push_to_gateway(self.url, "..", registry, timeout=5)
        body = self.metrics()
        for value in values:
            self.assertIn(f'mgit_e_total{{instance="{value}",job="esc"}} 2\n', body)
        self.assertIn('mgit_e_total{instance="",job=".."} 2\n', body)

    def test_post_keeps_other_metrics_put_replaces_the_group(self) -> None:
        """POST replaces only the pushed names; PUT replaces the whole group; DELETE drops it."""
        first = Registry()
        first.counter("mgit_a_total", "A.").inc(1)
        first.counter("mgit_b_total", "B.").inc(1)
        push_to_gateway(self.url, "batch", first)
        second = Registry()
        second.counter("mgit_b_total", "B.").inc(7)
        pushadd_to_gateway(self.url, "batch", second)
        body = self.metrics()
        self.assertIn('mgit_a_total{instance="",job="batch"} 1\n', body)
        self.assertIn('mgit_b_total{instance="",job="batch"} 7\n', body)
        push_to_gateway(self.url, "batch", second, method="PUT")
        body = self.metrics()
        self.assertNotIn("mgit_a_total{", body)
        self.assertIn('mgit_b_total{instance="",job="batch"} 7\n', body)
        delete_from_gateway(self.url, "batch")
        self.assertNotIn("mgit_b_total{", self.metrics())

    def test_refused_push_raises_with_the_gateway_reason(self) -> None:
        """A push the gateway rejects (a type clash with another group) raises PushError."""
        counter = Registry()
        counter.counter("mgit_c_total", "C.").inc()
        push_to_gateway(self.url, "one", counter)
        as_gauge = Snapshot(
            (MetricFamily("mgit_c_total", "gauge", "C.", (), (Series((), 5, ""),)),), 0.0
        )
        with self.assertRaisesRegex(PushError, r"HTTP 400: .*mgit_c_total"):
            push_to_gateway(self.url, "two", as_gauge, timeout=5)
        self.assertNotIn('mgit_c_total{instance="",job="two"}', self.metrics())

    def test_gateway_down(self) -> None:
        """Once the gateway is gone, a push fails fast: PushError, or False and a warning."""
        self._stop()
        registry = Registry()
        registry.counter("mgit_a_total", "A.").inc()
        with self.assertRaisesRegex(PushError, "cannot PUT metrics to http://127.0.0.1"):
            push_to_gateway(self.url, "mgit", registry, timeout=2)
        with self.assertLogs("mgit_monitoring.push", "WARNING"):
            self.assertFalse(try_push_to_gateway(self.url, "mgit", registry, timeout=2))


if __name__ == "__main__":
    unittest.main()
