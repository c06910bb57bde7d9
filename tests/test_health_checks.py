"""The standard checks against fake /proc and cgroup trees, fake git and loopback servers."""

from __future__ import annotations

import base64
import http.server
import io
import json
import logging
import os
import select
import socket
import sys
import tempfile
import threading
import time
import unittest
from collections import namedtuple

from mgit_monitoring.config import MonitoringConfig
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthChecker,
    create_default_health_checker,
    health_to_dict,
    to_health_json,
)
from mgit_monitoring.health_checks import (
    DEFAULT_PROVIDER_ENDPOINTS,
    AuthenticationCheck,
    DiskSpaceCheck,
    Endpoint,
    GitCheck,
    MemoryCheck,
    NetworkCheck,
    ProviderEndpointsCheck,
    SystemBasicsCheck,
    credential_api_urls,
    default_mgit_config_path,
    register_default_checks,
)
from tests.support import open_to_all, run_unprivileged

GIB = 1024**3
Usage = namedtuple("Usage", "total used free")
POSIX = os.name == "posix"


class TempDirCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def write(self, relative: str, text: str, mode: int | None = None) -> str:
        path = os.path.join(self.tmp, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(path, mode)
        return path


class TestSystemBasics(TempDirCase):
    def test_writable_dirs(self):
        """Writable state and temp directories and a supported Python are healthy."""
        result = SystemBasicsCheck(state_dir=self.tmp, temp_dir=self.tmp)()
        self.assertEqual(result.status, HEALTHY)
        self.assertTrue(result.details["state_dir_writable"])
        self.assertEqual(
            result.details["python_version"].split(".")[:2], [str(x) for x in sys.version_info[:2]]
        )

    def test_missing_state_dir_under_writable_parent(self):
        """A state dir that does not exist yet but can be created is fine (and is not created)."""
        state = os.path.join(self.tmp, "a", "b")
        result = SystemBasicsCheck(state_dir=state, temp_dir=self.tmp)()
        self.assertEqual(result.status, HEALTHY)
        self.assertFalse(os.path.exists(state))

    def test_state_dir_is_a_file(self):
        """A state path that is a file is unhealthy and says why."""
        path = self.write("file", "x")
        result = SystemBasicsCheck(state_dir=path, temp_dir=self.tmp)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("not a directory", result.message)

    def test_read_only_dir(self):
        """A read-only state directory is unhealthy (checked as a user file modes apply to)."""
        state = os.path.join(self.tmp, "state")
        os.mkdir(state)
        open_to_all(state)
        os.chmod(state, 0o555)
        self.addCleanup(os.chmod, state, 0o700)

        def check() -> None:
            result = SystemBasicsCheck(state_dir=state, temp_dir=tempfile.gettempdir())()
            self.assertEqual(result.status, UNHEALTHY)

        run_unprivileged(self, check)

    def test_python_too_old(self):
        """A Python older than min_python is unhealthy."""
        result = SystemBasicsCheck(temp_dir=self.tmp, min_python=(99, 0))()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("older than 99.0", result.message)


def _process_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _wait_dead(pid: int) -> str:
    """The grandchild's state once SIGKILL has landed: gone, or a zombie init has not reaped."""
    # SIGKILL is delivered asynchronously and there is no event to await for a process that
    # is not our child, so poll /proc briefly (returns on the first dead reading).
    state = _process_state(pid)
    for _ in range(500):
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.01)
        state = _process_state(pid)
    return state


