"""Tests for mgit_monitoring.collector: the seed's MetricsCollector API, names, safety, defaults."""

from __future__ import annotations

import json
import logging
import os
import threading
import unittest
from unittest import mock

from mgit_monitoring import collector as collector_mod
from mgit_monitoring.collector import (
    MetricsCollector,
    get_metrics_collector,
    record_api_call,
    record_authentication,
    record_git_operation,
    record_operation,
    reset_metrics_collector,
    setup_metrics,
)
from mgit_monitoring.errors import DuplicateMetricError, MetricError
from mgit_monitoring.registry import Registry, get_default_registry

SEED_METRICS = [
    ("mgit_operations_total", "counter"),
    ("mgit_operations_success_total", "counter"),
    ("mgit_operations_failure_total", "counter"),
    ("mgit_git_operations_total", "counter"),
    ("mgit_git_clone_duration_seconds", "histogram"),
    ("mgit_api_requests_total", "counter"),
    ("mgit_api_request_duration_seconds", "histogram"),
    ("mgit_auth_attempts_total", "counter"),
    ("mgit_health_overall", "gauge"),
    ("mgit_concurrent_operations", "gauge"),
]
EXTRA_METRICS = [
    ("mgit_operation_duration_seconds", "histogram"),
    ("mgit_api_errors_total", "counter"),
    ("mgit_api_rate_limit_hits_total", "counter"),
    ("mgit_repositories_processed", "gauge"),
    ("mgit_health_percentage", "gauge"),
    ("mgit_health_check_status", "gauge"),
    ("mgit_health_check_duration_seconds", "histogram"),
    ("mgit_performance_anomalies_total", "counter"),
]


