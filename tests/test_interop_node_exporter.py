"""Interop: a real node_exporter reads our textfile (written by write_textfile) and serves it."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.push import write_textfile
from mgit_monitoring.registry import Registry
from mgit_monitoring.shared_state import SharedMetrics, merged_snapshot
from mgit_monitoring.store import Store
from tests.support import need_executable

DEADLINE_S = 20.0


def _free_port() -> int:
    # node_exporter cannot listen on port 0, so borrow a free port from the kernel.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestNodeExporterTextfile(unittest.TestCase):
    def setUp(self) -> None:
        self.exe = need_executable("prometheus-node-exporter", "node_exporter")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.textdir = os.path.join(tmp.name, "textfile")
        os.mkdir(self.textdir)
        self.state = os.path.join(tmp.name, "state")
        self.log_path = os.path.join(tmp.name, "node_exporter.log")

    def _start(self) -> str:
        port = _free_port()
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [
                self.exe,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--collector.textfile.directory={self.textdir}",
                "--collector.disable-defaults",
                "--collector.textfile",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(self._stop, proc)
        return f"http://127.0.0.1:{port}/metrics"

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _scrape_until(self, url: str, needle: str) -> str:
        """Poll node_exporter until its /metrics contains ``needle``; return that body."""
        end = time.monotonic() + DEADLINE_S
        body = ""
        delay = 0.02
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read().decode()
                if needle in body:
                    return body
            except OSError:
                pass  # not listening yet: another process, no event to wait on
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            log = fh.read()
        self.fail(f"{needle!r} never appeared within {DEADLINE_S} s; log: {log[-2000:]}")

    def test_merged_metrics_appear_without_parse_error(self) -> None:
        """node_exporter serves the merged store's series and reports no textfile error."""
        writer = MetricsCollector(process_metrics=False)
        for _ in range(4):
            writer.record_operation("clone", True, 0.3, provider="github")
        writer.record_operation("pull", False, 2.0, provider='az"ure\\dev\nops')
        store = Store.open(self.state)
        self.addCleanup(store.close)
        SharedMetrics(store, writer.registry).stop()
        target = os.path.join(self.textdir, "mgit.prom")
        write_textfile(target, merged_snapshot(store))
        url = self._start()
        body = self._scrape_until(url, "node_textfile_scrape_error")
        self.assertIn('mgit_operations_total{operation="clone",provider="github"} 4\n', body)
        self.assertIn(
            'mgit_operations_failure_total{operation="pull",provider="az\\"ure\\\\dev\\nops"} 1\n',
            body,
        )
        self.assertIn(
            'mgit_operation_duration_seconds_bucket{operation="clone",provider="github",'
            'le="0.5"} 4\n',
            body,
        )
        self.assertIn("node_textfile_scrape_error 0\n", body)
        self.assertIn(f'node_textfile_mtime_seconds{{file="{target}"}}', body)

    def test_library_export_of_a_full_registry_gathers_cleanly(self) -> None:
        """A registry with process collectors, exported as is, does not clash with
        node_exporter's own process_* series (no gathering error, its own values served)."""
        metrics = MetricsCollector()  # process_* and python_info collectors included
        metrics.record_operation("clone", True, 0.3, provider="github")
        write_textfile(os.path.join(self.textdir, "mgit.prom"), metrics.registry)
        url = self._start()
        body = self._scrape_until(url, 'mgit_operations_total{operation="clone"')
        self.assertIn("node_textfile_scrape_error 0\n", body)
        self.assertIn("python_info{", body)
        self.assertIn("process_start_time_seconds ", body)  # node_exporter's own
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            log = fh.read()  # written before the response: the scrape above is logged
        self.assertNotIn("error gathering metrics", log)
        self.assertNotIn("collected before", log)

    def test_rewrite_is_picked_up(self) -> None:
        """Rewriting the file while node_exporter runs replaces the values it serves."""
        registry = Registry()
        counter = registry.counter("mgit_batch_runs_total", "Batch runs.")
        counter.inc()
        target = os.path.join(self.textdir, "mgit.prom")
        write_textfile(target, registry)
        url = self._start()
        self._scrape_until(url, "mgit_batch_runs_total 1\n")
        counter.inc(4)
        write_textfile(target, registry)
        body = self._scrape_until(url, "mgit_batch_runs_total 5\n")
        self.assertIn("node_textfile_scrape_error 0\n", body)
        self.assertEqual(os.listdir(self.textdir), ["mgit.prom"])


if __name__ == "__main__":
    unittest.main()
