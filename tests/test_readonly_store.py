"""Locked-down hosts for real: another uid, read-only stores, unreadable stores, named state
dirs that do not exist, and the CLI/HTTP views of health and performance (issue 13).

The other-uid tests run ``setpriv --reuid=65534 --regid=65534 --clear-groups`` with Debian's
``/usr/bin/python3`` on a copy of the package that uid can read; they skip (with a reason)
when not root or when setpriv or that interpreter is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.request
from typing import List

from mgit_monitoring.health import HealthChecker
from mgit_monitoring.health_report import HealthCheckResult
from mgit_monitoring.http_app import MonitoringApp
from mgit_monitoring.registry import Registry
from mgit_monitoring.store import READ_ONLY, READ_WRITE, STORE_FILENAME, Store
from tests.support import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534

_RECORD = """
from mgit_monitoring.integration import setup_monitoring_integration
integration = setup_monitoring_integration()
for i in range(5):
    integration.metrics.record_operation("clone-all", success=True, duration=0.2, provider="github")
with integration.performance.trace_operation("clone_repos"):
    pass
"""


def _env(state: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
    env.update({"PYTHONPATH": ROOT, "MGIT_MONITORING_STATE_DIR": state, "HOME": state})
    env.update(extra)
    return env


def _record(state: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RECORD],
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


class _Case(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        os.chmod(self.tmp, 0o755)
        self.state = os.path.join(self.tmp, "state")


class TestPermissions(_Case):
    def test_writer_creates_a_group_readable_store(self) -> None:
        """A writer creates the state dir 0750 and the file 0640 (under a 022 umask)."""
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        _record(self.state)
        self.assertEqual(0o750, stat.S_IMODE(os.stat(self.state).st_mode))
        path = os.path.join(self.state, STORE_FILENAME)
        self.assertEqual(0o640, stat.S_IMODE(os.stat(path).st_mode))


class TestReaderStore(_Case):
    def test_reader_never_creates_anything(self) -> None:
        """A reader's missing store is no data: no directory, no file appears."""
        store = Store.open(self.state, reader=True)
        self.addCleanup(store.close)
        self.assertEqual([], store.read("SELECT * FROM meta", strict=True))
        store.check_readable()
        self.assertFalse(os.path.exists(self.state))

    def test_immutable_read_of_a_checkpointed_wal_store(self) -> None:
        """With no -wal file and no way to create -shm, the reader still reads (immutable)."""
        _record(self.state)
        path = os.path.join(self.state, STORE_FILENAME)
        self.assertFalse(os.path.exists(path + "-wal"))
        with sqlite3.connect(path) as conn:
            self.assertEqual("wal", conn.execute("PRAGMA journal_mode").fetchone()[0])
        conn.close()
        if os.geteuid() != 0:
            os.chmod(self.state, 0o555)
            self.addCleanup(os.chmod, self.state, 0o750)
            store = Store.open(self.state, reader=True)
            self.addCleanup(store.close)
            rows = store.read("SELECT count(*) FROM sm_totals", strict=True)
            self.assertGreater(rows[0][0], 0)
            self.assertEqual(READ_ONLY, store.mode)
        else:  # root writes anywhere: the read-only case runs as nobody (see TestOtherUid)
            store = Store.open(self.state, reader=True)
            self.addCleanup(store.close)
            self.assertEqual(READ_WRITE, store.mode)
            rows = store.read("SELECT count(*) FROM sm_totals", strict=True)
            self.assertGreater(rows[0][0], 0)


def _need_other_uid(test: unittest.TestCase) -> None:
    if os.geteuid() != 0:
        test.skipTest("needs root to run as another uid")
    if shutil.which("setpriv") is None:
        test.skipTest("setpriv is not installed")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        test.skipTest(f"{SYSTEM_PYTHON} is missing")


