"""The mgit-monitoring command line, run the way users run it."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

from mgit_monitoring import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env(state_dir: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        MGIT_MONITORING_STATE_DIR=state_dir,
        HOME=state_dir,
        MGIT_MONITORING_NETWORK_HOSTS="none",
        MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
    )
    env.update(extra)
    return env


class CliTestCase(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.state = tmp.name
        self.env = _env(self.state)

    def run_cli(self, *args: str, module: str = "mgit_monitoring", **env: str):
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=self.state,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


class TestEntryPoints(CliTestCase):
    def test_help_of_every_command_has_an_example(self):
        """`--help` of the program and of each command exits 0 and shows an example."""
        for command in ([], ["server"], ["health"], ["metrics"], ["performance"]):
            with self.subTest(command=command):
                out = self.run_cli(*command, "--help")
                self.assertEqual(0, out.returncode, out.stderr)
                self.assertIn("example:", out.stdout)

    def test_server_module_points_at_the_cli(self):
        """`python3 -m mgit_monitoring.server` is not a second CLI: one line names the one."""
        out = self.run_cli("--help", module="mgit_monitoring.server")
        self.assertEqual(2, out.returncode)
        self.assertEqual("", out.stdout)
        self.assertEqual(
            ["error: run the server with: python3 -m mgit_monitoring server [options]"],
            out.stderr.splitlines(),
        )

    def test_cli_module_runs_too(self):
        """`python3 -m mgit_monitoring.cli` is the same program."""
        out = self.run_cli("--version", module="mgit_monitoring.cli")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertRegex(out.stdout, r"\d+\.\d+\.\d+")

    def test_no_command_is_a_usage_error(self):
        """Running without a command prints usage on stderr and exits 2."""
        out = self.run_cli()
        self.assertEqual(2, out.returncode)
        self.assertIn("usage:", out.stderr)

    def test_bad_environment_is_one_line_error(self):
        """An invalid MGIT_MONITORING_* value gives one `error:` line naming it, exit 2."""
        out = self.run_cli("metrics", MGIT_MONITORING_PORT="80a")
        self.assertEqual(2, out.returncode)
        lines = out.stderr.strip().splitlines()
        self.assertEqual(1, len(lines), out.stderr)
        self.assertIn("MGIT_MONITORING_PORT", lines[0])
        self.assertTrue(lines[0].startswith("error: "))


class TestServerCommand(CliTestCase):
    def test_bad_settings_are_one_line_errors(self):
        """Unusable server settings exit 2 with one `error:` line, before serving anything."""
        token = os.path.join(self.state, "empty-token")
        open(token, "w", encoding="utf-8").close()
        for args, env, expected in (
            (["--tls-key", "k.pem"], {}, "--tls-key needs --tls-cert"),
            (["--tls-cert", "missing.pem"], {}, "missing.pem"),
            (["--auth-token-file", token], {}, "the bearer token is empty"),
            (["--htpasswd", "nope"], {}, "nope"),
            ([], {"MGIT_MONITORING_PORT": "80a"}, "MGIT_MONITORING_PORT"),
            (["--log-level", "LOUD"], {}, "LOUD"),
        ):
            with self.subTest(args=args, env=env):
                out = self.run_cli("server", "--simple", "--port", "0", *args, **env)
                self.assertEqual(2, out.returncode, out.stderr)
                self.assertEqual("", out.stdout)
                lines = out.stderr.strip().splitlines()
                self.assertEqual(1, len(lines), out.stderr)
                self.assertTrue(lines[0].startswith("error: "), lines[0])
                self.assertIn(expected, lines[0])


class TestMetricsCommand(CliTestCase):
    def record(self, processes: int = 2, operations: int = 50) -> None:
        code = (
            "from mgit_monitoring.integration import setup_monitoring_integration\n"
            "m = setup_monitoring_integration().metrics\n"
            f"for i in range({operations}):\n"
            "    m.record_operation('clone-all', success=i % 5 != 0, duration=0.2, "
            "provider='github')\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code], env=self.env, cwd=self.state)
            for _ in range(processes)
        ]
        for proc in procs:
            self.assertEqual(0, proc.wait(timeout=60))

    def test_prometheus_output_sums_every_process(self):
        """`metrics` prints what separate mgit processes recorded, summed."""
        self.record(processes=3, operations=40)
        out = self.run_cli("metrics")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertIn("# TYPE mgit_operations_total counter", out.stdout)
        self.assertRegex(
            out.stdout,
            r'mgit_operations_total\{operation="clone-all",provider="github"\} 120(\.0)?\n',
        )

    def test_json_is_pure_json(self):
        """`metrics --format json` prints one JSON document and nothing else on stdout."""
        self.record(processes=1, operations=3)
        out = self.run_cli("metrics", "--format", "json")
        self.assertEqual(0, out.returncode, out.stderr)
        doc = json.loads(out.stdout)
        self.assertIsInstance(doc, dict)
        self.assertIn("mgit_operations_total", json.dumps(doc))

    def test_openmetrics_ends_with_eof(self):
        """`metrics --format openmetrics` ends with the `# EOF` marker."""
        out = self.run_cli("metrics", "--format", "openmetrics")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertTrue(out.stdout.endswith("# EOF\n"))

    def test_output_replaces_the_file_atomically(self):
        """`--output FILE` renames a finished temp file over the old one; stdout stays empty."""
        self.record(processes=1, operations=2)
        directory = os.path.join(self.state, "textfile")
        os.makedirs(directory)
        target = os.path.join(directory, "mgit.prom")
        with open(target, "w", encoding="utf-8") as fh:
            fh.write("# old\n")
        reader = open(target, encoding="utf-8")  # noqa: SIM115 - a scraper mid-read
        self.addCleanup(reader.close)
        out = self.run_cli("metrics", "--output", target)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual("", out.stdout)
        self.assertEqual("# old\n", reader.read())  # the open file was never rewritten
        self.assertNotEqual(os.fstat(reader.fileno()).st_ino, os.stat(target).st_ino)
        self.assertEqual(["mgit.prom"], os.listdir(directory))
        self.assertEqual(0o644, os.stat(target).st_mode & 0o777)
        with open(target, encoding="utf-8") as fh:
            self.assertIn('operation="clone-all"', fh.read())

    def test_closed_stdout_is_quiet(self):
        """`metrics | head -0`: a closed pipe ends the command without a traceback."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            out = subprocess.run(
                [sys.executable, "-m", "mgit_monitoring", "metrics"],
                cwd=self.state,
                env=self.env,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        self.assertEqual("", out.stderr)
        self.assertEqual(141, out.returncode)

    def test_unwritable_output_is_one_line_error(self):
        """An output path in a missing directory is a one-line error, exit 2."""
        out = self.run_cli("metrics", "--output", os.path.join(self.state, "no", "such", "f"))
        self.assertEqual(2, out.returncode)
        self.assertEqual(1, len(out.stderr.strip().splitlines()), out.stderr)
        self.assertIn("error:", out.stderr)

    def test_dead_pushgateway_is_one_line_error(self):
        """Pushing to a gateway that is not there fails fast with one line, exit 2."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = self.run_cli("metrics", "--push-gateway", f"http://127.0.0.1:{port}")
        self.assertEqual(2, out.returncode)
        self.assertEqual(1, len(out.stderr.strip().splitlines()), out.stderr)


class TestPerformanceCommand(CliTestCase):
    def trace(self) -> None:
        code = (
            "from mgit_monitoring.integration import setup_monitoring_integration\n"
            "perf = setup_monitoring_integration().performance\n"
            "for ok in [True, True, True, False]:\n"
            "    perf.end_trace(perf.start_trace('clone_repos'), success=ok)\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=60)

    def test_table_shows_statistics_and_chart(self):
        """`performance --operation` prints count, success rate, percentiles and a chart."""
        self.trace()
        out = self.run_cli("performance", "--operation", "clone_repos", "--hours", "1")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertIn("clone_repos", out.stdout)
        self.assertRegex(out.stdout, r"count\s+4\s+\(ok 3, failed 1\)")
        self.assertRegex(out.stdout, r"success rate\s+75\.0%")
        for label in ("p50", "p95", "p99", "distribution"):
            self.assertIn(label, out.stdout)

    def test_json_output(self):
        """`performance --json` is pure JSON with the seed's field names."""
        self.trace()
        out = self.run_cli("performance", "--json")
        self.assertEqual(0, out.returncode, out.stderr)
        stats = json.loads(out.stdout)["operations"]["clone_repos"]
        self.assertEqual(4, stats["count"])
        self.assertEqual(75.0, stats["success_rate"])
        for key in ("avg_duration", "p95_duration", "p99_duration"):
            self.assertIn(key, stats)

    def test_unknown_operation_exits_1(self):
        """Asking for an operation with no data says so and exits 1."""
        out = self.run_cli("performance", "--operation", "nothing_here")
        self.assertEqual(1, out.returncode)
        self.assertIn("no performance data", out.stdout)

    def test_bad_hours_is_an_error(self):
        """A non-positive --hours is a one-line error, exit 2."""
        out = self.run_cli("performance", "--hours", "0")
        self.assertEqual(2, out.returncode)
        self.assertIn("--hours", out.stderr)


