"""Health results, the aggregation rule with hand-computed values, and both JSON renderings."""

from __future__ import annotations

import datetime
import json
import unittest

from mgit_monitoring import health, health_report
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health_report import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthCheckResult,
    health_percentage,
    health_to_dict,
    http_status_for,
    overall_status,
    to_health_json,
)

FAKE_TOKEN = "ghp_" + "FAKE" * 9  # 36 characters after the prefix, the GitHub PAT shape


def r(name: str, status: str, critical: bool = False, **kw) -> HealthCheckResult:
    return HealthCheckResult(name, status, f"{name} is {status}", critical=critical, **kw)


class TestResult(unittest.TestCase):
    def test_aliases_are_normalised(self):
        """IETF and Spring words become the four statuses."""
        self.assertEqual(HealthCheckResult("a", "pass", "").status, HEALTHY)
        self.assertEqual(HealthCheckResult("a", "WARN", "").status, DEGRADED)
        self.assertEqual(HealthCheckResult("a", "down", "").status, UNHEALTHY)

    def test_bad_status_names_the_value(self):
        """An unknown status raises ConfigError naming it."""
        with self.assertRaisesRegex(ConfigError, "'sideways'"):
            HealthCheckResult("a", "sideways", "")

    def test_timestamp_is_utc(self):
        """Results carry a timezone-aware UTC timestamp rendered with a Z."""
        result = HealthCheckResult("a", HEALTHY, "")
        self.assertEqual(result.timestamp.utcoffset(), datetime.timedelta(0))
        self.assertTrue(result.to_dict()["timestamp"].endswith("Z"))


class TestAggregation(unittest.TestCase):
    def test_all_healthy(self):
        """All healthy is healthy at 100 %."""
        results = [r("a", HEALTHY), r("b", HEALTHY, True)]
        self.assertEqual(overall_status(results), HEALTHY)
        self.assertEqual(health_percentage(results), 100.0)

    def test_unknown_does_not_make_healthy_look_broken(self):
        """Unknown results are left out of the status and the percentage."""
        results = [r("a", HEALTHY), r("b", UNKNOWN), r("c", HEALTHY, True)]
        self.assertEqual(overall_status(results), HEALTHY)
        self.assertEqual(health_percentage(results), 100.0)

    def test_non_critical_failure_degrades(self):
        """A non-critical unhealthy check makes the whole degraded, not unhealthy."""
        results = [r("sys", HEALTHY, True), r("net", UNHEALTHY)]
        self.assertEqual(overall_status(results), DEGRADED)
        self.assertEqual(health_percentage(results), 50.0)

    def test_critical_failure_fails(self):
        """A critical unhealthy check makes the whole unhealthy."""
        results = [r("sys", UNHEALTHY, True), r("net", HEALTHY)]
        self.assertEqual(overall_status(results), UNHEALTHY)

    def test_everything_failing_fails(self):
        """Every known result unhealthy makes the whole unhealthy, critical or not."""
        self.assertEqual(overall_status([r("a", UNHEALTHY), r("b", UNKNOWN)]), UNHEALTHY)

    def test_degraded_counts_half(self):
        """Degraded scores half a healthy check."""
        self.assertEqual(health_percentage([r("a", HEALTHY), r("b", DEGRADED)]), 75.0)

    def test_hand_computed_mixes_with_unknown(self):
        """Percentages worked out by hand: unknown results drop out of the denominator."""
        # healthy 1 + degraded 0.5 + unhealthy 0 over 3 known results (unknown left out) = 50 %.
        mix = [r("a", HEALTHY), r("b", DEGRADED), r("c", UNHEALTHY), r("d", UNKNOWN)]
        self.assertEqual((overall_status(mix), health_percentage(mix)), (DEGRADED, 50.0))
        # (1 + 1 + 0.5) / 3 = 83.33... -> 83.3
        self.assertEqual(
            health_percentage([r("a", HEALTHY), r("b", HEALTHY), r("c", DEGRADED)]), 83.3
        )
        # Critical healthy + critical degraded, two unknown: (1 + 0.5) / 2 = 75 %, degraded.
        crit = [r("a", HEALTHY, True), r("b", DEGRADED, True), r("c", UNKNOWN), r("d", UNKNOWN)]
        self.assertEqual((overall_status(crit), health_percentage(crit)), (DEGRADED, 75.0))
        doc = health_to_dict(mix)
        self.assertEqual(doc["summary"]["health_percentage"], 50.0)
        self.assertEqual(doc["summary"]["unhealthy_checks"], 3)

    def test_nothing_known(self):
        """No known result is unknown with 0 %."""
        self.assertEqual(overall_status([]), UNKNOWN)
        self.assertEqual(overall_status([r("a", UNKNOWN)]), UNKNOWN)
        self.assertEqual(health_percentage([r("a", UNKNOWN)]), 0.0)

    def test_http_status(self):
        """Only unhealthy/fail maps to 503; degraded is still served with 200."""
        self.assertEqual(http_status_for(UNHEALTHY), 503)
        self.assertEqual(http_status_for("fail"), 503)
        self.assertEqual(http_status_for(DEGRADED), 200)
        self.assertEqual(http_status_for(UNKNOWN), 200)