class TestOtherUid(_Case):
    """Another user reads a store root's mgit runs flushed, through the real CLI."""

    def setUp(self) -> None:
        _need_other_uid(self)
        super().setUp()
        self.pkg = os.path.join(self.tmp, "pkg")
        shutil.copytree(
            os.path.join(ROOT, "mgit_monitoring"), os.path.join(self.pkg, "mgit_monitoring")
        )
        for top, dirs, files in os.walk(self.pkg):
            for name in dirs:
                os.chmod(os.path.join(top, name), 0o755)
            for name in files:
                os.chmod(os.path.join(top, name), 0o644)
        os.chmod(self.pkg, 0o755)
        _record(self.state)

    def as_nobody(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.nobody_argv(*args, **env), capture_output=True, text=True, timeout=timeout
        )

    def nobody_argv(self, *args: str, **env: str) -> List[str]:
        settings = {
            "HOME": "/nonexistent",
            "PYTHONPATH": self.pkg,
            "MGIT_MONITORING_STATE_DIR": self.state,
            **env,
        }
        return [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in settings.items()),
            SYSTEM_PYTHON,
            "-m",
            "mgit_monitoring",
            *args,
        ]

    def share_with_group(self) -> None:
        """What an operator does: the store's group is the monitoring user's."""
        for top, _dirs, files in os.walk(self.state):
            os.chown(top, 0, NOBODY)
            for name in files:
                os.chown(os.path.join(top, name), 0, NOBODY)

    def test_server_serves_the_group_readable_store_read_only(self) -> None:
        """nobody's `server --simple` serves root's samples, and says read-only once."""
        self.share_with_group()
        argv = self.nobody_argv("server", "--simple", "--port", "0", "--host", "127.0.0.1")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def stop() -> None:
            if proc.poll() is None:
                proc.terminate()
            proc.communicate(timeout=30)

        self.addCleanup(stop)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        self.assertTrue(line.startswith("serving on "), line)
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        self.assertIn('mgit_operations_total{operation="clone-all",provider="github"} 5', text)
        with urllib.request.urlopen(url + "/info", timeout=30) as response:
            info = json.loads(response.read())
        self.assertEqual(self.state, info["monitoring"]["state_dir"])
        self.assertEqual("read-only", info["monitoring"]["store"])
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        self.assertEqual(0, proc.returncode, err)
        records = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
        notices = [r for r in records if "opened read-only" in r["message"]]
        self.assertEqual(1, len(notices), err)
        self.assertNotIn("not usable", err)
        listening = next(r for r in records if "listening" in r["message"])
        self.assertIn(f"state dir {self.state}, store read-only", listening["message"])

    def test_metrics_on_a_read_only_copy_prints_the_samples(self) -> None:
        """A copy nobody cannot write (file 0444, dir 0555) is read, not replaced by memory."""
        copy = os.path.join(self.tmp, "copy")
        os.mkdir(copy)
        shutil.copy(os.path.join(self.state, STORE_FILENAME), copy)
        os.chmod(os.path.join(copy, STORE_FILENAME), 0o444)
        os.chmod(copy, 0o555)
        out = self.as_nobody("metrics", "--state-dir", copy)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertIn(
            'mgit_operations_total{operation="clone-all",provider="github"} 5', out.stdout
        )
        self.assertEqual(["clone_repos"], os.listdir(copy) and self._ops(copy))

    def _ops(self, copy: str) -> List[str]:
        out = self.as_nobody("performance", "--json", "--state-dir", copy)
        self.assertEqual(0, out.returncode, out.stderr)
        return sorted(json.loads(out.stdout)["operations"])

    def test_unreadable_store_is_exit_2_with_one_line(self) -> None:
        """A store nobody may not read: `metrics` and `performance` exit 2, one line each."""
        os.chmod(self.state, 0o700)
        for args in (("metrics",), ("performance",)):
            with self.subTest(args=args):
                out = self.as_nobody(*args)
                self.assertEqual(2, out.returncode, out.stderr)
                self.assertEqual("", out.stdout)
                lines = out.stderr.splitlines()
                self.assertEqual(1, len(lines), out.stderr)
                self.assertTrue(
                    lines[0].startswith("error: cannot read the monitoring store "), lines[0]
                )
                self.assertIn("Permission denied for uid 65534", lines[0])


