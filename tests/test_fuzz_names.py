"""Hostile metric names, label names and values, and log fields, through the public API.

Issue 14 part 4 (names): whatever a caller passes, the exposition always parses. A seeded
fuzzer (``MGIT_MONITORING_TEST_SEED`` replays a run; the seed is printed and named in every
failure) builds registries from random names, help texts, label values and sample values:

* an invalid metric or label name raises :class:`MetricError` (never another exception, and
  never output a parser refuses); a valid one is exposed;
* every rendered body parses with prometheus_client's text parser, its OpenMetrics parser
  and ``promtool check metrics``, and the label values read back are the ones recorded;
* ``MetricsCollector.record_*`` never raises on hostile values and its output parses too;
* a ``StructuredLogger`` line with hostile field keys and values is one line that
  ``json.loads`` reads.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import re
import subprocess
import sys
import unittest
from typing import Any, Dict, List, Tuple

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.errors import MetricError
from mgit_monitoring.exposition import render_openmetrics, render_text
from mgit_monitoring.log_formatter import StructuredFormatter
from mgit_monitoring.registry import Registry
from mgit_monitoring.structured_logger import StructuredLogger
from tests.support import need_executable, need_module

ROUNDS = 60  # registries per run; each holds a few dozen families
VALID_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")
VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
RESERVED_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")

# Characters a hostile caller reaches for: syntax of the text formats, controls, line and
# paragraph separators other than "\n", invisible and wide characters, lone surrogates.
HOSTILE = (
    list("\"\\\n\r\t\x00\x01\x0b\x0c\x1b\x7f{}=,# '`$%")
    + ["\u0085", "\u2028", "\u2029", "\ufeff", "\u200b", "\u202e", "\x80", "\xff"]
    + ["\ud800", "\udcff", "\U0001f600", "\u00e9", "\u4e2d", "e\u0301", "\\n", '\\"', "\\\\"]
    + ["# EOF", "\n# EOF\n", "} 1\nx 2", 'a="b"', "NaN", "+Inf", "_total", "le", "quantile"]
)
NAME_CHARS = 'abcXYZ_09:-. é\n"\\{}\x00'


def _seed() -> int:
    seed = int(os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32)))
    print(f"\n{__name__}: MGIT_MONITORING_TEST_SEED={seed}", file=sys.stderr)
    return seed


def hostile_text(rng: random.Random, max_parts: int = 12) -> str:
    """A string of random hostile pieces and ordinary words, sometimes huge."""
    roll = rng.random()
    if roll < 0.03:
        return ""
    if roll < 0.06:
        # Huge (kept to a few kB: prometheus_client's parsers are quadratic in a label value)
        return rng.choice(HOSTILE) * rng.randrange(500, 3000)
    parts = [
        rng.choice(HOSTILE) if rng.random() < 0.6 else rng.choice(["clone", "org/repo", "x", "1"])
        for _ in range(rng.randrange(1, max_parts))
    ]
    return "".join(parts)


def random_name(rng: random.Random) -> Any:
    """A metric or label name: mostly valid-looking, often not."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice([None, 1, b"name", ("a",), 1.5, "", " "])
    if roll < 0.45:
        return "".join(rng.choice(NAME_CHARS) for _ in range(rng.randrange(1, 12)))
    if roll < 0.5:
        return rng.choice(["le", "quantile", "__x", "_x", "x:y", "x_total", "x_bucket", "x_sum"])
    head = rng.choice("abcdefghijklmnopqrstuvwxyzABC")
    return head + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))


def random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            0, 1, -1, 2.5, -0.0, 1e308, -1e308, 5e-324, 10**30, 10**400, -(10**400),
            math.inf, -math.inf, math.nan, True, "3", None, "nan", object(),
        ]
    )  # fmt: skip


def expected_value(value: str) -> str:
    """A label value as exposed: lone surrogates replaced (the only change made)."""
    return value.encode("utf-8", "replace").decode("utf-8")


