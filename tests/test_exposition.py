"""Tests for mgit_monitoring.exposition: exact bytes, checklist rules, negotiation, gzip, JSON.

Rule numbers refer to ../shared/docs/exposition-checklist.md. Name and label-name rules
(1-10, 12, 26), counter/histogram semantics (45, 53-56) and client-library semantics (80)
are tested in tests/test_registry.py; HTTP status codes and the server (69, 76, 79) belong
to the server's tests.
"""

from __future__ import annotations

import gzip
import json
import threading
import unittest

from mgit_monitoring.errors import MetricError
from mgit_monitoring.exposition import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    CONTENT_TYPES,
    FORMAT_OPENMETRICS,
    FORMAT_TEXT,
    JSON_FORMAT_VERSION,
    MetricsSource,
    accepts_gzip,
    choose_format,
    expose,
    gzip_body,
    render,
    render_json,
    render_openmetrics,
    render_text,
    snapshot_of,
    snapshot_to_dict,
)
from mgit_monitoring.registry import Registry
from mgit_monitoring.samples import HistogramValue, Snapshot, metric_family

PROMETHEUS_2_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def golden_registry() -> Registry:
    reg = Registry()
    c = reg.counter("http_requests_total", "The total number of HTTP requests.", ("method", "code"))
    c.labels("post", "200").inc(1027)
    c.labels("post", "400").inc(3)
    h = reg.histogram(
        "http_request_duration_seconds", "A histogram of the request duration.", buckets=(0.05, 0.1)
    )
    for v in (0.03125, 0.0625, 0.5, 2.0):
        h.observe(v)
    g = reg.gauge("temperature_celsius", "Current temperature.", ("room",))
    g.labels('C:\\DIR "x"\nz').set(21.5)
    reg.gauge("up", "Whether the target is up.").set(True)
    return reg


GOLDEN_TEXT = b"""\
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 1
http_request_duration_seconds_bucket{le="0.1"} 2
http_request_duration_seconds_bucket{le="+Inf"} 4
http_request_duration_seconds_sum 2.59375
http_request_duration_seconds_count 4
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027
http_requests_total{method="post",code="400"} 3
# HELP temperature_celsius Current temperature.
# TYPE temperature_celsius gauge
temperature_celsius{room="C:\\\\DIR \\"x\\"\\nz"} 21.5
# HELP up Whether the target is up.
# TYPE up gauge
up 1
"""

GOLDEN_OPENMETRICS = b"""\
# TYPE http_request_duration_seconds histogram
# HELP http_request_duration_seconds A histogram of the request duration.
http_request_duration_seconds_bucket{le="0.05"} 1
http_request_duration_seconds_bucket{le="0.1"} 2
http_request_duration_seconds_bucket{le="+Inf"} 4
http_request_duration_seconds_sum 2.59375
http_request_duration_seconds_count 4
# TYPE http_requests counter
# HELP http_requests The total number of HTTP requests.
http_requests_total{method="post",code="200"} 1027
http_requests_total{method="post",code="400"} 3
# TYPE temperature_celsius gauge
# HELP temperature_celsius Current temperature.
temperature_celsius{room="C:\\\\DIR \\"x\\"\\nz"} 21.5
# TYPE up gauge
# HELP up Whether the target is up.
up 1
# EOF
"""


def snap_of(*families) -> Snapshot:
    return Snapshot(tuple(families), 1700000000.0)


def sample_lines(body: bytes):
    return [ln for ln in body.decode("utf-8").split("\n") if ln and not ln.startswith("#")]


class TestGolden(unittest.TestCase):
    def setUp(self):
        self.snap = golden_registry().snapshot()

    def test_text_exact_bytes(self):
        """Rules 14-16, 19-20, 23-24, 27-28, 33, 44, 47-52: the 0.0.4 body, byte for byte."""
        self.assertEqual(GOLDEN_TEXT, render_text(self.snap))

    def test_openmetrics_exact_bytes(self):
        """Rules 25, 28, 30, 44, 63, 65: the OpenMetrics body, byte for byte."""
        self.assertEqual(GOLDEN_OPENMETRICS, render_openmetrics(self.snap))

    def test_rendering_is_a_pure_function(self):
        """Rules 21/43: the same snapshot renders to the same bytes every time."""
        self.assertEqual(render_text(self.snap), render_text(self.snap))
        self.assertEqual(render(self.snap, "openmetrics"), render_openmetrics(self.snap))

    def test_empty_registry(self):
        """Rule 63: an empty registry is an empty 0.0.4 body and a bare '# EOF' in OpenMetrics."""
        snap = Registry().snapshot()
        self.assertEqual(b"", render_text(snap))
        self.assertEqual(b"# EOF\n", render_openmetrics(snap))

    def test_unknown_format_refused(self):
        """render() names an unknown format."""
        with self.assertRaisesRegex(ValueError, "'xml'"):
            render(self.snap, "xml")