class TestCommands(_Case):
    def run_cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", *args],
            env=_env(self.state, **env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_named_state_dir_that_does_not_exist_is_an_error(self) -> None:
        """--state-dir or the variable naming a missing directory: exit 2, nothing created."""
        missing = os.path.join(self.tmp, "typo")
        for args, env, where in (
            (("metrics", "--state-dir", missing), {}, "--state-dir"),
            (("performance", "--state-dir", missing), {}, "--state-dir"),
            (("server", "--simple", "--port", "0", "--state-dir", missing), {}, "--state-dir"),
            (("metrics",), {"MGIT_MONITORING_STATE_DIR": missing}, "MGIT_MONITORING_STATE_DIR"),
        ):
            with self.subTest(args=args):
                out = self.run_cli(*args, **env)
                self.assertEqual(2, out.returncode, out.stderr)
                self.assertEqual(
                    [f"error: {where} {missing}: no such directory (is it where mgit writes?)"],
                    out.stderr.splitlines(),
                )
                self.assertFalse(os.path.exists(missing))

    def test_performance_names_the_operations_that_have_data(self) -> None:
        """An operation with no data lists those that have some (text and JSON)."""
        _record(self.state)
        out = self.run_cli("performance", "--operation", "clone_repo")
        self.assertEqual(1, out.returncode, out.stderr)
        self.assertEqual(
            [
                "no performance data for operation 'clone_repo' in the last 24 hours",
                "operations with data: clone_repos",
            ],
            out.stdout.splitlines(),
        )
        out = self.run_cli("performance", "--operation", "clone_repo", "--json")
        self.assertEqual(["clone_repos"], json.loads(out.stdout)["operations_with_data"])

    def test_health_json_has_the_shape_of_get_health(self) -> None:
        """`health --json` and `health --detailed --json` print GET /health's document."""
        for args in (("health", "--json"), ("health", "--detailed", "--json")):
            with self.subTest(args=args):
                doc = json.loads(self.run_cli(*args).stdout)
                self.assertEqual({"status", "timestamp", "summary", "checks", "issues"}, set(doc))
        checker = HealthChecker(registry=Registry())
        checker.register_check("disk", lambda: HealthCheckResult("disk", "healthy"))
        app = MonitoringApp(metrics=Registry(), health_checker=checker, simple=True)
        self.assertEqual(set(doc), set(json.loads(app.route("GET", "/health").body)))
        cli_check = next(iter(doc["checks"].values()))
        http_check = json.loads(app.route("GET", "/health").body)["checks"]["disk"]
        self.assertEqual(set(cli_check), set(http_check))


class TestStatusWords(unittest.TestCase):
    def test_status_says_the_health_once(self) -> None:
        """/status carries the overall health in `status`, the word /health uses."""
        for state in ("healthy", "degraded", "unhealthy"):
            with self.subTest(state=state):
                checker = HealthChecker(registry=Registry())
                checker.register_check(
                    "disk", lambda s=state: HealthCheckResult("disk", s), critical=True
                )
                app = MonitoringApp(metrics=Registry(), health_checker=checker, simple=True)
                body = json.loads(app.route("GET", "/status").body)
                self.assertEqual(state, body["status"])
                self.assertEqual(state == "healthy", body["healthy"])
                self.assertNotIn("health", body)
                self.assertEqual(state, json.loads(app.route("GET", "/health").body)["status"])

    def test_info_shows_memory_without_a_store(self) -> None:
        checker = HealthChecker(registry=Registry())
        app = MonitoringApp(metrics=Registry(), health_checker=checker, simple=True)
        info = json.loads(app.route("GET", "/info").body)["monitoring"]
        self.assertEqual(
            {"state_dir": None, "store": "memory"}, {k: info[k] for k in ("state_dir", "store")}
        )


if __name__ == "__main__":
    unittest.main()
