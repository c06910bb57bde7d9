"""The performance monitor: traces, nesting, statistics, bounds, anomalies and shared history."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
import json
import logging
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from unittest import mock

from mgit_monitoring.collector import get_metrics_collector, reset_metrics_collector
from mgit_monitoring.context import correlation_context, new_trace_id
from mgit_monitoring.performance import (
    OperationMetrics,
    PerformanceMetrics,
    PerformanceMonitor,
    get_performance_monitor,
    monitor_performance,
    reset_performance_monitor,
    set_performance_monitor,
)
from mgit_monitoring.registry import Registry
from mgit_monitoring.store import Store
from tests.support import ROOT, Clock, run_python

LOGGER = "mgit_monitoring.performance"


def restore_default_monitor(previous):
    """Put back the default monitor a test replaced (or none, as it was)."""
    if previous is None:
        reset_performance_monitor()
    else:
        set_performance_monitor(previous)


def flush_threads():
    """The stores' flush threads alive now."""
    return [t for t in threading.enumerate() if t.name == "mgit-monitoring-store-flush"]


class MonitorCase(unittest.TestCase):
    def setUp(self):
        self.clock = Clock(100.0)
        self.wall = Clock(1_700_000_000.0)
        self.monitor = PerformanceMonitor(clock=self.clock, wall_clock=self.wall)

    def timed(self, name: str, seconds: float, success: bool = True, error=None, monitor=None):
        """Record one trace of exactly ``seconds``."""
        monitor = monitor or self.monitor
        trace_id = monitor.start_trace(name)
        self.clock.now += seconds
        return monitor.end_trace(trace_id, success=success, error=error)


