"""Tests for mgit_monitoring.process_metrics: /proc parsing on a fake tree, absence, python_info."""

from __future__ import annotations

import os
import sys
import tempfile
import unittest

from mgit_monitoring.exposition import render_text
from mgit_monitoring.process_metrics import ProcessCollector, register_process_metrics
from mgit_monitoring.registry import Registry

# Fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
# cmajflt utime(14) stime(15) cutime cstime priority nice threads itreal starttime(22)
# vsize(23) rss(24) ...
# Children's times (cutime 77, cstime 33) must not be counted; the values are chosen so that
# a collector using the system's clock ticks (100) or page size (4096) would be caught.
STAT = (
    "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 77 33 20 0 3 0 5000 "
    "104857600 2560 18446744073709551615 0\n"
)
TICKS = 250
PAGE = 16384
LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
"""
PROC_STAT = "cpu  1 2 3 4\nbtime 1700000000\nprocesses 10\n"

PROCESS_NAMES = {
    "process_cpu_seconds_total",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
}


class FakeProc:
    """A minimal /proc tree in a temporary directory."""

    def __init__(self, testcase: unittest.TestCase, pid: int = 4242) -> None:
        tmp = tempfile.TemporaryDirectory()
        testcase.addCleanup(tmp.cleanup)
        self.root = tmp.name
        self.pid_dir = os.path.join(self.root, str(pid))
        os.makedirs(os.path.join(self.pid_dir, "fd"))

    def write(self, rel: str, text: str) -> None:
        with open(os.path.join(self.root, rel), "w", encoding="utf-8") as f:
            f.write(text)

    def fds(self, n: int) -> None:
        for i in range(n):
            self.write(os.path.join(self.pid_dir, "fd", str(i)), "")


class TestFakeProc(unittest.TestCase):
    def setUp(self):
        self.proc = FakeProc(self)
        self.proc.write("4242/stat", STAT)
        self.proc.write("4242/limits", LIMITS)
        self.proc.write("stat", PROC_STAT)
        self.proc.fds(7)
        self.reg = Registry()
        register_process_metrics(
            self.reg, proc_path=self.proc.root, pid=4242, clock_ticks=TICKS, page_size=PAGE
        )

    def value(self, name, labels=None):
        return self.reg.get_sample_value(name, labels)

    def test_values_from_the_fake_tree(self):
        """Every process metric is computed from the fake files (ticks, pages, btime)."""
        self.assertEqual(1.6, self.value("process_cpu_seconds_total"))  # (250 + 150) / 250
        self.assertEqual(104857600, self.value("process_virtual_memory_bytes"))
        self.assertEqual(2560 * 16384, self.value("process_resident_memory_bytes"))
        self.assertEqual(1700000020.0, self.value("process_start_time_seconds"))  # btime + 5000/250
        self.assertEqual(7, self.value("process_open_fds"))
        self.assertEqual(1024, self.value("process_max_fds"))

    def test_types_and_help_in_exposition(self):
        """The families carry the conventional types and HELP texts."""
        body = render_text(self.reg.snapshot()).decode()
        self.assertIn(
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.6\n", body
        )
        self.assertIn("# HELP process_open_fds Number of open file descriptors.\n", body)
        self.assertIn("# TYPE process_resident_memory_bytes gauge\n", body)

    def test_values_are_read_at_scrape_time(self):
        """A later scrape sees changed /proc contents."""
        self.proc.fds(9)
        self.assertEqual(9, self.value("process_open_fds"))

    def test_registering_an_equal_collector_twice_is_a_no_op(self):
        """A second identical ProcessCollector on one registry is ignored (no duplicate names)."""
        register_process_metrics(
            self.reg, proc_path=self.proc.root, pid=4242, clock_ticks=TICKS, page_size=PAGE
        )
        names = [f.name for f in self.reg.snapshot().families]
        self.assertEqual(7, len(names))
        self.assertEqual(len(names), len(set(names)))
        self.assertNotEqual(
            ProcessCollector(self.proc.root, pid=4242), ProcessCollector(self.proc.root, pid=1)
        )

    def test_pid_may_be_a_callable(self):
        """A callable pid is resolved at every collection."""
        col = ProcessCollector(self.proc.root, pid=lambda: 4242, clock_ticks=100)
        names = {f.name for f in col.collect()}
        self.assertIn("process_cpu_seconds", names)

    def test_partial_tree_gives_partial_metrics(self):
        """Missing limits and btime only remove the metrics that depend on them."""
        os.remove(os.path.join(self.proc.root, "4242", "limits"))
        self.proc.write("stat", "cpu 1 2 3\n")
        names = {s.name for s in self.reg.snapshot().samples()}
        self.assertNotIn("process_max_fds", names)
        self.assertNotIn("process_start_time_seconds", names)
        self.assertIn("process_open_fds", names)

    def test_garbled_stat_is_ignored(self):
        """An unparsable stat file drops the stat-based metrics instead of failing the scrape."""
        self.proc.write("4242/stat", "garbage without parenthesis")
        names = {s.name for s in self.reg.snapshot().samples()}
        self.assertNotIn("process_cpu_seconds_total", names)
        self.assertIn("python_info", names)


class TestWithoutProc(unittest.TestCase):
    def test_missing_proc_gives_only_python_info(self):
        """No /proc at all: just python_info, and no error."""
        with tempfile.TemporaryDirectory() as tmp:
            col = ProcessCollector(os.path.join(tmp, "absent"))
            self.assertEqual(["python_info"], [f.name for f in col.collect()])

    def test_python_info_labels(self):
        """python_info carries implementation, major, minor, patchlevel and version, value 1."""
        v = sys.version_info
        reg = Registry()
        register_process_metrics(reg, proc_path="/nonexistent-proc")
        labels = {
            "implementation": "CPython"
            if sys.implementation.name == "cpython"
            else sys.implementation.name,
            "major": str(v.major),
            "minor": str(v.minor),
            "patchlevel": str(v.micro),
            "version": f"{v.major}.{v.minor}.{v.micro}",
        }
        self.assertEqual(1, reg.get_sample_value("python_info", labels))

    def test_python_info_can_be_disabled(self):
        """python_info=False leaves only process metrics."""
        self.assertEqual([], ProcessCollector("/nonexistent-proc", python_info=False).collect())


@unittest.skipUnless(os.path.exists("/proc/self/stat"), "needs a Linux /proc")
class TestRealProc(unittest.TestCase):
    def test_real_proc_values_are_plausible(self):
        """On Linux, the real /proc gives every metric with sane values for this process."""
        reg = Registry()
        register_process_metrics(reg)
        snap = reg.snapshot()
        names = {s.name for s in snap.samples()}
        self.assertLessEqual(PROCESS_NAMES, names)
        self.assertGreater(snap.get_sample_value("process_resident_memory_bytes"), 1_000_000)
        self.assertGreater(snap.get_sample_value("process_open_fds"), 2)
        self.assertGreater(snap.get_sample_value("process_start_time_seconds"), 1.6e9)


if __name__ == "__main__":
    unittest.main()