@unittest.skipIf(not POSIX, "fake git scripts are shell scripts")
class TestGit(TempDirCase):
    def fake_git(self, body: str) -> str:
        path = self.write("bin/git", "#!/bin/sh\n" + body + "\n", mode=0o755)
        return os.path.dirname(path)

    def test_good_git(self):
        """A git printing its version is healthy with the parsed version."""
        bindir = self.fake_git('echo "git version 2.39.5"')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.observed_value, "2.39.5")
        self.assertEqual(result.details["git_path"], os.path.join(bindir, "git"))

    def test_missing_git(self):
        """No git on the search path is unhealthy."""
        os.makedirs(os.path.join(self.tmp, "empty"))
        result = GitCheck(search_path=os.path.join(self.tmp, "empty"))()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("not found", result.message)

    def test_failing_git(self):
        """A git exiting non-zero is unhealthy with its exit code and stderr."""
        bindir = self.fake_git('echo "fatal: broken" >&2; exit 3')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertEqual(result.details["returncode"], 3)
        self.assertIn("fatal: broken", result.details["stderr"])

    def test_hanging_git_is_killed_at_the_timeout(self):
        """A git that hangs is reported as timed out and its process group is killed."""
        pidfile = os.path.join(self.tmp, "pid")
        bindir = self.fake_git(f"sleep 30 & echo $! > {pidfile}; wait")
        result = GitCheck(search_path=bindir, timeout=0.2)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("timed out after 0.2 s", result.message)
        with open(pidfile) as handle:
            child = int(handle.read())
        self.assertIn(_wait_dead(child), ("gone", "Z", "X"))

    def test_old_git(self):
        """A git older than min_version is unhealthy and names both versions."""
        bindir = self.fake_git('echo "git version 1.8.3.1"')
        result = GitCheck(search_path=bindir, min_version="2.20")()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("1.8.3 is older than the required 2.20", result.message)

    def test_vendor_version_strings(self):
        """Apple's and Git for Windows' version strings parse and compare like plain ones."""
        cases = (
            ("git version 2.39.5 (Apple Git-154)", "2.39.5", "2.39"),
            ("git version 2.45.windows.1", "2.45", "2.45.0"),
            ("git version 2.45.1.windows.1", "2.45.1", "2.45.1"),
        )
        for line, parsed, minimum in cases:
            with self.subTest(line=line):
                bindir = self.fake_git(f'echo "{line}"')
                result = GitCheck(search_path=bindir, min_version=minimum)()
                self.assertEqual((result.status, result.observed_value), (HEALTHY, parsed))
                self.assertEqual(result.details["git_version"], line)
        bindir = self.fake_git('echo "git version 2.45.windows.1"')
        old = GitCheck(search_path=bindir, min_version="2.45.1")()
        self.assertEqual(old.status, UNHEALTHY)
        self.assertIn("git 2.45 is older than the required 2.45.1", old.message)

    def test_version_line_after_a_wrapper_banner(self):
        """A wrapper printing a line before git's own still yields the version."""
        bindir = self.fake_git('echo "using /opt/git"; echo "git version 2.43.0"')
        result = GitCheck(search_path=bindir)()
        self.assertEqual((result.status, result.observed_value), (HEALTHY, "2.43.0"))

    def test_stderr_is_masked_before_it_is_shortened(self):
        """A token straddling the 300-character cut of git's stderr does not leak in part."""
        secret = "ghp_" + "L3AKL3AK" * 4 + "abcd"
        url = f"https://user:{secret}@github.com/o/r.git"
        bindir = self.fake_git(f'printf "%0270d {url}" 0 >&2; exit 128')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("https://user:", result.details["stderr"])
        self.assertNotIn("L3AK", json.dumps(result.to_dict()))

    def test_unparseable_version(self):
        """Output without a version degrades instead of failing."""
        bindir = self.fake_git('echo "hello"')
        self.assertEqual(GitCheck(search_path=bindir)().status, DEGRADED)

    def test_explicit_path_and_bad_min_version(self):
        """git may be given as a path; a bad min_version raises ConfigError naming it."""
        bindir = self.fake_git('echo "git version 2.45.0.windows.1"')
        result = GitCheck(git=os.path.join(bindir, "git"), min_version=(2, 20))()
        self.assertEqual((result.status, result.observed_value), (HEALTHY, "2.45.0"))
        with self.assertRaisesRegex(ConfigError, "'two'"):
            GitCheck(min_version="two")


class Listener:
    """A loopback TCP listener on port 0 (accepting is not needed for connect to succeed)."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


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
        self.assertEqual(result.message, "Network connectivity: 1/2 hosts reachable")
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
        """An empty host list (air-gapped and nothing configured) is unknown, not unhealthy."""
        self.assertEqual(NetworkCheck([])().status, UNKNOWN)


class TestDisk(TempDirCase):
    def check(self, free: int, total: int = 100 * GIB, **kw):
        return DiskSpaceCheck(self.tmp, usage=lambda p: Usage(total, total - free, free), **kw)()

    def test_thresholds(self):
        """Free percent and free bytes map to healthy, degraded and unhealthy."""
        self.assertEqual(self.check(50 * GIB).status, HEALTHY)
        self.assertEqual(self.check(15 * GIB).status, DEGRADED)
        self.assertEqual(self.check(5 * GIB).status, UNHEALTHY)
        small = self.check(GIB // 2, total=2 * GIB)  # 25 % free but under 1 GiB
        self.assertEqual(small.status, UNHEALTHY)
        self.assertIn("Critical", small.message)

    def test_details_and_observation(self):
        """Details carry bytes, percentages and the original's GiB figures."""
        result = self.check(25 * GIB)
        self.assertEqual(result.details["free_bytes"], 25 * GIB)
        self.assertEqual(result.details["usage_percent"], 75.0)
        self.assertEqual(result.details["free_gb"], 25.0)
        self.assertEqual((result.observed_value, result.measurement), (75.0, "utilization"))

    def test_missing_path_measures_parent(self):
        """A directory that does not exist yet is measured at its nearest existing parent."""
        seen = []
        DiskSpaceCheck(
            os.path.join(self.tmp, "x", "y"),
            usage=lambda p: seen.append(p) or Usage(10 * GIB, GIB, 9 * GIB),
        )()
        self.assertEqual(seen, [os.path.abspath(self.tmp)])

    def test_real_disk(self):
        """The real shutil.disk_usage works on the temp directory."""
        self.assertIn(
            DiskSpaceCheck(self.tmp, min_free_bytes=0)().status, (HEALTHY, DEGRADED, UNHEALTHY)
        )

    def test_bad_thresholds(self):
        """A fail threshold above the warn threshold is rejected."""
        with self.assertRaisesRegex(ConfigError, "fail_free_percent=30"):
            DiskSpaceCheck(self.tmp, warn_free_percent=20, fail_free_percent=30)