class TestLabelsAndEscaping(unittest.TestCase):
    def setUp(self):
        self.reg = Registry()
        self.g = self.reg.gauge("x", "h", ("v",))

    def line(self, value: str, fmt=render_text) -> str:
        self.g.clear()
        self.g.labels(value).set(1)
        return sample_lines(fmt(self.reg.snapshot()))[0]

    def test_empty_label_value(self):
        """Rule 13: an empty value is rendered as an empty string."""
        self.assertEqual('x{v=""} 1', self.line(""))

    def test_backslash_quote_newline(self):
        """Rules 14/15/16/65: backslash, quote and LF are escaped in both formats."""
        for fmt in (render_text, render_openmetrics):
            with self.subTest(fmt=fmt.__name__):
                self.assertEqual('x{v="C:\\\\DIR"} 1', self.line("C:\\DIR", fmt))
                self.assertEqual('x{v="say \\"hi\\""} 1', self.line('say "hi"', fmt))
                self.assertEqual('x{v="a\\nb"} 1', self.line("a\nb", fmt))

    def test_nothing_else_escaped(self):
        """Rule 17: tab, CR-free control chars and non-ASCII are emitted raw UTF-8."""
        self.assertEqual('x{v="tab\tü✓"} 1', self.line("tab\tü✓"))
        self.assertIn("ü".encode(), render_text(self.reg.snapshot()))

    def test_escape_order(self):
        """Rule 18: backslash is escaped first, so '\\"' becomes '\\\\\\"'."""
        self.assertEqual('x{v="\\\\\\""} 1', self.line('\\"'))

    def test_label_pair_syntax_and_order(self):
        """Rules 19/21: comma-separated pairs in declared order, no trailing comma, le last."""
        h = self.reg.histogram("h_seconds", "h", ("b", "a"), buckets=(1,))
        h.labels("2", "1").observe(0.5)
        lines = sample_lines(render_text(self.reg.snapshot()))
        self.assertIn('h_seconds_bucket{b="2",a="1",le="1.0"} 1', lines)
        self.assertIn('h_seconds_sum{b="2",a="1"} 0.5', lines)
        self.assertFalse(any(",}" in ln for ln in lines))

    def test_empty_label_set(self):
        """Rule 20: a series without labels has no braces."""
        self.reg.counter("bar_total", "h")
        self.assertIn("bar_total 0", sample_lines(render_text(self.reg.snapshot())))

    def test_unique_lines(self):
        """Rule 22: each (name, labels) appears once, even with many series and families."""
        c = self.reg.counter("c_total", "h", ("k",))
        h = self.reg.histogram("d_seconds", "h", ("k",))
        for i in range(200):
            c.labels(str(i % 50)).inc()
            h.labels(str(i % 7)).observe(i / 10)
        for fmt in (render_text, render_openmetrics):
            keys = [ln.rsplit(" ", 1)[0] for ln in sample_lines(fmt(self.reg.snapshot()))]
            self.assertEqual(len(keys), len(set(keys)))


