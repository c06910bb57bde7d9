"""The shared sqlite store: settings, schemas, retention, concurrency and every failure path."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

from mgit_monitoring.errors import StoreError
from mgit_monitoring.store import STORE_FILENAME, Store, TraceRow
from tests.support import ROOT, Clock, open_to_all, run_python, run_unprivileged

LOGGER = "mgit_monitoring.store"


class StoreCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, STORE_FILENAME)

    def open(self, **kwargs) -> Store:
        store = Store.open(self.dir, **kwargs)
        self.addCleanup(store.close)
        return store


class TestSettings(StoreCase):
    def test_lazy_open(self):
        """Creating a Store touches nothing on disk until it is used."""
        store = self.open()
        self.assertFalse(os.path.exists(self.path))
        store.read("SELECT 1")
        self.assertTrue(os.path.exists(self.path))

    def test_pragmas(self):
        """The file is in WAL mode with synchronous=NORMAL and the configured busy timeout."""
        store = self.open(timeout=2.5)
        self.assertEqual([("wal",)], store.read("PRAGMA journal_mode"))
        self.assertEqual([(1,)], store.read("PRAGMA synchronous"))
        self.assertEqual([(2500,)], store.read("PRAGMA busy_timeout"))
        self.assertTrue(store.persistent)

    def test_memory_store(self):
        """A store without a path keeps everything in memory and says so."""
        store = Store()
        self.addCleanup(store.close)
        self.assertFalse(store.persistent)
        self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertEqual(1, len(store.query_traces(0)))

    def test_closed_store(self):
        """A closed store refuses transactions with StoreError and drops writes quietly."""
        store = self.open()
        store.close()
        with self.assertRaises(StoreError), store.transaction():
            pass
        with self.assertLogs(LOGGER, "WARNING"):
            self.assertFalse(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))


class TestSchemas(StoreCase):
    def test_migrations_apply_once_and_in_order(self):
        """A component's steps run once; adding a step later upgrades an existing file."""
        store = self.open()
        store.register_schema("demo", ["CREATE TABLE demo (a INTEGER)"])
        self.assertEqual(1, store.schema_version("demo"))
        store.close()

        again = self.open()
        calls = []
        again.register_schema(
            "demo",
            [
                "CREATE TABLE demo (a INTEGER)",  # would fail if run twice
                lambda conn: calls.append(conn.execute("ALTER TABLE demo ADD COLUMN b TEXT")),
            ],
        )
        self.assertTrue(again.write(lambda c: c.execute("INSERT INTO demo VALUES (1, 'x')")))
        self.assertEqual([(1, "x")], again.read("SELECT a, b FROM demo"))
        self.assertEqual(2, again.schema_version("demo"))
        self.assertEqual(1, len(calls))

    def test_traces_table_and_index(self):
        """The traces table is versioned and a window query by operation uses its index."""
        store = self.open()
        store.insert_traces([])
        self.assertEqual(1, store.schema_version("performance"))
        plan = store.read(
            "EXPLAIN QUERY PLAN SELECT duration FROM perf_traces "
            "WHERE operation = ? AND start_time >= ?",
            ("clone", 0.0),
        )
        self.assertIn("perf_traces_op_time", " ".join(str(r[-1]) for r in plan))


class TestTransactions(StoreCase):
    def test_rollback_on_error(self):
        """An exception inside transaction() rolls back and propagates."""
        store = self.open()
        store.register_schema("demo", ["CREATE TABLE demo (a INTEGER)"])
        with self.assertRaises(RuntimeError), store.transaction() as conn:
            conn.execute("INSERT INTO demo VALUES (1)")
            raise RuntimeError("stop")
        self.assertEqual([(0,)], store.read("SELECT count(*) FROM demo"))

    def test_write_never_raises(self):
        """A failing write returns False and logs one warning instead of raising."""
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertFalse(store.write(lambda c: c.execute("INSERT INTO missing VALUES (1)")))
        self.assertIn("no such table", logs.output[0])
        self.assertEqual(1, store.dropped_writes)

    def test_trace_round_trip(self):
        """Traces come back with every field, filtered by time and operation."""
        store = self.open()
        rows = [
            TraceRow("clone", 100.0, 1.5, True, None, "c" * 32, "t1", None, 42, {"repo": "a/b"}),
            TraceRow("clone", 200.0, 2.5, False, "TimeoutError", None, "t2", "t1", 43, None),
            TraceRow("pull", 200.0, 0.5, True),
        ]
        self.assertTrue(store.insert_traces(rows))
        self.assertEqual(rows[:2], store.query_traces(0, "clone"))
        self.assertEqual([rows[1]], store.query_traces(150.0, "clone"))
        self.assertEqual(rows[1:], store.query_traces(150.0))
        self.assertEqual([rows[0]], store.query_traces(0, "clone", until=150.0))
        light = store.query_traces(0, "clone", light=True)
        self.assertEqual([r[:5] for r in rows[:2]], [r[:5] for r in light])
        self.assertEqual([None, None], [r.metadata for r in light])

    def test_threads_share_one_store(self):
        """Eight threads writing through one store lose nothing."""
        store = self.open()
        barrier = threading.Barrier(8)

        def work(n):
            barrier.wait()
            for i in range(50):
                store.insert_traces([TraceRow("op", float(i), 0.1, True, pid=n)])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(400, len(store.query_traces(0)))