MEMINFO = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n"


class TestMemory(TempDirCase):
    def check(self, **kw):
        return MemoryCheck(os.path.join(self.tmp, "proc"), os.path.join(self.tmp, "cgroup"), **kw)()

    def test_cgroup_v2(self):
        """cgroup v2: the limit and the working set (usage minus inactive_file) are used."""
        self.write("proc/self/cgroup", "0::/kubepods/pod1\n")
        self.write("proc/meminfo", MEMINFO)
        self.write("cgroup/kubepods/pod1/memory.max", "1000000\n")
        self.write("cgroup/kubepods/pod1/memory.current", "900000\n")
        self.write("cgroup/kubepods/pod1/memory.stat", "anon 1\ninactive_file 100000\n")
        result = self.check()
        self.assertEqual(result.details["source"], "cgroup v2")
        self.assertEqual(result.details["used_bytes"], 800000)
        self.assertEqual(result.observed_value, 80.0)
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(self.check(warn_percent=70).status, DEGRADED)
        self.assertEqual(self.check(warn_percent=50, fail_percent=75).status, UNHEALTHY)

    def test_cgroup_v2_limit_on_a_parent(self):
        """An unlimited leaf cgroup uses the nearest ancestor that has a limit."""
        self.write("proc/self/cgroup", "0::/a/b\n")
        self.write("cgroup/a/b/memory.max", "max\n")
        self.write("cgroup/a/b/memory.current", "10\n")
        self.write("cgroup/a/memory.max", "2000\n")
        self.write("cgroup/a/memory.current", "1000\n")
        self.assertEqual(self.check().observed_value, 50.0)

    def test_unlimited_cgroup_falls_back_to_meminfo(self):
        """With no cgroup limit the node's /proc/meminfo is used."""
        self.write("proc/self/cgroup", "0::/\n")
        self.write("cgroup/memory.max", "max\n")
        self.write("cgroup/memory.current", "5\n")
        self.write("proc/meminfo", MEMINFO)
        result = self.check()
        self.assertEqual(result.details["source"], "/proc/meminfo")
        self.assertEqual(result.observed_value, 75.0)

    def test_cgroup_v1(self):
        """cgroup v1: memory.limit_in_bytes and usage_in_bytes minus total_inactive_file."""
        self.write("proc/self/cgroup", "12:cpu,cpuacct:/x\n11:memory:/docker/abc\n")
        self.write("cgroup/memory/docker/abc/memory.limit_in_bytes", "4000\n")
        self.write("cgroup/memory/docker/abc/memory.usage_in_bytes", "3000\n")
        self.write("cgroup/memory/docker/abc/memory.stat", "total_inactive_file 1000\n")
        result = self.check()
        self.assertEqual(result.details["source"], "cgroup v1")
        self.assertEqual(result.observed_value, 50.0)

    def test_cgroup_v1_unlimited(self):
        """cgroup v1's huge 'no limit' value falls back to /proc/meminfo."""
        self.write("proc/self/cgroup", "11:memory:/\n")
        self.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
        self.write("cgroup/memory/memory.usage_in_bytes", "3000\n")
        self.write("proc/meminfo", MEMINFO)
        self.assertEqual(self.check().details["source"], "/proc/meminfo")

    def test_nothing_available(self):
        """Neither cgroup nor /proc/meminfo gives unknown with the reason."""
        result = self.check()
        self.assertEqual(result.status, UNKNOWN)
        self.assertIn("meminfo", result.message)


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

        check = ProviderEndpointsCheck([Endpoint("gh", "https://gh.invalid/")], timeout=0.01)
        check._fetch = stuck  # stands in for getaddrinfo hanging inside urlopen
        for _ in range(5):
            result = check()
            self.assertEqual(result.status, UNHEALTHY)
            self.assertIn("gh: no answer in time", result.message)
        self.assertEqual(calls, ["gh"])

    def test_no_endpoints(self):
        """No endpoints configured is unknown."""
        self.assertEqual(ProviderEndpointsCheck([])().status, UNKNOWN)