class TestMetadata(unittest.TestCase):
    def test_help_escaping_text(self):
        """Rule 24: 0.0.4 HELP escapes backslash and LF only; a quote stays raw."""
        snap = snap_of(metric_family("x", "gauge", 'a "b" \\ c\nd', (), [((), 1)]))
        self.assertIn(b'# HELP x a "b" \\\\ c\\nd\n', render_text(snap))

    def test_help_escaping_openmetrics(self):
        """Rule 25: OpenMetrics HELP escapes the quote too."""
        snap = snap_of(metric_family("x", "gauge", 'a "b" \\ c\nd', (), [((), 1)]))
        self.assertIn(b'# HELP x a \\"b\\" \\\\ c\\nd\n', render_openmetrics(snap))

    def test_help_and_type_once_before_samples(self):
        """Rules 23/27/39: one HELP and TYPE per family, before its samples; families contiguous."""
        snap = golden_registry().snapshot()
        for body in (render_text(snap).decode(), render_openmetrics(snap).decode()):
            seen = []
            current = None
            for ln in body.splitlines():
                if ln.startswith("# TYPE "):
                    current = ln.split()[2]
                    self.assertNotIn(current, seen)
                    seen.append(current)
                elif not ln.startswith("#"):
                    self.assertTrue(ln.startswith(current), (ln, current))
            self.assertEqual(4, len(seen))
            self.assertEqual(len(seen), body.count("# HELP "))

    def test_counter_type_names_per_format(self):
        """Rules 28/44: TYPE names the sample in 0.0.4 and the family in OpenMetrics."""
        reg = Registry()
        reg.counter("jobs_total", "Jobs.").inc()
        self.assertIn(b"# TYPE jobs_total counter\njobs_total 1\n", render_text(reg.snapshot()))
        self.assertIn(
            b"# TYPE jobs counter\n# HELP jobs Jobs.\njobs_total 1\n",
            render_openmetrics(reg.snapshot()),
        )

    def test_no_unit_no_comments_no_blank_lines(self):
        """Rules 11/29/31/64: no UNIT, no free comments, no blank lines in either format."""
        snap = golden_registry().snapshot()
        for body in (render_text(snap), render_openmetrics(snap)):
            lines = body.decode().split("\n")
            self.assertEqual("", lines[-1])
            for ln in lines[:-1]:
                self.assertTrue(ln, "blank line")
                if ln.startswith("#"):
                    self.assertRegex(ln, r"^# (HELP|TYPE) |^# EOF$")

    def test_openmetrics_metadata_order(self):
        """Rule 30: OpenMetrics writes TYPE before HELP."""
        body = render_openmetrics(golden_registry().snapshot()).decode()
        self.assertLess(body.index("# TYPE up gauge"), body.index("# HELP up "))


class TestValues(unittest.TestCase):
    def render_gauge(self, value, fmt=render_text) -> str:
        reg = Registry()
        reg.gauge("g", "h").set(value)
        return sample_lines(fmt(reg.snapshot()))[0]

    def test_special_values(self):
        """Rules 32/37: +Inf, -Inf and NaN are spelled exactly; NaN is a gauge value."""
        self.assertEqual("g +Inf", self.render_gauge(float("inf")))
        self.assertEqual("g -Inf", self.render_gauge(float("-inf")))
        self.assertEqual("g NaN", self.render_gauge(float("nan")))
        self.assertEqual("g NaN", self.render_gauge(float("nan"), render_openmetrics))

    def test_integers_and_floats(self):
        """Rule 33: integers carry no decimal point, floats carry '.' or an exponent."""
        self.assertEqual("g 23", self.render_gauge(23))
        self.assertEqual("g 8903.123421", self.render_gauge(8903.123421))
        self.assertEqual("g 1.89e-07", self.render_gauge(1.89e-7))
        self.assertEqual("g 3.0", self.render_gauge(3.0))

    def test_full_precision(self):
        """Rule 34: floats round-trip (shortest repr, not %g)."""
        self.assertEqual("g 0.1", self.render_gauge(0.1))
        self.assertEqual("g 0.6666666666666666", self.render_gauge(2 / 3))
        self.assertEqual(0.1 + 0.2, float(self.render_gauge(0.1 + 0.2).split()[1]))

    def test_canonical_le_values(self):
        """Rule 35: le values use Go-style %g with '.0' kept."""
        bounds = (1e-10, 1e-09, 1e-05, 0.0001, 0.001, 0.1, 1, 1.7, 10, 100000, 1e6, 1e10)
        reg = Registry()
        reg.histogram("h_seconds", "h", buckets=bounds).observe(1)
        les = [
            ln.split('le="')[1].split('"')[0]
            for ln in sample_lines(render_text(reg.snapshot()))[:-2]
        ]
        self.assertEqual(
            [
                "1e-10",
                "1e-09",
                "1e-05",
                "0.0001",
                "0.001",
                "0.1",
                "1.0",
                "1.7",
                "10.0",
                "100000.0",
                "1e+06",
                "1e+10",
                "+Inf",
            ],
            les,
        )

    def test_no_timestamps(self):
        """Rule 36: sample lines are exactly 'name{labels} value' (no timestamp), both formats."""
        snap = golden_registry().snapshot()
        for ln in sample_lines(render_text(snap)) + sample_lines(render_openmetrics(snap)):
            rest = ln.rsplit("} ", 1)[1] if "}" in ln else ln.split(" ", 1)[1]
            self.assertNotIn(" ", rest, ln)

    def test_booleans(self):
        """Rule 38: True is rendered as 1."""
        self.assertEqual("g 1", self.render_gauge(True))
        self.assertEqual("g 0", self.render_gauge(False))