class TestTraces(MonitorCase):
    def test_start_end_returns_duration(self):
        """end_trace returns the measured duration; an unknown id returns None."""
        self.assertEqual(2.5, self.timed("clone", 2.5))
        self.assertIsNone(self.monitor.end_trace("no-such-trace"))

    def test_metadata_and_seed_signature(self):
        """start_trace(name, **metadata) and the original's operation_id/tags/metadata all work."""
        a = self.monitor.start_trace("clone", repo="org/repo")
        b = self.monitor.start_trace("clone", operation_id="mine", tags={"p": "github"})
        self.assertEqual("mine", b)
        self.assertTrue(self.monitor.add_trace_metadata(a, {"extra": 1}))
        self.monitor.end_trace(b)
        self.monitor.end_trace(a)
        rows = self.monitor.recent_traces()
        self.assertEqual({"repo": "org/repo", "extra": 1}, rows[1].metadata)
        self.assertEqual({"tags": {"p": "github"}}, rows[0].metadata)

    def test_ids_unique_under_threads(self):
        """8 threads x 500 traces give 4,000 distinct ids and 4,000 completed traces."""
        monitor = PerformanceMonitor(max_traces=10000)
        barrier = threading.Barrier(8)
        ids = [[] for _ in range(8)]

        def work(n):
            barrier.wait()
            for _ in range(500):
                trace_id = monitor.start_trace("op")
                ids[n].append(trace_id)
                monitor.end_trace(trace_id)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flat = [i for chunk in ids for i in chunk]
        self.assertEqual(4000, len(set(flat)))
        self.assertEqual(4000, monitor.get_operation_metrics("op").count)
        self.assertEqual(0, monitor.active_trace_count)

    def test_begin_and_finish_trace(self):
        """begin_trace returns the trace start_trace would start; finish_trace ends it once,
        with its error type, and makes the parent current again."""
        monitor = self.monitor
        outer = monitor.start_trace("outer")
        tags = {"provider": "github"}
        trace = monitor.begin_trace("clone", tags, {"repos": 3})
        self.assertEqual(trace.operation_id, monitor.get_current_trace_id())
        self.assertEqual(outer, trace.parent_id)
        self.clock.now += 0.25
        self.assertEqual(0.25, monitor.finish_trace(trace, False, "TimeoutError"))
        self.assertIsNone(monitor.finish_trace(trace))  # already ended
        self.assertIsNone(monitor.end_trace(trace.operation_id))
        self.assertEqual(outer, monitor.get_current_trace_id())
        monitor.end_trace(outer)
        row = monitor.recent_traces("clone")[0]
        self.assertEqual(
            (False, "TimeoutError", outer), (row.success, row.error_type, row.parent_id)
        )
        self.assertEqual({"repos": 3, "tags": {"provider": "github"}}, row.metadata)
        self.assertIsNone(PerformanceMonitor(enabled=False).begin_trace("clone"))

    def test_a_parent_lists_its_children(self):
        """Traces started inside another are its children (as start_trace records them)."""
        monitor = self.monitor
        parent = monitor.begin_trace("parent")
        kids = []
        for _ in range(2):
            kids.append(monitor.begin_trace("child"))
            monitor.finish_trace(kids[-1])
        grandchild = monitor.begin_trace("grandchild", None, None, "given-id")
        self.assertEqual("given-id", grandchild.operation_id)
        self.assertEqual([k.operation_id for k in kids] + ["given-id"], parent.children)
        monitor.finish_trace(grandchild)
        monitor.finish_trace(parent)
        self.assertIsNone(monitor.get_current_trace_id())

    def test_a_stale_finish_leaves_a_trace_that_reuses_the_id_alone(self):
        """Finishing a trace a second time, after its id was given to a new trace, neither
        ends nor loses the new one."""
        monitor = self.monitor
        first = monitor.begin_trace("job", None, None, "job-42")
        monitor.finish_trace(first)
        second = monitor.begin_trace("job", None, None, "job-42")
        self.assertIsNone(monitor.finish_trace(first))
        self.assertEqual(1, monitor.active_trace_count)
        self.clock.now += 1.0
        self.assertEqual(1.0, monitor.finish_trace(second))
        self.assertEqual(2, len(monitor.recent_traces("job")))
        self.assertEqual(0, monitor.expired_traces)

    def test_an_expired_trace_still_hands_back_its_parent(self):
        """An operation that outlived trace_timeout is counted as expired, and ending it
        makes its parent current again: the next trace is not a child of a dead one."""
        monitor = PerformanceMonitor(trace_timeout=60, clock=self.clock, wall_clock=self.wall)
        long_op = monitor.begin_trace("long_op")
        self.clock.now += 61.0
        monitor.finish_trace(monitor.begin_trace("sweeper"))  # this start expires long_op
        self.assertEqual(1, monitor.expired_traces)
        self.assertIsNone(monitor.finish_trace(long_op))
        self.assertIsNone(monitor.get_current_trace_id())
        after = monitor.begin_trace("after")
        self.assertIsNone(after.parent_id)
        monitor.finish_trace(after)

    def test_row_metadata_is_the_callers_to_change(self):
        """A trace keeps the metadata it was given without a copy (one dict for every
        call); a row handed out has its own, so changing it reaches no other trace."""
        monitor = self.monitor
        shared = {"tags": {"provider": "github"}, "batch": 1}
        for _ in range(2):
            monitor.finish_trace(monitor.begin_trace("clone", None, shared))
        first, _ = monitor.recent_traces("clone")
        first.metadata["tags"]["provider"] = "changed"
        first.metadata["injected"] = True
        monitor.finish_trace(monitor.begin_trace("clone", None, shared))
        expected = {"tags": {"provider": "github"}, "batch": 1}
        self.assertEqual(expected, shared)
        self.assertEqual([expected] * 2, [r.metadata for r in monitor.recent_traces("clone")[1:]])

    def test_finished_in_another_thread(self):
        """A trace ended in another thread (another context) is recorded, and leaves the
        starting context's current trace alone there."""
        monitor = self.monitor
        trace = monitor.begin_trace("handoff")
        durations = []
        worker = threading.Thread(target=lambda: durations.append(monitor.finish_trace(trace)))
        worker.start()
        worker.join()
        self.assertEqual([0.0], durations)
        self.assertEqual(1, len(monitor.recent_traces("handoff")))
        self.assertEqual(0, monitor.active_trace_count)

    def test_concurrent_recording_loses_nothing(self):
        """8 threads record 4,000 nested traces without a lock while another thread flushes
        to a store, and every start sweeps for expired traces (a clock 61 s apart per read):
        every trace is stored exactly once, every child under its own thread's parent."""
        ticks = itertools.count(0.0, 61.0)
        with tempfile.TemporaryDirectory() as tmp:
            monitor = PerformanceMonitor(
                max_traces=10000,
                state_dir=tmp,
                flush_interval=3600,
                trace_timeout=1e12,
                clock=lambda: next(ticks),
            )
            self.addCleanup(monitor.close)
            barrier = threading.Barrier(9)
            done = threading.Event()
            pairs = []  # (outer id, inner id) as each thread nested them

            def work():
                barrier.wait()
                for _ in range(250):
                    outer = monitor.begin_trace("outer")
                    inner = monitor.begin_trace("inner")
                    pairs.append((outer.operation_id, inner.operation_id))
                    monitor.finish_trace(inner)
                    monitor.end_trace(outer.operation_id)

            def flusher():
                barrier.wait()
                while not done.is_set():
                    monitor.flush()

            threads = [threading.Thread(target=work) for _ in range(8)]
            sweeper = threading.Thread(target=flusher)
            for t in [*threads, sweeper]:
                t.start()
            for t in threads:
                t.join()
            done.set()
            sweeper.join()
            self.assertTrue(monitor.flush())
            rows = monitor.store.query_traces(0)
            self.assertEqual(4000, len(rows))
            self.assertEqual(4000, len({r.trace_id for r in rows}))
            parent_of = {r.trace_id: r.parent_id for r in rows}
            self.assertEqual(2000, len(pairs))
            self.assertEqual([(None, o) for o, _ in pairs], [(parent_of[o], o) for o, _ in pairs])
            self.assertEqual(pairs, [(parent_of[i], i) for _, i in pairs])
            self.assertEqual(0, monitor.active_trace_count)
            self.assertEqual((0, 0), (monitor.dropped_traces, monitor.expired_traces))

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_forked_child_has_its_own_ids_and_pid(self):
        """A forked child's trace ids get a new process prefix and its traces its own pid."""
        out = run_python(
            """
            import json, os
            from mgit_monitoring.performance import PerformanceMonitor
            m = PerformanceMonitor()
            m.end_trace(m.start_trace("parent"))
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                m.end_trace(m.start_trace("child"))
                (row,) = m.recent_traces("child")
                os.write(w, json.dumps([row.trace_id, row.pid, os.getpid()]).encode())
                os._exit(0)
            os.close(w)
            child = json.loads(os.read(r, 4096))
            os.waitpid(pid, 0)
            (row,) = m.recent_traces("parent")
            print(json.dumps([[row.trace_id, row.pid, os.getpid()], child]))
            """
        )
        self.assertEqual(0, out.returncode, out.stderr)
        (parent_id, parent_pid, parent_real), (child_id, child_pid, child_real) = json.loads(
            out.stdout
        )
        self.assertEqual((parent_pid, child_pid), (parent_real, child_real))
        self.assertRegex(child_id, r"^[0-9a-f]{16}$")
        self.assertNotEqual(parent_id[:8], child_id[:8])

    def test_correlation_id_recorded(self):
        """Each trace records the active correlation id."""
        cid = new_trace_id()
        with correlation_context(correlation_id=cid):
            self.timed("clone", 1)
        self.assertEqual(cid, self.monitor.recent_traces()[-1].correlation_id)

    def test_disabled_monitor_is_a_pass_through(self):
        """A disabled monitor records nothing and the decorated code still runs."""
        monitor = PerformanceMonitor(enabled=False)
        self.assertEqual("", monitor.start_trace("x"))
        with monitor.trace_operation("x"):
            pass
        self.assertEqual(0, monitor.get_operation_metrics("x").count)

    def test_bad_arguments(self):
        """Bad constructor and query arguments raise ValueError naming the value."""
        with self.assertRaisesRegex(ValueError, "max_traces=0"):
            PerformanceMonitor(max_traces=0)
        with self.assertRaisesRegex(ValueError, "hours=-1"):
            self.monitor.get_operation_metrics("x", hours=-1)


