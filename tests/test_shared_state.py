"""Cross-process metrics: deltas flushed to the shared store, merged views, gauges of dead
processes, compaction, faults, and real processes writing in parallel."""

from __future__ import annotations

import http.client
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.exposition import render_text
from mgit_monitoring.registry import Registry
from mgit_monitoring.shared_state import (
    SharedMetrics,
    clear_shared_metrics,
    merged_snapshot,
)
from mgit_monitoring.store import STORE_FILENAME, Store

ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
LOGGER = "mgit_monitoring.shared_state"
OPS = "mgit_operations_total"
CLONE = {"operation": "clone", "provider": "github"}

# A worker process: records ``n`` clone operations through the collector, flushing with a
# background thread every ``interval`` seconds, then behaves as ``mode`` says.
WORKER = textwrap.dedent(
    """
    import sys
    from mgit_monitoring.collector import MetricsCollector
    from mgit_monitoring.shared_state import SharedMetrics
    from mgit_monitoring.store import Store

    state_dir, n, interval, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    metrics = MetricsCollector(process_metrics=False)
    shared = SharedMetrics(Store.open(state_dir), metrics.registry).start(interval)
    for i in range(n):
        metrics.record_operation("clone", True, 0.01 * (i % 7), provider="github")
    metrics.update_concurrent_operations(3)
    if mode == "exit":
        sys.exit(0)
    if mode == "kill":
        shared.flush()
        for i in range(n):  # never flushed: the interval is long and the process is killed
            metrics.record_operation("pull", True, 0.5, provider="github")
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def _child_env() -> dict:
    return dict(os.environ, PYTHONPATH=ROOT)


def wait_child(pid: int, timeout: float = 30.0) -> int:
    """The exit code of forked child ``pid``; kills it and returns -1 if it still runs."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        time.sleep(delay)  # another process: no event to wait on
        delay = min(delay * 2, 0.2)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class SharedCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def store(self, **kwargs) -> Store:
        store = Store.open(self.dir, **kwargs)
        self.addCleanup(store.close)
        return store

    def shared(self, registry: Registry, process_id: str, **kwargs) -> SharedMetrics:
        shared = SharedMetrics(self.store(), registry, process_id=process_id, **kwargs)
        self.addCleanup(shared.stop)
        return shared

    def rows(self, sql: str) -> list:
        conn = sqlite3.connect(os.path.join(self.dir, STORE_FILENAME))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def spawn(self, n: int, interval: float, mode: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, self.dir, str(n), str(interval), mode],
            env=_child_env(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

        def cleanup() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

        self.addCleanup(cleanup)
        return proc


class TestDeltas(SharedCase):
    def test_counters_sum_over_processes_and_flushes(self):
        """Two processes flushing several times add up exactly, with no double counting."""
        a, b = Registry(), Registry()
        ca = a.counter("jobs_total", "Jobs.", ("kind",))
        cb = b.counter("jobs_total", "Jobs.", ("kind",))
        sa, sb = self.shared(a, "a"), self.shared(b, "b")
        ca.labels("x").inc(3)
        self.assertTrue(sa.flush())
        ca.labels("x").inc(2)
        cb.labels("x").inc(10)
        cb.labels("y").inc(1.5)
        self.assertTrue(sa.flush() and sb.flush() and sa.flush())
        snap = merged_snapshot(self.store())
        self.assertEqual(snap.get_sample_value("jobs_total", {"kind": "x"}), 15)
        self.assertEqual(snap.get_sample_value("jobs_total", {"kind": "y"}), 1.5)

    def test_histograms_sum_buckets_sum_and_count(self):
        """Histogram buckets, _sum and _count are summed across processes."""
        a, b = Registry(), Registry()
        for reg, values in ((a, (0.5, 3.0)), (b, (0.5, 20.0))):
            h = reg.histogram("lat_seconds", "Latency.", buckets=(1.0, 10.0))
            for v in values:
                h.observe(v)
        self.shared(a, "a").flush()
        self.shared(b, "b").flush()
        snap = merged_snapshot(self.store())
        self.assertEqual(snap.get_sample_value("lat_seconds_bucket", {"le": "1.0"}), 2)
        self.assertEqual(snap.get_sample_value("lat_seconds_bucket", {"le": "10.0"}), 3)
        self.assertEqual(snap.get_sample_value("lat_seconds_bucket", {"le": "+Inf"}), 4)
        self.assertEqual(snap.get_sample_value("lat_seconds_count"), 4)
        self.assertEqual(snap.get_sample_value("lat_seconds_sum"), 24.0)

    def test_snapshot_counts_unflushed_changes_once(self):
        """SharedMetrics.snapshot shows unflushed increments, and the same total after a flush."""
        reg = Registry()
        c = reg.counter("jobs_total", "Jobs.")
        shared = self.shared(reg, "a")
        c.inc(4)
        shared.flush()
        c.inc(3)
        self.assertEqual(shared.snapshot().get_sample_value("jobs_total"), 7)
        shared.flush()
        self.assertEqual(shared.snapshot().get_sample_value("jobs_total"), 7)
        self.assertEqual(merged_snapshot(self.store()).get_sample_value("jobs_total"), 7)

    def test_local_registry_is_added(self):
        """merged_snapshot adds a local registry's values and its collectors' families."""
        reg = Registry()
        reg.counter("jobs_total", "Jobs.").inc(2)
        self.shared(reg, "a").flush()
        local = MetricsCollector()  # its own registry: process_* collectors included
        local.registry.counter("jobs_total", "Jobs.").inc(5)
        snap = merged_snapshot(self.store(), local.registry)
        self.assertEqual(snap.get_sample_value("jobs_total"), 7)
        self.assertIsNotNone(snap.family("python_info"))

    def test_local_registry_as_definitions_only(self):
        """local_values=False adds HELP/TYPE of unflushed families but none of their values."""
        reg = Registry()
        reg.counter("jobs_total", "Jobs.").inc(2)
        reg.gauge("health", "Health.", merge="last").set(1)
        self.shared(reg, "a").flush()
        local = MetricsCollector()  # process_* collectors, mgit_health_overall = -1
        local.registry.counter("jobs_total", "Jobs.").inc(5)
        local.registry.gauge("health", "Health.", merge="last").set(-1)
        local.registry.counter("never_flushed_total", "Nobody flushed this.", ("op",))
        snap = merged_snapshot(self.store(), local.registry, local_values=False)
        self.assertEqual(snap.get_sample_value("jobs_total"), 2)
        self.assertEqual(snap.get_sample_value("health"), 1)
        self.assertIsNone(snap.family("python_info"))
        self.assertIn("# TYPE never_flushed_total counter\n", render_text(snap).decode())

    def test_reader_renders_definitions_it_never_registered(self):
        """A reader that registered nothing renders HELP, TYPE and buckets from the store."""
        metrics = MetricsCollector(process_metrics=False)
        metrics.record_operation("clone", True, 0.2, provider="github")
        self.shared(metrics.registry, "writer").flush()
        text = render_text(merged_snapshot(self.store())).decode()
        self.assertIn("# HELP mgit_operations_total Total number of mgit operations.\n", text)
        self.assertIn("# TYPE mgit_operation_duration_seconds histogram\n", text)
        self.assertIn(
            'mgit_operation_duration_seconds_bucket{operation="clone",provider="github",'
            'le="0.25"} 1\n',
            text,
        )
        self.assertIn("# TYPE mgit_errors_total counter\n", text)  # defined, never recorded

    def test_counter_reset_counts_from_zero(self):
        """A registry reset after a flush is not a negative delta: new counts are added."""
        metrics = MetricsCollector(process_metrics=False)
        shared = self.shared(metrics.registry, "a")
        for _ in range(5):
            metrics.record_operation("clone", True, provider="github")
        shared.flush()
        metrics.reset_metrics()
        metrics.record_operation("clone", True, provider="github")
        shared.flush()
        self.assertEqual(merged_snapshot(self.store()).get_sample_value(OPS, CLONE), 6)

    def test_clear(self):
        """clear_shared_metrics forgets one family or everything."""
        reg = Registry()
        reg.counter("a_total", "A.").inc()
        reg.counter("b_total", "B.").inc()
        self.shared(reg, "a").flush()
        store = self.store()
        self.assertTrue(clear_shared_metrics(store, ["a_total", "a"]))
        snap = merged_snapshot(store)
        self.assertIsNone(snap.family("a"))
        self.assertEqual(snap.get_sample_value("b_total"), 1)
        self.assertTrue(clear_shared_metrics(store))
        self.assertEqual(merged_snapshot(store).families, ())

    def test_live_writer_is_visible_again_after_a_clear(self):
        """What a running writer counts after a clear is shown, with its gauges."""
        reg = Registry()
        c = reg.counter("c_total", "C.")
        g = reg.gauge("g", "G.", merge="sum")
        shared = self.shared(reg, "w")
        c.inc()
        g.set(2)
        shared.flush()
        store = self.store()
        self.assertTrue(clear_shared_metrics(store, ["c"]))
        c.inc(5)
        shared.flush()
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 5)
        self.assertTrue(clear_shared_metrics(store))
        c.inc()
        shared.flush()
        snap = merged_snapshot(store)
        self.assertEqual(snap.get_sample_value("c_total"), 1)
        self.assertEqual(snap.get_sample_value("g"), 2)


class TestCompaction(SharedCase):
    def test_one_row_per_series_however_many_processes(self):
        """200 processes that flushed and exited leave one row per series and no process rows."""
        store = self.store()
        for i in range(200):
            metrics = MetricsCollector(process_metrics=False)
            metrics.record_operation("clone", True, 0.1, provider="github")
            SharedMetrics(store, metrics.registry, process_id=f"p{i}").stop()
        snap = merged_snapshot(store)
        self.assertEqual(snap.get_sample_value(OPS, CLONE), 200)
        self.assertEqual(snap.get_sample_value("mgit_operation_duration_seconds_count", CLONE), 200)
        series = sum(len(f.series) for f in snap.families if f.type != "gauge")
        self.assertEqual(self.rows("SELECT count(*) FROM sm_totals")[0][0], series)
        self.assertEqual(self.rows("SELECT count(*) FROM sm_processes")[0][0], 0)
        self.assertEqual(self.rows("SELECT count(*) FROM sm_gauges")[0][0], 0)


class TestGauges(SharedCase):
    def gauges(self, merge: str) -> float:
        for value, pid in ((2, "a"), (7, "b"), (5, "c")):
            reg = Registry()
            reg.gauge("g", "G.", merge=merge).set(value)
            self.shared(reg, pid).flush()
        return merged_snapshot(self.store()).get_sample_value("g")

    def test_sum(self):
        """merge="sum" adds the live processes' values."""
        self.assertEqual(self.gauges("sum"), 14)

    def test_max(self):
        """merge="max" picks the largest value."""
        self.assertEqual(self.gauges("max"), 7)

    def test_min(self):
        """merge="min" picks the smallest value."""
        self.assertEqual(self.gauges("min"), 2)

    def test_last_is_the_most_recently_changed(self):
        """merge="last" shows the value changed most recently, not the last flushed."""
        now = [100.0]
        a, b = Registry(), Registry()
        ga, gb = a.gauge("g", "G."), b.gauge("g", "G.")
        sa = self.shared(a, "a", clock=lambda: now[0])
        sb = self.shared(b, "b", clock=lambda: now[0])
        ga.set(1)
        sa.flush()
        now[0] = 101.0
        gb.set(2)
        sb.flush()
        now[0] = 102.0
        sa.flush()  # unchanged: does not become "last"
        snap = merged_snapshot(self.store(), clock=lambda: now[0])
        self.assertEqual(snap.get_sample_value("g"), 2)

    def test_stop_removes_the_process_gauges(self):
        """A process that stops takes its gauges with it; its counters stay."""
        reg = Registry()
        reg.gauge("g", "G.", merge="sum").set(3)
        reg.counter("c_total", "C.").inc()
        shared = self.shared(reg, "a")
        shared.flush()
        self.assertEqual(merged_snapshot(self.store()).get_sample_value("g"), 3)
        shared.stop()
        snap = merged_snapshot(self.store())
        self.assertIsNone(snap.get_sample_value("g"))
        self.assertEqual(snap.get_sample_value("c_total"), 1)
        self.assertIn("# TYPE g gauge", render_text(snap).decode())

    def test_expired_heartbeat_on_another_host(self):
        """A process on another host counts while its heartbeat is valid, then is dropped."""
        reg = Registry()
        reg.gauge("g", "G.", merge="sum").set(3)
        self.shared(reg, "far", heartbeat_ttl=10, clock=lambda: 100.0, hostname="far").flush()
        store = self.store()
        self.assertEqual(merged_snapshot(store, clock=lambda: 109.0).get_sample_value("g"), 3)
        self.assertIsNone(merged_snapshot(store, clock=lambda: 111.0).get_sample_value("g"))

    def test_reused_pid_is_dead(self):
        """A stored process whose pid now belongs to another process (start time differs) is
        dead."""
        boot_id = "/proc/sys/kernel/random/boot_id"
        if not os.path.exists(f"/proc/{os.getpid()}/stat") or not os.path.exists(boot_id):
            self.skipTest("needs /proc")
        # The writer's /proc says our pid started at tick 1: an earlier process, same host.
        fake = pathlib.Path(self.dir, "proc")
        random_dir = fake / "sys" / "kernel" / "random"
        random_dir.mkdir(parents=True)
        (random_dir / "boot_id").write_text(pathlib.Path(boot_id).read_text())
        (fake / str(os.getpid())).mkdir()
        stat = f"{os.getpid()} (python3) S " + " ".join(["0"] * 18 + ["1"] + ["0"] * 5)
        (fake / str(os.getpid()) / "stat").write_text(stat)
        reg = Registry()
        reg.gauge("g", "G.", merge="sum").set(3)
        self.shared(reg, "old", proc_root=str(fake)).flush()
        self.assertIsNone(merged_snapshot(self.store()).get_sample_value("g"))

    def test_dead_rows_are_deleted_by_the_next_writer(self):
        """A writer deletes the gauges and process rows of processes found dead."""
        reg = Registry()
        reg.gauge("g", "G.", merge="sum").set(3)
        self.shared(reg, "gone", heartbeat_ttl=1, clock=lambda: 100.0, hostname="far").flush()
        self.shared(Registry(), "next", clock=lambda: 200.0).flush()
        self.assertEqual(self.rows("SELECT process FROM sm_processes"), [("next",)])
        self.assertEqual(self.rows("SELECT count(*) FROM sm_gauges")[0][0], 0)


class TestDefinitions(SharedCase):
    def test_differing_buckets_keep_the_first_definition(self):
        """A histogram with other buckets is kept out of the store, with one warning."""
        a, b = Registry(), Registry()
        a.histogram("h_seconds", "H.", buckets=(1.0, 2.0)).observe(1.5)
        hb = b.histogram("h_seconds", "H.", buckets=(5.0, 10.0))
        hb.observe(7.0)
        self.shared(a, "a").flush()
        sb = self.shared(b, "b")
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertTrue(sb.flush())
            hb.observe(8.0)
            self.assertTrue(sb.flush())
        self.assertEqual(len(logs.records), 1)
        self.assertIn("h_seconds", logs.output[0])
        self.assertIn("[5.0, 10.0]", logs.output[0])
        snap = merged_snapshot(self.store())
        self.assertEqual(snap.family("h_seconds").bounds, (1.0, 2.0, float("inf")))
        self.assertEqual(snap.get_sample_value("h_seconds_count"), 1)

    def test_type_conflict(self):
        """A gauge named like a stored counter family is not mixed into it."""
        a, b = Registry(), Registry()
        a.counter("x_total", "X.").inc(2)
        b.gauge("x", "X.").set(9)
        self.shared(a, "a").flush()
        with self.assertLogs(LOGGER, "WARNING"):
            self.shared(b, "b").flush()
        snap = merged_snapshot(self.store())
        self.assertEqual(snap.family("x").type, "counter")
        self.assertEqual(snap.get_sample_value("x_total"), 2)


class TestFaults(SharedCase):
    def test_locked_store_keeps_deltas_for_the_next_flush(self):
        """A flush blocked past the busy timeout fails; the next one writes its deltas too."""
        reg = Registry()
        c = reg.counter("c_total", "C.")
        store = self.store(timeout=0.05)
        shared = SharedMetrics(store, reg, process_id="a")
        self.addCleanup(shared.stop)
        c.inc()
        shared.flush()
        blocker = sqlite3.connect(os.path.join(self.dir, STORE_FILENAME), isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute("BEGIN IMMEDIATE")
        c.inc(2)
        with self.assertLogs("mgit_monitoring.store", "WARNING"):
            self.assertFalse(shared.flush())
        c.inc(4)  # recording is never blocked by the store
        blocker.execute("ROLLBACK")
        self.assertTrue(shared.flush())
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 7)
        self.assertEqual(shared.failed_flushes, 1)

    def test_disk_full_loses_the_flush_not_the_process(self):
        """A full database fails the flush without raising; after space returns nothing is lost."""
        reg = Registry()
        c = reg.counter("c_total", "C.", ("k",))
        store = self.store()
        shared = SharedMetrics(store, reg, process_id="a")
        self.addCleanup(shared.stop)
        c.labels("seed").inc()
        shared.flush()
        pages = store.read("PRAGMA page_count")[0][0]
        store.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
        for i in range(3000):
            c.labels(f"series-{i:05d}-" + "x" * 40).inc()
        with self.assertLogs("mgit_monitoring.store", "WARNING") as logs:
            self.assertFalse(shared.flush())
        self.assertIn("full", logs.output[0])
        store.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
        self.assertTrue(shared.flush())
        self.assertEqual(len(merged_snapshot(store).family("c").series), 3001)

    def test_unwritable_directory_falls_back_to_memory(self):
        """A state dir that cannot be created gives one warning and an in-memory store."""
        blocker = os.path.join(self.dir, "a-file")
        pathlib.Path(blocker).write_text("not a directory")
        store = Store.open(os.path.join(blocker, "state"))
        self.addCleanup(store.close)
        reg = Registry()
        reg.counter("c_total", "C.").inc(2)
        shared = SharedMetrics(store, reg, process_id="a")
        with self.assertLogs("mgit_monitoring.store", "WARNING") as logs:
            self.assertTrue(shared.flush())
            self.assertTrue(shared.flush())
        self.assertEqual(len(logs.records), 1)
        self.assertEqual(shared.snapshot().get_sample_value("c_total"), 2)
        shared.stop()

    def test_corrupt_store_is_moved_aside(self):
        """A corrupt file is moved aside with a warning and the flush lands in a new one."""
        pathlib.Path(self.dir, STORE_FILENAME).write_bytes(b"garbage" * 1000)
        reg = Registry()
        reg.counter("c_total", "C.").inc(2)
        store = self.store()
        shared = SharedMetrics(store, reg, process_id="a")
        self.addCleanup(shared.stop)
        with self.assertLogs("mgit_monitoring.store", "WARNING") as logs:
            self.assertTrue(shared.flush())
        self.assertIn("corrupt", logs.output[0])
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 2)
        self.assertTrue(any(".corrupt-" in n for n in os.listdir(self.dir)))

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_fork_child_flushes_only_its_own_increments(self):
        """After fork the child flushes what it recorded itself, the parent the rest."""
        reg = Registry()
        c = reg.counter("c_total", "C.")
        store = self.store()
        shared = SharedMetrics(store, reg).start(3600)
        self.addCleanup(shared.stop)
        c.inc(10)  # unflushed when the process forks
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 2
            try:
                c.inc(5)
                code = 0 if shared.flush() else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)
        shared.flush()
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 15)

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_fork_without_start_counts_each_increment_once(self):
        """A child forked from a writer that never called start() flushes exactly its own
        increments, the parent the rest."""
        reg = Registry()
        c = reg.counter("c_total", "C.")
        store = self.store()
        shared = SharedMetrics(store, reg)
        self.addCleanup(shared.stop)
        c.inc(10)  # unflushed when the process forks
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 2
            try:
                c.inc(5)
                code = 0 if shared.flush() else 1
            finally:
                os._exit(code)
        self.assertEqual(wait_child(pid), 0)
        shared.flush()
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 15)

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_fork_while_another_thread_holds_the_registry(self):
        """Forking while another thread is inside registry.batch() does not hang the child."""
        reg = Registry()
        reg.counter("c_total", "C.").inc()
        store = self.store()
        shared = SharedMetrics(store, reg)
        self.addCleanup(shared.stop)
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with reg.batch():
                inside.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        self.addCleanup(holder.join)
        self.addCleanup(release.set)
        self.assertTrue(inside.wait(30))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            # The parent's thread holding the batch lock does not exist here; the registry
            # renews its locks in the child, so the flush completes (counting nothing the
            # parent recorded) instead of waiting for that thread forever.
            os._exit(0 if shared.flush() else 3)
        release.set()
        self.assertEqual(wait_child(pid), 0, "the child hung or could not flush")
        self.assertTrue(shared.flush())
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 1)


