"""setup_monitoring_integration: one wired set of objects installed as the package defaults;
the seed's examples run as written."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import unittest
from typing import Any, List
from unittest import mock

from mgit_monitoring.collector import get_metrics_collector, setup_metrics
from mgit_monitoring.config import MonitoringConfig
from mgit_monitoring.context import get_correlation_id
from mgit_monitoring.default_checks import get_health_checker
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.integration import (
    get_monitoring_integration,
    is_monitoring_enabled,
    monitor_git_operation,
    monitor_mgit_operation,
    reset_monitoring_integration,
    setup_monitoring_integration,
)
from mgit_monitoring.logs import StructuredFormatter
from mgit_monitoring.performance import (
    PerformanceMonitor,
    get_performance_monitor,
    set_performance_monitor,
)
from mgit_monitoring.shared_state import merged_snapshot
from mgit_monitoring.store import Store
from tests.integration_case import IntegrationCase, value
from tests.support import Clock, run_python


class SetupTest(IntegrationCase):
    def test_one_registry_shared_and_installed_as_defaults(self) -> None:
        """Collector, monitor and checker share one registry and become the package defaults."""
        wired = self.setup()
        self.assertIs(wired.metrics.registry, wired.registry)
        self.assertIs(get_metrics_collector(), wired.metrics)
        self.assertIs(get_performance_monitor(), wired.performance)
        # Built on first use, then the package default.
        self.assertIs(wired.health, get_health_checker())
        self.assertIs(get_monitoring_integration(), wired)
        for name in (
            "mgit_performance_anomalies_total",
            "mgit_health_overall",
            "mgit_operations_total",
        ):
            self.assertIsNotNone(wired.registry.get(name), name)
        # A nanosecond baseline: any real trace is far slower than 3x that.
        wired.performance.set_performance_baseline("slow", {"avg_duration": 1e-9})
        wired.performance.end_trace(wired.performance.start_trace("slow"), True)
        self.assertEqual(
            value(
                "mgit_performance_anomalies_total",
                {"operation": "slow", "type": "slow_operation"},
            ),
            1,
        )

    def test_second_call_returns_the_same_objects(self) -> None:
        """setup is idempotent; a second call with arguments warns once and ignores them."""
        first = self.setup()
        second = setup_monitoring_integration(port=9999)
        self.assertIs(second, first)
        self.assertEqual(second.config.port, 8080)
        self.assertIn("already set up", self.stream.getvalue())

    def test_force_rebuilds(self) -> None:
        """force=True builds new objects and installs them."""
        first = self.setup()
        second = self.setup(force=True)
        self.assertIsNot(second.metrics, first.metrics)
        self.assertIsNot(second.performance, first.performance)
        self.assertIs(get_metrics_collector(), second.metrics)

    def test_concurrent_setup_gives_one_set_of_objects(self) -> None:
        """Threads racing into setup all get the same objects."""
        barrier = threading.Barrier(8)
        results: List[Any] = []

        def run() -> None:
            barrier.wait()
            results.append(self.setup())

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 8)
        self.assertEqual(len({id(r) for r in results}), 1)
        self.assertEqual(len({id(r.metrics) for r in results}), 1)

    def test_existing_default_collector_is_adopted(self) -> None:
        """A collector created before setup is kept (its holders are not orphaned)."""
        early = setup_metrics(repository_labels=True)
        wired = self.setup()
        self.assertIs(wired.metrics, early)
        self.assertIs(wired.registry, early.registry)

    def test_configuration_precedence(self) -> None:
        """Overrides beat the environment, which beats the defaults; env is read via config."""
        env = {"MGIT_MONITORING_PORT": "9100", "MGIT_MONITORING_LOG_LEVEL": "debug"}
        wired = setup_monitoring_integration(
            environ=env, state_dir=self.state_dir, persist=False, port=9200
        )
        self.assertEqual(wired.config.port, 9200)
        self.assertEqual(wired.config.log_level, "DEBUG")

    def test_config_object_with_overrides(self) -> None:
        """A given MonitoringConfig is used, overrides replacing its fields."""
        cfg = MonitoringConfig(state_dir=self.state_dir, persist=False, port=1234)
        wired = setup_monitoring_integration(cfg, port=4321)
        self.assertEqual((wired.config.port, wired.config.state_dir), (4321, self.state_dir))

    def test_bad_environment_is_one_warning_not_an_error(self) -> None:
        """Inside an application a bad value never raises: one warning naming the variable,
        its default (for ENABLED: off); a bad keyword override is the code's error."""
        wired = setup_monitoring_integration(
            environ={"MGIT_MONITORING_ENABLED": "maybe", "MGIT_MONITORING_PORT": "abc"},
            state_dir=self.state_dir,
        )
        self.assertIs(get_monitoring_integration(), wired)
        self.assertFalse(wired.config.enabled)
        self.assertFalse(is_monitoring_enabled())
        self.assertEqual(wired.config.port, 8080)
        warnings = [line for line in self.lines() if line["level"] == "WARNING"]
        self.assertEqual(
            [w["message"].split("=")[0] for w in warnings],
            ["MGIT_MONITORING_ENABLED", "MGIT_MONITORING_PORT"],
        )
        with self.assertRaisesRegex(ConfigError, "^port="):
            setup_monitoring_integration(environ={}, force=True, port="abc")

    def test_logging_left_alone_unless_asked(self) -> None:
        """No handler is added by default; configure_logging=True installs the JSON handler."""
        root = logging.getLogger()
        before = list(root.handlers)
        self.addCleanup(root.setLevel, root.level)
        self.setup()
        self.assertEqual(root.handlers, before)
        self.setup(force=True, configure_logging=True)
        added = [h for h in root.handlers if h not in before]
        for handler in added:
            self.addCleanup(root.removeHandler, handler)
        self.assertEqual(len(added), 1)
        self.assertIsInstance(added[0].formatter, StructuredFormatter)

    def test_persistence_shares_one_store(self) -> None:
        """With persistence, traces and metrics reach the sqlite store other processes read."""
        wired = self.setup(persist=True)
        self.assertIsNotNone(wired.store)
        self.assertIs(wired.performance.store, wired.store)
        self.assertIs(wired.shared.store, wired.store)
        self.assertIs(wired.shared.registry, wired.registry)

        @monitor_mgit_operation("persisted")
        def work() -> int:
            return 1

        work()
        reset_monitoring_integration()  # flushes and closes
        store = Store.open(self.state_dir)
        self.addCleanup(store.close)
        reader = PerformanceMonitor(store=store)
        self.assertEqual(reader.get_operation_metrics("persisted").count, 1)
        merged = merged_snapshot(store)
        labels = {"operation": "persisted", "provider": ""}
        self.assertEqual(merged.get_sample_value("mgit_operations_total", labels), 1)

    def test_default_state_dir_comes_from_the_environment(self) -> None:
        """Without state_dir the XDG state directory of the given environment is used."""
        wired = setup_monitoring_integration(environ={"XDG_STATE_HOME": self.state_dir})
        expected = os.path.join(self.state_dir, "mgit-monitoring")
        self.assertEqual(wired.config.state_dir, expected)
        self.assertTrue(wired.store.path.startswith(expected + os.sep))

    def test_unknown_override_is_rejected(self) -> None:
        """An unknown field name is a ConfigError naming it."""
        with self.assertRaises(ConfigError) as caught:
            setup_monitoring_integration(MonitoringConfig(), colour="blue")
        self.assertIn("colour", str(caught.exception))

    def test_disabled_opens_no_store(self) -> None:
        """enabled=False wires memory-only objects and starts no flusher."""
        wired = self.setup(enabled=False, persist=True)
        self.assertIsNone(wired.store)
        self.assertIsNone(wired.shared)
        self.assertEqual(os.listdir(self.state_dir), [])