class TestRetention(StoreCase):
    def test_cleanup_deletes_only_expired_rows(self):
        """Rows older than the retention go; newer rows stay."""
        clock = Clock()
        store = self.open(clock=clock)
        store.register_retention("perf_traces", "start_time", 3600)
        store.insert_traces(
            [
                TraceRow("op", clock.now - 7200, 1.0, True),
                TraceRow("op", clock.now - 60, 1.0, True),
            ]
        )
        self.assertEqual(1, store.cleanup())
        self.assertEqual([clock.now - 60], [r.start_time for r in store.query_traces(0)])

    def test_maybe_cleanup_runs_once_a_day(self):
        """Opportunistic cleanup is skipped until a day after the last one, by any process."""
        clock = Clock()
        store = self.open(clock=clock)
        store.register_retention("perf_traces", "start_time", 3600)
        store.insert_traces([TraceRow("op", clock.now - 7200, 1.0, True)])
        self.assertEqual(1, store.maybe_cleanup())
        store.insert_traces([TraceRow("op", clock.now - 7200, 1.0, True)])
        self.assertEqual(0, store.maybe_cleanup())
        clock.now += 25 * 3600
        self.assertEqual(1, store.maybe_cleanup())

    def test_cleanup_before_the_table_exists_is_quiet(self):
        """Cleanup of a component that never wrote succeeds without a warning."""
        store = self.open()
        store.register_retention("perf_traces", "start_time", 3600)
        logger = logging.getLogger("mgit_monitoring.store")
        records: list = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        self.assertEqual(0, store.cleanup())
        self.assertEqual([], [r.getMessage() for r in records])
        self.assertEqual(0, store.dropped_writes)

    def test_bad_identifier(self):
        """Retention refuses table names that are not plain identifiers."""
        with self.assertRaises(StoreError):
            Store().register_retention("x; DROP TABLE y", "ts", 1)


