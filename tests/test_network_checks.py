"""The network and provider checks against loopback listeners, a fake proxy and an HTTP server."""

from __future__ import annotations

import http.server
import json
import select
import socket
import threading
import unittest

from mgit_monitoring.check_support import Endpoint
from mgit_monitoring.health import DEGRADED, HEALTHY, UNHEALTHY, HealthChecker
from mgit_monitoring.network_checks import NetworkCheck, ProviderEndpointsCheck
from tests.support import closed_port


class Listener:
    """A loopback TCP listener on port 0 (accepting is not needed for connect to succeed)."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class FakeProxy:
    """Answers one CONNECT per connection with a fixed status line, recording the request."""

    def __init__(self, status: str = "200 Connection established") -> None:
        self.listener = Listener()
        self.status = status
        self.requests: list = []
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.sock.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data.decode("latin-1"))
                conn.sendall(f"HTTP/1.1 {self.status}\r\n\r\n".encode())

    def close(self) -> None:
        self.stopping = True
        # accept() is not interrupted by close() from another thread: wake it with a connect.
        socket.create_connection(("127.0.0.1", self.listener.port), timeout=5).close()
        self.thread.join(5)
        self.listener.close()


class TestNetwork(unittest.TestCase):
    def setUp(self):
        self.listener = Listener()
        self.addCleanup(self.listener.close)

    def test_reachable_and_closed(self):
        """One open and one closed loopback port is degraded with per-host states."""
        up = f"127.0.0.1:{self.listener.port}"
        down = f"127.0.0.1:{closed_port()}"
        result = NetworkCheck([up, down], connect_timeout=2, dns_timeout=2)()
        self.assertEqual(result.status, DEGRADED)
        self.assertEqual(result.details["hosts"][up]["status"], "reachable")
        self.assertEqual(result.details["hosts"][up]["address_family"], "IPv4")
        self.assertEqual(result.details["hosts"][down]["status"], "unreachable")
        self.assertEqual(
            result.message, f"Network connectivity: 1/2 hosts reachable; unreachable: {down}"
        )
        self.assertEqual((result.observed_value, result.observed_unit), (50.0, "%"))

    def test_all_reachable_and_none(self):
        """All hosts up is healthy; none is unhealthy."""
        ok = NetworkCheck([("127.0.0.1", self.listener.port)])()
        self.assertEqual(ok.status, HEALTHY)
        bad = NetworkCheck([f"127.0.0.1:{closed_port()}"])()
        self.assertEqual(bad.status, UNHEALTHY)

    def test_ipv6(self):
        """IPv6 literals are connected over IPv6."""
        try:
            listener6 = Listener(socket.AF_INET6, "::1")
        except OSError:
            self.skipTest("no IPv6 loopback here")
        self.addCleanup(listener6.close)
        result = NetworkCheck([f"[::1]:{listener6.port}"])()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.details["hosts"][f"::1:{listener6.port}"]["address_family"], "IPv6")

    def test_dns_failure_and_dns_timeout(self):
        """A resolver error and a resolver that hangs past dns_timeout are both reported."""
        release = threading.Event()
        self.addCleanup(release.set)

        def resolver(host, port, *args):
            if host == "hang.invalid":
                release.wait(10)
            raise socket.gaierror(-2, "Name or service not known")

        result = NetworkCheck(
            ["bad.invalid:443", "hang.invalid:443"], dns_timeout=0.2, resolver=resolver
        )()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertEqual(result.details["hosts"]["bad.invalid:443"]["status"], "dns_failed")
        self.assertEqual(result.details["hosts"]["hang.invalid:443"]["status"], "dns_timeout")

    def test_ipv6_first_then_ipv4(self):
        """A name with an unreachable IPv6 address and a good IPv4 one is reachable over IPv4."""
        closed = closed_port()

        def resolver(host, port, *args):
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", closed, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", self.listener.port)),
            ]

        result = NetworkCheck(["dual.example:443"], resolver=resolver)()
        report = result.details["hosts"]["dual.example:443"]
        self.assertEqual((result.status, report["address_family"]), (HEALTHY, "IPv4"))

    def test_hanging_resolver_keeps_one_lookup_per_host(self):
        """Runs against a resolver that never answers reuse the lookup already in flight."""
        release = threading.Event()
        self.addCleanup(release.set)
        calls = []

        def resolver(host, port, *args):
            calls.append(host)
            release.wait(10)
            raise socket.gaierror(-2, "Name or service not known")

        checker = HealthChecker()
        check = NetworkCheck(
            ["a.invalid:443", "b.invalid:443"], dns_timeout=0.01, resolver=resolver
        )
        checker.register_check("net", check, ttl=0.001)
        with self.assertLogs("mgit_monitoring.health", "WARNING"):  # the status change
            for _ in range(20):
                result = checker.run_check_sync("net", use_cache=False)
                hosts = result.details["hosts"]
                self.assertEqual(hosts["a.invalid:443"]["status"], "dns_timeout")
        self.assertEqual(sorted(calls), ["a.invalid", "b.invalid"])
        release.set()
        for thread in threading.enumerate():
            if thread.name == "mgit-health-dns":
                thread.join(10)
        second = check()  # the lookup finished: the next run asks the resolver again
        self.assertEqual(second.details["hosts"]["a.invalid:443"]["status"], "dns_failed")
        self.assertEqual(len(calls), 4)

    def test_dribbling_proxy_is_bounded(self):
        """A proxy that sends its reply one byte at a time is given up on at the timeout."""
        listener = Listener()
        self.addCleanup(listener.close)
        hung_up = threading.Event()

        def dribble():
            conn, _ = listener.sock.accept()
            with conn:
                conn.recv(1024)
                for _ in range(2000):  # a status line that never reaches its end
                    try:
                        conn.sendall(b"H")
                        # Paces the dribble and notices the client hanging up.
                        if select.select([conn], [], [], 0.02)[0] and conn.recv(1) == b"":
                            break
                    except OSError:
                        break
                else:
                    return
                hung_up.set()

        threading.Thread(target=dribble, daemon=True).start()
        check = NetworkCheck(
            ["github.example:443"], connect_timeout=0.3, proxy=f"127.0.0.1:{listener.port}"
        )
        result = check()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertTrue(hung_up.wait(10), "the probe kept reading from the proxy")

    def test_proxy_connect(self):
        """With an HTTPS proxy the check tunnels through it and never reveals its credentials."""
        proxy = FakeProxy()
        self.addCleanup(proxy.close)
        check = NetworkCheck(
            ["github.example:443"], proxy=f"http://user:s3cret@127.0.0.1:{proxy.listener.port}"
        )
        result = check()
        self.assertEqual(result.status, HEALTHY)
        report = result.details["hosts"]["github.example:443"]
        self.assertEqual(report["via_proxy"], f"127.0.0.1:{proxy.listener.port}")
        self.assertTrue(proxy.requests[0].startswith("CONNECT github.example:443 HTTP/1.1"))
        self.assertIn("Proxy-Authorization: Basic", proxy.requests[0])
        self.assertNotIn("s3cret", json.dumps(result.to_dict()))

    def test_proxy_refusal_and_no_proxy(self):
        """A 407 from the proxy is unreachable; hosts matching no_proxy are connected directly."""
        proxy = FakeProxy("407 Proxy Authentication Required")
        self.addCleanup(proxy.close)
        direct = f"127.0.0.1:{self.listener.port}"
        check = NetworkCheck(
            ["github.example:443", direct],
            proxy=f"127.0.0.1:{proxy.listener.port}",
            no_proxy="127.0.0.1,localhost",
        )
        result = check()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn("407", result.details["hosts"]["github.example:443"]["error"])
        self.assertNotIn("via_proxy", result.details["hosts"][direct])

    def test_no_hosts(self):
        """Nothing to check is healthy, says so, and resolves nothing."""

        def resolver(*args):
            raise AssertionError(f"resolved {args!r}")

        result = NetworkCheck([], resolver=resolver, nothing_message="nothing here")()
        self.assertEqual((result.status, result.message), (HEALTHY, "nothing here"))
        self.assertEqual(result.details["total"], 0)

    def test_hosts_from_a_source_each_run(self):
        """A callable source is asked on every run: hosts added later are probed then."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        self.addCleanup(listener.close)
        found = []
        check = NetworkCheck(lambda: list(found), connect_timeout=2)
        self.assertEqual(check().status, HEALTHY)
        self.assertEqual(check().details["total"], 0)
        found.append(f"127.0.0.1:{listener.getsockname()[1]}")
        result = check()
        self.assertEqual((result.status, result.details["reachable"]), (HEALTHY, 1))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {
        "/json": (200, "application/json", b'{"resources": {}}'),
        "/html": (200, "text/html", b"<html>Sign in</html>"),
        "/203": (203, "text/html", b"<html>Sign in</html>"),
        "/401": (401, "application/json", b'{"message": "Requires authentication"}'),
        "/429": (429, "application/json", b"{}"),
        "/500": (500, "text/plain", b"oops"),
    }

    def do_GET(self):  # noqa: N802 - http.server's naming
        code, ctype, body = self.routes[self.path.split("?")[0]]
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-RateLimit-Remaining", "59")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TestProviderEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)

    def run_check(self, *paths):
        endpoints = [Endpoint(p.strip("/"), self.base + p) for p in paths]
        return ProviderEndpointsCheck(endpoints, timeout=5)()

    def test_json_answer_is_reachable(self):
        """A JSON 200 is healthy, with the response time and rate-limit headroom."""
        result = self.run_check("/json?token=abc")
        self.assertEqual(result.status, HEALTHY)
        report = result.details["providers"]["json?token=abc"]
        self.assertEqual(report["http_status"], 200)
        self.assertEqual(report["rate_limit_remaining"], 59)
        self.assertNotIn("token=abc", report["url"])  # query strings can hold credentials
        self.assertEqual((result.measurement, result.observed_unit), ("responseTime", "ms"))

    def test_sign_in_pages_are_failures(self):
        """HTTP 203 (Azure DevOps' sign-in answer) and HTML instead of JSON are failures."""
        result = self.run_check("/203", "/html")
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("203", result.details["providers"]["203"]["error"])
        self.assertIn("expected JSON", result.details["providers"]["html"]["error"])

    def test_anonymous_401_is_reachable(self):
        """An API asking for credentials is up: the probe is anonymous on purpose."""
        self.assertEqual(self.run_check("/401").status, HEALTHY)

    def test_rate_limit_and_errors_degrade(self):
        """429 degrades; a 500 next to a good endpoint degrades; everything down is unhealthy."""
        self.assertEqual(self.run_check("/json", "/429").status, DEGRADED)
        self.assertEqual(self.run_check("/json", "/500").status, DEGRADED)
        down = ProviderEndpointsCheck([f"http://127.0.0.1:{closed_port()}/x"], timeout=2)()
        self.assertEqual(down.status, UNHEALTHY)
        self.assertIn("unreachable", json.dumps(down.details))

    def test_stuck_fetch_is_not_started_again(self):
        """A fetch stuck where urllib has no timeout (its DNS lookup) keeps one thread."""
        release = threading.Event()
        self.addCleanup(release.set)
        calls = []

        def stuck(endpoint):
            calls.append(endpoint.name)
            release.wait(10)
            return {"url": endpoint.url, "status": "reachable"}

        # ``stuck`` stands in for getaddrinfo hanging inside urlopen.
        check = ProviderEndpointsCheck(
            [Endpoint("gh", "https://gh.invalid/")], timeout=0.01, fetch=stuck
        )
        for _ in range(5):
            result = check()
            self.assertEqual(result.status, UNHEALTHY)
            self.assertIn("gh: no answer in time", result.message)
        self.assertEqual(calls, ["gh"])

    def test_no_endpoints(self):
        """No endpoints to probe is healthy with the message given, and fetches nothing."""

        def fetch(endpoint):
            raise AssertionError(f"fetched {endpoint!r}")

        result = ProviderEndpointsCheck(lambda: [], fetch=fetch, nothing_message="none here")()
        self.assertEqual((result.status, result.message), (HEALTHY, "none here"))


if __name__ == "__main__":
    unittest.main()
