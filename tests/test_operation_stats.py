"""Operation statistics: percentiles and OperationMetrics over a window of traces."""

from __future__ import annotations

import json
import math
import random
import statistics
import unittest

from mgit_monitoring.operation_stats import (
    PERCENTILE_METHOD,
    OperationMetrics,
    PerformanceMetrics,
    percentile,
)
from mgit_monitoring.store import TraceRow


class TestPercentile(unittest.TestCase):
    DATA = [float(v) for v in range(1, 11)]

    def test_hand_computed_values(self):
        """For 1..10: p0 1, p25 3.25, p50 5.5, p90 9.1, p95 9.55, p99 9.91, p100 10."""
        expected = {0: 1.0, 25: 3.25, 50: 5.5, 90: 9.1, 95: 9.55, 99: 9.91, 100: 10.0}
        for p, value in expected.items():
            with self.subTest(p=p):
                self.assertAlmostEqual(value, percentile(self.DATA, p), places=12)

    def test_small_samples(self):
        """One value is every percentile; two values interpolate between them."""
        self.assertEqual(7.0, percentile([7.0], 99))
        self.assertEqual(1.5, percentile([1.0, 3.0], 25))
        self.assertTrue(math.isnan(percentile([], 50)))

    def test_matches_inclusive_quantiles_and_stays_in_range(self):
        """Agrees with statistics.quantiles(method='inclusive') and never leaves [min, max]."""
        rng = random.Random(7)
        for n in (2, 3, 5, 19, 20, 101):
            data = sorted(rng.lognormvariate(0, 1.5) for _ in range(n))
            cuts = statistics.quantiles(data, n=100, method="inclusive")
            for p in (50, 90, 95, 99):
                value = percentile(data, p)
                self.assertAlmostEqual(cuts[p - 1], value, places=9)
                self.assertTrue(data[0] <= value <= data[-1])

    def test_rejects_out_of_range(self):
        """p outside 0..100 is a ValueError naming it."""
        with self.assertRaisesRegex(ValueError, "p=101"):
            percentile([1.0], 101)


class TestOperationMetrics(unittest.TestCase):
    def rows(self):
        durations = [float(v) for v in range(1, 11)]
        out = [TraceRow("clone", 0.0, d, d != 10.0) for d in durations]
        out[-1] = out[-1]._replace(error_type="TimeoutError")
        out.append(TraceRow("clone", 0.0, 0.5, False))  # a failure without a type
        return out

    def test_from_rows(self):
        """Counts, rate, extremes, percentiles and error types come from the same rows."""
        m = OperationMetrics.from_rows("clone", self.rows(), 24.0)
        self.assertEqual((11, 9, 2), (m.count, m.success_count, m.error_count))
        self.assertAlmostEqual(100.0 * 9 / 11, m.success_rate)
        self.assertEqual((0.5, 10.0), (m.min_duration, m.max_duration))
        self.assertEqual(55.5, m.total_duration)
        self.assertEqual(5.0, m.median_duration)
        self.assertEqual(m.median_duration, m.p50_duration)
        self.assertEqual({"TimeoutError": 1, "unknown": 1}, dict(m.error_types))
        self.assertEqual(PERCENTILE_METHOD, m.method)
        self.assertTrue(m)
        self.assertIs(OperationMetrics, PerformanceMetrics)

    def test_empty_window_is_falsy_and_json_ready(self):
        """No rows: count 0, NaN durations and rate, None in as_dict()."""
        m = OperationMetrics.from_rows("never", [], 1.0)
        self.assertFalse(m)
        self.assertTrue(math.isnan(m.avg_duration) and math.isnan(m.success_rate))
        out = json.loads(json.dumps(m.as_dict()))
        self.assertIsNone(out["p95_duration"])
        self.assertIsNone(out["p50_duration"])
        self.assertEqual(0, out["count"])


if __name__ == "__main__":
    unittest.main()