class TestLayout(unittest.TestCase):
    def test_line_endings_and_spacing(self):
        """Rules 40/41: LF only, final LF, single spaces, no trailing blanks, no BOM."""
        snap = golden_registry().snapshot()
        for body in (render_text(snap), render_openmetrics(snap)):
            self.assertNotIn(b"\r", body)
            self.assertTrue(body.endswith(b"\n"))
            self.assertFalse(body.startswith(b"\xef\xbb\xbf"))
            for ln in body.decode().split("\n")[:-1]:
                self.assertEqual(ln, ln.strip())
                if not ln.startswith("#"):
                    self.assertNotIn("  ", ln)

    def test_families_sorted(self):
        """Rule 42: families are in name order regardless of registration order."""
        reg = Registry()
        for name in ("zeta", "alpha", "mid"):
            reg.gauge(name, "h")
        types = [
            ln.split()[2]
            for ln in render_text(reg.snapshot()).decode().splitlines()
            if ln.startswith("# TYPE")
        ]
        self.assertEqual(["alpha", "mid", "zeta"], types)

    def test_unlabelled_metrics_always_present(self):
        """Rule 43: unlabelled metrics appear at 0 before any update; labelled ones as metadata."""
        reg = Registry()
        reg.counter("jobs_total", "h")
        reg.histogram("lat_seconds", "h", buckets=(1,))
        reg.counter("by_k_total", "h", ("k",))
        body = render_text(reg.snapshot())
        self.assertIn(b"jobs_total 0\n", body)
        self.assertIn(
            b'lat_seconds_bucket{le="+Inf"} 0\nlat_seconds_sum 0.0\nlat_seconds_count 0\n', body
        )
        self.assertIn(b"# TYPE by_k_total counter\n", body)

    def test_no_created_samples(self):
        """Rule 46: no _created series in either format (documented choice)."""
        snap = golden_registry().snapshot()
        self.assertNotIn(b"_created", render_text(snap) + render_openmetrics(snap))

    def test_gauge_has_no_suffix(self):
        """Rule 47: gauge samples carry the bare family name."""
        self.assertIn("up 1", sample_lines(render_openmetrics(golden_registry().snapshot())))


class TestHistogramExposition(unittest.TestCase):
    def test_buckets_sorted_cumulative_inf_equals_count(self):
        """Rules 48-52: _bucket lines sorted by le, cumulative, +Inf == _count, then _sum/_count."""
        reg = Registry()
        h = reg.histogram("h_seconds", "h", buckets=(0.1, 0.5, 1))
        for v in (0.05, 0.3, 0.3, 0.7, 9):
            h.observe(v)
        lines = sample_lines(render_text(reg.snapshot()))
        counts = [int(ln.rsplit(" ", 1)[1]) for ln in lines if "_bucket" in ln]
        self.assertEqual([1, 3, 4, 5], counts)
        self.assertEqual(sorted(counts), counts)
        self.assertEqual(["h_seconds_sum 10.35", "h_seconds_count 5"], lines[-2:])

    def test_negative_bounds_drop_sum_and_count_in_openmetrics(self):
        """Rules 49/52: negative bounds: OpenMetrics drops _sum and _count; 0.0.4 keeps both."""
        reg = Registry()
        reg.histogram("t_celsius", "h", buckets=(-1e6, -10, 0, 10)).observe(-3)
        self.assertEqual(
            b"# TYPE t_celsius histogram\n# HELP t_celsius h\n"
            b't_celsius_bucket{le="-1e+06"} 0\nt_celsius_bucket{le="-10.0"} 0\n'
            b't_celsius_bucket{le="0.0"} 1\nt_celsius_bucket{le="10.0"} 1\n'
            b't_celsius_bucket{le="+Inf"} 1\n# EOF\n',
            render_openmetrics(reg.snapshot()),
        )
        self.assertIn(b"t_celsius_sum -3.0\nt_celsius_count 1\n", render_text(reg.snapshot()))