class TestFailures(StoreCase):
    def test_not_a_database_is_moved_aside(self):
        """A non-sqlite file is renamed with a timestamp suffix; a fresh one starts; one warning."""
        with open(self.path, "wb") as f:
            f.write(b"this is not sqlite " * 500)
        with open(self.path + "-wal", "wb") as f:
            f.write(b"stale wal")
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertEqual(1, len(logs.output))
        self.assertIn("corrupt", logs.output[0])
        aside = [
            n
            for n in os.listdir(self.dir)
            if re.match(r"monitoring\.sqlite3\.corrupt-\d{8}T\d{6}Z-\d+$", n)
        ]
        self.assertEqual(1, len(aside), os.listdir(self.dir))
        with open(os.path.join(self.dir, aside[0]), "rb") as f:
            self.assertTrue(f.read().startswith(b"this is not sqlite"))
        self.assertTrue(store.persistent)
        self.assertEqual(1, len(store.query_traces(0)))

    def test_malformed_file_found_later_is_moved_aside(self):
        """Corruption discovered after opening also moves the file aside and keeps working."""
        setup = Store(self.path)
        setup.register_schema("demo", ["CREATE TABLE demo (a TEXT)"])
        setup.write(lambda c: c.executemany("INSERT INTO demo VALUES (?)", [("x" * 500,)] * 400))
        setup.read("PRAGMA wal_checkpoint(TRUNCATE)")
        setup.close()
        size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:  # keep the header, wreck the b-tree pages
            f.seek(4096)
            f.write(b"\xff" * (size - 4096))
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            store.register_schema("demo", ["CREATE TABLE demo (a TEXT)"])
            store.read("SELECT count(*) FROM demo")
            ok = store.write(lambda c: c.execute("INSERT INTO demo VALUES ('y')"))
        self.assertTrue(ok)
        self.assertTrue(any("corrupt" in line for line in logs.output), logs.output)
        self.assertEqual([(1,)], store.read("SELECT count(*) FROM demo"))
        self.assertTrue(any(".corrupt-" in n for n in os.listdir(self.dir)))

    def test_unwritable_directory_falls_back_to_memory(self):
        """A state dir under a regular file (unwritable even for root) means memory, one warning."""
        blocker = os.path.join(self.dir, "a-file")
        pathlib.Path(blocker).write_text("x")
        store = Store.open(os.path.join(blocker, "state"))
        self.addCleanup(store.close)
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
            self.assertTrue(store.insert_traces([TraceRow("op", 2.0, 0.5, True)]))
        self.assertEqual(1, len(logs.output))
        self.assertIn("memory", logs.output[0])
        self.assertFalse(store.persistent)
        self.assertEqual(2, len(store.query_traces(0)))

    def test_read_only_directory_falls_back_to_memory(self):
        """A directory without write permission falls back to memory with a warning."""
        ro = os.path.join(self.dir, "ro")
        os.mkdir(ro)
        open_to_all(ro)
        os.chmod(ro, 0o555)
        self.addCleanup(os.chmod, ro, 0o700)

        def check() -> None:
            store = Store.open(ro)
            with self.assertLogs(LOGGER, "WARNING"):
                self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
            self.assertFalse(store.persistent)
            self.assertEqual(1, len(store.query_traces(0)))
            store.close()

        run_unprivileged(self, check)
        self.assertEqual([], os.listdir(ro))

    def test_lock_held_past_the_timeout_drops_the_write(self):
        """A write blocked past the busy timeout is lost with a warning, not an exception."""
        store = self.open(timeout=0.05)
        store.insert_traces([])  # create the file and schema
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertFalse(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertIn("locked", logs.output[0])
        self.assertEqual(1, store.dropped_writes)
        other.execute("COMMIT")
        self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertEqual(1, len(store.query_traces(0)))

    def test_disk_full_drops_the_write(self):
        """A full disk (simulated with max_page_count) loses the write with a warning."""
        store = self.open()
        store.insert_traces([])
        pages = store.read("PRAGMA page_count")[0][0]
        store.read(f"PRAGMA max_page_count = {pages + 1}")
        big = [TraceRow("op", float(i), 0.5, True, metadata={"pad": "x" * 2000}) for i in range(50)]
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertFalse(store.insert_traces(big))
        self.assertIn("disk full", logs.output[0])
        self.assertEqual([], store.query_traces(0))

    def test_repeated_failures_warn_once(self):
        """The second identical failure is logged at DEBUG, not as another warning."""
        store = self.open(timeout=0.0)
        store.insert_traces([])
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        with self.assertLogs(LOGGER, "DEBUG") as logs:
            store.insert_traces([TraceRow("op", 1.0, 0.5, True)])
            store.insert_traces([TraceRow("op", 1.0, 0.5, True)])
        other.execute("ROLLBACK")
        self.assertEqual(["WARNING", "DEBUG"], [r.levelname for r in logs.records])
        self.assertEqual(2, store.dropped_writes)


class TestOpening(StoreCase):
    def make_store(self) -> None:
        setup = Store(self.path)
        setup.insert_traces([TraceRow("op", float(i), 0.5, True) for i in range(300)])
        setup.read("PRAGMA wal_checkpoint(TRUNCATE)")
        setup.close()

    def aside(self) -> list:
        return [n for n in os.listdir(self.dir) if ".corrupt-" in n and not n.endswith("-shm")]

    def test_up_to_date_store_opens_while_another_process_writes(self):
        """Opening a current store only reads, so a held write lock does not stop readers."""
        self.make_store()
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        store = self.open(timeout=0.05)
        self.assertEqual(300, len(store.query_traces(0, strict=True)))
        self.assertTrue(store.persistent)
        self.assertEqual(0, store.dropped_writes)
        other.execute("ROLLBACK")

    def test_truncated_file_is_moved_aside(self):
        """A store cut short (a crash while copying it) is moved aside with one warning."""
        self.make_store()
        with open(self.path, "r+b") as f:
            f.truncate(os.path.getsize(self.path) // 3)
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertEqual([], store.query_traces(0))
            self.assertTrue(store.insert_traces([TraceRow("new", 1.0, 0.5, True)]))
        self.assertEqual(1, len(logs.output), logs.output)
        self.assertIn("corrupt", logs.output[0])
        self.assertEqual(1, len(self.aside()))
        self.assertEqual(["new"], [r.operation for r in store.query_traces(0)])

    def test_foreign_database_is_moved_aside_untouched(self):
        """Another program's sqlite file is moved aside as it was, with one warning."""
        conn = sqlite3.connect(self.path)
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('alice')")
        conn.commit()
        conn.close()
        with open(self.path, "rb") as f:
            original = f.read()
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertEqual(1, len(logs.output), logs.output)
        self.assertIn("not a monitoring store", logs.output[0])
        with open(os.path.join(self.dir, self.aside()[0]), "rb") as f:
            self.assertEqual(original, f.read())
        self.assertEqual(1, len(store.query_traces(0)))

    def test_newer_schema_is_left_untouched(self):
        """A file written by a newer version is not modified: memory instead, one warning."""
        self.make_store()
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'performance'")
        conn.commit()
        conn.close()
        with open(self.path, "rb") as f:
            before = f.read()
        store = self.open()
        with self.assertLogs(LOGGER, "WARNING") as logs:
            self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
            self.assertTrue(store.insert_traces([TraceRow("op", 2.0, 0.5, True)]))
        self.assertEqual(1, len(logs.output), logs.output)
        self.assertIn("v99", logs.output[0])
        self.assertFalse(store.persistent)
        self.assertEqual(2, len(store.query_traces(0)))
        store.close()
        with open(self.path, "rb") as f:
            self.assertEqual(before, f.read())
        self.assertEqual([], self.aside())


class TestShutdown(StoreCase):
    def test_waits_share_one_budget_after_shutdown_begins(self):
        """After begin_shutdown() the busy timeout shrinks to what is left of one budget."""
        clock = Clock()
        store = self.open(timeout=2, clock=clock)
        store.insert_traces([])
        self.assertEqual([(2000,)], store.read("PRAGMA busy_timeout"))
        store.begin_shutdown()
        clock.now += 1000  # the budget is spent
        self.assertTrue(store.insert_traces([TraceRow("op", 1.0, 0.5, True)]))
        self.assertEqual([(0,)], store.read("PRAGMA busy_timeout"))
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        with self.assertLogs(LOGGER, "WARNING"):  # dropped at once
            self.assertFalse(store.insert_traces([TraceRow("op", 2.0, 0.5, True)]))
        other.execute("ROLLBACK")

    def test_close_starts_the_budget(self):
        """close() bounds its own flush: callbacks meeting a locked store do not each wait."""
        clock = Clock()
        store = self.open(timeout=2, clock=clock, flush_interval=3600)
        self.assertTrue(store.insert_traces([TraceRow("seed", 1.0, 0.5, True)]))
        results = []

        def flush():
            clock.now += 1000  # each writer finds the budget spent
            ok = store.insert_traces([TraceRow("op", 1.0, 0.5, True)])
            results.append((ok, store.read("PRAGMA busy_timeout")[0][0]))

        store.add_flush_callback(flush)
        store.add_flush_callback(flush)
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        with self.assertLogs(LOGGER, "WARNING"):
            store.close()
        other.execute("ROLLBACK")
        self.assertEqual([(False, 0), (False, 0)], results)  # neither waited


class TestFlushing(StoreCase):
    def test_flush_runs_callbacks(self):
        """flush() calls every registered callback; a failing one does not stop the rest."""
        store = self.open(flush_interval=3600)
        calls = []

        def broken():
            raise RuntimeError("boom")

        store.add_flush_callback(broken)
        store.add_flush_callback(lambda: calls.append(1))
        store.flush()
        self.assertEqual([1], calls)

    def test_periodic_flush(self):
        """The flush thread calls callbacks every flush_interval while the process runs."""
        store = self.open(flush_interval=0.01)
        called = threading.Event()
        store.add_flush_callback(called.set)
        self.assertTrue(called.wait(30))

    def test_callbacks_keep_their_own_intervals_on_one_thread(self):
        """A callback's own interval is kept; every callback runs on the store's one thread."""
        store = self.open(flush_interval=3600)
        fast, slow = threading.Event(), []
        threads = set()

        def fast_cb():
            threads.add(threading.current_thread())
            fast.set()

        store.add_flush_callback(lambda: slow.append(1))
        store.add_flush_callback(fast_cb, 0.01)  # wakes the thread sleeping for an hour
        self.assertTrue(fast.wait(30))
        self.assertEqual([], slow)
        self.assertEqual(["mgit-monitoring-store-flush"], [t.name for t in threads])
        with self.assertRaisesRegex(ValueError, "0"):
            store.add_flush_callback(fast_cb, 0)

    def test_remove_flush_callback(self):
        """A removed callback is no longer called, by flush() or at close()."""
        store = self.open(flush_interval=3600)
        calls = []

        def callback():
            calls.append(1)

        store.add_flush_callback(callback)
        store.flush()
        store.remove_flush_callback(callback)
        store.remove_flush_callback(callback)  # no error when absent
        store.flush()
        store.close()
        self.assertEqual([1], calls)

    def test_flush_at_exit(self):
        """A process that never calls flush() still writes at interpreter exit."""
        out = run_python(
            """
            import sys
            from mgit_monitoring.store import Store, TraceRow
            store = Store.open(sys.argv[1])
            store.add_flush_callback(
                lambda: store.insert_traces([TraceRow("exit", 1.0, 0.25, True)])
            )
            """,
            self.dir,
        )
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual(["exit"], [r.operation for r in self.open().query_traces(0)])


class TestProcesses(StoreCase):
    def test_eight_processes_writing_at_once_lose_nothing(self):
        """8 processes x 200 one-trace transactions started together: all 1,600 rows arrive."""
        code = """
            import os, sys, time
            from mgit_monitoring.store import Store, TraceRow
            store = Store.open(sys.argv[1])
            store.insert_traces([])
            print("ready", flush=True)
            sys.stdin.readline()  # start line: every process begins writing together
            pid = os.getpid()
            for i in range(200):
                store.insert_traces([TraceRow("clone", time.time(), i / 1000, True, pid=pid)])
            print(store.dropped_writes)
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code), self.dir],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        for p in procs:
            self.assertEqual("ready", p.stdout.readline().strip())
        results = [p.communicate("go\n", timeout=120) for p in procs]
        for p, (out, err) in zip(procs, results):
            self.assertEqual(0, p.returncode, err)
            self.assertEqual("0", out.strip(), err)
        rows = self.open().query_traces(0, "clone")
        self.assertEqual(1600, len(rows))
        self.assertEqual(8, len({r.pid for r in rows}))

    def test_another_process_reads_what_this_one_wrote(self):
        """Rows committed here are visible to a separate process."""
        store = self.open()
        store.insert_traces([TraceRow("clone", 10.0, 1.25, True, metadata={"k": 1})])
        out = run_python(
            """
            import json, sys
            from mgit_monitoring.store import Store
            rows = Store.open(sys.argv[1]).query_traces(0)
            print(json.dumps([[r.operation, r.duration, r.metadata] for r in rows]))
            """,
            self.dir,
        )
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual([["clone", 1.25, {"k": 1}]], json.loads(out.stdout))

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork()")
    def test_forked_child_reopens(self):
        """A forked child gets its own connection and its writes arrive."""
        store = self.open()
        store.insert_traces([TraceRow("parent", 1.0, 0.1, True)])
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0 if store.insert_traces([TraceRow("child", 2.0, 0.1, True)]) else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(0, status)
        self.assertEqual(["child", "parent"], sorted(r.operation for r in store.query_traces(0)))

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork()")
    def test_fork_during_a_write_in_another_thread(self):
        """A child forked while a thread of the parent is inside a write transaction neither
        hangs on the store's lock nor finds the file locked forever: it writes."""
        store = self.open()
        store.insert_traces([])
        inside, release = threading.Event(), threading.Event()

        def slow_write(conn):
            conn.execute("INSERT INTO meta (key, value) VALUES ('parent', '1')")
            inside.set()
            release.wait(30)

        writer = threading.Thread(target=store.write, args=(slow_write,))
        writer.start()
        self.addCleanup(writer.join)
        self.addCleanup(release.set)
        self.assertTrue(inside.wait(30))
        # Ends the transaction while os.fork() waits for it (the fork is not blocked on it
        # for longer than the transaction lasts).
        timer = threading.Timer(0.05, release.set)
        timer.start()
        self.addCleanup(timer.cancel)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0 if store.insert_traces([TraceRow("child", 2.0, 0.1, True)]) else 1
            os._exit(code)
        self.assertEqual(0, wait_child(pid), "the child hung or could not write")
        self.assertEqual(["child"], [r.operation for r in store.query_traces(0)])
        self.assertEqual([("1",)], store.read("SELECT value FROM meta WHERE key = 'parent'"))


def wait_child(pid: int, timeout: float = 30.0) -> int:
    """The exit status of child ``pid``; kills it and returns -1 if it is still running."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(delay)  # another process: no event to wait on
        delay = min(delay * 2, 0.2)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


if __name__ == "__main__":
    unittest.main()
