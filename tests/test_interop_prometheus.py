"""Interop: our text and OpenMetrics output read back by prometheus_client's parsers and promtool.

Peers: the ``prometheus_client`` package (test dependency) and ``promtool`` (Debian
``prometheus``). Missing peers skip, or fail under MGIT_MONITORING_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import math
import subprocess
import unittest

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.exposition import render_openmetrics, render_text
from mgit_monitoring.registry import Registry
from mgit_monitoring.samples import metric_family
from tests.support import need_executable, need_module

AWKWARD = [
    "C:\\DIR",
    'say "hi"',
    "line1\nline2",
    "ünï©ødé ✓",
    "",
    '\\"',
    "tab\there",
    "}{,=#",
    "cr\rbell\x07del\x7f",
]
# Sample names the OpenMetrics body leaves out: a histogram with a negative bound has no _sum
# (it would not be a counter) and therefore no _count either.
OM_OMITTED = ("interop_offset_celsius_sum", "interop_offset_celsius_count")


class _InfoCollector:
    def collect(self):
        return [
            metric_family(
                "mgit_build", "info", "Build information.", ("version",), [(("0.1.0",), 1)]
            ),
            metric_family("legacy_value", "unknown", "An untyped value.", (), [((), 42.25)]),
        ]


def awkward_registry(extra_types: bool = True) -> Registry:
    reg = Registry()
    c = reg.counter(
        "interop_requests_total", 'Requests with "quotes", \\ and\nnewline.', ("path", "code")
    )
    g = reg.gauge("interop_temperature_celsius", "A gauge.", ("room",))
    h = reg.histogram("interop_latency_seconds", "A histogram.", ("path",))
    u = reg.counter("interop_unlabelled_total", "No labels.")
    for i, value in enumerate(AWKWARD):
        c.labels(value, str(200 + i)).inc(i + 0.5)
        g.labels(value).set(-i * 1.25)
        for k in range(i + 1):
            h.labels(value).observe(10 ** (k - 3))
    u.inc(7)
    reg.gauge("interop_nan", "NaN gauge.").set(float("nan"))
    reg.gauge("interop_inf", "Inf gauge.").set(float("inf"))
    reg.gauge("interop_minus_inf", "-Inf gauge.").set(float("-inf"))
    reg.histogram("interop_empty_seconds", "Never observed.", buckets=(1e-6, 1e6))
    offset = reg.histogram("interop_offset_celsius", "Negative bounds.", buckets=(-1e6, -5, 0, 5))
    for v in (-7, -5, 0.5, 6, 2e6):
        offset.observe(v)
    if extra_types:
        reg.register_collector(_InfoCollector())
    return reg


def _ours(reg: Registry):
    return {(s.name, frozenset(s.labels.items())): float(s.value) for s in reg.snapshot().samples()}


def _theirs(families, skip_suffix=("_created",)):
    out = {}
    for fam in families:
        for s in fam.samples:
            if s.name.endswith(skip_suffix):
                continue
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


class TestPrometheusClientParsers(unittest.TestCase):
    def setUp(self):
        need_module("prometheus_client")
        self.reg = awkward_registry()
        self.expected = _ours(self.reg)

    def assertSameValues(self, expected, got):
        self.assertEqual(set(expected), set(got))
        for key, value in expected.items():
            if math.isnan(value):
                self.assertTrue(math.isnan(got[key]), key)
            else:
                self.assertEqual(value, got[key], key)

    def test_text_format_parses_back_to_the_same_values(self):
        """prometheus_client's 0.0.4 parser reads every sample, label and value back unchanged."""
        from prometheus_client.parser import text_string_to_metric_families

        body = render_text(self.reg.snapshot()).decode("utf-8")
        families = list(text_string_to_metric_families(body))
        self.assertSameValues(self.expected, _theirs(families))
        types = {f.name: f.type for f in families}
        self.assertEqual("counter", types["interop_requests"])
        self.assertEqual("histogram", types["interop_latency_seconds"])
        self.assertEqual("gauge", types["interop_temperature_celsius"])
        help_text = [f.documentation for f in families if f.name == "interop_requests"][0]
        self.assertEqual('Requests with "quotes", \\ and\nnewline.', help_text)

    def test_openmetrics_parses_back_to_the_same_values(self):
        """prometheus_client's strict OpenMetrics parser accepts the body and reads it back."""
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        body = render_openmetrics(self.reg.snapshot()).decode("utf-8")
        families = list(text_string_to_metric_families(body))
        expected = {k: v for k, v in self.expected.items() if k[0] not in OM_OMITTED}
        self.assertEqual(len(self.expected) - 2, len(expected))
        self.assertSameValues(expected, _theirs(families))
        types = {f.name: f.type for f in families}
        self.assertEqual("counter", types["interop_requests"])
        self.assertEqual("info", types["mgit_build"])
        self.assertEqual("unknown", types["legacy_value"])
        help_text = [f.documentation for f in families if f.name == "interop_requests"][0]
        self.assertEqual('Requests with "quotes", \\ and\nnewline.', help_text)

    def test_collector_output_parses_in_both_formats(self):
        """A busy MetricsCollector registry parses in both formats with identical values."""
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
        from prometheus_client.parser import text_string_to_metric_families as text_parse

        m = MetricsCollector()
        m.record_operation("clone-all", True, 2.5, "github")
        m.record_api_call("GET", "github", 429, 0.2, "/repos")
        snap_text = _theirs(text_parse(m.export_prometheus()))
        snap_om = _theirs(om_parse(m.export_openmetrics()))
        self.assertEqual(
            1.0,
            snap_text[
                (
                    "mgit_operations_total",
                    frozenset({"operation": "clone-all", "provider": "github"}.items()),
                )
            ],
        )
        self.assertEqual(set(snap_text), set(snap_om))


class TestPromtool(unittest.TestCase):
    def setUp(self):
        self.promtool = need_executable("promtool")

    def check(self, body: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
        )

    def test_awkward_registry_passes(self):
        """promtool check metrics accepts every kind with awkward label values (exit 0)."""
        out = self.check(render_text(awkward_registry(extra_types=False).snapshot()))
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)

    def test_collector_metrics_have_no_lint_findings(self):
        """The mgit_* metrics, process metrics and python_info pass promtool's lint cleanly."""
        m = MetricsCollector(repository_labels=True)
        m.record_operation("clone-all", True, 2.5, "github")
        m.record_git_operation("clone", "org/repo", False, 3.0)
        m.record_api_call("GET", "github", 500, 0.2, "/repos")
        m.record_authentication("github", "acme", True)
        m.update_concurrent_operations(2)
        out = self.check(m.export_prometheus().encode("utf-8"))
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        self.assertEqual(b"", out.stdout.strip() + out.stderr.strip())

    def test_promtool_would_catch_a_broken_body(self):
        """Sanity: promtool fails a body without its final newline (so the checks above mean it)."""
        self.assertNotEqual(0, self.check(b"# TYPE x gauge\nx 1").returncode)


if __name__ == "__main__":
    unittest.main()
