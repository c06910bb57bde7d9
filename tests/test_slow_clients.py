"""Idle, slowloris and one-byte-a-second clients against a server in its own process.

Issue 14 part 1: with 1,000 idle or slowloris connections open the probes and ``/metrics``
answer 200 (probes within 100 ms median), no such connection holds a thread, a whole-head
deadline closes a trickling client, and the thread count returns to its baseline once the
clients leave. Linux only: threads and descriptors are read from ``/proc/<pid>``.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, List, Tuple

from tests.support import await_condition, need_executable, open_sockets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDLE = 500
SLOWLORIS = 500

# The server as `mgit-monitoring server --simple` runs it (serve()), with a test registry and
# the head deadline given on the command line: request_timeout [certfile keyfile].
_SERVER = """
import sys
from mgit_monitoring.health import HealthChecker, HealthCheckResult
from mgit_monitoring.registry import Registry
from mgit_monitoring.server import TLSConfig, serve

reg = Registry()
reg.counter("mgit_operations_total", "Operations.", ("operation",)).labels("clone").inc(3)
checker = HealthChecker(reg)
checker.register_check(
    "disk", lambda: HealthCheckResult("disk", "healthy", "ok"), critical=True
)
serve(
    "127.0.0.1", 0, ready=lambda server: print("serving on", server.url, flush=True),
    registry=reg, health_checker=checker, simple=True, request_timeout=float(sys.argv[1]),
    tls=TLSConfig(sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else None,
)
"""


def _proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@unittest.skipUnless(sys.platform.startswith("linux"), "reads /proc/<pid>")
class TestSlowClients(unittest.TestCase):
    def setUp(self) -> None:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 4096
        if soft != resource.RLIM_INFINITY and soft < wanted:
            if hard != resource.RLIM_INFINITY and hard < IDLE + SLOWLORIS + 256:
                self.skipTest(f"open-files hard limit {hard} is below the 1,000 clients")
            new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.env = dict(os.environ, HOME=tmp.name, MGIT_MONITORING_STATE_DIR=tmp.name)
        self.env["PYTHONPATH"] = REPO + os.pathsep + self.env.get("PYTHONPATH", "")

    def spawn(self, request_timeout: float, *tls: str) -> Tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(request_timeout), *tls],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            text=True,
        )

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]

        self.addCleanup(stop)
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        self.assertTrue(line.startswith("serving on http"), line)
        return proc, line.split()[-1]

    def connect(self, port: int, clients: List[socket.socket]) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        clients.append(sock)
        return sock

    def timed_get(self, make: Callable[[], Any], path: str) -> Tuple[int, float]:
        """(status, milliseconds) of one request on a new connection, as a kubelet probes."""
        start = time.perf_counter()
        conn = make()
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            return response.status, (time.perf_counter() - start) * 1000.0
        finally:
            conn.close()

    def test_probes_answer_under_1000_idle_and_slowloris_connections(self) -> None:
        """500 idle and 500 slowloris connections: /health/live, /health/ready and /metrics
        answer 200, probes within 100 ms median; the connections hold no threads, and the
        thread count returns to its baseline when they leave."""
        proc, url = self.spawn(60.0)
        port = int(url.rsplit(":", 1)[1])
        make = lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # noqa: E731
        self.assertEqual(200, self.timed_get(make, "/health/ready")[0])  # warm: imports done
        self.assertTrue(await_condition(lambda: _proc_status(proc.pid, "Threads") <= 2, 15))
        baseline = _proc_status(proc.pid, "Threads")  # main and the selector thread
        sockets_before = open_sockets(proc.pid)

        clients: List[socket.socket] = []
        self.addCleanup(lambda: [sock.close() for sock in clients])
        slow: List[socket.socket] = []
        for i in range(IDLE + SLOWLORIS):
            sock = self.connect(port, clients)
            if i % 2:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(sock)
        stop = threading.Event()

        def trickle() -> None:  # every slowloris client sends one more byte now and then
            while not stop.wait(0.5):
                for sock in slow:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass

        sender = threading.Thread(target=trickle)
        sender.start()
        self.addCleanup(sender.join, 10)
        self.addCleanup(stop.set)
        held = IDLE + SLOWLORIS + sockets_before
        self.assertTrue(
            await_condition(lambda: open_sockets(proc.pid) >= held, 30),
            f"the server holds {open_sockets(proc.pid)} sockets, not {held}",
        )
        threads_loaded = _proc_status(proc.pid, "Threads")

        latencies: List[float] = []
        for _ in range(20):
            for path in ("/health/live", "/health/ready"):
                status, ms = self.timed_get(make, path)
                self.assertEqual(200, status, path)
                latencies.append(ms)
            self.assertEqual(200, self.timed_get(make, "/metrics")[0])
        median = statistics.median(latencies)
        # All 1,000 are still held: the probes were served next to them, not instead.
        self.assertGreaterEqual(open_sockets(proc.pid), held)
        print(
            f"\n  {IDLE} idle + {SLOWLORIS} slowloris held: probe median {median:.1f} ms, "
            f"max {max(latencies):.1f} ms; threads {baseline} -> {threads_loaded}",
            file=sys.stderr,
        )
        self.assertLess(median, 100.0, f"probe latencies (ms): {sorted(latencies)}")
        self.assertLess(threads_loaded - baseline, 8, "idle or slow connections hold threads")

        stop.set()
        sender.join(10)
        for sock in clients:
            sock.close()
        clients.clear()
        self.assertTrue(
            await_condition(lambda: open_sockets(proc.pid) <= sockets_before, 15),
            f"{open_sockets(proc.pid)} sockets left open, {sockets_before} before",
        )
        self.assertTrue(
            await_condition(lambda: _proc_status(proc.pid, "Threads") <= baseline, 15),
            f"{_proc_status(proc.pid, 'Threads')} threads, baseline {baseline}",
        )

    def test_one_byte_a_second_is_closed_at_the_head_deadline(self) -> None:
        """A client sending its head one byte a second is closed at the 2 s whole-head
        deadline, though it never pauses for as long as a second and a half."""
        _proc, url = self.spawn(2.0)
        port = int(url.rsplit(":", 1)[1])
        clients: List[socket.socket] = []
        self.addCleanup(lambda: [sock.close() for sock in clients])
        sock = self.connect(port, clients)
        sock.settimeout(1.0)
        data = b"GET /health/live HTTP/1.1\r\nX-Slow: " + b"a" * 30  # 66 s at this pace
        sent = 0
        closed = False
        for byte in data:
            try:
                sock.send(bytes([byte]))
                sent += 1
                if sock.recv(1024) == b"":  # waits one second, or sees the close
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:  # reset: closed too
                closed = True
                break
        self.assertTrue(closed, "the server waited for the whole trickle")
        self.assertLess(sent, 10, "closed only after the head deadline's span several times")
        make = lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # noqa: E731
        self.assertEqual(200, self.timed_get(make, "/health/live")[0])

    def test_stalled_tls_handshakes_hold_no_thread(self) -> None:
        """300 TLS clients that connect and stall their handshake (silent, or half a record)
        hold no thread; an HTTPS probe still answers 200."""
        openssl = need_executable("openssl")
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        proc, url = self.spawn(60.0, cert, key)
        self.assertTrue(url.startswith("https://"), url)
        port = int(url.rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=cert)
        make = lambda: http.client.HTTPSConnection(  # noqa: E731
            "127.0.0.1", port, context=ctx, timeout=10
        )
        self.assertEqual(200, self.timed_get(make, "/health/live")[0])
        self.assertTrue(await_condition(lambda: _proc_status(proc.pid, "Threads") <= 2, 15))
        baseline = _proc_status(proc.pid, "Threads")
        sockets_before = open_sockets(proc.pid)
        clients: List[socket.socket] = []
        self.addCleanup(lambda: [sock.close() for sock in clients])
        for i in range(300):
            sock = self.connect(port, clients)
            if i % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello record, cut short
        self.assertTrue(await_condition(lambda: open_sockets(proc.pid) >= sockets_before + 300, 30))
        for path in ("/health/live", "/health/ready", "/metrics"):
            self.assertEqual(200, self.timed_get(make, path)[0], path)
        self.assertLess(_proc_status(proc.pid, "Threads") - baseline, 8)
        for sock in clients:
            sock.close()
        self.assertTrue(await_condition(lambda: open_sockets(proc.pid) <= sockets_before, 15))
        self.assertTrue(await_condition(lambda: _proc_status(proc.pid, "Threads") <= baseline, 15))


if __name__ == "__main__":
    unittest.main()