def build_registry(rng: random.Random) -> Tuple[Registry, Dict[str, List[Tuple[Dict[str, str]]]]]:
    """A registry filled through the public API with hostile input; also what was accepted.

    Returns the registry and, per sample name, the label sets recorded on it.
    """
    reg = Registry(series_limit=50)
    recorded: Dict[str, List[Any]] = {}
    for _ in range(rng.randrange(5, 25)):
        kind = rng.choice(["counter", "gauge", "histogram"])
        name = random_name(rng)
        if kind == "counter" and isinstance(name, str) and rng.random() < 0.3:
            name += "_total"
        labelnames = [random_name(rng) for _ in range(rng.randrange(0, 4))]
        help_text = hostile_text(rng) or "help"
        try:
            if kind == "counter":
                metric = reg.counter(name, help_text, labelnames)
            elif kind == "gauge":
                metric = reg.gauge(name, help_text, labelnames)
            else:
                metric = reg.histogram(name, help_text, labelnames)
        except MetricError:
            continue  # the check that matters: nothing else was raised (see the caller)
        # Accepted: the name and label names must be ones every parser reads.
        base = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
        assert VALID_NAME.match(base), f"accepted metric name {name!r}"
        for label in metric.labelnames:
            assert VALID_LABEL.match(label) and not label.startswith("__"), label
        sample = base + "_total" if kind == "counter" else base
        for _ in range(rng.randrange(1, 6)):
            values = [hostile_text(rng) for _ in metric.labelnames]
            if values and rng.random() < 0.1:
                values[0] = rng.choice([1, 2.5, None, b"\xff\x00", math.nan, ("t",)])
            child = metric.labels(*values) if metric.labelnames else metric
            amount = random_value(rng)
            try:
                if kind == "counter":
                    child.inc(amount)
                elif kind == "gauge":
                    rng.choice([child.set, child.inc, child.dec])(amount)
                else:
                    child.observe(amount)
            except MetricError:
                pass
            labels = {n: expected_value(v if type(v) is str else str(v)) for n, v in
                      zip(metric.labelnames, values)}  # fmt: skip
            recorded.setdefault(sample if kind != "histogram" else base + "_count", []).append(
                labels
            )
    return reg, recorded


def parsed_text(parser: Any, body: bytes) -> Dict[str, List[Dict[str, str]]]:
    found: Dict[str, List[Dict[str, str]]] = {}
    for family in parser.text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


