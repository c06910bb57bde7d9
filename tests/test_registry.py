"""Tests for mgit_monitoring.registry: metrics, validation, cardinality guard, threads."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import unittest
from unittest import mock

from mgit_monitoring import metric_types
from mgit_monitoring import registry as registry_module
from mgit_monitoring.errors import DuplicateMetricError, MetricError
from mgit_monitoring.registry import DROPPED_SERIES_METRIC, Registry
from mgit_monitoring.samples import (
    DEFAULT_BUCKETS,
    HistogramValue,
    escape_label_value,
    exponential_buckets,
    linear_buckets,
    metric_family,
)


class TestNames(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def test_valid_metric_names_are_accepted(self):
        """Rule 1: names matching the grammar register fine."""
        for name in ("http_requests_total", "a", "A_b9_total", "mgit_x_total"):
            with self.subTest(name=name):
                self.reg.counter(name, "h")

    def test_invalid_metric_names_raise_naming_the_value(self):
        """Rule 1: names outside [a-zA-Z_][a-zA-Z0-9_]* raise MetricError naming the value."""
        for name in ("2xx_total", "http-requests", "a b", "", "ü_total", "x{y}"):
            with self.subTest(name=name), self.assertRaisesRegex(
                MetricError, "invalid metric name " + re.escape(repr(name))
            ):
                self.reg.counter(name, "h")

    def test_colons_are_reserved(self):
        """Rule 2: colons belong to recording rules and are rejected."""
        with self.assertRaisesRegex(MetricError, "job:http_requests:rate5m"):
            self.reg.gauge("job:http_requests:rate5m", "h")

    def test_leading_underscore_is_reserved(self):
        """Rule 3: a family name beginning with '_' is rejected."""
        with self.assertRaisesRegex(MetricError, "_internal_total"):
            self.reg.counter("_internal_total", "h")

    def test_label_name_grammar(self):
        """Rule 4: label names with ':' or '-' or a leading digit are rejected."""
        for bad in ("http:method", "0abc", "a-b", ""):
            with self.subTest(label=bad), self.assertRaisesRegex(
                MetricError, "invalid label name " + re.escape(repr(bad))
            ):
                self.reg.counter("x_total", "h", (bad,))

    def test_double_underscore_label_names_are_reserved(self):
        """Rule 5: label names starting with '__' are rejected."""
        for bad in ("__name__", "__meta_x"):
            with self.subTest(label=bad), self.assertRaisesRegex(MetricError, bad):
                self.reg.gauge("g", "h", (bad,))

    def test_le_is_reserved_on_histograms_only(self):
        """Rule 6: 'le' is refused on a histogram but allowed on a gauge."""
        with self.assertRaisesRegex(MetricError, "'le'"):
            self.reg.histogram("x_seconds", "h", ("le",))
        self.reg.gauge("g_le", "h", ("le",)).labels("1").set(1)

    def test_quantile_is_reserved(self):
        """Rule 7: 'quantile' is refused as a label name."""
        with self.assertRaisesRegex(MetricError, "quantile"):
            self.reg.gauge("g", "h", ("quantile",))

    def test_label_names_unique_and_count_fixed(self):
        """Rule 8: duplicate label names and a wrong number of values raise."""
        with self.assertRaisesRegex(MetricError, "duplicate label name"):
            self.reg.counter("c_total", "h", ("a", "a"))
        c = self.reg.counter("d_total", "h", ("a", "b"))
        with self.assertRaisesRegex(MetricError, r"expects 2 label values .*\('x',\)"):
            c.labels("x")
        with self.assertRaisesRegex(MetricError, "expects label names"):
            c.labels(a="x", c="y")

    def test_label_names_must_not_be_a_bare_string(self):
        """A string passed as label names is refused instead of being split into letters."""
        with self.assertRaisesRegex(MetricError, "'ab'"):
            self.reg.counter("c_total", "h", "ab")

    def test_suffix_clash_between_families(self):
        """Rule 9: a gauge named like another family's sample is refused."""
        self.reg.counter("foo_total", "h")
        self.reg.histogram("bar_seconds", "h")
        with self.assertRaises(DuplicateMetricError):
            self.reg.gauge("foo", "h")
        with self.assertRaisesRegex(MetricError, "reserved"):
            self.reg.gauge("bar_seconds_count", "h")

    def test_sample_name_clash_with_another_family(self):
        """Rule 9: a family whose own name is another family's sample name is refused."""
        self.reg.histogram("h_seconds", "h")
        with self.assertRaisesRegex(DuplicateMetricError, "'h_seconds_count'"):
            self.reg.counter("h_seconds_count_total", "h")
        self.reg.counter("x_bucket_total", "h")
        with self.assertRaisesRegex(DuplicateMetricError, "'x_bucket'"):
            self.reg.histogram("x", "h")
        self.assertIsNone(self.reg.get("x"))

    def test_unique_family_names(self):
        """Rule 10: re-registering with other type or labels raises; identical returns the same."""
        c = self.reg.counter("a_total", "first", ("x",))
        self.assertIs(c, self.reg.counter("a_total", "second help ignored", ("x",)))
        self.assertIs(c, self.reg.counter("a", "family name works too", ("x",)))
        self.assertEqual("first", c.help)
        with self.assertRaises(DuplicateMetricError):
            self.reg.counter("a_total", "h", ("y",))
        with self.assertRaises(DuplicateMetricError):
            self.reg.gauge("a", "h", ("x",))

    def test_naming_conventions_enforced_for_suffixes(self):
        """Rule 12: non-counters may not end in _total/_bucket/_count/_sum/_created."""
        for name in ("g_total", "g_bucket", "g_count", "g_sum", "g_created"):
            with self.subTest(name=name), self.assertRaisesRegex(MetricError, name):
                self.reg.gauge(name, "h")
        with self.assertRaisesRegex(MetricError, "x_total_total"):
            self.reg.counter("x_total_total", "h")

    def test_help_text_required(self):
        """Rule 26: an empty help text is refused."""
        for bad in ("", "   "):
            with self.subTest(help=bad), self.assertRaisesRegex(MetricError, "help"):
                self.reg.counter("c_total", bad)


