"""Interop: a real Prometheus server scrapes our /metrics endpoint on loopback."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, List

from mgit_monitoring.health import HealthChecker
from mgit_monitoring.registry import Registry
from mgit_monitoring.server import start_monitoring_server
from tests.support import need_executable, start_prometheus

DEADLINE_S = 30.0  # Prometheus 2.42 lands its first scrape ~6 s after start (discovery throttle)


class TestPrometheusScrapesUs(unittest.TestCase):
    def setUp(self) -> None:
        self.prometheus = need_executable("prometheus")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.registry = Registry()
        ops = self.registry.counter("mgit_operations_total", "Operations.", ("operation",))
        ops.labels("clone").inc(3)
        hist = self.registry.histogram("mgit_operation_duration_seconds", "Time.", ("operation",))
        hist.labels("clone").observe(0.2)
        self.server = start_monitoring_server(
            "127.0.0.1", 0, registry=self.registry, health_checker=HealthChecker(self.registry)
        )
        self.addCleanup(self.server.close)

    def _start_prometheus(self) -> str:
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: mgit\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{self.server.port}']}}]\n"
            )
        return start_prometheus(self, self.prometheus, config, self.tmp)

    @staticmethod
    def _query(api: str, promql: str) -> List[Any] | None:
        url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())["data"]["result"]  # type: ignore[no-any-return]
        except (OSError, ValueError, KeyError):
            return None  # not up yet

    def _wait_for(self, api: str, promql: str, value: str | None) -> list[Any]:
        """Poll until the query has a result (whose first value is ``value`` unless None)."""
        end = time.monotonic() + DEADLINE_S
        pause = threading.Event()
        result: list[Any] | None = None
        while time.monotonic() < end:
            result = self._query(api, promql)
            if result and (value is None or result[0]["value"][1] == value):
                return result
            pause.wait(0.25)  # polling another process: there is no event to wait on
        self.fail(f"{promql} never became {value} within {DEADLINE_S} s (last: {result})")

    def test_prometheus_scrapes_our_series(self) -> None:
        """Prometheus sees the target up and ingests our counter and histogram."""
        api = self._start_prometheus()
        up = self._wait_for(api, 'up{job="mgit"}', "1")
        self.assertEqual(f"127.0.0.1:{self.server.port}", up[0]["metric"]["instance"])
        ops = self._wait_for(api, 'mgit_operations_total{operation="clone"}', "3")
        self.assertEqual("mgit", ops[0]["metric"]["job"])
        self._wait_for(api, 'mgit_operation_duration_seconds_count{operation="clone"}', "1")
        # Our own request counter shows the scrapes, labelled by the route template.
        scrapes = self._wait_for(
            api, 'mgit_monitoring_http_requests_total{handler="/metrics"}', None
        )
        self.assertEqual("200", scrapes[0]["metric"]["code"])


if __name__ == "__main__":
    unittest.main()