class TestExit(SharedCase):
    def test_exit_with_a_locked_store_waits_one_budget(self):
        """At exit, a store locked by another process costs one bounded wait in total: the
        shared flush, the trace flush and the store's close share the store's timeout."""
        seed = SharedMetrics(self.store(), Registry(), process_id="seed")
        seed.store.insert_traces([])  # a current schema: opening needs no lock
        seed.flush()
        blocker = sqlite3.connect(os.path.join(self.dir, STORE_FILENAME), isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute("BEGIN IMMEDIATE")
        # The child's clock jumps 1,000 s per reading once exit begins, so the budget is
        # spent at once: a write at exit that still waits its own timeout shows a busy
        # timeout other than 0.
        code = textwrap.dedent(
            """
            import atexit, itertools, sys, time
            from mgit_monitoring.registry import Registry
            from mgit_monitoring.shared_state import SharedMetrics
            from mgit_monitoring.store import Store, TraceRow

            exiting, ticks = [], itertools.count()

            def clock():
                return time.time() + (next(ticks) * 1000.0 if exiting else 0.0)

            store = Store.open(sys.argv[1], timeout=2, clock=clock)
            store.register_retention("perf_traces", "start_time", 3600)
            reg = Registry()
            reg.counter("c_total", "C.").inc()
            SharedMetrics(store, reg).start(3600)

            def flush_traces():
                store.insert_traces([TraceRow("op", time.time(), 0.1, True)])
                print("busy timeout", store.read("PRAGMA busy_timeout"), file=sys.stderr)

            store.add_flush_callback(flush_traces)
            atexit.register(exiting.append, True)  # registered last: runs first
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, self.dir],
            env=_child_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        blocker.execute("ROLLBACK")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertIn("shared metrics flush lost", proc.stderr)
        # The trace batch was tried too (it printed its busy timeout) and lost for the same
        # cause: one warning per cause, so its loss is at DEBUG.
        self.assertEqual(1, proc.stderr.count(" lost ("), proc.stderr)
        self.assertIn("busy timeout [(0,)]", proc.stderr)
        self.assertIsNone(merged_snapshot(self.store()).get_sample_value("c_total"))


class TestServer(SharedCase):
    def test_server_serves_the_merged_view(self):
        """A MonitoringServer given a SharedMetrics serves the store's merged metrics."""
        from mgit_monitoring.server import MonitoringServer

        writer = MetricsCollector(process_metrics=False)
        for _ in range(3):
            writer.record_operation("clone", True, 0.1, provider="github")
        self.shared(writer.registry, "writer").stop()
        shared = SharedMetrics(self.store(), Registry())
        server = MonitoringServer("127.0.0.1", 0, registry=shared, simple=True).start()
        self.addCleanup(server.close)
        body = _get(server.port, "/metrics")
        self.assertIn('mgit_operations_total{operation="clone",provider="github"} 3\n', body)
        self.assertIn("mgit_monitoring_http_requests_total", _get(server.port, "/metrics"))


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


class TestRealProcesses(SharedCase):
    def test_parallel_writers_then_a_later_reader(self):
        """8 processes x 1,000 operations in parallel give exactly 8,000, to any later reader."""
        procs = [self.spawn(1000, 0.05, "exit") for _ in range(8)]
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            self.assertEqual(proc.returncode, 0, err)
            self.assertNotIn("Traceback", err)
        snap = merged_snapshot(self.store())
        self.assertEqual(snap.get_sample_value(OPS, CLONE), 8000)
        self.assertEqual(snap.get_sample_value("mgit_operations_success_total", CLONE), 8000)
        self.assertEqual(
            snap.get_sample_value("mgit_operation_duration_seconds_count", CLONE), 8000
        )
        self.assertIsNone(snap.get_sample_value("mgit_concurrent_operations"))  # all exited
        # A later reader process: the `mgit-monitoring metrics` command.
        env = dict(_child_env(), MGIT_MONITORING_STATE_DIR=self.dir)
        reader = subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", "metrics"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(reader.returncode, 0, reader.stderr)
        line = 'mgit_operations_total{operation="clone",provider="github"} 8000\n'
        self.assertIn(line, reader.stdout)
        self.assertIn(
            'mgit_operation_duration_seconds_count{operation="clone",provider="github"} 8000\n',
            reader.stdout,
        )
        # A server started after the work, over a real socket.
        from mgit_monitoring.server import MonitoringServer

        view = SharedMetrics(self.store(), Registry())
        server = MonitoringServer("127.0.0.1", 0, registry=view, simple=True).start()
        self.addCleanup(server.close)
        self.assertIn(line, _get(server.port, "/metrics"))

    def test_reader_started_before_sees_live_writer(self):
        """A reader running before the writer sees its data while the writer still runs."""
        store = self.store()
        self.assertIsNone(merged_snapshot(store).get_sample_value(OPS, CLONE))
        proc = self.spawn(250, 0.1, "wait")
        self.assertEqual(proc.stdout.readline().strip(), "ready")
        wait_for(
            lambda: (
                merged_snapshot(store).get_sample_value(OPS, CLONE) == 250
                and merged_snapshot(store).get_sample_value("mgit_concurrent_operations") == 3
            ),
            what="the live writer's periodic flush",
        )
        self.assertIsNone(proc.poll(), "the writer must still be running (no exit flush)")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=60), 0)
        snap = merged_snapshot(store)
        self.assertIsNone(snap.get_sample_value("mgit_concurrent_operations"))
        self.assertEqual(snap.get_sample_value(OPS, CLONE), 250)

    @unittest.skipUnless(hasattr(signal, "SIGKILL"), "needs SIGKILL")
    def test_sigkill_loses_only_the_unflushed_interval(self):
        """A SIGKILLed writer loses only what it had not flushed; its gauges vanish; the store
        stays intact and writable."""
        store = self.store()
        proc = self.spawn(300, 3600, "kill")
        self.assertEqual(proc.stdout.readline().strip(), "ready")
        live = merged_snapshot(store)
        self.assertEqual(live.get_sample_value("mgit_concurrent_operations"), 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        snap = merged_snapshot(store)
        self.assertEqual(snap.get_sample_value(OPS, CLONE), 300)
        self.assertIsNone(snap.get_sample_value(OPS, {"operation": "pull", "provider": "github"}))
        self.assertIsNone(snap.get_sample_value("mgit_concurrent_operations"))
        self.assertEqual(self.rows("PRAGMA integrity_check"), [("ok",)])
        after = self.spawn(10, 3600, "exit")
        self.assertEqual(after.wait(timeout=60), 0)
        self.assertEqual(merged_snapshot(store).get_sample_value(OPS, CLONE), 310)
        self.assertEqual(self.rows("SELECT count(*) FROM sm_processes")[0][0], 0)


class TestApi(SharedCase):
    def test_is_a_snapshot_source_not_a_registry(self):
        """SharedMetrics offers snapshot() and its registry; nothing of the Registry API is
        imitated (the server instruments itself on ``shared.registry``)."""
        reg = Registry()
        shared = self.shared(reg, "a")
        self.assertIs(shared.registry, reg)
        self.assertTrue(callable(shared.snapshot))
        for name in (
            "get",
            "metrics",
            "batch",
            "register_collector",
            "counter",
            "gauge",
            "histogram",
            "no_such_attribute",
        ):
            with self.subTest(name=name), self.assertRaises(AttributeError):
                getattr(shared, name)

    def test_expose_renders_the_merged_view(self):
        """expose(SharedMetrics) serves every process's metrics plus this one's unflushed ones."""
        from mgit_monitoring.exposition import CONTENT_TYPE_TEXT, expose

        other = Registry()
        other.counter("c_total", "C.").inc(2)
        self.shared(other, "other").flush()
        mine = Registry()
        mine.counter("c_total", "C.").inc(3)
        out = expose(self.shared(mine, "mine"), "text/plain")
        self.assertEqual(CONTENT_TYPE_TEXT, out.content_type)
        self.assertIsNone(out.content_encoding)
        self.assertIn(b"\nc_total 5\n", out.body)

    def test_store_flush_flushes_on_demand(self):
        """After start(), Store.flush() (on demand) also writes this process's deltas."""
        reg = Registry()
        reg.counter("c_total", "C.").inc(3)
        store = self.store()
        shared = SharedMetrics(store, reg).start(3600)
        self.addCleanup(shared.stop)
        self.assertIsNone(merged_snapshot(store).get_sample_value("c_total"))
        store.flush()
        self.assertEqual(merged_snapshot(store).get_sample_value("c_total"), 3)

    def test_one_flush_thread_per_store(self):
        """Started writers flush on the store's one thread, each at its own interval."""
        before = set(threading.enumerate())
        store = self.store(flush_interval=3600)
        a, b = Registry(), Registry()
        a.counter("a_total", "A.").inc()
        b.counter("b_total", "B.").inc(2)
        shared_a = SharedMetrics(store, a).start(0.02)
        self.addCleanup(shared_a.stop)
        shared_b = SharedMetrics(store, b).start(0.05)
        self.addCleanup(shared_b.stop)
        shared_a.start(0.01)  # again: a new interval, still one callback
        wait_for(lambda: shared_a.flushes >= 3 and shared_b.flushes >= 2, what="flushes")
        new = set(threading.enumerate()) - before
        self.assertEqual(["mgit-monitoring-store-flush"], [t.name for t in new])
        snap = merged_snapshot(store)
        self.assertEqual(1, snap.get_sample_value("a_total"))
        self.assertEqual(2, snap.get_sample_value("b_total"))
        shared_a.stop()
        done = shared_a.flushes
        store.flush()
        self.assertEqual(done, shared_a.flushes)  # stopped: the store no longer calls it

    def test_start_rejects_a_bad_interval(self):
        """start() names a non-positive interval."""
        shared = self.shared(Registry(), "a")
        with self.assertRaisesRegex(ValueError, "-1"):
            shared.start(-1)

    def test_flush_never_raises(self):
        """A flush on a closed store returns False instead of raising."""
        reg = Registry()
        reg.counter("c_total", "C.").inc()
        store = Store.open(self.dir)
        shared = SharedMetrics(store, reg)
        store.close()
        with self.assertLogs("mgit_monitoring.store", "WARNING"):
            self.assertFalse(shared.flush())
        self.assertEqual(shared.failed_flushes, 1)


if __name__ == "__main__":
    unittest.main()