class TestOtherTypes(unittest.TestCase):
    def test_info_family(self):
        """Rule 59: an info family is a gauge '<name>_info' in 0.0.4 and 'info' in OpenMetrics."""
        snap = snap_of(metric_family("build", "info", "Build.", ("version",), [(("1.2",), 1)]))
        self.assertEqual(
            b'# HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version="1.2"} 1\n',
            render_text(snap),
        )
        self.assertEqual(
            b'# TYPE build info\n# HELP build Build.\nbuild_info{version="1.2"} 1\n# EOF\n',
            render_openmetrics(snap),
        )

    def test_unknown_family(self):
        """Rule 62: an unknown family is 'untyped' in 0.0.4, 'unknown' in OpenMetrics, no suffix."""
        snap = snap_of(metric_family("foo", "unknown", "Foo.", (), [((), 42.23)]))
        self.assertIn(b"# TYPE foo untyped\nfoo 42.23\n", render_text(snap))
        self.assertIn(b"# TYPE foo unknown\n# HELP foo Foo.\nfoo 42.23\n", render_openmetrics(snap))

    def test_unsupported_types_refused(self):
        """Rules 57/58/60/61: summaries, statesets and gauge histograms are not offered."""
        for t in ("summary", "stateset", "gaugehistogram"):
            with self.subTest(type=t), self.assertRaises(MetricError):
                metric_family("x", t, "h")

    def test_no_exemplars(self):
        """Rules 66-68: no exemplar syntax appears in any sample line."""
        snap = golden_registry().snapshot()
        for fmt in (render_text, render_openmetrics):
            self.assertFalse([ln for ln in sample_lines(fmt(snap)) if " # " in ln])

    def test_collector_histogram_with_float_counts(self):
        """A collector's histogram renders whatever numbers it supplies."""
        fam = metric_family(
            "c_seconds",
            "histogram",
            "h",
            (),
            [((), HistogramValue((1.0, 2.0), 0.5, 2.0))],
            buckets=(1,),
        )
        self.assertIn(b'c_seconds_bucket{le="+Inf"} 2.0\n', render_text(snap_of(fam)))


class TestOpenMetricsFraming(unittest.TestCase):
    def test_eof_terminates(self):
        """Rule 63: the body ends with exactly one '# EOF\\n' and nothing after it."""
        body = render_openmetrics(golden_registry().snapshot())
        self.assertTrue(body.endswith(b"\n# EOF\n"))
        self.assertEqual(1, body.count(b"# EOF"))