class FuzzNames(unittest.TestCase):
    """Random hostile registries: rejected with MetricError or exposed in parsable form."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.seed = _seed()

    # The peers, looked up by the tests that use them (skip or fail when missing).
    @property
    def text_parser(self) -> Any:
        return need_module("prometheus_client.parser")

    @property
    def om_parser(self) -> Any:
        return need_module("prometheus_client.openmetrics.parser")

    @property
    def promtool(self) -> str:
        return need_executable("promtool")

    def setUp(self) -> None:
        # A cardinality drop logs a WARNING on mgit_monitoring.registry: keep the run quiet.
        logger = logging.getLogger("mgit_monitoring.registry")
        self.addCleanup(setattr, logger, "disabled", logger.disabled)
        logger.disabled = True

    def promtool_accepts(self, body: bytes, where: str) -> None:
        out = subprocess.run(
            [self.promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
        )
        # Exit 3 is lint advice (camelCase names, ...), 1 a body it cannot parse.
        self.assertIn(out.returncode, (0, 3), f"{where}: {out.stdout!r} {out.stderr[:2000]!r}")

    def test_registries_of_hostile_names_and_values_always_parse(self):
        """Invalid names raise MetricError; all else renders to text and OpenMetrics that
        prometheus_client's parsers and promtool accept, with the label values recorded."""
        text_parser, om_parser = self.text_parser, self.om_parser
        rng = random.Random(self.seed)
        bodies: List[bytes] = []
        accepted = 0
        for i in range(ROUNDS):
            where = f"seed={self.seed} round={i}"
            try:
                reg, recorded = build_registry(rng)
            except MetricError:
                raise
            except Exception as exc:  # anything but MetricError is a defect
                self.fail(f"{where}: {type(exc).__name__}: {exc}")
            text = render_text(reg.snapshot())
            om = render_openmetrics(reg.snapshot())
            try:
                found = parsed_text(text_parser, text)
                list(om_parser.text_string_to_metric_families(om.decode("utf-8")))
            except Exception as exc:
                self.fail(f"{where}: {exc!r}\n{text[:3000]!r}")
            for sample, label_sets in recorded.items():
                accepted += len(label_sets)
                for labels in label_sets:
                    if len(label_sets) <= 50:  # past the series limit a set may be dropped
                        self.assertIn(labels, found.get(sample, []), f"{where}: {sample}")
            bodies.append(text)
        self.assertGreater(accepted, 100, "the fuzzer hardly ever got past validation")
        for i, body in enumerate(bodies):
            self.promtool_accepts(body, f"seed={self.seed} round={i}")

    def test_what_the_fuzzer_found_stays_fixed(self):
        """Ints past the float range are exposed as +-Inf (not 400 digits promtool refuses)
        or refused with MetricError where they meet a float; a negative observation drops
        _sum/_count from that OpenMetrics series instead of a negative counter."""
        reg = Registry()
        reg.gauge("big_gauge", "h").set(10**400)
        reg.counter("big_counter", "h").inc(10**400)
        reg.gauge("small_gauge", "h").set(-(10**400))
        h = reg.histogram("neg_seconds", "h", ("op",))
        h.labels("neg").observe(-2.0)
        h.labels("pos").observe(2.0)
        for call in (h.labels("pos").observe, reg.gauge("float_gauge", "h").inc):
            reg.gauge("float_gauge", "h").set(0.5)
            with self.assertRaises(MetricError):
                call(10**400)
        text = render_text(reg.snapshot())
        self.assertIn(b"\nbig_gauge +Inf\n", text)
        self.assertIn(b"\nbig_counter_total +Inf\n", text)
        self.assertIn(b"\nsmall_gauge -Inf\n", text)
        self.promtool_accepts(text, "regression")
        om = render_openmetrics(reg.snapshot()).decode("utf-8")
        families = list(self.om_parser.text_string_to_metric_families(om))
        names = {(s.name, s.labels.get("op")) for f in families for s in f.samples}
        self.assertIn(("neg_seconds_sum", "pos"), names)
        self.assertNotIn(("neg_seconds_sum", "neg"), names)
        self.assertNotIn(("neg_seconds_count", "neg"), names)
        self.assertIn('neg_seconds_sum{op="neg"} -2.0', render_text(reg.snapshot()).decode())

    def test_invalid_names_raise_metric_error_only(self):
        """Every name outside the grammar is refused with MetricError, whatever its type."""
        rng = random.Random(self.seed + 1)
        reg = Registry()
        refused = 0
        for i in range(3000):
            name = random_name(rng)
            label = random_name(rng)
            try:
                reg.gauge(f"g{i}", "help", (label,))
                ok_label = True
            except MetricError:
                ok_label = False
                refused += 1
            ok_name = True
            try:
                reg.gauge(name, "help")
                reg.unregister(name)
            except MetricError:
                ok_name = False
                refused += 1
            where = f"seed={self.seed} name={name!r} label={label!r}"
            self.assertEqual(
                isinstance(name, str)
                and bool(VALID_NAME.match(name))
                and not name.endswith(RESERVED_SUFFIXES),  # a gauge's samples would clash
                ok_name,
                where,
            )
            self.assertEqual(
                isinstance(label, str)
                and bool(VALID_LABEL.match(label))
                and not label.startswith("__")
                and label != "quantile",
                ok_label,
                where,
            )
        self.assertGreater(refused, 1000)

    def test_collector_recorders_take_hostile_values(self):
        """record_* never raise on hostile strings, numbers and durations; the output parses
        (text and OpenMetrics, promtool) and keeps the operation and provider given."""
        rng = random.Random(self.seed + 2)
        logger = logging.getLogger("mgit_monitoring.collector")  # dropped values warn once
        self.addCleanup(setattr, logger, "disabled", logger.disabled)
        logger.disabled = True
        m = MetricsCollector(repository_labels=True, series_limit=100_000)
        operations = set()
        for _ in range(400):
            op, provider = hostile_text(rng, 5), hostile_text(rng, 5)
            # (10**400 is left to the test below: it loses the whole measurement today)
            duration = rng.choice([None, 0.1, -1.0, math.nan, math.inf, "x", 2**70, 1e300])
            m.record_operation(op, rng.random() < 0.5, duration, provider)
            operations.add((expected_value(op), expected_value(provider)))
            m.record_git_operation(hostile_text(rng, 3), hostile_text(rng, 5), True, duration)
            m.record_api_call(
                hostile_text(rng, 3), hostile_text(rng, 3), rng.choice([200, 429, "x", None]),
                duration, hostile_text(rng, 5),
            )  # fmt: skip
            m.record_error(hostile_text(rng, 3), hostile_text(rng, 3), None)
            m.record_authentication(hostile_text(rng, 3), hostile_text(rng, 3), False)
            m.record_rate_limit_hit(hostile_text(rng, 3))
        text = m.export_prometheus().encode("utf-8")
        found = parsed_text(self.text_parser, text)
        list(self.om_parser.text_string_to_metric_families(m.export_openmetrics()))
        seen = {(s["operation"], s["provider"]) for s in found["mgit_operations_total"]}
        self.assertEqual(operations, seen, f"seed={self.seed}")
        self.promtool_accepts(text, f"seed={self.seed}")

    def test_an_overflowing_duration_still_counts_the_operation(self):
        """A duration too large for a float is dropped like a negative one; the count stays."""
        m = MetricsCollector()
        logger = logging.getLogger("mgit_monitoring.collector")
        self.addCleanup(setattr, logger, "disabled", logger.disabled)
        logger.disabled = True
        m.record_operation("clone", True, -1.0, "github")
        m.record_operation("clone", True, 10**400, "github")
        value = m.registry.get_sample_value(
            "mgit_operations_total", {"operation": "clone", "provider": "github"}
        )
        self.assertEqual(2, value)


