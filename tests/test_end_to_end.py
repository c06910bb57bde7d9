"""The whole path a user runs: mgit processes record, the server and the CLI show it.

Real processes throughout: writers are separate Python processes using the integration,
the server is ``python3 -m mgit_monitoring server`` on port 0, the CLI is
``python3 -m mgit_monitoring metrics``; they share only the state directory.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent

WRITER = """
import sys
from mgit_monitoring.integration import setup_monitoring_integration, monitor_mgit_operation

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone(i):
    return i

setup_monitoring_integration()
for i in range(int(sys.argv[1])):
    clone(i)
if len(sys.argv) > 2:  # stay alive, so only the periodic flush can publish the data
    print("recorded", flush=True)
    sys.stdin.readline()
"""

TOTAL = re.compile(
    r'^mgit_operations_total\{operation="clone-all",provider="github"\} (\d+)(?:\.0)?$', re.M
)


def _total(text: str) -> int:
    match = TOTAL.search(text)
    return int(match.group(1)) if match else 0


class EndToEnd(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.state = tmp.name
        # A reader (the server) needs the named state dir to exist; mgit runs create it.
        os.makedirs(os.path.join(self.state, "state"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            HOME=self.state,
            MGIT_MONITORING_STATE_DIR=os.path.join(self.state, "state"),
            MGIT_MONITORING_NETWORK_HOSTS="none",
            MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
            MGIT_MONITORING_FLUSH_INTERVAL="0.2",
        )

    def write(self, processes: int, operations: int) -> None:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(operations)], env=self.env, cwd=self.state
            )
            for _ in range(processes)
        ]
        for proc in procs:
            self.assertEqual(0, proc.wait(timeout=120))

    def start_server(self) -> str:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mgit_monitoring",
                "server",
                "--simple",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            env=self.env,
            cwd=self.state,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.addCleanup(self._stop, proc)
        line = proc.stdout.readline() if proc.stdout else ""
        self.assertTrue(line.startswith("serving on http://127.0.0.1:"), line)
        return line.split()[-1]

    def _stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(0, proc.wait(timeout=30))
        if proc.stdout:
            proc.stdout.close()

    def scrape(self, url: str) -> str:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            return response.read().decode("utf-8")

    def test_parallel_processes_add_up_in_server_and_cli(self):
        """8 processes x 1,000 operations give exactly 8,000 in /metrics and in `metrics`."""
        self.write(processes=8, operations=1000)
        url = self.start_server()  # started after the work: it still sees all of it
        self.assertEqual(8000, _total(self.scrape(url)))
        out = subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", "metrics"],
            env=self.env,
            cwd=self.state,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual(8000, _total(out.stdout))
        self.assertRegex(
            out.stdout,
            r"mgit_operation_duration_seconds_count"
            r'\{operation="clone-all",provider="github"\} 8000',
        )

    def test_server_health_checks_feed_its_metrics(self):
        """The server's health checker updates the mgit_health_* gauges its /metrics shows."""
        url = self.start_server()
        with urllib.request.urlopen(url + "/health/detailed", timeout=30) as response:
            report = json.loads(response.read())  # every check has run once now
        values = {"healthy": 1, "degraded": 0.5, "unhealthy": 0}
        text = self.scrape(url)
        for name, check in report["checks"].items():
            line = f'mgit_health_check_status{{check="{name}"}} {float(values[check["status"]])}'
            self.assertIn(line, text)
        self.assertIn(f"\nmgit_health_overall {float(values[report['status']])}\n", text)

    def test_server_started_first_sees_a_running_process_within_a_flush(self):
        """A server already running shows a live process's work after its periodic flush."""
        url = self.start_server()
        self.assertEqual(0, _total(self.scrape(url)))
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, "25", "stay"],
            env=self.env,
            cwd=self.state,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(writer.wait, 30)
        self.addCleanup(writer.stdin.close)  # type: ignore[union-attr]
        self.addCleanup(writer.stdout.close)  # type: ignore[union-attr]
        self.assertEqual("recorded\n", writer.stdout.readline())  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        seen = 0
        while time.monotonic() < deadline:
            seen = _total(self.scrape(url))
            if seen == 25:
                break
            time.sleep(0.1)  # polling an external process: nothing to await
        self.assertEqual(25, seen)
        self.assertIsNone(writer.poll())  # still running: the periodic flush published it


if __name__ == "__main__":
    unittest.main()