class TestNegotiation(unittest.TestCase):
    def test_content_types(self):
        """Rules 70/71: the exact Content-Type strings."""
        self.assertEqual("text/plain; version=0.0.4; charset=utf-8", CONTENT_TYPE_TEXT)
        self.assertEqual(
            "application/openmetrics-text; version=1.0.0; charset=utf-8", CONTENT_TYPE_OPENMETRICS
        )

    def test_prometheus_headers_get_openmetrics(self):
        """Rule 73: the headers Prometheus 2 and 3 send select OpenMetrics 1.0.0."""
        for accept in (PROMETHEUS_2_ACCEPT, PROMETHEUS_3_ACCEPT, "application/openmetrics-text"):
            with self.subTest(accept=accept):
                self.assertEqual(
                    (FORMAT_OPENMETRICS, CONTENT_TYPE_OPENMETRICS), choose_format(accept)
                )

    def test_q_values_are_honoured(self):
        """Rule 73: q-values decide; q=0 refuses; OM 0.0.1 alone falls back to text."""
        text = (FORMAT_TEXT, CONTENT_TYPE_TEXT)
        cases = [
            "text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0.5",
            "application/openmetrics-text;version=1.0.0;q=0",
            "application/openmetrics-text;version=0.0.1",
            "application/openmetrics-text;version=1.0.0;q=0.2,*/*;q=0.5",
            "application/openmetrics-text;q=bogus",
        ]
        for accept in cases:
            with self.subTest(accept=accept):
                self.assertEqual(text, choose_format(accept))
        self.assertEqual(
            FORMAT_OPENMETRICS,
            choose_format("text/plain;q=0.5, application/openmetrics-text;q=0.5")[0],
        )

    def test_unknown_or_missing_accept_falls_back_to_text(self):
        """Rules 72/74: no header, */* or application/json get exactly the 0.0.4 Content-Type."""
        for accept in (None, "", "*/*", "application/json", "text/html,garbage;;"):
            with self.subTest(accept=accept):
                self.assertEqual((FORMAT_TEXT, CONTENT_TYPE_TEXT), choose_format(accept))

    def test_expose_matches_body_and_type(self):
        """Rule 74: expose() returns one Content-Type matching the body."""
        reg = golden_registry()
        om = expose(reg, PROMETHEUS_2_ACCEPT)
        self.assertEqual(CONTENT_TYPE_OPENMETRICS, om.content_type)
        self.assertTrue(om.body.endswith(b"# EOF\n"))
        txt = expose(reg.snapshot(), "application/json")
        self.assertEqual((GOLDEN_TEXT, CONTENT_TYPE_TEXT, None), tuple(txt))

    def test_expose_takes_any_metrics_source(self):
        """expose() snapshots anything with snapshot(): a Registry, a collector, a custom view."""
        reg = golden_registry()

        class View:
            def snapshot(self):
                return reg.snapshot()

        view: MetricsSource = View()  # a structural contract: no base class needed
        for source in (reg, reg.snapshot(), view):
            with self.subTest(source=type(source).__name__):
                self.assertEqual(GOLDEN_TEXT, expose(source).body)
        from mgit_monitoring.collector import MetricsCollector

        collector = MetricsCollector(process_metrics=False)
        self.assertIn(b"mgit_operations_total", expose(collector).body)
        self.assertEqual(collector.snapshot().families, snapshot_of(collector).families)

    def test_expose_rejects_a_source_without_snapshot(self):
        """A source without snapshot() raises TypeError naming its type."""
        with self.assertRaisesRegex(TypeError, "'dict'"):
            expose({}, None)

    def test_expose_with_a_fixed_format(self):
        """fmt= overrides negotiation (a /metrics/json route); an unknown one is a ValueError."""
        reg = golden_registry()
        out = expose(reg, PROMETHEUS_2_ACCEPT, "gzip", fmt="json")
        self.assertEqual((CONTENT_TYPE_JSON, "gzip"), (out.content_type, out.content_encoding))
        doc = json.loads(gzip.decompress(out.body))
        self.assertEqual(JSON_FORMAT_VERSION, doc["format"])
        self.assertEqual(GOLDEN_TEXT, expose(reg, PROMETHEUS_2_ACCEPT, fmt=FORMAT_TEXT).body)
        om = expose(reg, fmt="openmetrics")
        self.assertEqual(CONTENT_TYPES[FORMAT_OPENMETRICS], om.content_type)
        with self.assertRaisesRegex(ValueError, "'yaml'"):
            expose(reg, fmt="yaml")


class TestGzip(unittest.TestCase):
    def test_accept_encoding_parsing(self):
        """Rule 75: gzip is used when offered with q > 0; q=0 and absence refuse it."""
        for header, expected in [
            ("gzip", True),
            ("gzip, deflate, br", True),
            ("deflate;q=1, gzip;q=0.1", True),
            ("*", True),
            ("gzip;q=0", False),
            ("gzip;q=0, *", False),
            ("identity", False),
            (None, False),
            ("", False),
        ]:
            with self.subTest(header=header):
                self.assertIs(expected, accepts_gzip(header))

    def test_gzip_roundtrip_fast_level(self):
        """Rule 75: the compressed body decompresses to the original and uses the fastest level."""
        body = render_text(golden_registry().snapshot()) * 50
        zipped, encoding = gzip_body(body, "gzip")
        self.assertEqual("gzip", encoding)
        self.assertEqual(body, gzip.decompress(zipped))
        self.assertEqual(4, zipped[8], "XFL byte 4 means fastest compression")
        self.assertEqual((body, None), gzip_body(body, "gzip;q=0"))

    def test_expose_with_gzip(self):
        """expose() reports the Content-Encoding it applied."""
        ex = expose(golden_registry(), None, "gzip")
        self.assertEqual("gzip", ex.content_encoding)
        self.assertEqual(GOLDEN_TEXT, gzip.decompress(ex.body))