class TestNesting(MonitorCase):
    def parent_of(self, trace_id):
        for row in self.monitor.recent_traces():
            if row.trace_id == trace_id:
                return row.parent_id
        raise AssertionError(f"{trace_id} not completed")

    def test_nested_context_managers(self):
        """An inner trace's parent is the outer one; the current trace is restored after each."""
        with self.monitor.trace_operation("outer") as outer:
            with self.monitor.trace_operation("inner") as inner:
                self.assertEqual(inner, self.monitor.get_current_trace_id())
            self.assertEqual(outer, self.monitor.get_current_trace_id())
        self.assertIsNone(self.monitor.get_current_trace_id())
        self.assertEqual(outer, self.parent_of(inner))
        self.assertIsNone(self.parent_of(outer))

    def test_threads(self):
        """A plain thread starts without a parent; a thread run in a copied context inherits it."""
        seen = {}

        def child(key):
            with self.monitor.trace_operation(key) as trace_id:
                seen[key] = trace_id

        with self.monitor.trace_operation("outer") as outer:
            plain = threading.Thread(target=child, args=("plain",))
            ctx = contextvars.copy_context()
            copied = threading.Thread(target=ctx.run, args=(child, "copied"))
            for t in (plain, copied):
                t.start()
                t.join()
        self.assertIsNone(self.parent_of(seen["plain"]))
        self.assertEqual(outer, self.parent_of(seen["copied"]))

    def test_asyncio_siblings(self):
        """Concurrent tasks are children of the outer trace, never of each other."""
        monitor = PerformanceMonitor()
        self.monitor = monitor
        started = []

        async def child(n, gate):
            async with monitor.trace_operation(f"child{n}") as trace_id:
                started.append(trace_id)
                await gate.wait()  # all three overlap
                return trace_id

        async def main():
            gate = asyncio.Event()
            with monitor.trace_operation("outer") as outer:
                tasks = [asyncio.ensure_future(child(n, gate)) for n in range(3)]
                while len(started) < 3:
                    await asyncio.sleep(0)
                gate.set()
                children = await asyncio.gather(*tasks)
                self.assertEqual(outer, monitor.get_current_trace_id())
            return outer, children

        outer, children = asyncio.run(main())
        for trace_id in children:
            self.assertEqual(outer, self.parent_of(trace_id))
        self.assertIsNone(monitor.get_current_trace_id())

    def test_base_exception_ends_trace_as_failed(self):
        """KeyboardInterrupt ends the trace as failed with its type and propagates unchanged."""
        with self.assertRaises(KeyboardInterrupt), self.monitor.trace_operation("op"):
            raise KeyboardInterrupt
        metrics = self.monitor.get_operation_metrics("op")
        self.assertEqual((1, 1), (metrics.count, metrics.error_count))
        self.assertEqual({"KeyboardInterrupt": 1}, dict(metrics.error_types))
        self.assertEqual(0, self.monitor.active_trace_count)

    def test_cancellation_ends_trace_as_failed(self):
        """A cancelled task's trace ends as failed with CancelledError."""
        monitor = PerformanceMonitor()

        @monitor_performance("slow", monitor=monitor)
        async def slow(started):
            started.set()
            await asyncio.Event().wait()

        async def main():
            started = asyncio.Event()
            task = asyncio.ensure_future(slow(started))
            await started.wait()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        metrics = monitor.get_operation_metrics("slow")
        self.assertEqual({"CancelledError": 1}, dict(metrics.error_types))
        self.assertEqual(0, monitor.active_trace_count)