class TestHealthCommand(CliTestCase):
    def test_json_is_pure_json_and_exit_code_follows_status(self):
        """`health --json` prints JSON only; exit 0 unless the status is unhealthy."""
        out = self.run_cli("health", "--json")
        doc = json.loads(out.stdout)
        self.assertIn(doc["status"], ("healthy", "degraded", "unhealthy"))
        self.assertEqual(1 if doc["status"] == "unhealthy" else 0, out.returncode, out.stderr)
        self.assertIn("system_basics", doc["checks"])

    def test_unhealthy_exits_1(self):
        """With git missing (a critical check), `health` reports unhealthy and exits 1."""
        empty = os.path.join(self.state, "empty-bin")
        os.mkdir(empty)
        out = self.run_cli("health", "--detailed", PATH=empty)
        self.assertEqual(1, out.returncode, out.stdout + out.stderr)
        self.assertIn("unhealthy", out.stdout)
        self.assertIn("git_availability", out.stdout)

    def test_json_stays_pure_when_warnings_are_logged(self):
        """With a state dir that is a file, `health --json` stdout is still only JSON (what the
        checks say about it goes to stderr or into the report); the readers exit 2."""
        not_a_dir = os.path.join(self.state, "file")
        with open(not_a_dir, "w", encoding="utf-8") as fh:
            fh.write("x")
        out = self.run_cli("health", "--json", MGIT_MONITORING_STATE_DIR=not_a_dir)
        self.assertIsInstance(json.loads(out.stdout), dict)
        self.assertNotIn(out.returncode, (2,), out.stderr)
        self.assertIn(not_a_dir, out.stdout)  # the report names the unusable directory
        # Readers named a state dir that is not one: a one-line error, nothing on stdout.
        for args in (("metrics", "--format", "json"), ("performance", "--json")):
            with self.subTest(args=args):
                out = self.run_cli(*args, MGIT_MONITORING_STATE_DIR=not_a_dir)
                self.assertEqual(2, out.returncode, out.stderr)
                self.assertEqual("", out.stdout)
                self.assertEqual(
                    [f"error: MGIT_MONITORING_STATE_DIR {not_a_dir}: not a directory"],
                    out.stderr.splitlines(),
                )

    def test_detailed_json_has_original_shape(self):
        """`health --detailed --json` keeps the original's summary and checks fields."""
        out = self.run_cli("health", "--detailed", "--json")
        doc = json.loads(out.stdout)
        for key in ("status", "timestamp", "summary", "checks", "issues"):
            self.assertIn(key, doc)
        self.assertIn("health_percentage", doc["summary"])