class CollectorTestCase(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()
        self.m = MetricsCollector(self.reg)

    def value(self, name, **labels):
        return self.reg.get_sample_value(name, labels)


class TestSeedApi(CollectorTestCase):
    def test_seed_example_runs_and_counts(self):
        """The seed's example calls record exactly what they say."""
        self.m.record_operation("clone", success=True, duration=2.5, provider="github")
        self.m.record_git_operation("clone", "repo1", success=True, duration=2.5)
        self.m.record_api_call("GET", "github", 200, 0.5, "/repos")
        self.m.record_authentication("github", "myorg", success=True)
        self.assertEqual(
            1, self.value("mgit_operations_total", operation="clone", provider="github")
        )
        self.assertEqual(
            1, self.value("mgit_operations_success_total", operation="clone", provider="github")
        )
        self.assertEqual(
            2.5,
            self.value("mgit_operation_duration_seconds_sum", operation="clone", provider="github"),
        )
        self.assertEqual(
            1, self.value("mgit_git_operations_total", operation="clone", status="success")
        )
        self.assertEqual(1, self.value("mgit_git_clone_duration_seconds_count"))
        self.assertEqual(
            1,
            self.value(
                "mgit_api_requests_total",
                method="GET",
                provider="github",
                status_code="200",
                endpoint="/repos",
            ),
        )
        self.assertEqual(
            1, self.value("mgit_auth_attempts_total", provider="github", organization="myorg")
        )
        self.assertEqual(
            1, self.value("mgit_auth_success_total", provider="github", organization="myorg")
        )

    def test_failures_counted_separately(self):
        """A failed operation counts in total and failure, not success; the same for auth."""
        self.m.record_operation("pull", success=False, provider="azure")
        self.m.record_authentication("azure", "org", success=False)
        self.m.record_git_operation("pull", "r", success=False)
        self.assertEqual(
            1, self.value("mgit_operations_failure_total", operation="pull", provider="azure")
        )
        self.assertIsNone(
            self.value("mgit_operations_success_total", operation="pull", provider="azure")
        )
        self.assertEqual(
            1, self.value("mgit_auth_failures_total", provider="azure", organization="org")
        )
        self.assertEqual(
            1, self.value("mgit_git_operations_total", operation="pull", status="failure")
        )

    def test_api_errors_and_rate_limits(self):
        """Status >= 400 is an API error, 429 also a rate-limit hit; query strings are dropped."""
        self.m.record_api_call("get", "github", 429, 0.1, "/repos?access_token=secret")
        self.m.record_api_call("GET", "github", 500, 0.1, "/repos")
        self.m.record_rate_limit_hit("github")
        self.assertEqual(
            1, self.value("mgit_api_errors_total", provider="github", status_code="429")
        )
        self.assertEqual(
            1, self.value("mgit_api_errors_total", provider="github", status_code="500")
        )
        self.assertEqual(2, self.value("mgit_api_rate_limit_hits_total", provider="github"))
        self.assertNotIn("secret", self.m.export_prometheus())
        self.assertEqual(
            1,
            self.value(
                "mgit_api_requests_total",
                method="GET",
                provider="github",
                status_code="429",
                endpoint="/repos",
            ),
        )

    def test_gauges(self):
        """update_concurrent_operations and update_repositories_processed set their gauges."""
        self.m.update_concurrent_operations(4)
        self.m.update_repositories_processed(120)
        self.assertEqual(4, self.value("mgit_concurrent_operations"))
        self.assertEqual(120, self.value("mgit_repositories_processed"))
        snap = self.reg.snapshot()
        self.assertEqual("sum", snap.family("mgit_concurrent_operations").merge)
        self.assertEqual("sum", snap.family("mgit_repositories_processed").merge)

    def test_record_error(self):
        """record_error counts by error type with optional operation and provider."""
        self.m.record_error("TimeoutError", operation="clone")
        self.assertEqual(
            1,
            self.value(
                "mgit_errors_total", error_type="TimeoutError", operation="clone", provider=""
            ),
        )

    def test_module_level_helpers_use_the_default(self):
        """record_operation() and friends forward to get_metrics_collector()."""
        reset_metrics_collector()
        self.addCleanup(reset_metrics_collector)
        record_operation("sync", True, 1.0, "github")
        record_git_operation("pull", "r", True, 0.5)
        record_api_call("GET", "github", 200, 0.1)
        record_authentication("github", "o", True)
        reg = get_metrics_collector().registry
        self.assertEqual(
            1,
            reg.get_sample_value(
                "mgit_operations_total", {"operation": "sync", "provider": "github"}
            ),
        )
        self.assertEqual(
            1,
            reg.get_sample_value(
                "mgit_auth_attempts_total", {"provider": "github", "organization": "o"}
            ),
        )


class TestMetricNames(CollectorTestCase):
    def test_every_metric_has_help_and_type_from_the_first_scrape(self):
        """All seed and extra metrics are exposed with HELP and TYPE before anything is recorded."""
        text = self.m.export_prometheus()
        for name, kind in SEED_METRICS + EXTRA_METRICS:
            with self.subTest(metric=name):
                self.assertIn(f"# TYPE {name} {kind}\n", text)
                self.assertRegex(text, rf"# HELP {name} \S")

    def test_every_table_metric_is_registered_as_defined(self):
        """Every metric of metric_definitions exists with the table's type, help and labels
        (plus the collector's extra labels); HEALTH_METRICS is the table's health part."""
        from mgit_monitoring.metric_definitions import METRICS

        m = MetricsCollector(Registry(), extra_labels=("team",), repository_labels=True)
        for d in METRICS:
            with self.subTest(metric=d.name):
                metric = m.registry.get(d.name)
                self.assertEqual((d.kind, d.help), (metric.type, metric.help))
                extra = ()
                if d.labels == ("operation", "provider") and d.group != "providers":
                    extra = ("team",)
                if d.name == "mgit_git_operations_total":
                    extra = ("repository",)
                self.assertEqual(d.labels + extra, metric.labelnames)
        health = {d.name for d in METRICS if d.group == "health"}
        self.assertEqual(
            health | {"mgit_performance_anomalies_total"},
            {name for _kind, name, *_ in collector_mod.HEALTH_METRICS},
        )

    def test_health_overall_starts_unknown(self):
        """mgit_health_overall starts at -1 (unknown), not 0 (unhealthy)."""
        self.assertEqual(-1, self.value("mgit_health_overall"))

    def test_operation_names_are_label_values(self):
        """'clone-all' becomes a label value; no metric name ever contains it."""
        self.m.record_operation("clone-all", True, 3.0)
        text = self.m.export_prometheus()
        self.assertIn('mgit_operations_total{operation="clone-all",provider=""} 1\n', text)
        names = {
            ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if not ln.startswith("#")
        }
        seed_clone = "mgit_git_clone_duration_seconds"
        self.assertEqual([], [n for n in names if "clone" in n and not n.startswith(seed_clone)])

    def test_repository_is_not_a_label_by_default(self):
        """Without opt-in, repository names never reach the exposition."""
        self.m.record_git_operation("clone", "very-secret-repo-name", True, 1.0)
        self.assertNotIn("very-secret-repo-name", self.m.export_prometheus())

    def test_repository_label_opt_in_masks_credentials(self):
        """repository_labels=True adds the label, with URL credentials masked."""
        reg = Registry()
        m = MetricsCollector(reg, repository_labels=True)
        m.record_git_operation("clone", "https://user:hunter2token@github.com/org/repo.git", True)
        text = m.export_prometheus()
        self.assertIn("github.com/org/repo.git", text)
        self.assertNotIn("hunter2token", text)

    def test_repository_labels_stay_under_the_guard(self):
        """Opt-in per-repository series stop at the series limit and are counted as dropped."""
        reg = Registry()
        m = MetricsCollector(reg, repository_labels=True, series_limit=5)
        with self.assertLogs("mgit_monitoring.registry", logging.WARNING):
            for i in range(8):
                m.record_git_operation("pull", f"repo{i}", True)
        self.assertEqual(5, len(reg.snapshot().family("mgit_git_operations").series))
        self.assertEqual(
            3,
            reg.get_sample_value(
                "mgit_monitoring_series_dropped_total", {"metric": "mgit_git_operations_total"}
            ),
        )

    def test_extra_labels_are_declared_up_front(self):
        """extra_labels declares what record_operation(**kw) may fill; others warn and drop."""
        reg = Registry()
        m = MetricsCollector(reg, extra_labels=("organization",))
        m.record_operation("sync", True, organization="acme")
        with self.assertLogs("mgit_monitoring.collector", logging.WARNING) as logs:
            m.record_operation("sync", True, color="blue")
        self.assertIn("color", logs.output[0])
        labels = {"operation": "sync", "provider": "", "organization": "acme"}
        self.assertEqual(1, reg.get_sample_value("mgit_operations_total", labels))
        self.assertEqual(
            1, reg.get_sample_value("mgit_operations_total", dict(labels, organization=""))
        )

    def test_health_module_registers_identical_definitions(self):
        """health.py's HealthChecker shares the collector's registry (no DuplicateMetricError)."""
        from mgit_monitoring.health import HealthChecker

        HealthChecker(self.reg)
        other = Registry()
        HealthChecker(other)
        MetricsCollector(other)
        self.assertEqual(self.m.export_prometheus().count("# HELP mgit_health"), 4)

    def test_process_metrics_only_on_own_registry(self):
        """A collector with its own registry exposes python_info; one given a registry does not."""
        self.assertNotIn("python_info", self.m.export_prometheus())
        self.assertIn("python_info{", MetricsCollector().export_prometheus())
        self.assertIn(
            "python_info{", MetricsCollector(Registry(), process_metrics=True).export_prometheus()
        )


class TestNeverRaises(CollectorTestCase):
    def test_bad_input_is_logged_once_and_dropped(self):
        """A label value whose str() fails is dropped with one WARNING per method, never raised."""

        class Bad:
            def __str__(self):
                raise RuntimeError("no str for you")

        with self.assertLogs("mgit_monitoring.collector", logging.WARNING) as logs:
            for _ in range(3):
                self.m.record_operation(Bad(), True)
                self.m.record_api_call("GET", Bad(), 200, 0.1)
                self.m.record_git_operation(Bad(), "r", True)
                self.m.record_authentication(Bad(), "o", True)
                self.m.update_concurrent_operations("many")
                self.m.update_repositories_processed(None)
                self.m.record_error(Bad())
                self.m.record_rate_limit_hit(Bad())
        self.assertEqual(8, len(logs.records))

    def test_bad_duration_keeps_the_count(self):
        """A negative, NaN or non-numeric duration is ignored with a warning; the count stays."""
        with self.assertLogs("mgit_monitoring.collector", logging.WARNING):
            for d in (-1, float("nan"), "slow", float("inf")):
                self.m.record_operation("x", True, d)
        self.assertEqual(4, self.value("mgit_operations_total", operation="x", provider=""))
        self.assertIsNone(
            self.value("mgit_operation_duration_seconds_count", operation="x", provider="")
        )


class TestAtomicity(CollectorTestCase):
    def test_scrape_never_sees_half_a_record_operation(self):
        """While 4 threads record, every snapshot has total == success + failure == count."""
        stop = threading.Event()
        torn = []

        def scrape():
            while not stop.is_set():
                snap = self.reg.snapshot()
                key = {"operation": "op", "provider": "p"}
                total = snap.get_sample_value("mgit_operations_total", key) or 0
                ok = snap.get_sample_value("mgit_operations_success_total", key) or 0
                bad = snap.get_sample_value("mgit_operations_failure_total", key) or 0
                count = snap.get_sample_value("mgit_operation_duration_seconds_count", key) or 0
                if not total == ok + bad == count:
                    torn.append((total, ok, bad, count))

        def work(i):
            for j in range(2_000):
                self.m.record_operation("op", (i + j) % 3 != 0, 0.01, "p")

        scraper = threading.Thread(target=scrape)
        workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        scraper.start()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        scraper.join()
        self.assertEqual([], torn)
        self.assertEqual(8_000, self.value("mgit_operations_total", operation="op", provider="p"))


class TestGenericApi(CollectorTestCase):
    def test_register_and_update(self):
        """register_metric + inc_counter/set_gauge/observe_histogram update the registry."""
        self.m.register_metric("app_jobs_total", "counter", "Jobs.", ("kind",))
        self.m.register_metric("app_queue", "gauge", "Queue length.")
        self.m.register_metric("app_wait_seconds", "histogram", "Wait.", buckets=(1, 2))
        self.m.inc_counter("app_jobs_total", 2, {"kind": "a"})
        self.m.set_gauge("app_queue", 7)
        self.m.observe_histogram("app_wait_seconds", 1.5)
        self.assertEqual(2, self.value("app_jobs_total", kind="a"))
        self.assertEqual(7, self.value("app_queue"))
        self.assertEqual(1, self.value("app_wait_seconds_bucket", le="2.0"))

    def test_programmer_errors_raise(self):
        """Unknown metrics, wrong types or labels, negative increments raise MetricError."""
        self.m.register_metric("app_jobs_total", "counter", "Jobs.", ("kind",))
        with self.assertRaisesRegex(MetricError, "not registered"):
            self.m.inc_counter("nope_total")
        with self.assertRaisesRegex(MetricError, "is a counter"):
            self.m.set_gauge("app_jobs_total", 1)
        with self.assertRaises(MetricError):
            self.m.inc_counter("app_jobs_total", 1)  # labels missing
        with self.assertRaises(MetricError):
            self.m.inc_counter("app_jobs_total", -1, {"kind": "a"})
        with self.assertRaisesRegex(MetricError, "'summary'"):
            self.m.register_metric("s", "summary", "h")
        with self.assertRaises(DuplicateMetricError):
            self.m.register_metric("mgit_concurrent_operations", "counter", "h")

    def test_seed_custom_metric_example(self):
        """The seed's register_metric(name, type, help) then inc_counter(labels=...) works."""
        self.m.register_metric("mgit_custom_operations_total", "counter", "Custom operations")
        self.m.inc_counter("mgit_custom_operations_total", labels={"type": "custom"})
        self.m.inc_counter("mgit_custom_operations_total", labels={"type": "custom"})
        self.assertEqual(2, self.value("mgit_custom_operations_total", type="custom"))
        text = self.m.export_prometheus()
        self.assertIn("# HELP mgit_custom_operations_total Custom operations", text)
        self.assertIn('mgit_custom_operations_total{type="custom"} 2\n', text)

    def test_label_names_fixed_by_first_use(self):
        """Without declared label names, the first call fixes them; other names then raise."""
        self.m.register_metric("app_pending", "gauge", "Pending.")
        self.m.set_gauge("app_pending", 3, {"queue": "a", "host": "h"})
        self.assertEqual(3, self.value("app_pending", host="h", queue="a"))
        with self.assertRaises(MetricError):
            self.m.set_gauge("app_pending", 1, {"queue": "a"})
        self.m.register_metric("app_plain", "gauge", "Plain.")
        self.m.set_gauge("app_plain", 5)
        self.assertEqual(5, self.value("app_plain"))

    def test_open_timers_are_bounded(self):
        """Timers that are started and never ended do not grow without bound: past
        MAX_OPEN_TIMERS the oldest are forgotten."""
        self.m.register_metric("app_step_seconds", "histogram", "Step.", ())
        for i in range(collector_mod.MAX_OPEN_TIMERS + 500):
            self.m.start_operation_timer(f"op-{i}")
        self.assertEqual(0.0, self.m.end_operation_timer("op-499", "app_step_seconds"))
        self.m.end_operation_timer("op-500", "app_step_seconds")
        self.assertEqual(1, self.value("app_step_seconds_count"))

    def test_operation_timer(self):
        """end_operation_timer observes the elapsed seconds; an unknown id returns 0.0."""
        self.m.register_metric("app_step_seconds", "histogram", "Step.")
        self.m.start_operation_timer("op-1")
        elapsed = self.m.end_operation_timer("op-1", "app_step_seconds")
        self.assertGreaterEqual(elapsed, 0.0)
        self.assertEqual(1, self.value("app_step_seconds_count"))
        self.assertEqual(0.0, self.m.end_operation_timer("op-1", "app_step_seconds"))

    def test_reset_metrics(self):
        """reset_metrics forgets values but keeps definitions."""
        self.m.record_operation("x", True)
        self.m.update_concurrent_operations(3)
        self.m.reset_metrics()
        self.assertIsNone(self.value("mgit_operations_total", operation="x", provider=""))
        self.assertEqual(0, self.value("mgit_concurrent_operations"))
        self.assertIn("# TYPE mgit_operations_total counter", self.m.export_prometheus())

    def test_get_metrics(self):
        """get_metrics lists samples with name, labels and value."""
        self.m.update_concurrent_operations(2)
        samples = {s.name: s for s in self.m.get_metrics()}
        self.assertEqual(2, samples["mgit_concurrent_operations"].value)


class TestExports(CollectorTestCase):
    def test_export_prometheus_is_text(self):
        """export_prometheus returns the 0.0.4 text as a str ending in a newline."""
        out = self.m.export_prometheus()
        self.assertIsInstance(out, str)
        self.assertTrue(out.endswith("\n"))

    def test_export_openmetrics(self):
        """export_openmetrics returns OpenMetrics text ending in '# EOF'."""
        self.assertTrue(self.m.export_openmetrics().endswith("# EOF\n"))

    def test_export_json_is_a_json_string(self):
        """export_json returns a str holding the documented JSON document."""
        self.m.record_operation("clone", True, 1.0, "github")
        doc = json.loads(self.m.export_json())
        entry = [e for e in doc["metrics"] if e["name"] == "mgit_operations_total"][0]
        self.assertEqual({"operation": "clone", "provider": "github"}, entry["labels"])
        self.assertEqual(1, entry["value"])


class TestEnabledFlag(CollectorTestCase):
    def record_everything(self, m):
        m.record_operation("clone", True, 1.0, "github")
        m.record_operation("clone", False, 1.0, "github")
        m.record_git_operation("clone", "repo", True, 0.5)
        m.record_api_call("GET", "github", 429, 0.1, "/repos")
        m.record_rate_limit_hit("github")
        m.record_authentication("github", "acme", True)
        m.record_error("ValueError", "clone", "github")
        m.update_concurrent_operations(3)
        m.update_repositories_processed(7)

    def test_disabled_collector_records_nothing(self):
        """enabled=False: every record_*/update_* method is a pass-through."""
        reg = Registry()
        m = MetricsCollector(reg, enabled=False)
        self.assertFalse(m.enabled)
        self.record_everything(m)
        snap = reg.snapshot()
        for name in (
            "mgit_operations_total",
            "mgit_operations_success_total",
            "mgit_operations_failure_total",
            "mgit_operation_duration_seconds",
            "mgit_git_operations_total",
            "mgit_api_requests_total",
            "mgit_api_rate_limit_hits_total",
            "mgit_auth_attempts_total",
            "mgit_errors_total",
        ):
            with self.subTest(metric=name):
                self.assertEqual((), snap.family(name).series)
        self.assertEqual(0, reg.get_sample_value("mgit_concurrent_operations"))
        self.assertEqual(0, reg.get_sample_value("mgit_repositories_processed"))

    def test_flag_can_be_switched(self):
        """Setting enabled back to True records again; the generic API always records."""
        self.m.enabled = False
        self.m.record_operation("clone", True, 1.0, "github")
        self.m.register_metric("mgit_custom_total", "counter", "Custom.")
        self.m.inc_counter("mgit_custom_total")  # an explicit request: not a recorder
        self.assertIsNone(self.value("mgit_operations_total", operation="clone", provider="github"))
        self.assertEqual(1, self.value("mgit_custom_total"))
        self.m.enabled = True
        self.m.record_operation("clone", True, 1.0, "github")
        self.assertEqual(
            1, self.value("mgit_operations_total", operation="clone", provider="github")
        )

    def test_cleared_metric_keeps_counting(self):
        """After one metric is cleared by hand, record_operation counts into it, not an orphan."""
        self.m.record_operation("clone", True, 1.0, "github")
        self.reg.get("mgit_operations_success_total").clear()
        self.m.record_operation("clone", True, 1.0, "github")
        self.assertEqual(
            1, self.value("mgit_operations_success_total", operation="clone", provider="github")
        )
        self.assertEqual(
            2, self.value("mgit_operations_total", operation="clone", provider="github")
        )
        self.m.reset_metrics()
        self.m.record_operation("clone", False, 2.0, "github")
        self.assertEqual(
            1, self.value("mgit_operations_total", operation="clone", provider="github")
        )
        self.assertEqual(
            1,
            self.value(
                "mgit_operation_duration_seconds_count", operation="clone", provider="github"
            ),
        )

    def test_non_float_durations_still_observed(self):
        """An int or Decimal-like duration is observed like a float; None only counts."""
        self.m.record_operation("clone", True, 2, "github")
        self.m.record_operation("clone", True, None, "github")
        self.assertEqual(
            2, self.value("mgit_operations_total", operation="clone", provider="github")
        )
        self.assertEqual(
            1,
            self.value(
                "mgit_operation_duration_seconds_count", operation="clone", provider="github"
            ),
        )
        self.assertEqual(
            2.0,
            self.value("mgit_operation_duration_seconds_sum", operation="clone", provider="github"),
        )


class TestDefaultCollectorEnabled(unittest.TestCase):
    def setUp(self):
        reset_metrics_collector()
        self.addCleanup(reset_metrics_collector)

    def test_default_honours_environment_read_once(self):
        """The lazily created default reads MGIT_MONITORING_ENABLED once, when it is created."""
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "false"}):
            collector = get_metrics_collector()
            self.assertFalse(collector.enabled)
            record_operation("sync", True, 1.0, "github")
            os.environ["MGIT_MONITORING_ENABLED"] = "true"
            self.assertFalse(get_metrics_collector().enabled)  # not re-read
            reset_metrics_collector()
            self.assertTrue(get_metrics_collector().enabled)  # a new default reads it again
        self.assertIsNone(
            collector.registry.get_sample_value(
                "mgit_operations_total", {"operation": "sync", "provider": "github"}
            )
        )

    def test_setup_metrics_honours_environment_unless_told(self):
        """setup_metrics reads the variable for a new default; enabled= overrides it."""
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "0"}):
            self.assertFalse(setup_metrics().enabled)
            reset_metrics_collector()
            self.assertTrue(setup_metrics(enabled=True).enabled)

    def test_unrelated_bad_variable_does_not_cancel_disabled(self):
        """ENABLED=false wins even when another MGIT_MONITORING_ variable is invalid."""
        env = {"MGIT_MONITORING_ENABLED": "false", "MGIT_MONITORING_PORT": "80a"}
        with mock.patch.dict(os.environ, env):
            self.assertFalse(get_metrics_collector().enabled)

    def test_invalid_enabled_value_turns_metrics_off(self):
        """An invalid ENABLED never raises: metrics off (the safe choice), one warning."""
        from mgit_monitoring.config import ENV_WARNINGS

        ENV_WARNINGS.clear()
        self.addCleanup(ENV_WARNINGS.clear)
        env = mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "maybe"})
        with env, self.assertLogs("mgit_monitoring.config", logging.WARNING) as logs:
            collector = get_metrics_collector()
            self.assertFalse(collector.enabled)
            collector.record_operation("clone", True, 0.1)  # a pass-through, no error
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn("MGIT_MONITORING_ENABLED='maybe'", logs.output[0])