class TestOutput(unittest.TestCase):
    def test_original_shape(self):
        """health_to_dict keeps the original keys and adds exact counts."""
        results = [r("a", HEALTHY), r("b", DEGRADED), r("c", UNKNOWN), r("d", UNHEALTHY)]
        doc = health_to_dict(results)
        self.assertEqual(set(doc), {"status", "timestamp", "summary", "checks", "issues"})
        self.assertEqual(doc["status"], DEGRADED)
        self.assertTrue(doc["timestamp"].endswith("Z"))
        summary = doc["summary"]
        self.assertEqual(
            (summary["total"], summary["healthy"], summary["degraded"], summary["unhealthy"]),
            (4, 1, 1, 1),
        )
        self.assertEqual(summary["unknown"], 1)
        self.assertEqual(summary["total_checks"], 4)
        self.assertEqual(summary["healthy_checks"], 1)
        self.assertEqual(summary["unhealthy_checks"], 3)
        self.assertEqual(doc["issues"], ["b", "c", "d"])
        check = doc["checks"]["b"]
        self.assertEqual(
            set(check), {"status", "message", "duration_ms", "timestamp", "critical", "details"}
        )
        json.dumps(doc)  # JSON-ready

    def test_each_call_is_a_fresh_dict(self):
        """Mutating one answer does not change the next (the original shared one cached dict)."""
        results = [r("a", HEALTHY, details={"x": 1})]
        health_to_dict(results)["checks"]["a"]["details"]["x"] = 99
        self.assertEqual(health_to_dict(results)["checks"]["a"]["details"]["x"], 1)

    def test_secrets_are_masked(self):
        """Tokens in messages and details, and secret-named keys, never reach the output."""
        result = HealthCheckResult(
            "a",
            UNHEALTHY,
            f"clone failed with {FAKE_TOKEN}",
            {"remote": f"https://x:{FAKE_TOKEN}@github.com/o/r.git", "token": "hunter2"},
        )
        text = json.dumps(health_to_dict([result])) + json.dumps(to_health_json([result]))
        self.assertNotIn(FAKE_TOKEN, text)
        self.assertNotIn("hunter2", text)
        self.assertIn("github.com/o/r.git", text)

    def test_health_json(self):
        """to_health_json speaks pass/warn/fail with component:measurement keys."""
        disk = r("disk_space", DEGRADED, True, observed_value=87.5, observed_unit="%")
        disk.measurement = "utilization"
        doc = to_health_json([disk, r("git", HEALTHY)], service_id="mgit", version="1.0")
        self.assertEqual(doc["status"], "warn")
        self.assertEqual(doc["serviceId"], "mgit")
        entry = doc["checks"]["disk_space:utilization"][0]
        self.assertEqual(entry["observedValue"], 87.5)
        self.assertEqual(entry["observedUnit"], "%")
        self.assertEqual(entry["status"], "warn")
        self.assertEqual(entry["output"], "disk_space is degraded")
        self.assertTrue(entry["time"].endswith("Z"))
        self.assertNotIn("output", doc["checks"]["git:status"][0])
        self.assertIn("disk_space:utilization warn", doc["output"])

    def test_health_json_fail_and_pass(self):
        """Root status is fail for a critical failure and pass (without output) when healthy."""
        self.assertEqual(to_health_json([r("a", UNHEALTHY, True)])["status"], "fail")
        ok = to_health_json([r("a", HEALTHY)])
        self.assertEqual(ok["status"], "pass")
        self.assertNotIn("output", ok)


class TestExports(unittest.TestCase):
    def test_names_are_listed_and_importable_from_health(self):
        """Every public name here is in __all__ and is the same object in mgit_monitoring.health."""
        for name in health_report.__all__:
            self.assertIs(getattr(health, name), getattr(health_report, name), name)
            self.assertIn(name, health.__all__)


if __name__ == "__main__":
    unittest.main()