class TestDecorator(unittest.TestCase):
    def setUp(self):
        previous = reset_performance_monitor()
        self.addCleanup(restore_default_monitor, previous)
        reset_metrics_collector()  # and the default registry the default monitor counts on
        self.addCleanup(reset_metrics_collector)

    def test_generators_traced_over_their_iteration(self):
        """A generator's trace spans its iteration and parents the traces its body starts;
        an early stop is a success, an error mid-way a failure by type."""
        monitor = get_performance_monitor()

        @monitor_performance("inner")
        def inner():
            return monitor.get_current_trace_id()

        @monitor_performance("pages")
        def pages(n):
            for _ in range(n):
                yield inner()

        @monitor_performance("apages")
        async def apages(fail):
            yield 1
            if fail:
                raise TimeoutError("slow")

        async def consume(fail):
            return [page async for page in apages(fail)]

        self.assertEqual([], monitor.recent_traces())
        gen = pages(3)
        self.assertEqual([], monitor.recent_traces())  # nothing ran yet
        parents = list(gen)
        for _ in pages(5):
            break
        gen = None
        asyncio.run(consume(False))
        with self.assertRaises(TimeoutError):
            asyncio.run(consume(True))
        rows = {r.trace_id: r for r in monitor.recent_traces()}
        self.assertEqual(len(set(parents)), 3)
        (outer,) = {rows[trace_id].parent_id for trace_id in parents}
        self.assertEqual("pages", rows[outer].operation)
        self.assertEqual(2, monitor.get_operation_metrics("pages").success_count)
        apages_stats = monitor.get_operation_metrics("apages")
        self.assertEqual((2, {"TimeoutError": 1}), (apages_stats.count, apages_stats.error_types))
        self.assertIsNone(monitor.get_current_trace_id())
        self.assertEqual(0, monitor.active_trace_count)

    def test_descriptors_and_partials(self):
        """Above @classmethod/@staticmethod, and bare on a functools.partial, it works."""

        class Repo:
            @monitor_performance
            @classmethod
            def make(cls, n):
                return cls, n

            @monitor_performance("static")
            @staticmethod
            def static(n):
                return n

        def add(a, b):
            return a + b

        partial = monitor_performance(functools.partial(add, 1))
        self.assertEqual((Repo, 1), Repo.make(1))
        self.assertEqual(2, Repo().static(2))
        self.assertEqual(3, partial(2))
        names = set(get_performance_monitor().get_all_operation_metrics())
        make = f"{__name__}.{Repo.make.__func__.__qualname__}"
        self.assertEqual({f"{__name__}.{add.__qualname__}", "static", make}, names)

    def test_clean_exit_is_a_success(self):
        """SystemExit(0) ends the trace as a success, SystemExit(2) as a failure."""
        monitor = get_performance_monitor()

        @monitor_performance("cli")
        def cli(code):
            raise SystemExit(code)

        for code in (0, 2):
            with self.assertRaises(SystemExit):
                cli(code)
        with self.assertRaises(SystemExit), monitor.trace_operation("cli"):
            sys.exit()
        stats = monitor.get_operation_metrics("cli")
        self.assertEqual(
            (3, 2, {"SystemExit": 1}), (stats.count, stats.success_count, stats.error_types)
        )

    def test_default_follows_the_default_collector(self):
        """Before any setup: disabled by MGIT_MONITORING_ENABLED=false, and anomalies are
        counted on the default registry, the one the default collector exports."""
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "false"}):
            self.assertFalse(get_performance_monitor().enabled)
        reset_performance_monitor()
        reset_metrics_collector()
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "true"}):
            monitor = get_performance_monitor()
        self.assertTrue(monitor.enabled)
        # A nanosecond baseline: any real trace is far slower than 3x that.
        monitor.set_performance_baseline("clone_operation", {"avg_duration": 1e-9})
        with self.assertLogs(LOGGER, "WARNING"):
            monitor.end_trace(monitor.start_trace("clone_operation"))
        self.assertEqual(
            1.0,
            get_metrics_collector().registry.get_sample_value(
                "mgit_performance_anomalies_total",
                {"operation": "clone_operation", "type": "slow_operation"},
            ),
        )

    def test_sync_and_async_preserve_metadata(self):
        """Name, docstring and signature survive; sync and async calls return their results."""

        @monitor_performance("git_clone")
        def clone(url: str, path: str = ".") -> str:
            """Clone it."""
            return url + path

        @monitor_performance("api")
        async def call(n: int) -> int:
            """Call it."""
            return n * 2

        self.assertEqual(("clone", "Clone it."), (clone.__name__, clone.__doc__))
        self.assertEqual(["url", "path"], list(inspect.signature(clone).parameters))
        self.assertEqual(inspect.signature(clone.__wrapped__), inspect.signature(clone))
        self.assertTrue(inspect.iscoroutinefunction(call))
        self.assertEqual("u/p", clone("u/", "p"))
        self.assertEqual(4, asyncio.run(call(2)))
        monitor = get_performance_monitor()
        self.assertEqual(1, monitor.get_operation_metrics("git_clone").count)
        self.assertEqual(1, monitor.get_operation_metrics("api").count)

    def test_default_name_and_bare_decorator(self):
        """Bare @monitor_performance names the trace module.qualname."""

        @monitor_performance
        def work():
            return 1

        work()
        names = list(get_performance_monitor().get_all_operation_metrics())
        self.assertEqual([f"{__name__}.{work.__qualname__}"], names)

    def test_exception_propagates_and_is_recorded(self):
        """The original exception propagates and the trace records its type."""

        @monitor_performance("boom")
        def boom():
            raise LookupError("missing")

        with self.assertRaisesRegex(LookupError, "missing"):
            boom()
        metrics = get_performance_monitor().get_operation_metrics("boom")
        self.assertEqual({"LookupError": 1}, dict(metrics.error_types))

    def test_monitor_installed_later_is_used(self):
        """A function decorated before set_performance_monitor reports to the new monitor."""

        @monitor_performance("late")
        def late():
            return None

        installed = PerformanceMonitor()
        set_performance_monitor(installed)
        late()
        self.assertIs(installed, get_performance_monitor())
        self.assertEqual(1, installed.get_operation_metrics("late").count)

    def test_default_is_one_object_under_threads(self):
        """Threads racing on first use all get the same default monitor."""
        barrier = threading.Barrier(8)
        seen = []

        def get():
            barrier.wait()
            seen.append(get_performance_monitor())

        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(1, len({id(m) for m in seen}))
        reset_performance_monitor()
        self.assertIsNot(seen[0], get_performance_monitor())