class TestLabels(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()
        self.c = self.reg.counter("req_total", "Requests.", ("method", "code"))

    def test_children_are_cached(self):
        """Rule 80: labels() returns the same child for the same values, by position or keyword."""
        child = self.c.labels("GET", "200")
        self.assertIs(child, self.c.labels("GET", "200"))
        self.assertIs(child, self.c.labels(code="200", method="GET"))

    def test_non_str_values_are_converted(self):
        """Non-str label values go through str(), so 200 and '200' are one series."""
        self.c.labels("GET", 200).inc()
        self.c.labels("GET", "200").inc()
        self.assertEqual(
            2, self.reg.get_sample_value("req_total", {"method": "GET", "code": "200"})
        )

    def test_unhashable_values_are_converted_too(self):
        """An unhashable label value goes through str() like any other non-str value."""
        self.c.labels(["GET"], "200").inc()
        self.assertEqual(
            1, self.reg.get_sample_value("req_total", {"method": "['GET']", "code": "200"})
        )

    def test_label_text_is_pre_escaped(self):
        """Rules 14-18: label text escapes backslash, quote and newline, nothing else."""
        child = self.c.labels('a\\"b\nc', "tab\tü")
        self.assertEqual('method="a\\\\\\"b\\nc",code="tab\tü"', child.label_text)
        self.assertEqual('\\\\\\"', escape_label_value('\\"'))

    def test_lone_surrogates_are_replaced(self):
        """A label value that cannot be UTF-8 encoded is made encodable (exposition never fails)."""
        child = self.c.labels("x\udcff", "1")
        child.label_text.encode("utf-8")
        self.assertEqual(("x?", "1"), child.labelvalues)

    def test_labelled_metric_refuses_direct_updates(self):
        """A labelled metric's inc() raises and points at labels()."""
        with self.assertRaisesRegex(MetricError, r"\.labels"):
            self.c.inc()

    def test_remove_and_clear(self):
        """Rule 80: remove() forgets one child, clear() all; an unlabelled metric is reset to 0."""
        self.c.labels("GET", "200").inc()
        self.c.labels("PUT", "200").inc()
        self.c.remove("GET", "200")
        self.assertIsNone(self.reg.get_sample_value("req_total", {"method": "GET", "code": "200"}))
        self.c.clear()
        self.assertEqual([], [s for s in self.reg.snapshot().samples() if s.name == "req_total"])
        u = self.reg.counter("u_total", "h")
        u.inc(5)
        u.clear()
        u.inc()
        self.assertEqual(1, self.reg.get_sample_value("u_total"))


class TestCounter(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def test_unlabelled_counter_exposed_at_zero(self):
        """Rule 43: an unlabelled counter is in the snapshot with value 0 right after creation."""
        self.reg.counter("jobs_total", "Jobs.")
        self.assertEqual(0, self.reg.get_sample_value("jobs_total"))

    def test_negative_and_nan_increments_raise(self):
        """Rules 37/45: negative, NaN and non-numeric increments raise MetricError naming them."""
        c = self.reg.counter("c_total", "h")
        for bad in (-1, float("nan"), "3"):
            with self.subTest(amount=bad), self.assertRaisesRegex(MetricError, "invalid increment"):
                c.inc(bad)
        self.assertEqual(0, c.get())

    def test_decimal_and_float_mix(self):
        """Decimal and Fraction amounts mix with floats in any order instead of jamming a metric."""
        from decimal import Decimal
        from fractions import Fraction

        c = self.reg.counter("c_total", "h")
        g = self.reg.gauge("g", "h")
        h = self.reg.histogram("h_seconds", "h", buckets=(1,))
        c.inc(Decimal("1.5"))
        c.inc(0.5)
        c.inc(Decimal("1"))
        g.inc(Fraction(1, 2))
        g.dec(Decimal("0.25"))
        g.inc(0.25)
        h.observe(0.5)
        h.observe(Decimal("2"))
        self.assertEqual(3.0, self.reg.get_sample_value("c_total"))
        self.assertEqual(0.5, self.reg.get_sample_value("g"))
        self.assertEqual(HistogramValue((1, 2), 2.5, 2), h.get())
        with self.assertRaisesRegex(MetricError, "Decimal\\('-1'\\)"):
            c.inc(Decimal("-1"))

    def test_integer_increments_stay_integers(self):
        """Integer increments keep an exact int; a float increment makes it a float."""
        c = self.reg.counter("c_total", "h")
        c.inc()
        c.inc(2)
        self.assertIs(int, type(c.get()))
        c.inc(0.5)
        self.assertEqual(3.5, c.get())

    def test_family_and_sample_names(self):
        """Rule 44: a counter named with or without _total has family 'x' and sample 'x_total'."""
        a = self.reg.counter("a_total", "h")
        b = self.reg.counter("b", "h")
        self.assertEqual(("a", "a_total"), (a.family_name, a.sample_name))
        self.assertEqual(("b", "b_total"), (b.family_name, b.sample_name))
        self.assertEqual(["a", "b"], [f.name for f in self.reg.snapshot().families])


class TestGauge(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def test_set_inc_dec(self):
        """Rule 47: a gauge starts at 0 and supports set, inc and dec."""
        g = self.reg.gauge("g", "h")
        self.assertEqual(0, g.get())
        g.set(3)
        g.inc()
        g.dec(2.5)
        self.assertEqual(1.5, g.get())

    def test_nan_set_allowed_but_nan_inc_refused(self):
        """Rule 37: set(NaN) is a value; inc(NaN) and set('x') raise."""
        g = self.reg.gauge("g", "h")
        g.set(float("nan"))
        self.assertNotEqual(g.get(), g.get())
        g.set(1)
        with self.assertRaises(MetricError):
            g.inc(float("nan"))
        with self.assertRaisesRegex(MetricError, "'x'"):
            g.set("x")

    def test_track_inprogress_and_current_time(self):
        """track_inprogress counts a running block; set_to_current_time stores Unix seconds."""
        g = self.reg.gauge("g", "h")
        with g.track_inprogress():
            self.assertEqual(1, g.get())
        self.assertEqual(0, g.get())
        g.set_to_current_time()
        self.assertGreater(g.get(), 1.6e9)

    def test_merge_mode_carried_to_family(self):
        """The merge mode is validated and travels with the snapshot family."""
        self.reg.gauge("g", "h", merge="sum")
        self.assertEqual("sum", self.reg.snapshot().family("g").merge)
        with self.assertRaisesRegex(MetricError, "'avg'"):
            self.reg.gauge("h", "h", merge="avg")


class TestHistogram(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def test_default_buckets_span_5ms_to_10min(self):
        """Default buckets go from 5 ms to 600 s with +Inf appended."""
        h = self.reg.histogram("h_seconds", "h")
        self.assertEqual((0.005, 600.0), (DEFAULT_BUCKETS[0], DEFAULT_BUCKETS[-1]))
        self.assertEqual(
            (*DEFAULT_BUCKETS, float("inf")), self.reg.snapshot().family("h_seconds").bounds
        )
        self.assertEqual(DEFAULT_BUCKETS, h.buckets)

    def test_bound_is_inclusive_and_buckets_cumulative(self):
        """Rules 49/50/53: observe(bound) lands in that bucket; cumulative; +Inf == count."""
        h = self.reg.histogram("h_seconds", "h", buckets=(0.1, 0.5))
        for v in (0.05, 0.5, 0.7, 100):
            h.observe(v)
        self.assertEqual(HistogramValue((1, 2, 4), 101.25, 4), h.get())
        self.assertEqual(2, self.reg.get_sample_value("h_seconds_bucket", {"le": "0.5"}))
        self.assertEqual(4, self.reg.get_sample_value("h_seconds_bucket", {"le": "+Inf"}))

    def test_bucket_configuration_rules(self):
        """Rule 54: unsorted, duplicate, NaN or empty buckets raise; a trailing +Inf is accepted."""
        for bad in ((1, 0.5), (1, 1), (float("nan"),), (), ("a",)):
            with self.subTest(buckets=bad), self.assertRaises(MetricError):
                self.reg.histogram("x_seconds", "h", buckets=bad)
        h = self.reg.histogram("y_seconds", "h", buckets=(1, float("inf")))
        self.assertEqual((1.0,), h.buckets)

    def test_redefining_buckets_is_a_duplicate(self):
        """Asking for the same histogram with other buckets raises; without buckets returns it."""
        h = self.reg.histogram("h_seconds", "h", buckets=(1, 2))
        self.assertIs(h, self.reg.histogram("h_seconds", "h"))
        with self.assertRaises(DuplicateMetricError):
            self.reg.histogram("h_seconds", "h", buckets=(1, 3))

    def test_nan_and_non_numbers_refused(self):
        """Rule 37: observe(NaN) or observe('x') raises MetricError and changes nothing."""
        h = self.reg.histogram("h_seconds", "h")
        for bad in (float("nan"), "x"):
            with self.subTest(value=bad), self.assertRaises(MetricError):
                h.observe(bad)
        self.assertEqual(0, h.get().count)

    def test_timer_observes_seconds(self):
        """Rule 56: time() observes the elapsed perf_counter seconds (not milliseconds)."""
        h = self.reg.histogram("h_seconds", "h", buckets=(0.1, 1))
        clock = mock.Mock(perf_counter=mock.Mock(side_effect=[100.0, 100.25]))
        with mock.patch.object(metric_types, "time", clock), h.time():
            pass
        self.assertEqual(HistogramValue((0, 1, 1), 0.25, 1), h.get())

    def test_timer_as_decorator(self):
        """time() also decorates a function: each call is observed, its result returned."""
        h = self.reg.histogram("h_seconds", "h", ("op",))
        clock = mock.Mock(perf_counter=mock.Mock(side_effect=[1.0, 1.5, 2.0, 4.0]))

        child = h.labels("clone")

        @child.time()
        def work(x):
            """Return x doubled."""
            return 2 * x

        with mock.patch.object(metric_types, "time", clock):
            self.assertEqual((6, 8), (work(3), work(4)))
        hv = child.get()
        self.assertEqual((2, 2.5), (hv.count, hv.sum))
        self.assertEqual("Return x doubled.", work.__doc__)

    def test_bucket_helpers(self):
        """Rule 54: linear and exponential bucket helpers."""
        self.assertEqual((1, 3, 5), linear_buckets(1, 2, 3))
        self.assertEqual((1, 2, 4), exponential_buckets(1, 2, 3))
        with self.assertRaises(MetricError):
            exponential_buckets(0, 2, 3)


class TestCardinalityGuard(unittest.TestCase):
    def setUp(self):
        self.reg = Registry(series_limit=3)

    def test_series_past_the_limit_are_dropped_counted_and_warned_once(self):
        """Past the limit new label sets get a no-op child, are counted, and warn once."""
        c = self.reg.counter("repo_total", "h", ("repository",))
        for i in range(3):
            c.labels(f"r{i}").inc()
        with self.assertLogs("mgit_monitoring.registry", logging.WARNING) as logs:
            c.labels("r3").inc()
            c.labels("r4").inc(5)
        self.assertEqual(1, len(logs.records))
        self.assertIn("repo_total", logs.output[0])
        self.assertEqual(
            3, len([s for s in self.reg.snapshot().samples() if s.name == "repo_total"])
        )
        self.assertEqual(
            2, self.reg.get_sample_value(DROPPED_SERIES_METRIC, {"metric": "repo_total"})
        )
        c.labels("r0").inc()  # existing children still work
        self.assertEqual(2, self.reg.get_sample_value("repo_total", {"repository": "r0"}))

    def test_a_flood_of_distinct_values_stays_bounded(self):
        """20,000 distinct label sets past the limit: 3 children, 1 warning, 1 drop series."""
        c = self.reg.counter("repo_total", "h", ("repository",))
        g = self.reg.gauge("other", "h", ("k",))
        with self.assertLogs("mgit_monitoring.registry", logging.WARNING) as logs:
            for i in range(20_000):
                c.labels(f"r{i}").inc()
            g.labels(["unhashable"]).set(1)
        self.assertEqual(3, len(c.collect().series))
        self.assertEqual(1, len(logs.records))
        self.assertEqual(19_997, c.dropped)
        dropped = self.reg.get(DROPPED_SERIES_METRIC)
        self.assertEqual(1, len(dropped.collect().series))
        self.assertEqual(19_997, dropped.labels("repo_total").get())
        kept = [s.labels for s in self.reg.snapshot().samples() if s.name == "repo_total"]
        self.assertEqual([{"repository": f"r{i}"} for i in range(3)], kept)

    def test_drop_still_silent_when_self_metric_name_is_taken(self):
        """A caller's own metric under the self-metric's name does not make labels() raise."""
        self.reg.counter(DROPPED_SERIES_METRIC, "Mine.", ("a", "b"))
        c = self.reg.counter("repo_total", "h", ("repository",))
        with self.assertLogs("mgit_monitoring.registry", logging.WARNING):
            for i in range(5):
                c.labels(f"r{i}").inc()
        self.assertEqual(2, c.dropped)

    def test_per_metric_limit_overrides_registry_default(self):
        """A metric's own series_limit wins over the registry default."""
        g = self.reg.gauge("g", "h", ("k",), series_limit=10)
        for i in range(10):
            g.labels(str(i)).set(i)
        self.assertEqual(0, g.dropped)

    def test_invalid_limit_refused(self):
        """A non-positive series limit raises MetricError."""
        with self.assertRaises(MetricError):
            Registry(series_limit=0)
        with self.assertRaises(MetricError):
            self.reg.counter("c_total", "h", series_limit=-1)


class TestThreadSafety(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def _run(self, target, n=4):
        barrier = threading.Barrier(n)

        def body():
            barrier.wait()
            target()

        threads = [threading.Thread(target=body) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def test_n_threads_times_m_increments_exact(self):
        """Rule 80: 4 threads x 20,000 increments on counters and a histogram are exact."""
        c = self.reg.counter("c_total", "h")
        lc = self.reg.counter("l_total", "h", ("k",))
        h = self.reg.histogram("h_seconds", "h")

        def work():
            for _ in range(20_000):
                c.inc()
                lc.labels("x").inc()
                h.observe(1.0)

        self._run(work)
        self.assertEqual(80_000, c.get())
        self.assertEqual(80_000, lc.labels("x").get())
        self.assertEqual(HistogramValue(h.get().buckets, 80_000.0, 80_000), h.get())

    def test_histogram_snapshot_always_consistent(self):
        """Rule 55: while 4 threads observe(1.0), every snapshot has _sum == _count == +Inf."""
        h = self.reg.histogram("h_seconds", "h")
        stop = threading.Event()
        bad = []

        def scrape():
            while not stop.is_set():
                hv = self.reg.snapshot().family("h_seconds").series[0].value
                if not (hv.sum == hv.count == hv.buckets[-1]):
                    bad.append(hv)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            self._run(lambda: [h.observe(1.0) for _ in range(10_000)])
        finally:
            stop.set()
            scraper.join()
        self.assertEqual([], bad)
        self.assertEqual(40_000, h.get().count)

    def test_exact_totals_when_additions_can_be_interrupted(self):
        """Rules 55/80: per-child locks keep totals exact even if a thread switch splits an add."""

        class One(float):
            """1.0 whose addition runs Python code, so the GIL may switch mid-update."""

            def __radd__(self, other):
                return float(other) + 1.0

        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(1e-6)
        c = self.reg.counter("c_total", "h")
        h = self.reg.histogram("h_seconds", "h")
        one = One(1.0)

        def work():
            for _ in range(20_000):
                c.inc(one)
                h.observe(one)

        self._run(work)
        self.assertEqual(80_000, c.get())
        self.assertEqual((80_000, 80_000.0), (h.get().count, h.get().sum))

    def test_threads_that_come_and_go_lose_no_count(self):
        """Short-lived threads (a server's per-request ones) leave every count and sum behind."""
        c = self.reg.counter("c_total", "h")
        lc = self.reg.counter("l_total", "h", ("k",))
        h = self.reg.histogram("h_seconds", "h", buckets=(1.0,))
        lh = self.reg.histogram("lh_seconds", "h", ("k",), buckets=(1.0,))

        def work():
            for i in range(250):
                c.inc()
                lc.labels("x").inc(2)
                v = 0.5 if i % 2 else 4.0  # sums of these are exact in floating point
                h.observe(v)
                lh.labels("x").observe(v)

        for _ in range(40):  # 40 rounds of 4 new threads: idents are reused, cells are kept
            self._run(work)
        n = 40 * 4 * 250
        self.assertEqual(n, c.get())
        self.assertEqual(2 * n, lc.labels("x").get())
        expected = HistogramValue((n // 2, n), n // 2 * 0.5 + n // 2 * 4.0, n)
        self.assertEqual(expected, h.get())
        self.assertEqual(expected, lh.labels("x").get())
        snap = self.reg.snapshot()
        self.assertEqual(n, snap.get_sample_value("c_total"))
        self.assertEqual(2 * n, snap.get_sample_value("l_total", {"k": "x"}))
        self.assertEqual(expected.sum, snap.get_sample_value("lh_seconds_sum", {"k": "x"}))
        self.assertEqual(n, snap.get_sample_value("h_seconds_count"))

    def test_histogram_consistent_when_threads_switch_mid_update(self):
        """Rule 55 at a 1 us switch interval: writers preempted anywhere, snapshots still agree."""
        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(1e-6)
        h = self.reg.histogram("h_seconds", "h", ("k",), buckets=(1.0, 2.0))
        child = h.labels("a")
        stop = threading.Event()
        bad = []
        reads = []

        def scrape():
            while not stop.is_set():
                hv = child.get()
                # observe(1.0) and observe(2.0) alternate: sum = 1 * le1 + 2 * (le2 - le1)
                if hv.sum != hv.buckets[0] + 2 * (hv.buckets[1] - hv.buckets[0]):
                    bad.append(hv)
                if hv.count != hv.buckets[-1]:
                    bad.append(hv)
                reads.append(1)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            # Enough updates that, on Pythons that switch threads between any two bytecodes
            # (3.8, 3.9), reads land mid-update thousands of times.
            self._run(lambda: [child.observe(1.0 + i % 2) for i in range(50_000)])
        finally:
            stop.set()
            scraper.join()
        self.assertEqual([], bad)
        self.assertGreater(len(reads), 0)
        expected = HistogramValue((100_000, 200_000, 200_000), 300_000.0, 200_000)
        self.assertEqual(expected, child.get())

    def test_snapshot_waits_for_an_open_batch(self):
        """A snapshot started in the middle of a batch returns only after the batch completes."""
        total = self.reg.counter("ops_total", "h")
        ok = self.reg.counter("ops_success_total", "h")
        seen = []

        def scrape():
            snap = self.reg.snapshot()
            seen.append(
                (snap.get_sample_value("ops_total"), snap.get_sample_value("ops_success_total"))
            )

        scraper = threading.Thread(target=scrape)
        with self.reg.batch():
            total.inc()
            scraper.start()
            # Not a timing assertion: a correct snapshot blocks here however long we wait;
            # a broken one finishes (almost surely within this bound) and records (1, 0).
            scraper.join(0.3)
            ok.inc()
        scraper.join()
        self.assertEqual([(1, 1)], seen)

    def test_batch_is_atomic_for_snapshots(self):
        """A composite update inside batch() is never seen half-applied by a snapshot."""
        total = self.reg.counter("ops_total", "h")
        ok = self.reg.counter("ops_success_total", "h")
        stop = threading.Event()
        torn = []

        def scrape():
            while not stop.is_set():
                snap = self.reg.snapshot()
                a = snap.get_sample_value("ops_total")
                b = snap.get_sample_value("ops_success_total")
                if a != b:
                    torn.append((a, b))

        def work():
            for _ in range(5_000):
                with self.reg.batch():
                    total.inc()
                    ok.inc()

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            self._run(work)
        finally:
            stop.set()
            scraper.join()
        self.assertEqual([], torn)
        self.assertEqual(20_000, total.get())

    def test_failed_update_releases_the_lock(self):
        """An update failing inside the locked add raises MetricError and changes nothing."""

        class Poison:
            """Passes the range check, then fails the addition; not a number, so not rescued."""

            def __ge__(self, other):
                return True

            def __eq__(self, other):
                return True

            __hash__ = object.__hash__

            def __gt__(self, other):  # lets bisect place it, so the failure is inside the lock
                return False

            def __radd__(self, other):
                raise TypeError("poison")

            def __repr__(self):
                return "Poison()"

        c = self.reg.counter("c_total", "h")
        h = self.reg.histogram("h_seconds", "h")
        c.inc(0.5)
        h.observe(1.0)
        with self.assertRaisesRegex(MetricError, "Poison"):
            c.inc(Poison())
        with self.assertRaisesRegex(MetricError, "Poison"):
            h.observe(Poison())
        c.inc()  # would deadlock if the lock had stayed held
        h.observe(1.0)
        self.assertEqual(1.5, c.get())
        self.assertEqual((2, 2.0), (h.get().count, h.get().sum))

    def test_concurrent_child_creation_yields_one_child(self):
        """Threads racing to create the same label set share one child and lose no increment."""
        c = self.reg.counter("c_total", "h", ("k",))
        self._run(lambda: [c.labels(str(i % 50)).inc() for i in range(5_000)])
        self.assertEqual(20_000, sum(s.value for s in self.reg.snapshot().samples()))
        self.assertEqual(50, len(self.reg.snapshot().family("c").series))


@unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
class TestFork(unittest.TestCase):
    def test_child_forked_while_a_thread_holds_the_locks_can_record(self):
        """A child forked while a thread is inside batch() and inc() records without hanging."""
        reg = Registry()
        counter = reg.counter("forked_total", "h", ("k",))
        child = counter.labels("a")
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with reg.batch(), child._lock:
                inside.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        self.addCleanup(holder.join)
        self.addCleanup(release.set)
        self.assertTrue(inside.wait(10))
        pid = os.fork()
        if pid == 0:  # the child: both locks were held by a thread that is not here
            ok = False
            try:
                with reg.batch():
                    child.inc()
                    counter.labels("b").inc()
                ok = reg.get_sample_value("forked_total", {"k": "a"}) == 1
            finally:
                os._exit(0 if ok else 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)  # another process: no event to wait on
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.fail("the forked child hung on a lock held by a thread of its parent")
        self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)


class _StaticCollector:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


class TestRegistryAndSnapshot(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()

    def test_get_and_unregister(self):
        """get() finds a counter by registered, family or sample name; unregister frees the name."""
        c = self.reg.counter("x_total", "h")
        self.assertIs(c, self.reg.get("x_total"))
        self.assertIs(c, self.reg.get("x"))
        b = self.reg.counter("b", "registered without _total")
        self.assertIs(b, self.reg.get("b_total"))
        self.assertIs(b, self.reg.counter("b_total", "h"))
        self.assertEqual(2, len(self.reg.metrics()))
        self.assertIsNone(self.reg.get("nope"))
        self.reg.unregister("x")
        self.assertIsNone(self.reg.get("x_total"))
        self.reg.gauge("x", "now a gauge")

    def test_collectors_contribute_families_at_snapshot_time(self):
        """A registered collector's families appear in the snapshot, sorted with the others."""
        self.reg.gauge("zz", "h").set(1)
        fam = metric_family("aa_total", "counter", "From a collector.", ("k",), [(("v",), 7)])
        col = _StaticCollector([fam])
        self.reg.register_collector(col)
        snap = self.reg.snapshot()
        self.assertEqual(["aa", "zz"], [f.name for f in snap.families])
        self.assertEqual(7, snap.get_sample_value("aa_total", {"k": "v"}))
        self.reg.unregister_collector(col)
        self.assertIsNone(self.reg.get_sample_value("aa_total", {"k": "v"}))

    def test_collector_family_clash_raises(self):
        """Rule 22: a collector family reusing a registered name fails the snapshot."""
        self.reg.counter("x_total", "h")
        self.reg.register_collector(_StaticCollector([metric_family("x", "gauge", "h")]))
        with self.assertRaisesRegex(DuplicateMetricError, "'x'"):
            self.reg.snapshot()

    def test_collector_without_collect_refused(self):
        """register_collector refuses an object without collect()."""
        with self.assertRaises(MetricError):
            self.reg.register_collector(object())

    def test_metric_family_validates(self):
        """metric_family checks names, type and label counts."""
        with self.assertRaises(MetricError):
            metric_family("x", "summary", "h")
        with self.assertRaises(MetricError):
            metric_family("x", "gauge", "h", ("a",), [((), 1)])
        f = metric_family(
            "h_seconds", "histogram", "h", (), [((), HistogramValue((1, 2), 0.5, 2))], buckets=(1,)
        )
        self.assertEqual((1.0, float("inf")), f.bounds)
        for bad in (HistogramValue((2,), 0.5, 2), 2):
            with self.subTest(value=bad), self.assertRaisesRegex(MetricError, "h_seconds"):
                metric_family("h_seconds", "histogram", "h", (), [((), bad)], buckets=(1,))
        self.assertEqual("build", metric_family("build_info", "info", "h").name)

    def test_snapshot_is_immutable_copy(self):
        """A snapshot does not change when the metric changes later."""
        c = self.reg.counter("c_total", "h")
        c.inc()
        snap = self.reg.snapshot()
        c.inc()
        self.assertEqual(1, snap.get_sample_value("c_total"))
        self.assertEqual(2, self.reg.get_sample_value("c_total"))


if __name__ == "__main__":
    unittest.main()


class TestDefaultRegistry(unittest.TestCase):
    def setUp(self):
        registry_module.reset_default_registry()
        self.addCleanup(registry_module.reset_default_registry)

    def test_import_creates_no_registry(self):
        """Importing the package has no side effect: the default is made on first use."""
        import subprocess

        code = (
            "import gc, mgit_monitoring, mgit_monitoring.collector, mgit_monitoring.registry as r; "
            "print(sum(isinstance(o, r.Registry) for o in gc.get_objects()))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual("0", out.strip())
        reg = registry_module.get_default_registry()
        self.assertIsInstance(reg, Registry)
        self.assertIs(reg, registry_module.get_default_registry())

    def test_default_is_thread_safe(self):
        """8 threads asking at once get one and the same registry."""
        seen = []
        barrier = threading.Barrier(8)

        def get():
            barrier.wait()
            seen.append(registry_module.get_default_registry())

        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, len({id(r) for r in seen}))

    def test_reset_gives_a_new_registry(self):
        """reset_default_registry() makes the next call create a fresh registry."""
        first = registry_module.get_default_registry()
        registry_module.reset_default_registry()
        self.assertIsNot(first, registry_module.get_default_registry())