class _Boom:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def hostile_field(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return hostile_text(rng)
    if roll < 0.5 and depth < 3:
        return {
            rng.choice([hostile_text(rng, 3), 1, None, 2.5, ("t",)]): hostile_field(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))
        }
    if roll < 0.6 and depth < 3:
        return [hostile_field(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return rng.choice(
        [
            math.nan, math.inf, -math.inf, 10**400, -(10**30), 1e308, True, None,
            b"\xff\x00\n", bytearray(b"\x80"), _Boom(), object(), {1, 2}, ("a", "\n"),
            complex(1, 2), Exception("a\nb"), type, ..., frozenset(),
        ]
    )  # fmt: skip


class FuzzLogFields(unittest.TestCase):
    """A StructuredLogger line is one parsable JSON line whatever the fields hold."""

    def test_hostile_field_keys_and_values_give_one_json_line(self):
        seed = _seed()
        rng = random.Random(seed)
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        std = logging.getLogger("mgit_monitoring.tests.fuzz_fields")
        std.addHandler(handler)
        std.setLevel(logging.DEBUG)
        std.propagate = False
        self.addCleanup(std.removeHandler, handler)
        self.addCleanup(setattr, std, "propagate", True)
        self.addCleanup(std.setLevel, logging.NOTSET)
        log = StructuredLogger(std)
        defects: List[str] = []
        for i in range(1500):
            profile = ("default", "ecs", "gcp")[i % 3]
            handler.setFormatter(
                StructuredFormatter(profile=profile, ensure_ascii=rng.random() < 0.2)
            )
            fields = {hostile_text(rng, 4) or "k": hostile_field(rng) for _ in range(4)}
            message = hostile_text(rng)
            stream.seek(0)
            stream.truncate()
            where = f"seed={seed} iteration={i} profile={profile}"
            try:
                log.info(message, **fields)
            except Exception as exc:  # a log call never raises into the caller
                defects.append(f"{where}: raised {type(exc).__name__}: {exc}")
                continue
            out = stream.getvalue()
            if not out.endswith("\n") or "\n" in out[:-1] or "\r" in out:
                defects.append(f"{where}: not one line: {out[:300]!r}")
                continue
            try:
                line = json.loads(out)
            except ValueError as exc:
                defects.append(f"{where}: not JSON ({exc}): {out[:300]!r}")
                continue
            if not isinstance(line, dict):
                defects.append(f"{where}: not an object: {out[:300]!r}")
        self.assertEqual([], defects[:10], f"{len(defects)} bad lines")


if __name__ == "__main__":
    unittest.main()
