"""Inside mgit, in real processes: a bad MGIT_MONITORING_* value never stops the application
(one warning, the default), while the CLI and the server still refuse it (exit 2, one line);
and setup loads neither the store nor the health checks until they are needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from typing import Dict, List

from tests.support import ROOT

# What mgit does: decorate at import, set up at start-up, run monitored operations, exit.
MGIT_LIKE = """
import json, sys
from mgit_monitoring.integration import (
    get_monitoring_integration, monitor_git_operation, monitor_mgit_operation,
    monitor_provider_api_call, setup_monitoring_integration,
)

@monitor_mgit_operation(operation_name="clone_all", provider="github")
def clone_all(org):
    return [git_clone("https://github.com/%s/%d.git" % (org, i)) for i in range(2)]

@monitor_git_operation(operation_type="clone")
def git_clone(repo_url):
    list_repos()
    return repo_url

@monitor_provider_api_call(provider_name="github", endpoint="/repos")
def list_repos():
    return None

setup_monitoring_integration()
result = clone_all("acme")
wired = get_monitoring_integration()
print(json.dumps({"result": len(result), "enabled": wired.config.enabled,
                  "port": wired.config.port,
                  "health_interval": wired.config.health_interval_seconds}))
"""

BAD_VALUES = (
    ("MGIT_MONITORING_PORT", "abc", {"enabled": True, "port": 8080}),
    ("MGIT_MONITORING_ENABLED", "maybe", {"enabled": False}),
    ("MGIT_MONITORING_HEALTH_INTERVAL", "0", {"enabled": True, "health_interval": 30.0}),
)


class EnvironmentCase(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.home = tmp.name
        self.state_dir = os.path.join(tmp.name, "state")

    def env(self, **extra: str) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.update(
            PYTHONPATH=ROOT,
            HOME=self.home,
            XDG_STATE_HOME=os.path.join(self.home, "xdg"),
            MGIT_CONFIG_PATH=os.path.join(self.home, "no-mgit-config.yaml"),
            MGIT_MONITORING_STATE_DIR=self.state_dir,
        )
        env.update(extra)
        return env

    def python(self, code: str, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


class BadValueTest(EnvironmentCase):
    def test_application_runs_with_one_warning(self) -> None:
        """mgit-like code runs to completion; stderr is exactly one line naming the variable."""
        for var, raw, expected in BAD_VALUES:
            with self.subTest(variable=var):
                done = self.python(MGIT_LIKE, self.env(**{var: raw}))
                self.assertEqual(done.returncode, 0, done.stderr)
                out = json.loads(done.stdout)
                self.assertEqual(out["result"], 2)
                for key, want in expected.items():
                    self.assertEqual(out[key], want, key)
                lines = done.stderr.splitlines()
                self.assertEqual(len(lines), 1, done.stderr)
                self.assertTrue(lines[0].startswith(f"{var}={raw!r}: "), lines[0])
                self.assertNotIn("Traceback", done.stderr)

    def test_cli_and_server_refuse_it(self) -> None:
        """The same value makes ``server`` and ``metrics`` exit 2 with one error line."""
        for var, raw, _expected in BAD_VALUES:
            for command in (
                ["server", "--simple", "--host", "127.0.0.1", "--port", "0"],
                ["metrics"],
            ):
                with self.subTest(variable=var, command=command[0]):
                    done = subprocess.run(
                        [sys.executable, "-m", "mgit_monitoring", *command],
                        cwd=self.home,
                        env=self.env(**{var: raw}),
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    self.assertEqual(done.returncode, 2, done.stderr)
                    lines = done.stderr.splitlines()
                    self.assertEqual(len(lines), 1, done.stderr)
                    self.assertIn(f"{var}={raw!r}", lines[0])


HEAVY = ("sqlite3", "asyncio", "ssl", "urllib.request", "http.client", "subprocess")
LAZY = (
    "mgit_monitoring.store",
    "mgit_monitoring.shared_state",
    "mgit_monitoring.default_checks",
    "mgit_monitoring.health",
)


class LazyStartupTest(EnvironmentCase):
    def test_setup_loads_no_store_and_no_checks(self) -> None:
        """After setup (persistence on) and even a monitored call, none of the heavy modules
        is loaded and the state dir is untouched; they load when first used."""
        code = """
            import json, os, sys
            from mgit_monitoring.integration import (
                monitor_mgit_operation, setup_monitoring_integration)
            names = json.loads(sys.argv[1])
            wired = setup_monitoring_integration()
            after_setup = sorted(n for n in names if n in sys.modules)
            monitor_mgit_operation("probe", track_performance=False)(lambda: None)()
            after_call = sorted(n for n in names if n in sys.modules)
            state = os.path.exists(sys.argv[2]) and os.listdir(sys.argv[2])
            health = wired.health.check_names
            after_health = sorted(n for n in names if n in sys.modules)
            print(json.dumps([after_setup, after_call, state, after_health, bool(health)]))
        """
        names = json.dumps(HEAVY + LAZY)
        done = self.python(code, self.env(), names, self.state_dir)
        self.assertEqual(done.returncode, 0, done.stderr)
        after_setup, after_call, state, after_health, has_checks = json.loads(done.stdout)
        self.assertEqual(after_setup, [])
        self.assertEqual(after_call, [])
        self.assertFalse(state, "the state dir was touched before the store was needed")
        self.assertIn("mgit_monitoring.default_checks", after_health)
        self.assertTrue(has_checks)

    def test_a_process_that_records_nothing_writes_nothing(self) -> None:
        """``mgit --help``: setup and exit leave no store behind and load no sqlite3."""
        code = """
            import atexit, sys
            # Registered first, so it runs last (atexit is LIFO): after monitoring's own hook.
            atexit.register(lambda: print("sqlite3" in sys.modules))
            from mgit_monitoring.integration import setup_monitoring_integration
            setup_monitoring_integration()
        """
        done = self.python(code, self.env())
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "False")
        self.assertFalse(os.path.exists(self.state_dir) and os.listdir(self.state_dir))

    def test_metrics_alone_reach_the_store_at_exit(self) -> None:
        """A process that only records metrics (no trace opened the store) flushes at exit."""
        writer = """
            from mgit_monitoring.collector import get_metrics_collector
            from mgit_monitoring.integration import setup_monitoring_integration
            setup_monitoring_integration()
            get_metrics_collector().record_api_call("GET", "github", 200, 0.1, "/repos")
        """
        reader = """
            import json, sys
            from mgit_monitoring.shared_state import merged_snapshot
            from mgit_monitoring.store import Store
            print(json.dumps(merged_snapshot(Store.open(sys.argv[1])).get_sample_value(
                "mgit_api_requests_total", {"method": "GET", "provider": "github",
                                            "status_code": "200", "endpoint": "/repos"})))
        """
        for _ in range(2):
            done = self.python(writer, self.env())
            self.assertEqual((done.returncode, done.stderr), (0, ""))
        done = self.python(reader, self.env(), self.state_dir)
        self.assertEqual(done.stdout.strip(), "2", done.stderr)

    def test_a_running_process_reaches_the_store_by_itself(self) -> None:
        """A long-running process's metrics reach the store within a flush interval,
        without a trace or an exit opening it."""
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    """
                    import sys
                    from mgit_monitoring.collector import get_metrics_collector
                    from mgit_monitoring.integration import setup_monitoring_integration
                    setup_monitoring_integration()
                    get_metrics_collector().record_operation("long_run", True, 0.1, "github")
                    print("recorded", flush=True)
                    sys.stdin.read()
                    """
                ),
            ],
            cwd=self.home,
            env=self.env(MGIT_MONITORING_FLUSH_INTERVAL="0.2"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(writer.communicate, timeout=30)  # closes stdin: the writer exits
        self.assertEqual(writer.stdout.readline().strip(), "recorded")
        reader = """
            import json, sys
            from mgit_monitoring.shared_state import merged_snapshot
            from mgit_monitoring.store import Store
            store = Store.open(sys.argv[1])
            print(json.dumps(merged_snapshot(store).get_sample_value(
                "mgit_operations_total", {"operation": "long_run", "provider": "github"})))
        """
        deadline = time.monotonic() + 30
        seen: List[object] = []
        while time.monotonic() < deadline:
            done = self.python(reader, self.env(), self.state_dir)
            seen.append(done.stdout.strip() or done.stderr.strip()[-200:])
            if done.stdout.strip() == "1":
                break
            time.sleep(0.1)
        self.assertEqual(seen[-1], "1", seen[-3:])


if __name__ == "__main__":
    unittest.main()