class TestStatistics(MonitorCase):
    def test_seed_print_lines(self):
        """The seed's print lines work and show hand-computed values for durations 1..10 s."""
        for seconds in range(1, 11):
            self.timed("clone_repos", seconds, success=seconds != 10, error="timeout")
        metrics = self.monitor.get_operation_metrics("clone_repos", hours=24)
        lines = [
            f"Average duration: {metrics.avg_duration:.2f}s",
            f"95th percentile: {metrics.p95_duration:.2f}s",
            f"Success rate: {metrics.success_rate:.1f}%",
        ]
        self.assertEqual(
            ["Average duration: 5.50s", "95th percentile: 9.55s", "Success rate: 90.0%"], lines
        )
        self.assertEqual((10, 9, 1), (metrics.count, metrics.success_count, metrics.error_count))
        self.assertEqual((1.0, 10.0), (metrics.min_duration, metrics.max_duration))
        self.assertEqual(5.5, metrics.median_duration)
        self.assertEqual(5.5, metrics.p50_duration)
        self.assertAlmostEqual(9.91, metrics.p99_duration)
        self.assertEqual(55.0, metrics.total_duration)
        self.assertEqual({"timeout": 1}, dict(metrics.error_types))
        self.assertIs(OperationMetrics, PerformanceMetrics)

    def test_empty_operation(self):
        """No traces: count 0, a falsy result, NaN durations that still format, None in JSON."""
        metrics = self.monitor.get_operation_metrics("never")
        self.assertFalse(metrics)
        self.assertEqual(0, metrics.count)
        self.assertEqual("nan", f"{metrics.p95_duration:.2f}")
        self.assertIsNone(json.loads(json.dumps(metrics.as_dict()))["avg_duration"])

    def test_counts_and_rate_share_one_window(self):
        """Failures that left the window no longer count: the rate cannot go negative."""
        self.monitor = PerformanceMonitor(
            retention_hours=72, clock=self.clock, wall_clock=self.wall
        )
        for _ in range(5):
            self.timed("sync", 1, success=False, error=RuntimeError("x"))
        self.wall.now += 25 * 3600
        for _ in range(5):
            self.timed("sync", 1)
        metrics = self.monitor.get_operation_metrics("sync", hours=24)
        self.assertEqual((5, 0, 100.0), (metrics.count, metrics.error_count, metrics.success_rate))
        wide = self.monitor.get_operation_metrics("sync", hours=48)
        self.assertEqual((10, 5, 50.0), (wide.count, wide.error_count, wide.success_rate))

    def test_summary_of_all_operations(self):
        """get_all_operation_metrics and get_summary cover every operation."""
        self.timed("a", 1)
        self.timed("b", 2, success=False)
        everything = self.monitor.get_all_operation_metrics()
        self.assertEqual(["a", "b"], list(everything))
        self.assertEqual(0.0, everything["b"].success_rate)
        summary = self.monitor.get_summary()
        self.assertEqual({"a", "b"}, set(summary["operations"]))
        self.assertEqual("linear", summary["percentile_method"])
        json.dumps(summary)  # JSON-ready


