"""Health in locked-down places, in real processes: another uid, read-only dirs, no network.

- A non-root container with HOME=/nonexistent and persistence off is ready.
- A state dir the server's user can neither write nor read is degraded (the path named),
  and the server stays ready.
- An offline machine with no mgit config is healthy, and the checks touch no network.

As another uid these run Debian's /usr/bin/python3 on a copy of the package readable by
that uid (pyenv builds cannot load libpython there).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from typing import Dict, List, Tuple

from tests.support import ROOT, TempDirCase, need_executable, unavailable

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

# Installed as sitecustomize in the offline child: any name lookup or connect fails loudly.
_NO_NETWORK = """
import socket, sys

def _refuse(*args, **kwargs):
    sys.stderr.write("NETWORK TOUCHED: %r\\n" % (args[:2],))
    raise OSError("network use forbidden in this test")

socket.getaddrinfo = _refuse
socket.gethostbyname = _refuse
socket.create_connection = _refuse
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
"""


def _readable_package_copy(test: unittest.TestCase) -> str:
    """A copy of the package in a temp dir every user can read; the dir to put on the path."""
    top = tempfile.mkdtemp(prefix="mgit-pkg-")
    test.addCleanup(shutil.rmtree, top, True)
    shutil.copytree(
        os.path.join(ROOT, "mgit_monitoring"),
        os.path.join(top, "mgit_monitoring"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for base, _dirs, files in os.walk(top):
        os.chmod(base, 0o755)
        for name in files:
            os.chmod(os.path.join(base, name), 0o644)
    return top


def _need_nobody() -> None:
    if os.name != "posix" or os.geteuid() != 0:
        unavailable("running as another uid needs root (CI runs as root)")
    need_executable("setpriv")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        unavailable(f"{SYSTEM_PYTHON} (Debian's python3) is not installed")


def _as_nobody(argv: List[str], env: Dict[str, str]) -> List[str]:
    return [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        *argv,
    ]


class _Server:
    """``mgit_monitoring server --simple --port 0`` as a child process, its URL once listening."""

    def __init__(self, test: unittest.TestCase, command: List[str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        test.addCleanup(self.stop)
        lines: queue.Queue[str] = queue.Queue()
        self.output: List[str] = []

        def pump() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 60
        self.url = ""
        while not self.url and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == "":
                break
            self.output.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1).rstrip("/")
        test.assertTrue(self.url, "server did not start:\n" + "".join(self.output))

    def get(self, path: str) -> Tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as response:
                return response.status, json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode("utf-8") or "{}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _env(package_dir: str, **extra: str) -> Dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": package_dir,
        "HOME": "/nonexistent",
        "MGIT_MONITORING_HOST": "127.0.0.1",
        # Readiness is the subject here, not this machine's memory or disk fill level.
        "MGIT_MONITORING_MEMORY_WARN_PERCENT": "100",
        "MGIT_MONITORING_MEMORY_FAIL_PERCENT": "100",
        "MGIT_MONITORING_DISK_MIN_FREE_BYTES": "0",
        "MGIT_MONITORING_DISK_WARN_FREE_PERCENT": "0",
        "MGIT_MONITORING_DISK_FAIL_FREE_PERCENT": "0",
    }
    env.update(extra)
    return env


@unittest.skipUnless(sys.platform.startswith("linux"), "uses setpriv")
class TestNonRootContainer(TempDirCase):
    def start_as_nobody(self, **env: str) -> _Server:
        _need_nobody()
        package = _readable_package_copy(self)
        command = _as_nobody(
            [SYSTEM_PYTHON, "-m", "mgit_monitoring", "server", "--simple", "--port", "0"],
            _env(package, **env),
        )
        return _Server(self, command, cwd="/")

    def test_read_only_container_without_home_is_ready(self):
        """uid 65534, HOME=/nonexistent, persistence off: /health/ready answers 200 and the
        detailed report names the state dir it is not using."""
        server = self.start_as_nobody(MGIT_MONITORING_PERSIST="false")
        code, ready = server.get("/health/ready")
        self.assertEqual(code, 200, ready)
        code, detailed = server.get("/health/detailed")
        checks = detailed["checks"]
        system = checks["system_basics"]
        self.assertEqual(system["status"], "healthy", system["message"])
        self.assertIn("/nonexistent/.local/state/mgit-monitoring not used", system["message"])
        self.assertEqual(checks["disk_space"]["status"], "healthy")
        self.assertIn("nothing to watch", checks["disk_space"]["message"])
        for name in ("network_connectivity", "provider_endpoints", "authentication_status"):
            self.assertEqual(checks[name]["status"], "healthy", checks[name]["message"])
            self.assertIn("/nonexistent/.config/mgit/config.yaml", checks[name]["message"])
        self.assertEqual(detailed["status"], "healthy")

    def test_state_dir_in_read_only_directory_degrades(self):
        """A state dir the server's user can neither write nor read, in a directory it cannot
        write (mode 555, owned by root), is degraded with the path named; still ready."""
        parent = os.path.join(self.tmp, "readonly")
        state = os.path.join(parent, "state")
        os.makedirs(state)
        os.chmod(self.tmp, 0o755)
        os.chmod(state, 0o700)  # root's
        os.chmod(parent, 0o555)
        server = self.start_as_nobody(MGIT_MONITORING_STATE_DIR=state)
        code, ready = server.get("/health/ready")
        self.assertEqual(code, 200, ready)
        code, detailed = server.get("/health/detailed")
        self.assertEqual(code, 200)  # degraded still answers 200
        self.assertEqual(detailed["status"], "degraded")
        system = detailed["checks"]["system_basics"]
        self.assertEqual(system["status"], "degraded")
        self.assertIn(f"state dir {state}: neither writable nor readable", system["message"])
        self.assertFalse(system["details"]["state_dir_writable"])
        self.assertEqual(detailed["checks"]["disk_space"]["details"]["path"], state)


@unittest.skipUnless(sys.platform.startswith("linux"), "uses Linux network namespaces")
class TestOffline(TempDirCase):
    def test_offline_without_mgit_config_is_healthy(self):
        """No network at all (a network namespace with only a down loopback, and a socket
        module that fails loudly) and no mgit config: `health` says healthy, with git and
        disk in order, and nothing tried to resolve or connect."""
        guard = os.path.join(self.tmp, "guard")
        os.mkdir(guard)
        with open(os.path.join(guard, "sitecustomize.py"), "w", encoding="utf-8") as handle:
            handle.write(_NO_NETWORK)
        env = dict(
            _env(guard + os.pathsep + ROOT),
            HOME=self.tmp,
            MGIT_MONITORING_STATE_DIR=os.path.join(self.tmp, "state"),
        )
        command = [sys.executable, "-m", "mgit_monitoring", "health", "--json", "--detailed"]
        unshare = shutil.which("unshare")
        if unshare and os.geteuid() == 0:
            probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=30)
            if probe.returncode == 0:
                command = [unshare, "-n", *command]
        proc = subprocess.run(
            command, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=120
        )
        self.assertNotIn("NETWORK TOUCHED", proc.stderr)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        report = json.loads(proc.stdout)
        checks = report["checks"]
        self.assertEqual(checks["git_availability"]["status"], "healthy")
        self.assertEqual(checks["disk_space"]["status"], "healthy")
        for name in ("network_connectivity", "provider_endpoints"):
            self.assertIn("nothing to check", checks[name]["message"])
        self.assertIn("nothing to authenticate", checks["authentication_status"]["message"])
        self.assertEqual(report["status"], "healthy", json.dumps(checks, indent=1))


if __name__ == "__main__":
    unittest.main()
