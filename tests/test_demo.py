"""``mgit-monitoring demo``: real git work in a child process, checked through /metrics.

Each run has its own HOME, TMPDIR and state directory, so nothing touches the user's
files, and the test checks that the demo removed its temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from typing import Dict, List, Sequence, Tuple

from mgit_monitoring import metric_definitions
from tests.support import ROOT

GIT = shutil.which("git")


def _name(name: str) -> str:
    """A metric's exposition name, read from the definitions table."""
    return metric_definitions.definition(name).name


def parse_metrics(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value} (enough for our own output)."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if m is None:
            continue
        labels = tuple(sorted(label_re.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(samples: Dict, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class DemoProcess:
    """``python -m mgit_monitoring.demo`` in a child with its own HOME and TMPDIR."""

    def __init__(
        self, args: Sequence[str], python: str = sys.executable, state_dir: str | None = None
    ):
        self.home = tempfile.mkdtemp(prefix="mgit-demo-test-")
        self.tmp = os.path.join(self.home, "tmp")
        os.makedirs(self.tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MGIT_MONITORING_") and k not in ("TRACEPARENT",)
        }
        env.update(HOME=self.home, TMPDIR=self.tmp, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        if state_dir is not None:
            env["MGIT_MONITORING_STATE_DIR"] = state_dir
        self.env = env
        self._err = open(  # noqa: SIM115 - closed in close()
            os.path.join(self.home, "stderr.txt"), "w+", encoding="utf-8"
        )
        self.proc = subprocess.Popen(
            [python, "-m", "mgit_monitoring.demo", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def wait_for(self, prefix: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                if "<EOF>" in self.lines:
                    raise AssertionError(f"demo ended before {prefix!r}:\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {prefix!r} after {timeout}s:\n{self.output()}")
                self._cond.wait(left)

    def output(self) -> str:
        return "\n".join(self.lines) + ("\n" + self.stderr if self.stderr else "")

    def finish(self, sig: int | None = None, timeout: float = 60.0) -> int:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"demo did not stop:\n{self.output()}") from None
        finally:
            self._reader.join(10)
            self._err.seek(0)
            self.stderr = self._err.read()
        return self.proc.returncode

    def leftovers(self) -> List[str]:
        return [n for n in os.listdir(self.tmp) if n.startswith("mgit-demo-")]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()
        shutil.rmtree(self.home, ignore_errors=True)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8")


def check_counts(test: unittest.TestCase, samples: Dict, summary: Dict, repos: int) -> None:
    """The metrics tell the same story as the demo's own tally and its provider's answers."""
    git_ops = _name("mgit_git_operations_total")
    test.assertEqual(total(samples, git_ops, operation="clone", status="success"), repos)
    test.assertEqual(
        total(samples, git_ops, operation="clone", status="failure"),
        summary["clone_missing_failed"],
    )
    test.assertGreaterEqual(summary["clone_missing_failed"], 1, "some operations fail on purpose")
    test.assertEqual(total(samples, git_ops, operation="pull", status="success"), summary["pull"])
    test.assertEqual(
        total(samples, git_ops, operation="pull", status="failure"), summary["pull_broken_failed"]
    )
    ops = _name("mgit_operations_total")
    test.assertEqual(
        total(samples, ops, operation="sync_repository"),
        summary["sync_ok"] + summary.get("sync_failed", 0),
    )
    test.assertEqual(summary["sync_ok"], repos * summary["rounds"])
    api = _name("mgit_api_requests_total")
    for code, count in summary["api_responses"].items():
        test.assertEqual(total(samples, api, provider="demo", status_code=code), count, code)
    test.assertEqual(total(samples, api), sum(summary["api_responses"].values()))
    test.assertEqual(summary["api_responses"].get("429"), 1, "exactly one rate limit")
    test.assertEqual(total(samples, _name("mgit_api_rate_limit_hits_total"), provider="demo"), 1)
    test.assertEqual(
        total(samples, _name("mgit_api_errors_total"), provider="demo"),
        sum(n for code, n in summary["api_responses"].items() if int(code) >= 400),
    )
    test.assertEqual(total(samples, _name("mgit_auth_attempts_total"), provider="demo"), 2)
    test.assertEqual(total(samples, _name("mgit_auth_failures_total"), provider="demo"), 1)
    test.assertEqual(total(samples, _name("mgit_repositories_processed")), repos)
    test.assertEqual(total(samples, _name("mgit_concurrent_operations")), 0)
    durations = _name("mgit_git_operation_duration_seconds") + "_count"
    test.assertEqual(
        total(samples, durations, operation="clone"), repos + summary["clone_missing_failed"]
    )


@unittest.skipIf(GIT is None, "git is not installed")
class DemoTest(unittest.TestCase):
    REPOS = 3

    def start(self, *args: str, **kw: object) -> DemoProcess:
        demo = DemoProcess(args, **kw)  # type: ignore[arg-type]
        self.addCleanup(demo.close)
        return demo

    def run_demo(self, python: str = sys.executable) -> None:
        demo = self.start(
            "--repos", str(self.REPOS), "--duration", "1", "--port", "0", python=python
        )
        url = demo.wait_for("serving on ").split()[-1]
        summary = json.loads(demo.wait_for("demo finished: ").split(": ", 1)[1])
        self.assertTrue(url.startswith("http://127.0.0.1:"), url)
        samples = parse_metrics(fetch(url + "/metrics"))
        check_counts(self, samples, summary, self.REPOS)
        health = json.loads(fetch(url + "/health/detailed"))
        self.assertIn(health["status"], ("healthy", "degraded", "unhealthy"))
        for name in ("network_connectivity", "provider_endpoints"):  # pointed at the fake API
            self.assertEqual(health["checks"][name]["status"], "healthy", health["checks"][name])
        printed = demo.output()
        log_file = re.search(r"JSON log:\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        with open(log_file, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        self.assertTrue(any(r.get("correlation_id") for r in records), records[:3])
        self.assertTrue(any(r.get("level") == "ERROR" for r in records), "failures are logged")
        for what in ("/metrics", "performance", url + "/"):
            self.assertIn(what, printed)
        self.assertEqual(demo.finish(signal.SIGINT), 0, demo.output())
        self.assertEqual(demo.leftovers(), [], "temporary directory removed")
        self.assertFalse(os.path.exists(log_file))
        self.assertFalse(os.path.exists(os.path.join(demo.home, ".local")), "no state in HOME")

    def test_demo_fills_the_metrics_and_cleans_up_on_ctrl_c(self) -> None:
        self.run_demo()

    def test_demo_on_python_3_8(self) -> None:
        python = _python38()
        if python is None:
            self.skipTest("no Python 3.8 interpreter (pyenv prefix 3.8 or python3.8)")
        self.run_demo(python)

    def test_exit_keeps_traces_in_the_given_state_dir(self) -> None:
        state = tempfile.mkdtemp(prefix="mgit-demo-state-")
        self.addCleanup(shutil.rmtree, state, True)
        demo = self.start(
            "--repos", "2", "--duration", "0", "--port", "0", "--exit", state_dir=state
        )
        summary = json.loads(demo.wait_for("demo finished: ").split(": ", 1)[1])
        self.assertEqual(demo.finish(), 0, demo.output())
        self.assertEqual(summary["rounds"], 1)
        self.assertEqual(demo.leftovers(), [])
        self.assertTrue(os.listdir(state), "the store is in MGIT_MONITORING_STATE_DIR")
        done = subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", "performance", "--hours", "1", "--json"],
            cwd=ROOT,
            env=demo.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        operations = json.loads(done.stdout)["operations"]
        self.assertEqual(operations["clone"]["count"], 2 + summary["clone_missing_failed"])
        self.assertEqual(operations["sync_repository"]["count"], 2)

    def test_sigterm_during_the_work_exits_130_and_cleans_up(self) -> None:
        demo = self.start("--repos", "2", "--duration", "60", "--port", "0")
        demo.wait_for("round 1:")
        self.assertEqual(demo.finish(signal.SIGTERM), 130, demo.output())
        self.assertEqual(demo.leftovers(), [])

    def test_server_option_reports_to_a_running_server(self) -> None:
        from mgit_monitoring.registry import Registry
        from mgit_monitoring.server import MonitoringServer

        with MonitoringServer("127.0.0.1", 0, registry=Registry(), simple=True) as server:
            demo = self.start("--repos", "1", "--duration", "0", "--server", server.url)
            line = demo.wait_for("serving on ")
            self.assertEqual(line, f"serving on {server.url}")
            self.assertEqual(demo.finish(), 0, demo.output())
        demo = self.start("--server", "http://127.0.0.1:9/", "--duration", "0")
        self.assertEqual(demo.finish(), 2)
        self.assertIn("--server", demo.output())


class CliTest(unittest.TestCase):
    def test_cli_has_the_demo_command(self) -> None:
        from mgit_monitoring.cli import build_parser

        args = build_parser().parse_args(["demo", "--repos", "2", "--duration", "1", "--port", "0"])
        self.assertEqual((args.repos, args.duration, args.port), (2, 1.0, 0))
        self.assertTrue(callable(args.monitoring_handler))


def _python38() -> str | None:
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.8"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        prefix = ""
    candidate = os.path.join(prefix, "bin", "python3") if prefix else shutil.which("python3.8")
    if candidate and os.access(candidate, os.X_OK):
        return candidate
    return None


if __name__ == "__main__":
    unittest.main()