class TestConcurrentScrapes(unittest.TestCase):
    def test_scrapes_while_recording(self):
        """Rule 77: 4 threads render while 4 record; every body is complete and consistent."""
        reg = Registry()
        c = reg.counter("c_total", "h", ("k",))
        h = reg.histogram("h_seconds", "h", buckets=(0.5,))
        stop = threading.Event()
        problems = []

        def record(i):
            while not stop.is_set():
                c.labels(str(i)).inc()
                h.observe(1.0)

        def scrape():
            for _ in range(30):
                body = expose(reg, PROMETHEUS_2_ACCEPT).body
                lines = sample_lines(body)
                count = [ln for ln in lines if ln.startswith("h_seconds_count")]
                inf = [ln for ln in lines if 'le="+Inf"' in ln]
                total = [ln for ln in lines if ln.startswith("h_seconds_sum")]
                if not body.endswith(b"# EOF\n") or count[0].split()[1] != inf[0].split()[1]:
                    problems.append(body)
                if float(total[0].split()[1]) != float(count[0].split()[1]):
                    problems.append(body)

        writers = [threading.Thread(target=record, args=(i,)) for i in range(4)]
        readers = [threading.Thread(target=scrape) for _ in range(4)]
        for t in writers + readers:
            t.start()
        for t in readers:
            t.join()
        stop.set()
        for t in writers:
            t.join()
        self.assertEqual([], problems)


class TestJson(unittest.TestCase):
    def test_shape(self):
        """The documented JSON shape: format, timestamp, one entry per series."""
        reg = golden_registry()
        snap = reg.snapshot()
        doc = json.loads(render_json(snap))
        self.assertEqual(JSON_FORMAT_VERSION, doc["format"])
        self.assertEqual(snap.timestamp, doc["timestamp"])
        by = {(m["name"], tuple(sorted(m["labels"].items()))): m for m in doc["metrics"]}
        self.assertEqual(
            {
                "name": "http_requests_total",
                "family": "http_requests",
                "type": "counter",
                "help": "The total number of HTTP requests.",
                "labels": {"method": "post", "code": "200"},
                "value": 1027,
                "timestamp": snap.timestamp,
            },
            by[("http_requests_total", (("code", "200"), ("method", "post")))],
        )
        hist = by[("http_request_duration_seconds", ())]
        self.assertEqual((4, 4, 2.59375), (hist["value"], hist["count"], hist["sum"]))
        self.assertEqual({"0.05": 1, "0.1": 2, "+Inf": 4}, hist["buckets"])
        self.assertEqual("last", by[("up", ())]["merge"])
        self.assertEqual(5, len(doc["metrics"]))

    def test_non_finite_numbers_are_strings(self):
        """JSON has no NaN/Infinity literals: they become strings."""
        reg = Registry()
        reg.gauge("a", "h").set(float("nan"))
        reg.gauge("b", "h").set(float("-inf"))
        text = render_json(reg.snapshot())
        self.assertNotIn("NaN,", text.replace('"NaN"', ""))
        values = [m["value"] for m in json.loads(text)["metrics"]]
        self.assertEqual(["NaN", "-Inf"], values)

    def test_dict_and_string_agree(self):
        """render_json is json.dumps of snapshot_to_dict, keeping non-ASCII readable."""
        reg = Registry()
        reg.gauge("g", "h", ("k",)).labels("ü").set(1)
        snap = reg.snapshot()
        self.assertEqual(snapshot_to_dict(snap), json.loads(render_json(snap, indent=2)))
        self.assertIn("ü", render_json(snap))


if __name__ == "__main__":
    unittest.main()