class SeedSnippetTest(IntegrationCase):
    """The seed's examples, run as written (``mgit.monitoring`` is ``mgit_monitoring`` here)."""

    def test_performance_monitoring_section(self) -> None:
        """Manual timing, context manager, decorator and the three print lines all work."""
        self.setup()
        from mgit_monitoring import get_performance_monitor, monitor_performance

        def clone_repositories() -> None:
            pass

        perf_monitor = get_performance_monitor()

        # Manual timing
        operation_id = perf_monitor.start_trace("clone_operation")
        # ... perform operation ...
        duration = perf_monitor.end_trace(operation_id, success=True)

        # Context manager
        with perf_monitor.trace_operation("clone_repos"):
            clone_repositories()

        # Decorator
        @monitor_performance("git_clone")
        def clone_repo(url, path):  # type: ignore[no-untyped-def]
            # Automatically timed and tracked
            pass

        clone_repo("https://github.com/a/b.git", "/tmp/b")

        # Performance analysis
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            metrics = perf_monitor.get_operation_metrics("clone_repos", hours=24)
            print(f"Average duration: {metrics.avg_duration:.2f}s")
            print(f"95th percentile: {metrics.p95_duration:.2f}s")
            print(f"Success rate: {metrics.success_rate:.1f}%")
        self.assertIsInstance(duration, float)
        self.assertRegex(
            out.getvalue(),
            r"^Average duration: \d+\.\d\ds\n95th percentile: \d+\.\d\ds\n"
            r"Success rate: 100\.0%\n$",
        )
        for name in ("clone_operation", "clone_repos", "git_clone"):
            self.assertEqual(perf_monitor.get_operation_metrics(name).count, 1, name)

    def test_integration_decorators_section(self) -> None:
        """The three decorators exactly as the seed shows them."""
        self.setup()
        from mgit_monitoring.integration import (
            monitor_git_operation,
            monitor_mgit_operation,
            monitor_provider_api_call,
        )

        @monitor_mgit_operation(operation_name="clone_all", provider="github")
        def clone_all_repositories(org, dest):  # type: ignore[no-untyped-def]
            # Automatically tracked with metrics, logging, and performance
            pass

        @monitor_git_operation(operation_type="clone")
        def git_clone(repo_url, destination):  # type: ignore[no-untyped-def]
            # Git-specific tracking
            pass

        @monitor_provider_api_call(provider_name="github", endpoint="/repos")
        def list_repositories(org):  # type: ignore[no-untyped-def]
            # API call tracking with timing and error rates
            pass

        clone_all_repositories("acme", "/tmp/acme")
        git_clone("https://github.com/acme/a.git", "/tmp/acme/a")
        list_repositories("acme")
        ops = {"operation": "clone_all", "provider": "github"}
        self.assertEqual(value("mgit_operations_success_total", ops), 1)
        self.assertEqual(
            value("mgit_git_operations_total", {"operation": "clone", "status": "success"}), 1
        )
        api = {"method": "unknown", "provider": "github", "status_code": "unknown"}
        self.assertEqual(value("mgit_api_requests_total", dict(api, endpoint="/repos")), 1)

    def test_best_practices_section(self) -> None:
        """Correlation context, error handling, baselines and resource gauges as shown."""
        self.setup()
        from mgit_monitoring import (
            correlation_context,
            get_metrics_collector,
            get_performance_monitor,
            get_structured_logger,
        )
        from mgit_monitoring.integration import monitor_mgit_operation

        logger = get_structured_logger(self.module)
        ids: List[str] = []

        @monitor_git_operation(operation_type="clone")
        def clone_repository(repo: str) -> None:
            ids.append(get_correlation_id())

        class SpecificError(Exception):
            pass

        # 1. Correlation Context
        repositories = ["acme/a", "acme/b"]
        with correlation_context(operation="bulk_clone", organization="myorg") as outer:
            # All nested operations share correlation ID
            for repo in repositories:
                clone_repository(repo)
        self.assertEqual(ids, [outer, outer])

        # 2. Error Handling
        @monitor_mgit_operation("risky_operation")
        def risky_operation():  # type: ignore[no-untyped-def]
            try:
                # Operation logic
                raise SpecificError("timeout")
            except SpecificError as e:
                # Log specific error context
                logger.error("Specific error occurred", error_details=str(e))
                raise

        with self.assertRaises(SpecificError):
            risky_operation()
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "SpecificError", "operation": "risky_operation", "provider": ""},
            ),
            1,
        )
        detail = [line for line in self.lines() if line.get("error_details") == "timeout"]
        self.assertEqual(len(detail), 1)

        # 3. Performance Baselines (on a monitor with a hand-driven clock, counting on the
        # same registry)
        clock = Clock(0.0)
        registry = get_metrics_collector().registry
        set_performance_monitor(PerformanceMonitor(registry=registry, clock=clock))
        perf_monitor = get_performance_monitor()
        perf_monitor.set_performance_baseline(
            "clone_operation", {"avg_duration": 5.0, "p95_duration": 15.0}
        )
        trace = perf_monitor.start_trace("clone_operation")
        clock.now += 60.0  # this one took a minute
        perf_monitor.end_trace(trace)
        anomaly = {"operation": "clone_operation", "type": "slow_operation"}
        self.assertEqual(value("mgit_performance_anomalies_total", anomaly), 1)

        # 4. Resource Monitoring
        metrics = get_metrics_collector()
        metrics.update_concurrent_operations(3)
        metrics.update_repositories_processed(42)
        self.assertEqual(value("mgit_concurrent_operations"), 3)
        self.assertEqual(value("mgit_repositories_processed"), 42)


