"""Soak: a server scraped twice a second while short-lived mgit processes keep flushing.

Issue 14 part 5. ``python3 -m mgit_monitoring server`` runs on a state directory for
``MGIT_MONITORING_SOAK_SECONDS`` (default 120) while recorder processes, two at a time,
start, run a random number of decorated operations and exit (their exit flush publishes
the counts to the shared store). A scraper reads ``/metrics`` every 0.5 s and samples the
server's RSS (``VmRSS`` in ``/proc/<pid>/status``) and open descriptors
(``/proc/<pid>/fd``) after each scrape.

What must hold: every scrape answers 200; a least-squares line through the second half of
the samples rises less than 1 MB/min of RSS and 1 descriptor/min (the slopes are printed);
and at the end ``mgit_operations_total`` is exactly the number of operations all recorders
ran. Linux only.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import List, Sequence, Tuple

from tests.support import ROOT

SECONDS = float(os.environ.get("MGIT_MONITORING_SOAK_SECONDS", "120"))
SCRAPE_INTERVAL = 0.5
RECORDERS_AT_ONCE = 2
MAX_RSS_SLOPE_MB_PER_MIN = 1.0
MAX_FD_SLOPE_PER_MIN = 1.0

RECORDER = """
import sys
from mgit_monitoring.integration import monitor_mgit_operation, setup_monitoring_integration

@monitor_mgit_operation(operation_name="soak", provider="github")
def work(i):
    if i % 7 == 3:
        raise ValueError("a failed operation counts too")
    return i

setup_monitoring_integration()
for i in range(int(sys.argv[1])):
    try:
        work(i)
    except ValueError:
        pass
"""

TOTAL = re.compile(
    r'^mgit_operations_total\{operation="soak",provider="github"\} (\d+)(?:\.0)?$', re.M
)


def slope_per_minute(samples: Sequence[Tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, in value per minute."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60.0 if var else 0.0


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@unittest.skipUnless(sys.platform.startswith("linux"), "reads /proc/<pid>")
@unittest.skipIf(
    SECONDS <= 0,
    "MGIT_MONITORING_SOAK_SECONDS=0 (make test-matrix: the soak runs once, in the main pass)",
)
class Soak(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        state = os.path.join(tmp.name, "state")
        os.makedirs(state)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
        self.env.update(
            PYTHONPATH=ROOT,
            HOME=tmp.name,
            MGIT_MONITORING_STATE_DIR=state,
            MGIT_MONITORING_NETWORK_HOSTS="none",
            MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
        )

    def start_server(self) -> Tuple[subprocess.Popen, int]:
        cmd = [
            sys.executable, "-m", "mgit_monitoring", "server", "--simple",
            "--host", "127.0.0.1", "--port", "0",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, env=self.env, cwd=self.tmp, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]

        self.addCleanup(stop)
        line = proc.stdout.readline()  # type: ignore[union-attr]
        self.assertTrue(line.startswith("serving on http://127.0.0.1:"), line)
        return proc, int(line.rsplit(":", 1)[1])

    def test_soak(self):
        seed = int(
            os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32))
        )
        rng = random.Random(seed)
        server, port = self.start_server()
        samples: List[Tuple[float, int, int]] = []  # (seconds since start, RSS kB, fds)
        failures: List[str] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def scrape() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                while not stop.is_set():
                    begun = time.monotonic()
                    try:
                        conn.request("GET", "/metrics")
                        response = conn.getresponse()
                        response.read()
                        if response.status != 200:
                            failures.append(f"scrape answered {response.status}")
                    except (OSError, http.client.HTTPException) as exc:
                        failures.append(f"scrape failed: {exc!r}")
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    samples.append((time.monotonic() - t0, _rss_kb(server.pid), _fds(server.pid)))
                    stop.wait(max(0.0, SCRAPE_INTERVAL - (time.monotonic() - begun)))
            finally:
                conn.close()

        scraper = threading.Thread(target=scrape, name="soak-scraper")
        scraper.start()
        self.addCleanup(scraper.join, 60)
        self.addCleanup(stop.set)

        expected = 0
        recorders = 0
        running: List[subprocess.Popen] = []
        while time.monotonic() - t0 < SECONDS:
            for proc in [p for p in running if p.poll() is not None]:
                running.remove(proc)
                self.assertEqual(0, proc.returncode, f"a recorder failed (seed={seed})")
            while len(running) < RECORDERS_AT_ONCE:
                operations = rng.randrange(1, 60)
                running.append(
                    subprocess.Popen(
                        [sys.executable, "-c", RECORDER, str(operations)],
                        env=self.env,
                        cwd=self.tmp,
                    )  # fmt: skip
                )
                expected += operations
                recorders += 1
            time.sleep(0.05)  # polling child processes: nothing to await
        for proc in running:
            self.assertEqual(0, proc.wait(timeout=120), f"a recorder failed (seed={seed})")
        stop.set()
        scraper.join(60)

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            self.assertEqual(200, response.status)
            match = TOTAL.search(response.read().decode("utf-8"))
        finally:
            conn.close()
        total = int(match.group(1)) if match else 0

        half = samples[len(samples) // 2 :]
        rss = slope_per_minute([(t, kb / 1024.0) for t, kb, _ in half])
        fds = slope_per_minute([(t, n) for t, _, n in half])
        report = (
            f"soak {SECONDS:.0f} s (seed={seed}): {recorders} recorders, {expected} operations, "
            f"{len(samples)} scrapes; server RSS {samples[0][1] / 1024:.1f} -> "
            f"{samples[-1][1] / 1024:.1f} MB, fds {samples[0][2]} -> {samples[-1][2]}; "
            f"second-half slopes: RSS {rss:+.3f} MB/min, fds {fds:+.3f}/min"
        )
        print("\n" + report, file=sys.stderr)
        self.assertEqual([], failures[:10], report)
        self.assertGreater(len(samples), SECONDS / SCRAPE_INTERVAL / 2, report)
        self.assertEqual(expected, total, report)
        self.assertLess(rss, MAX_RSS_SLOPE_MB_PER_MIN, report)
        self.assertLess(fds, MAX_FD_SLOPE_PER_MIN, report)


if __name__ == "__main__":
    unittest.main()