class TestHostMounting(unittest.TestCase):
    def test_commands_mount_under_a_host_parser(self):
        """A host CLI mounts the commands as `mgit monitoring ...` and dispatches them."""
        parser = argparse.ArgumentParser(prog="mgit")
        sub = parser.add_subparsers(dest="command")
        cli.register_monitoring_commands(sub.add_parser("monitoring"))
        args = parser.parse_args(["monitoring", "performance", "--hours", "-1"])
        self.assertEqual("monitoring", args.command)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.run_command(args, environ={})
        self.assertEqual(2, code)
        self.assertIn("--hours", err.getvalue())


class TestChart(unittest.TestCase):
    def test_chart_width_and_extremes(self):
        """The distribution chart has one cell per bin and full bars at the peak."""
        chart = cli.distribution_chart([0.1] * 10 + [10.0], width=12)
        self.assertEqual(12, len(chart))
        self.assertEqual("█", chart[0])
        self.assertNotEqual(" ", chart[-1])

    def test_chart_of_nothing_is_empty(self):
        """No durations, no chart."""
        self.assertEqual("", cli.distribution_chart([]))

    def test_format_seconds(self):
        """Durations print in a unit people read at a glance."""
        self.assertEqual("850µs", cli.format_seconds(0.00085))
        self.assertEqual("12.3ms", cli.format_seconds(0.0123))
        self.assertEqual("2.41s", cli.format_seconds(2.41))
        self.assertEqual("3m05s", cli.format_seconds(185))
        self.assertEqual("-", cli.format_seconds(float("nan")))


if __name__ == "__main__":
    unittest.main()