class EnvironmentRobustnessTest(IntegrationCase):
    def test_bad_unrelated_variable_does_not_cancel_disabled(self) -> None:
        """ENABLED=false holds even when another variable is invalid; decorating never raises."""
        env = {"MGIT_MONITORING_ENABLED": "false", "MGIT_MONITORING_PORT": "80a"}
        with mock.patch.dict(os.environ, env):

            def op() -> int:
                return 1

            self.assertIs(monitor_mgit_operation("x")(op), op)
            self.assertFalse(is_monitoring_enabled())
            self.assertFalse(get_metrics_collector().enabled)
            self.assertFalse(get_performance_monitor().enabled)
            wired = setup_monitoring_integration(state_dir=self.state_dir)
        self.assertFalse(wired.config.enabled)
        self.assertIn("MGIT_MONITORING_PORT='80a'", self.stream.getvalue())

    def test_bad_enabled_value_keeps_decorators_working(self) -> None:
        """An invalid ENABLED value before any setup: decorating and calling still work,
        monitoring is off, and the one warning names the variable."""
        self.capture("mgit_monitoring.collector")
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "maybe"}):

            @monitor_mgit_operation("still_works")
            def op() -> int:
                return 1

            self.assertEqual(op(), 1)
            self.assertFalse(is_monitoring_enabled())
            self.assertFalse(get_metrics_collector().enabled)
            self.assertFalse(get_performance_monitor().enabled)
        warnings = [line for line in self.lines() if line["level"] == "WARNING"]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("MGIT_MONITORING_ENABLED='maybe'", warnings[0]["message"])

    def test_default_persistence_survives_the_process(self) -> None:
        """Two processes that only call setup and a decorated function, then exit: a third
        sees both traces and both counts (persistence is on by default, flushed at exit)."""
        writer = """
            from mgit_monitoring.integration import monitor_mgit_operation
            from mgit_monitoring.integration import setup_monitoring_integration
            setup_monitoring_integration()

            @monitor_mgit_operation(operation_name="clone_all", provider="github")
            def clone_all_repositories(org, dest):
                pass

            clone_all_repositories("acme", "/tmp/acme")
        """
        reader = """
            import json
            from mgit_monitoring.integration import setup_monitoring_integration
            from mgit_monitoring.shared_state import merged_snapshot
            wired = setup_monitoring_integration()
            stats = wired.performance.get_operation_metrics("clone_all")
            total = merged_snapshot(wired.store).get_sample_value(
                "mgit_operations_total", {"operation": "clone_all", "provider": "github"})
            print(json.dumps([stats.count, stats.success_rate, total]))
        """
        env = {"MGIT_MONITORING_STATE_DIR": self.state_dir, "MGIT_MONITORING_ENABLED": ""}
        with mock.patch.dict(os.environ, env):
            for code in (writer, writer, reader):
                done = run_python(code)
                self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [2, 100.0, 2])


if __name__ == "__main__":
    unittest.main()