class TestAuthentication(TempDirCase):
    SECRET = "ghp_" + "S3CR3T" * 6

    def test_env_credentials_are_named_not_shown(self):
        """A token in the environment counts, and only the variable name is reported."""
        check = AuthenticationCheck({"GITHUB_TOKEN": self.SECRET}, config_path=None)
        result = check()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.details["providers_configured"], ["github"])
        self.assertEqual(result.details["credential_sources"]["github"], ["env:GITHUB_TOKEN"])
        self.assertNotIn(self.SECRET, json.dumps(result.to_dict()))

    def test_nothing_configured_degrades(self):
        """No credentials anywhere is degraded, as in the original."""
        result = AuthenticationCheck({}, config_path=os.path.join(self.tmp, "none.yaml"))()
        self.assertEqual(result.status, DEGRADED)
        self.assertFalse(result.details["config_file_exists"])

    def test_mgit_config_file(self):
        """Providers in mgit's config.yaml are detected by URL and keys; values are never shown."""
        path = self.write(
            "config.yaml",
            "global:\n  default_provider: work\n"
            "providers:\n"
            "  work:\n    url: https://dev.azure.com/myorg\n    user: me\n"
            f"    token: '{self.SECRET}'\n"
            "  personal:\n    url: https://github.com/me\n    token: ''\n"
            "  bb:\n    username: me\n    app_password: ATBBxyz  # comment\n",
            mode=0o600,
        )
        result = AuthenticationCheck({}, config_path=path)()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.details["providers_configured"], ["azure_devops", "bitbucket"])
        self.assertEqual(result.details["credential_sources"]["azure_devops"], ["config:work"])
        self.assertEqual(result.details["provider_details"]["github"], "none")
        text = json.dumps(result.to_dict())
        self.assertNotIn(self.SECRET, text)
        self.assertNotIn("ATBBxyz", text)

    @unittest.skipIf(not POSIX, "POSIX permissions")
    def test_world_readable_config_degrades(self):
        """A config file holding tokens that others can read is degraded with the fix."""
        path = self.write("config.yaml", "providers:\n  gh:\n    token: abc\n", mode=0o644)
        result = AuthenticationCheck({}, config_path=path)()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn("chmod 600", result.message)

    def test_default_config_path(self):
        """mgit's config path honours MGIT_CONFIG_PATH, else ~/.config/mgit/config.yaml."""
        self.assertEqual(default_mgit_config_path({"MGIT_CONFIG_PATH": "/x.yaml"}), "/x.yaml")
        self.assertEqual(
            default_mgit_config_path({"HOME": "/home/u"}),
            os.path.join("/home/u", ".config", "mgit", "config.yaml"),
        )


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


GH_TOKEN = "ghp_" + "V4L1DT0K3N" * 3 + "abcdef"
ADO_PAT = "adopat" + "Q" * 46
BB_PASSWORD = "ATBB" + "p4ssw0rd" * 4
JSON_OK = (200, "application/json", b'{"ok": true}')
SIGN_IN = (203, "text/html; charset=utf-8", b"<html><title>Sign In</title></html>")


class _AuthHandler(http.server.BaseHTTPRequestHandler):
    """Answers per route; an "ok" route answers 401 unless the Authorization header matches."""

    # path -> (status, content type, body, required Authorization or None, extra headers)
    routes = {
        "/gh-ok/rate_limit": JSON_OK + ("Bearer " + GH_TOKEN, {"X-RateLimit-Remaining": "4999"}),
        "/gh-expiring/rate_limit": JSON_OK
        + ("Bearer " + GH_TOKEN, {"GitHub-Authentication-Token-Expiration": "2031-01-01 UTC"}),
        "/gh-bad/rate_limit": (401, "application/json", b'{"message": "Bad credentials"}'),
        "/gh-html/rate_limit": (200, "text/html", b"<html>portal</html>"),
        "/gh-limited/rate_limit": (429, "application/json", b"{}"),
        "/gh-down/rate_limit": (503, "text/plain", b"maintenance"),
        "/org-ok/_apis/connectionData": JSON_OK + (_basic("", ADO_PAT), {}),
        "/org-203/_apis/connectionData": SIGN_IN,
        "/org-html/_apis/connectionData": (200, "text/html", b"<html>Sign in</html>"),
        "/org-redirect/_apis/connectionData": (302, "text/html", b"", None, {"Location": "/in"}),
        "/bb/2.0/user": JSON_OK + (_basic("me", BB_PASSWORD), {}),
        "/bb-scope/2.0/user": (403, "application/json", b'{"error": {}}'),
    }

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        route = self.routes.get(self.path, (404, "text/plain", b"no such route"))
        code, ctype, body = route[:3]
        required = route[3] if len(route) > 3 else None
        extra = route[4] if len(route) > 4 else {}
        if required is not None and self.headers.get("Authorization") != required:
            code, ctype, body, extra = 401, "application/json", b'{"message": "no"}', {}
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackCase(TempDirCase):
    """A loopback HTTP server (port 0) recording every request it sees."""

    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
        cls.server.seen = []
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)

    def setUp(self):
        super().setUp()
        self.server.seen.clear()

    def urls(self, github="gh-ok", azure="org-ok", bitbucket="bb"):
        return {
            "github": f"{self.base}/{github}",
            "azure_devops": f"{self.base}/{azure}",
            "bitbucket": f"{self.base}/{bitbucket}",
        }

    def check(self, environ, validate=True, config_path=None, **urls):
        return AuthenticationCheck(
            environ, config_path, validate=validate, api_urls=self.urls(**urls), timeout=5
        )

    def paths(self):
        return sorted(path for path, _auth in self.server.seen)