class TestBounds(MonitorCase):
    def test_cap_holds_far_more_traces_than_memory(self):
        """Recording 20,000 traces with a cap of 100 keeps only the newest 100."""
        monitor = PerformanceMonitor(max_traces=100, clock=self.clock, wall_clock=self.wall)
        for i in range(20000):
            self.wall.now += 0.001
            self.timed("op", i % 7, monitor=monitor)
        metrics = monitor.get_operation_metrics("op")
        self.assertEqual(100, metrics.count)
        self.assertEqual(100, len(monitor.recent_traces()))
        self.assertEqual(6.0, metrics.max_duration)

    def test_retention_window_empties_memory(self):
        """Traces older than retention_hours leave memory when newer ones arrive."""
        monitor = PerformanceMonitor(retention_hours=1, clock=self.clock, wall_clock=self.wall)
        for _ in range(50):
            self.timed("op", 1, monitor=monitor)
        self.wall.now += 2 * 3600
        self.timed("op", 1, monitor=monitor)
        self.assertEqual(1, len(monitor.recent_traces()))

    def test_never_ended_traces_expire(self):
        """A trace never ended is dropped after trace_timeout; ending it later returns None."""
        monitor = PerformanceMonitor(trace_timeout=30, clock=self.clock, wall_clock=self.wall)
        forgotten = monitor.start_trace("leak")
        self.clock.now += 61
        monitor.start_trace("later")
        self.assertEqual(1, monitor.active_trace_count)
        self.assertEqual(1, monitor.expired_traces)
        self.assertIsNone(monitor.end_trace(forgotten))

    def test_active_traces_are_capped(self):
        """Thousands of never-ended traces never hold more than max_traces."""
        monitor = PerformanceMonitor(max_traces=50, clock=self.clock, wall_clock=self.wall)
        for _ in range(5000):  # each in a context of its own, as if in its own task
            trace_id = contextvars.copy_context().run(monitor.start_trace, "leak")
        self.assertLessEqual(monitor.active_trace_count, 50)
        self.assertEqual(4950, monitor.expired_traces)
        self.assertIsNotNone(monitor.end_trace(trace_id))


class TestAnomalies(MonitorCase):
    def setUp(self):
        super().setUp()
        self.registry = Registry()
        self.monitor = PerformanceMonitor(
            registry=self.registry, clock=self.clock, wall_clock=self.wall
        )

    def count(self, kind):
        return self.registry.get_sample_value(
            "mgit_performance_anomalies_total", {"operation": "clone", "type": kind}
        )

    def test_slow_trace_is_logged_and_counted(self):
        """Slower than 3x the baseline average: one WARNING with the correlation id and a count."""
        self.monitor.set_performance_baseline("clone", {"avg_duration": 1.0, "p95_duration": 2.0})
        cid = new_trace_id()
        with self.assertLogs(LOGGER, "WARNING") as logs, correlation_context(correlation_id=cid):
            self.timed("clone", 3.5)
        self.assertEqual(1, len(logs.records))
        self.assertIn(cid, logs.output[0])
        self.assertIn("slow_operation", logs.output[0])
        self.assertEqual(1.0, self.count("slow_operation"))

    def test_p95_rule_and_quiet_when_normal(self):
        """Above 2x baseline p95 counts as p95_exceeded; a normal trace logs nothing."""
        self.monitor.set_performance_baseline("clone", {"p95_duration": 1.0})
        records = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = records.append  # type: ignore[method-assign]
        log = logging.getLogger(LOGGER)
        log.addHandler(handler)
        self.addCleanup(log.removeHandler, handler)
        self.timed("clone", 1.9)
        self.assertEqual([], records)
        self.assertIsNone(self.count("p95_exceeded"))
        self.timed("clone", 2.1)
        self.assertEqual(["p95_exceeded"], [r.anomaly_type for r in records])
        self.assertEqual(1.0, self.count("p95_exceeded"))

    def test_learned_baseline(self):
        """With learn_baselines, 20 one-second traces make a 10 s trace an anomaly."""
        monitor = PerformanceMonitor(
            registry=self.registry,
            clock=self.clock,
            wall_clock=self.wall,
            learn_baselines=True,
        )
        for _ in range(20):
            self.timed("clone", 1, monitor=monitor)
        with self.assertLogs(LOGGER, "WARNING"):
            self.timed("clone", 10, monitor=monitor)
        self.assertEqual(
            {"avg_duration": 1.0, "p95_duration": 1.0}, monitor.get_performance_baseline("clone")
        )
        self.assertEqual(1.0, self.count("slow_operation"))

    def test_bad_baseline(self):
        """A baseline without numbers is refused with a clear error."""
        with self.assertRaisesRegex(ValueError, "avg_duration='fast'"):
            self.monitor.set_performance_baseline("clone", {"avg_duration": "fast"})
        with self.assertRaises(ValueError):
            self.monitor.set_performance_baseline("clone", {})