class TestDefaultCollector(unittest.TestCase):
    def setUp(self):
        reset_metrics_collector()
        self.addCleanup(reset_metrics_collector)

    def test_lazy_singleton_is_thread_safe(self):
        """8 threads asking at once get one and the same collector."""
        seen = []
        barrier = threading.Barrier(8)

        def get():
            barrier.wait()
            seen.append(get_metrics_collector())

        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, len({id(c) for c in seen}))

    def test_reset_gives_a_new_collector(self):
        """reset_metrics_collector makes the next call create a fresh collector."""
        first = get_metrics_collector()
        reset_metrics_collector()
        self.assertIsNot(first, get_metrics_collector())

    def test_setup_metrics_never_replaces(self):
        """setup_metrics creates the default once and later returns it unchanged."""
        reg = Registry()
        first = setup_metrics(reg)
        self.assertIs(reg, first.registry)
        with self.assertLogs("mgit_monitoring.collector", logging.WARNING):
            self.assertIs(first, setup_metrics(Registry()))
        self.assertIs(first, get_metrics_collector())
        self.assertIs(first, collector_mod.get_metrics_collector())

    def test_default_collector_uses_the_default_registry(self):
        """The default collector registers on get_default_registry(), process metrics included."""
        collector = get_metrics_collector()
        self.assertIs(get_default_registry(), collector.registry)
        names = {f.name for f in collector.snapshot().families}
        self.assertIn("mgit_operations", names)
        self.assertIn("python_info", names)

    def test_reset_also_resets_the_default_registry(self):
        """reset_metrics_collector() gives the next default collector a fresh default registry."""
        first = get_default_registry()
        get_metrics_collector()
        reset_metrics_collector()
        self.assertIsNot(first, get_default_registry())
        self.assertIs(get_default_registry(), get_metrics_collector().registry)


if __name__ == "__main__":
    unittest.main()
