"""The background log writer: lines built off the calling thread, in order, none lost.

Each test gives its structured loggers a writer of its own, so the process's writer (and
the integration that configures it) is left as it was.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from typing import Any, List, Optional, Tuple

from mgit_monitoring.context import (
    correlation_context,
    get_correlation_id,
    reset_process_trace,
)
from mgit_monitoring.log_formatter import CONTEXT_ATTR, FIELDS_ATTR, StructuredFormatter
from mgit_monitoring.log_writer import LogWriter
from mgit_monitoring.structured_logger import StructuredLogger
from tests.support import await_condition, record_factory, run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Collect(logging.Handler):
    """Keeps each record and its JSON line; can hold the writer inside a handler call."""

    def __init__(self, gate: Optional[threading.Event] = None) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []
        self.lines: List[dict] = []
        self.gate = gate
        self.entered = threading.Event()
        self.owner = os.getpid()
        self.setFormatter(StructuredFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        if self.gate is not None and os.getpid() == self.owner:
            self.gate.wait(30)
        self.records.append(record)
        self.lines.append(json.loads(self.format(record)))


class WriterCase(unittest.TestCase):
    def make(
        self, gate: Optional[threading.Event] = None, **writer_args: Any
    ) -> Tuple[StructuredLogger, LogWriter, Collect]:
        writer = LogWriter(**writer_args)
        writer.set_background(True)
        self.addCleanup(writer.set_background, False)
        std = logging.getLogger(f"tests.log_writer.{self._testMethodName}")
        handler = Collect(gate)
        std.addHandler(handler)
        std.setLevel(logging.DEBUG)
        std.propagate = False
        self.addCleanup(std.removeHandler, handler)
        if gate is not None:
            self.addCleanup(gate.set)  # never leave the writer thread parked
        return StructuredLogger(std, writer=writer), writer, handler

    def writing_threads(self, log: StructuredLogger) -> List[str]:
        """From now on, the name of the thread that writes each of ``log``'s records."""
        names: List[str] = []

        class Where(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                names.append(threading.current_thread().name)
                return True

        where = Where()
        log.logger.addFilter(where)
        self.addCleanup(log.logger.removeFilter, where)
        return names


class TestOrderAndContent(WriterCase):
    def test_lines_from_many_threads_keep_call_order(self) -> None:
        """8 threads x 300 lines: every line written once, in the order the calls were made."""
        log, writer, out = self.make()
        order_lock = threading.Lock()
        counter = [0]

        def work(t: int) -> None:
            for i in range(300):
                with order_lock:  # the call order is the counter's
                    counter[0] += 1
                    log.info("line", seq=counter[0], thread_no=t, i=i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        writer.flush()
        seqs = [line["seq"] for line in out.lines]
        self.assertEqual(seqs, list(range(1, 2401)))

    def test_record_has_the_callers_time_thread_and_correlation(self) -> None:
        """Written later by the writer thread, the line still says when, where and in which
        correlation scope the call was made."""
        gate = threading.Event()
        log, writer, out = self.make(gate)
        log.info("first")  # parks the writer inside the handler
        self.assertTrue(out.entered.wait(10))
        seen: dict = {}

        def caller() -> None:
            with correlation_context("clone", provider="github"):
                seen["cid"] = get_correlation_id()
                seen["before"] = time.time()
                log.info("from the worker", repo="r1")
                seen["after"] = time.time()

        worker = threading.Thread(target=caller, name="clone-worker-7")
        worker.start()
        worker.join()
        self.assertEqual(writer.pending, 1)  # queued, not yet written
        time.sleep(0.02)  # the record must not take the time it is written at
        gate.set()
        writer.flush()
        record, line = out.records[1], out.lines[1]
        self.assertEqual(record.threadName, "clone-worker-7")
        self.assertEqual(record.thread, worker.ident)
        self.assertLessEqual(seen["before"] - 0.001, record.created)
        self.assertLessEqual(record.created, seen["after"] + 0.001)
        self.assertEqual(line["correlation_id"], seen["cid"])
        self.assertEqual(line["correlation"]["operation"], "clone")
        self.assertEqual(line["repo"], "r1")
        self.assertEqual(line["function"], "caller")  # the caller's frame, not the writer's

    def test_a_queued_record_is_what_make_record_builds_at_its_call_site(self) -> None:
        """Written on the writer thread, each record is the one the logger's makeRecord
        builds for its call site (the second from the same site too), with the call's time,
        thread and message; a record factory set later builds the later lines."""
        log, writer, out = self.make()
        std = log.logger

        def call(n: int) -> int:
            log.info("line %s of %s", n, "three", seq=n)
            return sys._getframe().f_lineno - 1

        def worker() -> None:
            call(2)

        line_no = call(1)
        thread = threading.Thread(target=worker, name="second-caller")
        thread.start()
        thread.join()
        writer.flush()
        old = logging.getLogRecordFactory()
        record_factory(self, lambda record: setattr(record, "host_tag", "tagged"))
        call(3)
        writer.flush()
        self.assertEqual(3, len(out.records))
        threads = ("MainThread", "second-caller", "MainThread")
        main = threading.get_ident()
        for n, (record, thread_name) in enumerate(zip(out.records, threads), 1):
            with self.subTest(line=n):
                ref = old(std.name, logging.INFO, __file__, line_no, "line %s of %s",
                          (n, "three"), None, "call")  # fmt: skip
                got = dict(record.__dict__)
                for key in ("created", "msecs", "relativeCreated"):
                    self.assertAlmostEqual(ref.__dict__.pop(key), got.pop(key), delta=5000)
                self.assertEqual(thread_name, got.pop("threadName"))
                for key in ("threadName", "thread"):
                    ref.__dict__.pop(key)
                self.assertEqual(n != 2, got.pop("thread") == main)
                self.assertEqual({"seq": n}, got.pop(FIELDS_ATTR))
                self.assertIsNotNone(got.pop(CONTEXT_ATTR))
                if n == 3:
                    self.assertEqual("tagged", got.pop("host_tag"))
                self.assertEqual(ref.__dict__, got)
                self.assertEqual(f"line {n} of three", record.getMessage())
        created = [r.created for r in out.records]
        self.assertEqual(sorted(created), created)
        self.assertLess(abs(out.records[0].relativeCreated - out.records[1].relativeCreated
                            - 1000 * (created[0] - created[1])), 1.0)  # fmt: skip

    def test_a_queued_record_follows_renamed_levels_and_processes(self) -> None:
        """A level renamed with addLevelName and a renamed multiprocessing process show in
        the next record from the same call site, as makeRecord would show them."""
        import multiprocessing

        log, writer, out = self.make()

        def call() -> None:
            log.info("m")

        call()
        writer.flush()
        process = multiprocessing.current_process()
        self.addCleanup(setattr, process, "name", process.name)
        self.addCleanup(logging.addLevelName, logging.INFO, logging.getLevelName(logging.INFO))
        logging.addLevelName(logging.INFO, "NOTE")
        process.name = "worker-7"
        call()
        writer.flush()
        first, second = out.records
        self.assertEqual(("INFO", "NOTE"), (first.levelname, second.levelname))
        self.assertEqual("worker-7", second.processName)
        self.assertNotEqual("worker-7", first.processName)
        self.assertEqual("NOTE", out.lines[1]["level"])

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_a_queued_record_names_the_process_that_logged_it(self) -> None:
        """After a fork, a child that queues lines again writes records of its own pid."""
        out = run_python(
            """
                import json, logging, os, sys
                from mgit_monitoring.log_writer import LogWriter
                from mgit_monitoring.structured_logger import StructuredLogger
                pids = []
                class Keep(logging.Handler):
                    def emit(self, record):
                        pids.append(record.process)
                std = logging.getLogger("fork.pids")
                std.addHandler(Keep())
                std.setLevel(logging.INFO)
                writer = LogWriter()
                writer.set_background(True)
                log = StructuredLogger(std, writer=writer)
                def line():
                    log.info("m")
                line()
                writer.flush()
                child = os.fork()
                if child == 0:
                    writer.set_background(True)
                    line()
                    writer.flush()
                    print(json.dumps([os.getpid(), pids[-1]]))
                    sys.stdout.flush()
                    os._exit(0)
                os.waitpid(child, 0)
                print(json.dumps([os.getpid(), pids[-1]]))
            """
        )
        self.assertEqual(0, out.returncode, out.stderr)
        child, parent = (json.loads(line) for line in out.stdout.splitlines())
        self.assertEqual(child[0], child[1])
        self.assertEqual(parent[0], parent[1])
        self.assertNotEqual(child[0], parent[0])

    def test_a_mutable_value_is_written_as_it_was_at_the_call(self) -> None:
        """A list field is not queued: queued lines are written first, then it, at once."""
        gate = threading.Event()
        log, writer, out = self.make(gate)
        log.info("a")
        self.assertTrue(out.entered.wait(10))
        log.info("b")
        items = ["x"]
        done = threading.Event()

        def call() -> None:
            log.info("c", items=items)
            done.set()

        th = threading.Thread(target=call)
        called = time.time()
        th.start()
        self.assertFalse(done.wait(0.05))  # waits behind "a" and "b", as a write must
        released = time.time()
        gate.set()
        th.join(10)
        items.append("changed later")
        writer.flush()
        self.assertEqual([line["message"] for line in out.lines], ["a", "b", "c"])
        self.assertEqual(out.lines[2]["items"], ["x"])
        # Its record was made at the call, not when the queue ahead of it was written.
        self.assertLess(out.records[2].created, released)
        self.assertGreaterEqual(out.records[2].created, called - 0.001)

    def test_an_error_line_is_written_before_the_call_returns(self) -> None:
        """ERROR and above are not queued: when log.error() returns, the lines queued before
        it and then it are written, on the calling thread (a failure's line must be out
        before its exception propagates and the interpreter prints the traceback)."""
        log, writer, out = self.make(linger=60, idle_timeout=60)
        log.info("wakes the thread, which then lingers 60 s")
        # Awaited, not wait_written(): its wake-up could reach the thread after "queued"
        # below is queued, and the thread would write that line itself.
        self.assertTrue(await_condition(lambda: len(out.lines) == 1, 10))
        written_by = self.writing_threads(log)
        log.info("queued")
        log.log_operation(logging.ERROR, "pull", "failed", 0.5, {"error_type": "Boom"})
        log.critical("also at once")
        self.assertEqual(
            ["queued", "Operation failed: pull (took 0.50s)", "also at once"],
            [line["message"] for line in out.lines[1:]],
        )
        me = threading.current_thread().name
        self.assertEqual([me, me, me], written_by)

    def test_a_line_outside_any_context_keeps_the_process_trace_of_its_call(self) -> None:
        """Queued with no correlation context active, the line carries the process trace
        of the moment it was logged, even if the process trace changes before it is
        written."""
        gate = threading.Event()
        log, writer, out = self.make(gate)
        log.info("park")
        self.assertTrue(out.entered.wait(10))
        before = get_correlation_id()
        log.info("queued")
        reset_process_trace()
        self.addCleanup(reset_process_trace)
        self.assertNotEqual(get_correlation_id(), before)
        gate.set()
        writer.flush()
        self.assertEqual(out.lines[1]["message"], "queued")
        self.assertEqual(out.lines[1]["correlation_id"], before)

    def test_each_call_site_keeps_its_own_line_number(self) -> None:
        """The remembered line numbers: two call sites in one function, each used twice."""
        log, writer, out = self.make()

        def two_sites() -> List[int]:
            here = sys._getframe().f_lineno
            for _ in range(2):
                log.info("first")
                log.info("second")
            return [here + 2, here + 3]

        first, second = two_sites()
        writer.flush()
        self.assertEqual([line["line"] for line in out.lines], [first, second] * 2)

    def test_log_operation_queued_is_written_as_operation_start_and_end_write(self) -> None:
        """log_operation in background mode (message and fields built on the writer thread)
        writes the same lines as operation_start/operation_end written synchronously, with
        the caller's function, line and correlation scope, the caller's fields first."""
        log, writer, out = self.make()
        fields = {"provider": "github", "repository": "org/repo"}

        def queued() -> int:
            here = sys._getframe().f_lineno
            log.log_operation(logging.DEBUG, "clone", "started", None, fields)
            log.log_operation(logging.INFO, "clone", "completed", 2.5, fields)
            log.log_operation(logging.ERROR, "clone", "failed", None, {**fields, "n": 3})
            return here + 1

        with correlation_context("clone", provider="github"):
            cid = get_correlation_id()
            first_line = queued()
        writer.flush()
        writer.set_background(False)
        log.operation_start("clone", **fields)
        log.operation_end("clone", True, 2.5, **fields)
        log.operation_end("clone", False, **fields, n=3)
        queued_lines, sync_lines = out.lines[:3], out.lines[3:]
        self.assertEqual(
            [
                "Operation started: clone",
                "Operation completed: clone (took 2.50s)",
                "Operation failed: clone",
            ],
            [line["message"] for line in queued_lines],
        )
        self.assertEqual(["DEBUG", "INFO", "ERROR"], [line["level"] for line in queued_lines])
        self.assertEqual(
            [first_line, first_line + 1, first_line + 2], [line["line"] for line in queued_lines]
        )
        self.assertEqual({"queued"}, {line["function"] for line in queued_lines})
        self.assertEqual({cid}, {line["correlation_id"] for line in queued_lines})
        volatile = (
            "timestamp",
            "level",
            "line",
            "function",
            "correlation_id",
            "correlation",
            "start_time",
            "end_time",
            "span_id",
        )
        for queued_line, sync_line in zip(queued_lines, sync_lines):
            self.assertEqual(list(sync_line), list(queued_line))  # same keys, same order
            self.assertEqual(
                {k: v for k, v in sync_line.items() if k not in volatile},
                {k: v for k, v in queued_line.items() if k not in volatile},
            )
        keys = list(queued_lines[0])
        self.assertLess(keys.index("repository"), keys.index("operation"))  # caller's first
        self.assertFalse(queued_lines[2]["success"])
        self.assertEqual(fields, {"provider": "github", "repository": "org/repo"})  # unchanged

    def test_log_operation_fields_named_like_logging_options_are_fields(self) -> None:
        """exc_info, stack_info and stacklevel among log_operation's fields are fields, the
        same with the writer in the background and on the calling thread."""
        log, writer, out = self.make()
        odd = {"exc_info": True, "stack_info": True, "stacklevel": 7}
        log.log_operation(logging.INFO, "op", "completed", 1.0, odd)
        writer.flush()
        writer.set_background(False)
        log.log_operation(logging.INFO, "op", "completed", 1.0, odd)
        for line, record in zip(out.lines, out.records):
            # (a field named like one of the line's own keys is written under "fields")
            self.assertEqual(odd, {k: line.get(k, line.get("fields", {}).get(k)) for k in odd})
            self.assertEqual(
                "test_log_operation_fields_named_like_logging_options_are_fields", line["function"]
            )
            self.assertIsNone(record.exc_info)
            self.assertIsNone(record.stack_info)
        self.assertEqual(2, len(out.lines))

    def test_log_operation_with_a_mutable_field_is_built_at_the_call(self) -> None:
        """A list among log_operation's fields: the line is built at the call, so a later
        change to the list is not written; lines queued before it are written first."""
        gate = threading.Event()
        log, writer, out = self.make(gate)
        log.info("park")
        self.assertTrue(out.entered.wait(10))
        log.log_operation(logging.INFO, "sync", "completed", 1.0, {"n": 1})
        items = ["a"]
        done = threading.Event()

        def call() -> None:
            log.log_operation(logging.INFO, "sync", "completed", 1.0, {"items": items})
            done.set()

        th = threading.Thread(target=call)
        th.start()
        self.assertFalse(done.wait(0.05))  # behind the queued lines, as a write must be
        gate.set()
        th.join(10)
        items.append("later")
        writer.flush()
        self.assertEqual(
            [{"n": 1}, {"items": ["a"]}],
            [{k: line[k] for k in ("n", "items") if k in line} for line in out.lines[1:]],
        )

    def test_log_operation_below_the_level_writes_nothing(self) -> None:
        log, writer, out = self.make()
        log.logger.setLevel(logging.INFO)
        log.log_operation(logging.DEBUG, "clone", "started", None, {})
        writer.flush()
        self.assertEqual([], out.lines)
        self.assertEqual(0, writer.pending)

    def test_exception_lines_keep_their_traceback_and_order(self) -> None:
        log, writer, out = self.make()
        log.info("before")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        log.info("after")
        writer.flush()
        self.assertEqual([line["message"] for line in out.lines], ["before", "failed", "after"])
        self.assertIn("ValueError", json.dumps(out.lines[1]))


class TestNothingLost(WriterCase):
    def test_a_full_queue_makes_the_caller_write_nothing_dropped(self) -> None:
        """max_pending=4 with the writer stuck: the fifth line waits for it, then all are
        written in order (back-pressure, not loss)."""
        gate = threading.Event()
        log, writer, out = self.make(gate, max_pending=4)
        log.info("first", i=-1)
        self.assertTrue(out.entered.wait(10))  # the writer is held inside the handler
        finished = threading.Event()

        def produce() -> None:
            for i in range(12):
                log.info("n", i=i)
            finished.set()

        producer = threading.Thread(target=produce)
        producer.start()
        self.assertTrue(await_condition(lambda: writer.pending == 4, 10))
        self.assertFalse(finished.is_set())  # the caller waits instead of dropping
        gate.set()
        producer.join(10)
        writer.flush()
        self.assertEqual([line["i"] for line in out.lines], list(range(-1, 12)))

    def test_a_full_queue_waits_for_the_writer_thread_to_make_room(self) -> None:
        """With room made within full_wait, a caller facing a full queue waits and writes
        nothing itself: every line is written by the writer thread, in order."""
        gate = threading.Event()
        log, writer, out = self.make(gate, max_pending=4, full_wait=60)
        written_by = self.writing_threads(log)
        log.info("first", i=-1)
        self.assertTrue(out.entered.wait(10))  # the writer is held inside the handler
        producer = threading.Thread(target=lambda: [log.info("n", i=i) for i in range(40)])
        producer.start()
        self.assertTrue(await_condition(lambda: writer.pending == 4, 10))
        gate.set()
        producer.join(30)
        self.assertTrue(writer.wait_written(timeout=30))
        self.assertEqual([line["i"] for line in out.lines], list(range(-1, 40)))
        self.assertEqual({"mgit-monitoring-log-writer"}, set(written_by))

    def test_a_handler_that_logs_into_a_full_queue_writes_at_once(self) -> None:
        """A thread that is writing (here a list-valued line, written on the calling thread)
        holds the writer's lock; its handler logging more lines than the queue holds must
        write them itself, not wait full_wait (60 s here) for a thread that needs that lock."""
        log, writer, out = self.make(max_pending=2, full_wait=60)
        inner = StructuredLogger(
            logging.getLogger(f"tests.log_writer.{self._testMethodName}.inner"), writer=writer
        )
        inner.logger.propagate = True  # into the test's Collect handler

        class LogsWhileWriting(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage() == "outer":
                    for i in range(5):
                        inner.info("inner", i=i)

        handler = LogsWhileWriting()
        log.logger.addHandler(handler)
        self.addCleanup(log.logger.removeHandler, handler)
        done = threading.Event()

        def call() -> None:
            log.info("outer", items=[1, 2])  # a list: written on this thread, lock held
            done.set()

        th = threading.Thread(target=call)
        th.start()
        self.assertTrue(done.wait(30), "the handler's lines waited for full_wait")
        th.join(10)
        writer.flush()
        self.assertEqual(
            [("outer", None)] + [("inner", i) for i in range(5)],
            [(line["message"], line.get("i")) for line in out.lines],
        )

    def test_a_failing_handler_is_one_warning_and_later_lines_still_written(self) -> None:
        log, writer, out = self.make()
        std = log.logger
        calls = [0]

        class Boom(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                calls[0] += 1
                if calls[0] <= 2:
                    raise RuntimeError("filter exploded")
                return True

        boom = Boom()
        std.addFilter(boom)
        self.addCleanup(std.removeFilter, boom)
        with self.assertLogs("mgit_monitoring.log_writer", "DEBUG") as cm:
            for i in range(4):
                log.info("n", i=i)
            writer.flush()
        warnings = [r for r in cm.records if r.levelno == logging.WARNING]
        self.assertEqual(len(warnings), 1)
        self.assertIn("filter exploded", warnings[0].getMessage())
        self.assertEqual([line["i"] for line in out.lines], [2, 3])

    def test_switching_off_writes_what_is_queued_and_stops_the_thread(self) -> None:
        gate = threading.Event()
        log, writer, out = self.make(gate)
        log.info("a")
        self.assertTrue(out.entered.wait(10))
        log.info("b")
        names = lambda: [t.name for t in threading.enumerate()]  # noqa: E731
        self.assertIn("mgit-monitoring-log-writer", names())
        gate.set()
        writer.set_background(False)
        self.assertEqual([line["message"] for line in out.lines], ["a", "b"])
        self.assertEqual(writer.pending, 0)
        log.info("c")  # now on the calling thread
        self.assertEqual(out.lines[-1]["message"], "c")

    def test_wait_written_waits_for_the_thread_to_write(self) -> None:
        """wait_written() returns once the writer thread (not the caller) wrote the lines."""
        gate = threading.Event()
        log, writer, out = self.make(gate)
        written_by = self.writing_threads(log)
        for i in range(3):
            log.info("n", i=i)
        self.assertFalse(writer.wait_written(timeout=0.05))  # held inside the handler
        gate.set()
        self.assertTrue(writer.wait_written(timeout=10))
        self.assertEqual([line["i"] for line in out.lines], [0, 1, 2])
        self.assertEqual(set(written_by), {"mgit-monitoring-log-writer"})

    def test_lines_are_written_without_a_flush_across_quiet_spells(self) -> None:
        """No flush, no wait: lines logged at uneven intervals (inside the linger, across
        it, and after the thread went back to sleep) each reach the handler by themselves:
        no wake-up is lost between lingering and sleeping."""
        log, writer, out = self.make(linger=0.02, idle_timeout=0.1)
        for i, pause in enumerate([0, 0, 0.01, 0.03, 0.15, 0, 0.3, 0.005, 0.12]):
            time.sleep(pause)
            log.info("n", i=i)
            self.assertTrue(
                await_condition(lambda i=i: len(out.lines) == i + 1, 10), (i, out.lines)
            )
        self.assertEqual(list(range(9)), [line["i"] for line in out.lines])

    def test_a_half_full_queue_wakes_the_thread(self) -> None:
        """The thread lingers (here 60 s) between wake-ups while lines keep coming; a queue
        reaching half of max_pending wakes it at once, before the caller must write."""
        gate = threading.Event()
        log, writer, out = self.make(gate, max_pending=10, linger=60, idle_timeout=60)
        log.info("first")  # wakes the sleeping thread, which then lingers
        self.assertTrue(out.entered.wait(10))
        gate.set()
        self.assertTrue(await_condition(lambda: len(out.lines) == 1, 10))
        for i in range(5):
            log.info("n", i=i)  # 5 pending: half of 10
        self.assertTrue(await_condition(lambda: len(out.lines) == 6, 10), out.lines)

    def test_linger_must_be_positive_and_within_idle_timeout(self) -> None:
        for linger, idle in ((0, 1.0), (-1, 1.0), (2.0, 1.0)):
            with self.subTest(linger=linger, idle_timeout=idle), self.assertRaises(ValueError):
                LogWriter(linger=linger, idle_timeout=idle)
        for bad in (
            {"full_wait": -1},
            {"full_wait": float("inf")},
            {"idle_timeout": float("inf")},
            {"full_wait": float("nan")},
        ):
            with self.subTest(**bad), self.assertRaises(ValueError):
                LogWriter(**bad)

    def test_max_pending_must_be_positive(self) -> None:
        with self.assertRaises(ValueError):
            LogWriter(max_pending=0)


def run(code: str, env_extra: Optional[dict] = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("MGIT_MONITORING_LOG_BACKGROUND", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


class TestInARealProcess(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def program(self, tail: str) -> str:
        head = f"""
            import logging, os, sys
            from mgit_monitoring.integration import (
                monitor_mgit_operation, setup_monitoring_integration)
            from mgit_monitoring.logs import setup_structured_logging
            # DEBUG: each operation writes its "started" line too (two lines per call).
            setup_structured_logging(stream=sys.stdout, profile="json", log_level="DEBUG")
            setup_monitoring_integration(state_dir={self.dir!r}, persist=False)

            @monitor_mgit_operation("sync_repo", provider="github")
            def sync(i):
                return i
        """
        return textwrap.dedent(head) + textwrap.dedent(tail)

    def test_every_line_is_written_at_exit_without_a_flush(self) -> None:
        """1,000 operations and a plain exit: all 2,000 operation lines are in the output,
        each once (atexit writes the queue before logging closes the handlers)."""
        proc = run(self.program("for i in range(1000): sync(i)"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = [json.loads(x) for x in proc.stdout.splitlines()]
        ops = [x for x in lines if x.get("operation") == "sync_repo"]
        self.assertEqual(len(ops), 2000)
        started = [x for x in ops if x["operation_status"] == "started"]
        self.assertEqual(len({x["correlation_id"] for x in started}), 1000)

    def test_off_by_variable_writes_on_the_calling_thread(self) -> None:
        code = self.program(
            """
            import threading
            sync(1)
            print("threads", sorted(t.name for t in threading.enumerate()), flush=True)
            """
        )
        proc = run(code, {"MGIT_MONITORING_LOG_BACKGROUND": "false"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn("mgit-monitoring-log-writer", proc.stdout)
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        ops = [x["operation_status"] for x in lines if x.get("operation") == "sync_repo"]
        self.assertEqual(ops, ["started", "completed"])

    @unittest.skipUnless(hasattr(os, "fork"), "no os.fork on this platform")
    def test_fork_loses_no_line_on_either_side(self) -> None:
        """Lines queued before a fork are written once, before it; a child that leaves with
        os._exit (as multiprocessing children do) loses none of its own; a parent that
        leaves with os._exit right after forking (daemonizing) loses none either."""
        code = self.program(
            """
            from mgit_monitoring.structured_logger import get_structured_logger
            slog = get_structured_logger("x")
            for i in range(100):
                slog.info("before fork", i=i)
            pid = os.fork()
            if pid == 0:
                for i in range(200):
                    slog.info("child line", i=i)
                os._exit(0)
            os.waitpid(pid, 0)
            for i in range(50):
                slog.info("before daemonizing", i=i)
            pid = os.fork()
            if pid != 0:
                os._exit(0)  # the parent leaves at once, as a daemonizing process does
            slog.info("daemon line")
            os._exit(0)
            """
        )
        proc = run(code)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        messages = [json.loads(x)["message"] for x in proc.stdout.splitlines()]
        self.assertEqual(messages.count("before fork"), 100, messages[:5])
        self.assertEqual(messages.count("child line"), 200)
        self.assertEqual(messages.count("before daemonizing"), 50)
        self.assertEqual(messages.count("daemon line"), 1)

    @unittest.skipUnless(hasattr(os, "fork"), "no os.fork on this platform")
    def test_a_writer_stuck_in_a_handler_does_not_stop_fork(self) -> None:
        """The writer held inside a handler: os.fork() goes ahead after a bounded wait, the
        child writes its own line, and the parent writes its queued lines once, later."""
        code = self.program(
            """
            import threading
            from mgit_monitoring.log_writer import flush_logs, get_log_writer
            gate = threading.Event()
            parent = os.getpid()

            class Park(logging.Filter):
                def filter(self, record):
                    if os.getpid() == parent and record.getMessage() == "park":
                        gate.wait(60)
                    return True

            logging.getLogger().handlers[0].addFilter(Park())
            from mgit_monitoring.structured_logger import get_structured_logger
            slog = get_structured_logger("x")
            slog.info("park")
            while get_log_writer().pending != 0:
                pass  # the writer has taken "park" and is held inside the handler
            for i in range(5):
                slog.info("queued", i=i)
            pid = os.fork()
            if pid == 0:
                slog.info("child line")
                os._exit(0)
            os.waitpid(pid, 0)
            gate.set()
            flush_logs()
            """
        )
        proc = run(code)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        messages = [json.loads(x)["message"] for x in proc.stdout.splitlines()]
        self.assertEqual(messages.count("queued"), 5, messages)
        self.assertEqual(messages.count("child line"), 1, messages)
        self.assertEqual(messages.count("park"), 1, messages)

    def test_lines_logged_by_exit_hooks_are_written(self) -> None:
        """An atexit hook registered before the integration (as an application's are)
        logs after the writer's exit flush: its lines are written on the calling thread."""
        code = textwrap.dedent(
            """
            import atexit, sys
            from mgit_monitoring.structured_logger import get_structured_logger

            def last_words():
                for i in range(5):
                    get_structured_logger("x").info("at exit", i=i)

            atexit.register(last_words)
            """
        ) + self.program('get_structured_logger("x").info("first line")')
        proc = run(code)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        messages = [json.loads(x)["message"] for x in proc.stdout.splitlines()]
        self.assertEqual(messages.count("first line"), 1, messages)
        self.assertEqual(messages.count("at exit"), 5, messages)


if __name__ == "__main__":
    unittest.main()