ALL_ENV = {
    "GITHUB_TOKEN": GH_TOKEN,
    "AZURE_DEVOPS_EXT_PAT": ADO_PAT,
    "BITBUCKET_APP_PASSWORD": BB_PASSWORD,
    "BITBUCKET_USERNAME": "me",
}


class TestCredentialValidation(LoopbackCase):
    def test_off_by_default_sends_nothing(self):
        """Without validation the check only names credentials: the server sees no request."""
        result = self.check(ALL_ENV, validate=False)()
        self.assertEqual(result.status, HEALTHY)
        self.assertFalse(result.details["validation_enabled"])
        self.assertNotIn("validation", result.details)
        checker = HealthChecker()
        register_default_checks(
            checker,
            environ=ALL_ENV,
            state_dir=self.tmp,
            network=False,
            providers=False,
            credential_urls=self.urls(),
            mgit_config_path=os.path.join(self.tmp, "none.yaml"),
        )
        self.assertEqual(checker.run_check_sync("authentication_status").status, HEALTHY)
        self.assertEqual(self.server.seen, [])

    def test_valid_credentials_are_healthy(self):
        """Each provider gets one request with its own auth scheme; all valid is healthy."""
        result = self.check(ALL_ENV)()
        self.assertEqual(result.status, HEALTHY, result.message)
        validation = result.details["validation"]
        self.assertEqual(
            {p: v["status"] for p, v in validation.items()},
            {"github": "valid", "azure_devops": "valid", "bitbucket": "valid"},
        )
        self.assertEqual(validation["github"]["rate_limit_remaining"], 4999)
        self.assertEqual(validation["github"]["source"], "env:GITHUB_TOKEN")
        self.assertEqual(
            sorted(self.server.seen),
            [
                ("/bb/2.0/user", _basic("me", BB_PASSWORD)),
                ("/gh-ok/rate_limit", "Bearer " + GH_TOKEN),
                ("/org-ok/_apis/connectionData", _basic("", ADO_PAT)),
            ],
        )
        self.assertIn("github valid", result.message)

    def test_github_401_alone_is_unhealthy(self):
        """A rejected token with no other usable provider is unhealthy and says HTTP 401."""
        result = self.check({"GITHUB_TOKEN": GH_TOKEN}, github="gh-bad")()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertEqual(result.details["validation"]["github"]["status"], "invalid")
        self.assertEqual(result.details["validation"]["github"]["http_status"], 401)
        self.assertIn("401", result.message)
        self.assertEqual(result.details["validation"]["bitbucket"], {"status": "not_configured"})

    def test_one_invalid_next_to_a_valid_one_degrades(self):
        """One rejected credential while another provider works is degraded."""
        env = {"GITHUB_TOKEN": GH_TOKEN, "BITBUCKET_APP_PASSWORD": "wrong", "BITBUCKET_USER": "me"}
        result = self.check(env)()
        self.assertEqual(result.status, DEGRADED)
        self.assertEqual(result.details["validation"]["bitbucket"]["status"], "invalid")
        self.assertEqual(result.details["validation"]["github"]["status"], "valid")

    def test_azure_sign_in_answers_are_invalid(self):
        """Azure DevOps' HTTP 203 sign-in page, HTML 200 and a redirect all mean invalid."""
        env = {"AZURE_DEVOPS_EXT_PAT": ADO_PAT}
        for route in ("org-203", "org-html", "org-redirect"):
            with self.subTest(route=route):
                result = self.check(env, azure=route)()
                report = result.details["validation"]["azure_devops"]
                self.assertEqual(report["status"], "invalid")
                self.assertEqual(result.status, UNHEALTHY)
                self.assertIn("sign", report["error"])
        self.assertEqual(
            self.check(env, azure="org-203")().details["validation"]["azure_devops"]["http_status"],
            203,
        )
        self.assertNotIn("/in", self.paths())  # the redirect was not followed

    def test_unreachable_degrades_with_a_message(self):
        """A provider that cannot be reached gives no verdict: degraded, with the reason."""
        check = AuthenticationCheck(
            {"GITHUB_TOKEN": GH_TOKEN},
            validate=True,
            api_urls={"github": f"http://127.0.0.1:{closed_port()}"},
            timeout=2,
        )
        result = check()
        self.assertEqual(result.status, DEGRADED)
        report = result.details["validation"]["github"]
        self.assertEqual(report["status"], "unreachable")
        self.assertTrue(report["error"])
        self.assertIn("github unreachable (", result.message)

    def test_no_verdict_answers_are_unreachable(self):
        """Rate limiting, a 5xx and HTML from GitHub give no verdict on the token."""
        env = {"GITHUB_TOKEN": GH_TOKEN}
        for route, words in (
            ("gh-limited", "rate limited"),
            ("gh-down", "503"),
            ("gh-html", "expected JSON"),
        ):
            with self.subTest(route=route):
                result = self.check(env, github=route)()
                self.assertEqual(result.status, DEGRADED)
                self.assertEqual(result.details["validation"]["github"]["status"], "unreachable")
                self.assertIn(words, result.details["validation"]["github"]["error"])

    def test_bitbucket_403_is_valid_without_scope(self):
        """Bitbucket's 403 means the credential works but lacks the account scope."""
        env = {"BITBUCKET_APP_PASSWORD": BB_PASSWORD, "BITBUCKET_USERNAME": "me"}
        result = self.check(env, bitbucket="bb-scope")()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn("scope", result.details["validation"]["bitbucket"]["note"])

    def test_github_token_expiry_is_reported(self):
        """GitHub's token expiration header is passed on (it is not a secret)."""
        result = self.check({"GH_TOKEN": GH_TOKEN}, github="gh-expiring")()
        self.assertEqual(result.details["validation"]["github"]["expires"], "2031-01-01 UTC")
        self.assertEqual(result.details["validation"]["github"]["source"], "env:GH_TOKEN")

    def test_secrets_never_in_results_or_logs(self):
        """Valid, invalid and unreachable outcomes leak no secret into JSON or log output."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        # The root logger catches everything that propagates; the runner's own logger is
        # tapped directly because other test modules stop it from propagating.
        for logger in (logging.getLogger(), logging.getLogger("mgit_monitoring.health")):
            self.addCleanup(logger.setLevel, logger.level)
            self.addCleanup(logger.removeHandler, handler)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
        env = dict(ALL_ENV, AZURE_DEVOPS_ORG_URL=f"{self.base}/org-203")
        checker = HealthChecker()
        urls = {"github": self.base + "/gh-ok", "bitbucket": f"http://127.0.0.1:{closed_port()}"}
        checker.register_check(
            "authentication_status",
            AuthenticationCheck(env, None, validate=True, api_urls=urls, timeout=2),
        )
        results = checker.run_checks_sync()
        states = {p: v["status"] for p, v in results[0].details["validation"].items()}
        self.assertEqual(
            states, {"github": "valid", "azure_devops": "invalid", "bitbucket": "unreachable"}
        )
        text = json.dumps(health_to_dict(results)) + json.dumps(to_health_json(results))
        text += repr(results) + stream.getvalue()
        self.assertIn("authentication_status", stream.getvalue())  # the log did get the result
        for secret in (GH_TOKEN, ADO_PAT, BB_PASSWORD):
            self.assertNotIn(secret, text)
        for header in (_basic("", ADO_PAT), _basic("me", BB_PASSWORD)):
            self.assertNotIn(header.split()[1], text)

    def test_mgit_config_file_credentials(self):
        """Credentials in mgit's config.yaml are validated: Azure at the entry's own org URL."""
        path = self.write(
            "config.yaml",
            "providers:\n"
            f"  work:\n    org_url: {self.base}/org-ok/\n    user: x\n"
            f"    pat: '{ADO_PAT}'\n"
            f"  bb:\n    username: me\n    app_password: {BB_PASSWORD}  # comment\n",
            mode=0o600,
        )
        check = AuthenticationCheck(
            {}, path, validate=True, api_urls={"bitbucket": self.base + "/bb"}, timeout=5
        )
        result = check()
        self.assertEqual(result.status, HEALTHY, result.message)
        self.assertEqual(result.details["validation"]["azure_devops"]["source"], "config:work")
        self.assertEqual(self.paths(), ["/bb/2.0/user", "/org-ok/_apis/connectionData"])
        self.assertNotIn(ADO_PAT, json.dumps(result.to_dict()))

    def test_azure_without_organisation_is_skipped(self):
        """An Azure PAT with no organisation URL anywhere is skipped (degraded), not sent."""
        check = AuthenticationCheck({"AZURE_DEVOPS_EXT_PAT": ADO_PAT}, validate=True)
        result = check()
        self.assertEqual(result.status, DEGRADED)
        self.assertEqual(result.details["validation"]["azure_devops"]["status"], "skipped")
        self.assertIn("AZURE_DEVOPS_ORG_URL", result.message)
        self.assertEqual(self.server.seen, [])

    def test_plain_http_to_a_remote_host_is_refused(self):
        """A credential is never sent over plain http except to loopback."""
        check = AuthenticationCheck(
            {"GITHUB_TOKEN": GH_TOKEN},
            validate=True,
            api_urls={"github": "http://mirror.example.invalid/api/v3"},
        )
        report = check().details["validation"]["github"]
        self.assertEqual(report["status"], "skipped")
        self.assertIn("plain http", report["note"])

    def test_world_readable_config_does_not_hide_invalid(self):
        """A too-open config file degrades, but an all-invalid verdict stays unhealthy."""
        path = self.write("config.yaml", "providers:\n  gh:\n    token: abc\n", mode=0o644)
        result = self.check({}, config_path=path, github="gh-bad")()
        if POSIX:
            self.assertIn("chmod 600", result.message)
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("github invalid", result.message)


class TestCredentialUrls(unittest.TestCase):
    def test_derived_from_provider_endpoints(self):
        """Validation base URLs follow the provider endpoints; the Azure status API is skipped."""
        self.assertEqual(
            credential_api_urls(DEFAULT_PROVIDER_ENDPOINTS),
            {"github": "https://api.github.com", "bitbucket": "https://api.bitbucket.org"},
        )
        urls = credential_api_urls(
            [
                ("github", "https://ghe.example/api/v3/rate_limit?x=1"),
                ("ado", "https://ado.example/tfs/Coll/_apis/connectionData"),
                ("bitbucket", "https://bb.example/2.0/"),
                ("mirror", "https://mirror.example/health"),
            ]
        )
        self.assertEqual(
            urls,
            {
                "github": "https://ghe.example/api/v3",
                "azure_devops": "https://ado.example/tfs/Coll",
                "bitbucket": "https://bb.example",
            },
        )
        self.assertEqual(
            credential_api_urls([("azure_devops", "https://dev.azure.com/org/proj/_apis/x")]),
            {"azure_devops": "https://dev.azure.com/org"},
        )


class TestRegisterDefaults(TempDirCase):
    def test_flags_and_switches(self):
        """Defaults register with the documented critical flags; switches leave checks out."""
        checker = HealthChecker()
        register_default_checks(
            checker, environ={}, state_dir=self.tmp, network=False, providers=False
        )
        self.assertEqual(
            checker.check_names,
            [
                "system_basics",
                "git_availability",
                "disk_space",
                "memory_usage",
                "authentication_status",
            ],
        )
        critical = sorted(e.name for e in checker._entries.values() if e.critical)
        self.assertEqual(critical, ["disk_space", "git_availability", "system_basics"])

    def test_proxy_from_environ_and_provider_ttl(self):
        """HTTPS_PROXY/NO_PROXY come from the given environment; provider results live long."""
        checker = HealthChecker()
        env = {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "internal"}
        register_default_checks(checker, environ=env, state_dir=self.tmp, auth=False)
        network = checker._entries["network_connectivity"].fn
        self.assertEqual((network.proxy.host, network.proxy.port), ("proxy.example", 3128))
        self.assertEqual(network.no_proxy, "internal")
        self.assertGreaterEqual(checker._entries["provider_endpoints"].ttl, 300)

    def test_local_checks_run_healthy_here(self):
        """System, disk and memory checks give real answers on this machine within the deadline."""
        checker = HealthChecker()
        register_default_checks(
            checker, environ={}, state_dir=self.tmp, network=False, providers=False, auth=False
        )
        doc = checker.check_health_sync()
        self.assertEqual(doc["checks"]["system_basics"]["status"], HEALTHY)
        self.assertIn(
            doc["checks"]["memory_usage"]["status"], (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)
        )


class TestChecksFollowConfig(LoopbackCase):
    def test_config_fields_reach_the_checks(self):
        """Hosts, endpoints, git minimum and validation come from MonitoringConfig."""
        config = MonitoringConfig(
            state_dir=self.tmp,
            network_hosts="127.0.0.1:1234, [::1]",
            provider_endpoints=f"ghe={self.base}/gh-ok/rate_limit",
            min_git_version="2.30",
            validate_credentials=True,
            health_timeout_seconds=2.0,
        )
        checker = create_default_health_checker(config=config, environ={})
        entries = checker._entries
        self.assertEqual(
            entries["network_connectivity"].fn.hosts, [("127.0.0.1", 1234), ("::1", 443)]
        )
        self.assertEqual(
            entries["provider_endpoints"].fn.endpoints,
            [Endpoint("ghe", f"{self.base}/gh-ok/rate_limit", "github")],
        )
        self.assertEqual(entries["git_availability"].fn.min_version, (2, 30))
        auth = entries["authentication_status"]
        self.assertTrue(auth.fn.validate)
        self.assertEqual(auth.fn.api_urls["github"], f"{self.base}/gh-ok")
        self.assertGreater(auth.timeout, auth.fn.timeout)  # the runner outlasts the request

    def test_defaults_match_the_module_constants(self):
        """Without configuration the checks use the documented defaults, validation off."""
        checker = create_default_health_checker(config=MonitoringConfig(state_dir=self.tmp))
        entries = checker._entries
        self.assertEqual(
            entries["network_connectivity"].fn.hosts,
            [("github.com", 443), ("dev.azure.com", 443), ("bitbucket.org", 443)],
        )
        self.assertEqual(
            entries["provider_endpoints"].fn.endpoints, list(DEFAULT_PROVIDER_ENDPOINTS)
        )
        self.assertIsNone(entries["git_availability"].fn.min_version)
        self.assertFalse(entries["authentication_status"].fn.validate)

    def test_none_disables_network_and_provider_checks(self):
        """MGIT_MONITORING_NETWORK_HOSTS=none and PROVIDER_ENDPOINTS=off leave those checks out."""
        env = {
            "HOME": self.tmp,
            "MGIT_MONITORING_NETWORK_HOSTS": "none",
            "MGIT_MONITORING_PROVIDER_ENDPOINTS": "off",
        }
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        self.assertNotIn("network_connectivity", checker.check_names)
        self.assertNotIn("provider_endpoints", checker.check_names)
        self.assertIn("authentication_status", checker.check_names)

    def test_explicit_arguments_win(self):
        """Arguments to register_default_checks override the configuration."""
        config = MonitoringConfig(
            network_hosts="none", min_git_version="2.30", validate_credentials=True
        )
        checker = HealthChecker()
        register_default_checks(
            checker,
            config=config,
            state_dir=self.tmp,
            network_hosts=["127.0.0.1:9"],
            min_git_version="2.1",
            validate_credentials=False,
            credential_urls={"github": "https://ghe.example/api/v3"},
        )
        self.assertEqual(checker._entries["network_connectivity"].fn.hosts, [("127.0.0.1", 9)])
        self.assertEqual(checker._entries["git_availability"].fn.min_version, (2, 1))
        auth = checker._entries["authentication_status"].fn
        self.assertFalse(auth.validate)
        self.assertEqual(auth.api_urls["github"], "https://ghe.example/api/v3")

    def test_environment_end_to_end(self):
        """Env-configured endpoints and validation make the check validate at the loopback."""
        env = {
            "HOME": self.tmp,
            "GITHUB_TOKEN": GH_TOKEN,
            "MGIT_MONITORING_PROVIDER_ENDPOINTS": f"github={self.base}/gh-ok/rate_limit",
            "MGIT_MONITORING_VALIDATE_CREDENTIALS": "true",
            "MGIT_MONITORING_NETWORK_HOSTS": "off",
        }
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        result = checker.run_check_sync("authentication_status")
        self.assertEqual(result.status, HEALTHY, result.message)
        self.assertEqual(self.server.seen, [("/gh-ok/rate_limit", "Bearer " + GH_TOKEN)])

    @unittest.skipIf(not POSIX, "fake git scripts are shell scripts")
    def test_min_git_version_from_config(self):
        """A git older than MGIT_MONITORING_MIN_GIT_VERSION makes the git check unhealthy."""
        bindir = os.path.dirname(
            self.write("bin/git", "#!/bin/sh\necho 'git version 2.20.1'\n", 0o755)
        )
        config = MonitoringConfig.from_env(
            {"HOME": self.tmp, "MGIT_MONITORING_MIN_GIT_VERSION": "2.30"}
        )
        checker = HealthChecker()
        register_default_checks(checker, config=config, state_dir=self.tmp, git_search_path=bindir)
        with self.assertLogs("mgit_monitoring.health", "WARNING"):
            result = checker.run_check_sync("git_availability")
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("older than the required 2.30", result.message)


if __name__ == "__main__":
    unittest.main()