class TestPersistence(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def make(self, **kwargs) -> PerformanceMonitor:
        monitor = PerformanceMonitor(state_dir=self.dir, flush_interval=3600, **kwargs)
        self.addCleanup(monitor.close)
        return monitor

    def test_construction_starts_nothing(self):
        """A monitor with a state dir creates no file and no thread until a trace completes."""
        before = set(flush_threads())
        monitor = self.make()
        self.assertEqual(set(), set(flush_threads()) - before)
        self.assertEqual([], os.listdir(self.dir))
        monitor.end_trace(monitor.start_trace("op"))
        (flusher,) = set(flush_threads()) - before
        self.assertTrue(flusher.is_alive())
        monitor.close()
        flusher.join(10)
        self.assertFalse(flusher.is_alive())

    def test_batched_writes_counted_once(self):
        """Traces reach the store only on flush, and metrics count each exactly once throughout."""
        monitor = self.make()
        for _ in range(5):
            monitor.end_trace(monitor.start_trace("clone"))
        self.assertEqual([], monitor.store.query_traces(0))
        self.assertEqual(5, monitor.get_operation_metrics("clone").count)
        self.assertTrue(monitor.flush())
        self.assertEqual(5, len(monitor.store.query_traces(0)))
        self.assertEqual(5, monitor.get_operation_metrics("clone").count)

    def test_traces_dropped_while_the_store_is_locked_are_counted_exactly(self):
        """While another connection holds the store exclusively, 4 threads record 2,000
        traces into a 16-trace buffer and a thread keeps trying to flush: once the lock is
        gone, the traces stored plus those counted as dropped are exactly 2,000."""
        monitor = self.make(max_traces=16, store_timeout=0.05)
        monitor.end_trace(monitor.start_trace("opens the store"))
        self.assertTrue(monitor.flush())
        locker = sqlite3.connect(monitor.store.path, isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN EXCLUSIVE")
        barrier = threading.Barrier(5)
        done = threading.Event()
        flushes = []

        def work():
            barrier.wait()
            for _ in range(500):
                monitor.end_trace(monitor.start_trace("op"))

        def flusher():
            barrier.wait()
            while not done.is_set():
                flushes.append(monitor.flush())

        threads = [threading.Thread(target=work) for _ in range(4)]
        trying = threading.Thread(target=flusher)
        with self.assertLogs("mgit_monitoring.store", logging.WARNING) as logs:
            for t in [*threads, trying]:
                t.start()
            for t in threads:
                t.join()
            done.set()
            trying.join()
            flushes.append(monitor.flush())  # one more while locked, however threads ran
        self.assertIn("store locked", logs.output[0])
        locker.execute("COMMIT")
        self.assertTrue(monitor.flush())
        self.assertFalse(flushes[-1])  # the store did refuse while locked
        stored = len(monitor.store.query_traces(0, "op"))
        self.assertEqual(16, stored)
        self.assertEqual(2000, stored + monitor.dropped_traces)

    def test_error_text_stays_out_of_the_store(self):
        """The stored trace keeps the error type but not the message, which may hold secrets."""
        monitor = self.make()
        trace_id = monitor.start_trace("clone")
        monitor.end_trace(trace_id, success=False, error=OSError("https://user:tok@host/x"))
        monitor.flush()
        (row,) = monitor.store.query_traces(0)
        self.assertEqual("OSError", row.error_type)
        self.assertNotIn("tok", json.dumps(row.metadata))

    def test_other_process_sees_history(self):
        """get_operation_metrics in a separate process sees traces written by this one."""
        clock = Clock(0.0)
        monitor = self.make(clock=clock)
        for seconds in (1.0, 2.0, 3.0):
            trace_id = monitor.start_trace("clone_repos")
            clock.now += seconds
            monitor.end_trace(trace_id)
        monitor.flush()
        out = run_python(
            """
            import json, sys
            from mgit_monitoring.performance import PerformanceMonitor
            m = PerformanceMonitor(state_dir=sys.argv[1]).get_operation_metrics("clone_repos")
            print(json.dumps([m.count, m.avg_duration, m.p50_duration]))
            """,
            self.dir,
        )
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual([3, 2.0, 2.0], json.loads(out.stdout))

    def test_processes_flush_at_exit_concurrently(self):
        """4 processes x 200 traces that never call flush() all land in the store at exit."""
        code = """
            import sys
            from mgit_monitoring.performance import PerformanceMonitor
            m = PerformanceMonitor(state_dir=sys.argv[1], flush_interval=3600)
            sys.stdin.readline()
            for _ in range(200):
                m.end_trace(m.start_trace("clone"))
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code), self.dir],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate("go\n", timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, results):
            self.assertEqual(0, p.returncode, err)
            self.assertEqual("", err)
        metrics = self.make().get_operation_metrics("clone")
        self.assertEqual(800, metrics.count)

    def test_unwritable_state_dir_keeps_working_in_memory(self):
        """A state dir under a regular file: one store warning, statistics still right."""
        blocker = os.path.join(self.dir, "file")
        pathlib.Path(blocker).write_text("x")
        monitor = PerformanceMonitor(state_dir=os.path.join(blocker, "state"), flush_interval=3600)
        self.addCleanup(monitor.close)
        with self.assertLogs("mgit_monitoring.store", "WARNING") as logs:
            for _ in range(3):
                monitor.end_trace(monitor.start_trace("op"))
            self.assertFalse(monitor.flush())
        self.assertEqual(1, len(logs.output))
        self.assertIsNone(monitor.store)
        self.assertEqual(3, monitor.get_operation_metrics("op").count)

    def test_shared_store_object(self):
        """A monitor can use a Store it is given; the store's cleanup applies the monitor's
        retention to the traces it wrote."""
        now = Clock()
        store = Store.open(self.dir, flush_interval=3600, clock=now)
        self.addCleanup(store.close)
        wall = Clock(now.now - 2 * 3600)  # the first trace starts two hours ago
        monitor = PerformanceMonitor(store=store, retention_hours=1, wall_clock=wall)
        monitor.end_trace(monitor.start_trace("old"))
        wall.now = now.now
        monitor.end_trace(monitor.start_trace("new"))
        self.assertTrue(monitor.flush())  # the monitor's batch alone: no maintenance yet
        self.assertEqual(2, len(store.query_traces(0)))
        self.assertEqual(1, store.cleanup())
        self.assertEqual(["new"], [row.operation for row in store.query_traces(0)])


class TestStoreOpenedOnFirstNeed(unittest.TestCase):
    """store_opener: the store is opened when a trace must be kept, not when the monitor is
    built (setup_monitoring_integration relies on it to keep sqlite3 out of start-up)."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.state_dir = tmp.name
        self.opened = []

    def opener(self) -> Store:
        store = Store.open(self.state_dir)
        self.addCleanup(store.close)
        self.opened.append(store)
        return store

    def test_opened_by_the_first_completed_trace(self) -> None:
        monitor = PerformanceMonitor(store_opener=self.opener)
        trace = monitor.start_trace("clone")
        self.assertEqual(self.opened, [])
        monitor.end_trace(trace, True)
        self.assertEqual(len(self.opened), 1)
        self.assertTrue(monitor.flush())
        self.assertEqual(["clone"], [r.operation for r in self.opened[0].query_traces(0)])
        monitor.end_trace(monitor.start_trace("clone"), True)
        self.assertEqual(len(self.opened), 1)  # once

    def test_opened_by_a_query_and_failures_fall_back_to_memory(self) -> None:
        self.assertEqual(PerformanceMonitor(store_opener=self.opener).store, self.opened[0])

        def broken() -> Store:
            raise OSError("read-only file system")

        monitor = PerformanceMonitor(store_opener=broken)
        with self.assertLogs("mgit_monitoring.performance", logging.WARNING):
            monitor.end_trace(monitor.start_trace("pull"), True)
        self.assertIsNone(monitor.store)
        self.assertEqual(1, monitor.get_operation_metrics("pull").count)  # kept in memory

    def test_trace_row_positions(self) -> None:
        """The positions the monitor uses for its in-memory records are TraceRow's."""
        from mgit_monitoring import performance
        from mgit_monitoring.store import TraceRow

        fields = TraceRow._fields
        self.assertEqual(fields.index("start_time"), performance._START)
        self.assertEqual(fields.index("metadata"), performance._METADATA)
        self.assertEqual(len(fields), 10)


if __name__ == "__main__":
    unittest.main()
