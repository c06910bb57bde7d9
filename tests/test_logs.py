"""Tests for the logging modules: the JSON formatter (log_formatter), its encoding
(log_encoding), the structured logger (structured_logger) and the setup (logs)."""

from __future__ import annotations

import contextlib
import datetime
import io
import itertools
import json
import logging
import logging.config
import logging.handlers
import math
import os
import pickle
import random
import re
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from types import MappingProxyType
from typing import Any, Dict, List

from mgit_monitoring.context import correlation_context, provider_context, reset_process_trace
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_encoding import LineEncoder
from mgit_monitoring.log_formatter import CONTEXT_ATTR, FIELDS_ATTR
from mgit_monitoring.logs import (
    StructuredFormatter,
    StructuredLogger,
    get_structured_logger,
    setup_structured_logging,
)
from mgit_monitoring.masking import CredentialMasker
from tests.support import need_executable, record_factory
from tests.test_masking import embed, secret_generators

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
_names = itertools.count()
THIS_FILE_MODULE = os.path.splitext(os.path.basename(__file__))[0]


def unique_name(prefix: str = "test.logs") -> str:
    return f"{prefix}.{next(_names)}.{os.getpid()}"


class RecordingHandler(logging.StreamHandler):
    """A StreamHandler that records handleError calls instead of printing them."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.errors: List[logging.LogRecord] = []

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        self.errors.append(record)


class CapturingHandler(logging.Handler):
    """Keeps the records it is given, unformatted."""

    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class LogTestCase(unittest.TestCase):
    """Gives each test its own logger writing JSON to a StringIO, restored afterwards."""

    formatter_kwargs: Dict[str, Any] = {}

    def setUp(self) -> None:
        reset_process_trace()
        self.addCleanup(reset_process_trace)
        self.stream = io.StringIO()
        self.name = unique_name()
        self.std = logging.getLogger(self.name)
        self.handler = RecordingHandler(self.stream)
        self.handler.setFormatter(StructuredFormatter(**self.formatter_kwargs))
        self.std.addHandler(self.handler)
        self.std.setLevel(logging.DEBUG)
        self.std.propagate = False
        self.addCleanup(self.std.removeHandler, self.handler)
        self.log = StructuredLogger(self.std)

    def lines(self) -> List[Dict[str, Any]]:
        text = self.stream.getvalue()
        for raw in text.splitlines():
            self.assertTrue(raw.startswith("{") and raw.endswith("}"), raw)
        return [json.loads(raw) for raw in text.splitlines()]

    def one(self) -> Dict[str, Any]:
        lines = self.lines()
        self.assertEqual(1, len(lines), lines)
        return lines[0]


class TestLineShape(LogTestCase):
    def test_seed_example_line(self) -> None:
        """logger.info(msg, **fields) writes the documented keys, in order, plus the fields."""
        before = time.time()
        self.log.info("Starting clone operation", repository="repo1", provider="github")
        line_no = sys._getframe().f_lineno - 1
        line = self.one()
        self.assertEqual(
            [
                "timestamp",
                "level",
                "logger",
                "message",
                "module",
                "function",
                "line",
                "correlation_id",
                "span_id",
                "correlation",
                "repository",
                "provider",
            ],
            list(line),
        )
        self.assertRegex(line["timestamp"], TS)
        stamp = datetime.datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        epoch = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
        self.assertLessEqual(int(before), epoch)
        self.assertEqual("INFO", line["level"])
        self.assertEqual(self.name, line["logger"])
        self.assertEqual("Starting clone operation", line["message"])
        self.assertEqual(THIS_FILE_MODULE, line["module"])
        self.assertEqual("test_seed_example_line", line["function"])
        self.assertEqual(line_no, line["line"])
        self.assertRegex(line["correlation_id"], HEX32)
        self.assertEqual("repo1", line["repository"])

    def test_timestamp_is_utc_with_fixed_milliseconds(self) -> None:
        """The timestamp is the record's time in UTC, always with three fractional digits."""
        fmt = StructuredFormatter()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        record.created, record.msecs = 1767225600.0, 0.0  # 2026-01-01T00:00:00 UTC exactly
        self.assertEqual("2026-01-01T00:00:00.000Z", json.loads(fmt.format(record))["timestamp"])
        micro = StructuredFormatter(timespec="microseconds")
        record.created = 1767225600.25
        self.assertEqual(
            "2026-01-01T00:00:00.250000Z", json.loads(micro.format(record))["timestamp"]
        )

    def test_levels_and_percent_args(self) -> None:
        """Each level method logs at its level; %-args are applied to the message."""
        self.log.debug("d %s", 1)
        self.log.info("i")
        self.log.warning("w")
        self.log.error("e")
        self.log.critical("c")
        self.log.log(logging.WARNING, "l %d%%", 5)
        self.assertEqual(
            [
                ("DEBUG", "d 1"),
                ("INFO", "i"),
                ("WARNING", "w"),
                ("ERROR", "e"),
                ("CRITICAL", "c"),
                ("WARNING", "l 5%"),
            ],
            [(x["level"], x["message"]) for x in self.lines()],
        )

    def test_disabled_level_writes_nothing(self) -> None:
        """A call below the logger's level writes nothing; logging.disable is honoured."""
        self.std.setLevel(logging.INFO)
        self.log.debug("hidden", repo="x")
        logging.disable(logging.CRITICAL)
        self.addCleanup(logging.disable, logging.NOTSET)
        self.log.error("also hidden")
        self.assertEqual("", self.stream.getvalue())

    def test_levels_are_read_live_own_or_inherited(self) -> None:
        """A level set on the logger or on an ancestor, raised or lowered at any time, decides
        at the next call (nothing about levels is remembered by the structured logger)."""
        parent = logging.getLogger(unique_name())
        child = logging.getLogger(parent.name + ".child")
        child.addHandler(self.handler)
        child.propagate = False
        self.addCleanup(child.removeHandler, self.handler)
        slog = StructuredLogger(child)
        parent.setLevel(logging.WARNING)
        slog.info("hidden by the parent")
        parent.setLevel(logging.DEBUG)
        slog.info("shown 1")
        child.setLevel(logging.ERROR)
        slog.warning("hidden by the child")
        child.level = logging.DEBUG  # even without setLevel
        slog.debug("shown 2")
        child.setLevel(logging.NOTSET)
        parent.setLevel(logging.ERROR)
        slog.warning("hidden by the parent again")
        self.assertEqual(["shown 1", "shown 2"], [x["message"] for x in self.lines()])

    def test_a_logger_class_deciding_levels_its_own_way_is_asked(self) -> None:
        """A Logger subclass whose isEnabledFor ignores its level is asked on every call."""

        class Chatty(logging.Logger):
            def isEnabledFor(self, level: int) -> bool:  # noqa: N802
                return True

        chatty = Chatty(unique_name(), logging.ERROR)
        chatty.addHandler(self.handler)
        StructuredLogger(chatty).debug("asked anyway")
        self.assertEqual("asked anyway", self.one()["message"])

    def test_logger_filters_and_disabled_flag_apply(self) -> None:
        """The logger's own filters see (and may drop or annotate) the structured logger's
        records; a disabled logger writes nothing."""

        def only_kept(record: logging.LogRecord) -> bool:
            record.filtered = True
            return record.getMessage() != "dropped"

        self.std.addFilter(only_kept)
        self.log.info("dropped")
        self.log.info("kept", repo="r")
        self.std.removeFilter(only_kept)
        self.std.disabled = True
        self.addCleanup(setattr, self.std, "disabled", False)
        self.log.error("disabled")
        line = self.one()
        self.assertEqual(("kept", True, "r"), (line["message"], line["filtered"], line["repo"]))

    def test_logger_subclass_handle_is_honoured(self) -> None:
        """A Logger subclass overriding handle() receives every record."""
        seen: List[str] = []

        class Watching(logging.Logger):
            def handle(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())
                super().handle(record)

        watching = Watching(unique_name())
        watching.addHandler(self.handler)
        StructuredLogger(watching).warning("watched")
        self.assertEqual(["watched"], seen)
        self.assertEqual("watched", self.one()["message"])

    def test_colliding_field_names_are_kept(self) -> None:
        """Fields named like LogRecord attributes or the line's own keys are kept, not a crash."""
        self.log.info(
            "m", name="n", module="mod", args=[1], message="msg", level="x", msg="y", exc_text="z"
        )
        line = self.one()
        self.assertEqual("m", line["message"])
        self.assertEqual(THIS_FILE_MODULE, line["module"])
        self.assertEqual("n", line["name"])
        self.assertEqual([1], line["args"])
        self.assertEqual("y", line["msg"])
        self.assertEqual("z", line["exc_text"])
        self.assertEqual({"module": "mod", "message": "msg", "level": "x"}, line["fields"])

    def test_stdlib_extra_fields_are_written(self) -> None:
        """Records from a plain logging call carry their extra= attributes as fields."""
        self.std.info("plain %s", "x", extra={"repo": "org/r", "n": 2})
        line = self.one()
        self.assertEqual(("plain x", "org/r", 2), (line["message"], line["repo"], line["n"]))
        self.assertNotIn("taskName", line)
        self.assertNotIn("mgit_fields", line)

    def test_stacklevel_points_at_the_callers_caller(self) -> None:
        """stacklevel=2 reports the function that called the helper."""

        def helper() -> None:
            self.log.info("from helper", stacklevel=2)

        helper()
        line_no = sys._getframe().f_lineno - 1
        line = self.one()
        self.assertEqual(
            ("test_stacklevel_points_at_the_callers_caller", line_no),
            (line["function"], line["line"]),
        )

    def test_stack_info(self) -> None:
        """stack_info=True adds the caller's stack on the same line."""
        self.log.info("with stack", stack_info=True)
        self.assertIn("test_stack_info", self.one()["stack_info"])


class TestExceptions(LogTestCase):
    def test_exception_method_records_the_traceback(self) -> None:
        """.exception() inside except writes type, message and traceback on one line."""
        try:
            raise ValueError("bad value")
        except ValueError:
            self.log.exception("failed", repo="r")
        line = self.one()
        self.assertEqual("ERROR", line["level"])
        self.assertEqual("ValueError", line["exception"]["type"])
        self.assertEqual("bad value", line["exception"]["message"])
        self.assertIn('raise ValueError("bad value")', line["exception"]["traceback"])
        self.assertEqual("r", line["repo"])
        self.assertEqual(1, len(self.stream.getvalue().splitlines()))

    def test_exc_info_true_and_instance(self) -> None:
        """exc_info=True and exc_info=<exception> both record the exception."""
        try:
            raise KeyError("k")
        except KeyError as exc:
            self.log.warning("a", exc_info=True)
            self.log.error("b", exc_info=exc)
        a, b = self.lines()
        self.assertEqual(("KeyError", "KeyError"), (a["exception"]["type"], b["exception"]["type"]))
        self.assertEqual("WARNING", a["level"])

    def test_qualified_type_name_for_non_builtins(self) -> None:
        """A non-builtin exception type is written with its module."""
        try:
            subprocess.run([sys.executable, "-c", "raise SystemExit(3)"], check=True)
        except subprocess.CalledProcessError:
            self.log.exception("git failed")
        self.assertEqual("subprocess.CalledProcessError", self.one()["exception"]["type"])

    def test_exc_info_outside_except_is_harmless(self) -> None:
        """exc_info=True with no active exception writes a line without an exception."""
        self.log.error("nothing raised", exc_info=True)
        self.assertNotIn("exception", self.one())


class TestCorrelationInLines(LogTestCase):
    def test_context_is_written(self) -> None:
        """Lines inside nested contexts carry the shared id and the merged context."""
        with correlation_context(operation="clone_all", organization="myorg") as cid:
            with provider_context("github", "myorg"):
                self.log.info("inner")
            self.log.info("outer")
        inner, outer = self.lines()
        self.assertEqual(cid, inner["correlation_id"])
        self.assertEqual(cid, outer["correlation_id"])
        self.assertEqual(
            {
                "correlation_id": cid,
                "operation": "clone_all",
                "organization": "myorg",
                "provider": "github",
            },
            inner["correlation"],
        )
        self.assertEqual(
            {"correlation_id": cid, "operation": "clone_all", "organization": "myorg"},
            outer["correlation"],
        )

    def test_stdlib_records_get_the_context_too(self) -> None:
        """A plain logging call inside a context carries its id."""
        with correlation_context(operation="x") as cid:
            self.std.info("plain")
        self.assertEqual(cid, self.one()["correlation_id"])

    def test_operation_start_and_end(self) -> None:
        """operation_start/operation_end write the seed's messages, fields and levels."""
        self.log.operation_start("clone", repository="repo1")
        self.log.operation_end("clone", success=True, duration=2.5)
        self.log.operation_end("clone", success=False)
        start, end, failed = self.lines()
        self.assertEqual(("INFO", "Operation started: clone"), (start["level"], start["message"]))
        self.assertEqual(
            ("clone", "started", "repo1"),
            (start["operation"], start["operation_status"], start["repository"]),
        )
        self.assertIsInstance(start["start_time"], float)
        self.assertEqual(
            ("INFO", "Operation completed: clone (took 2.50s)"), (end["level"], end["message"])
        )
        self.assertEqual(
            (True, 2.5, "completed"),
            (end["success"], end["duration_seconds"], end["operation_status"]),
        )
        self.assertEqual(
            ("ERROR", "Operation failed: clone", False),
            (failed["level"], failed["message"], failed["success"]),
        )
        self.assertNotIn("duration_seconds", failed)

    def test_record_keeps_the_context_it_was_made_in(self) -> None:
        """A record formatted later (e.g. by a QueueListener) keeps its creation context."""
        catcher = CapturingHandler()
        captured = catcher.records
        self.std.removeHandler(self.handler)
        self.std.addHandler(catcher)
        self.addCleanup(self.std.removeHandler, catcher)
        with correlation_context(operation="queued") as cid:
            self.log.info("later")
        line = json.loads(StructuredFormatter().format(captured[0]))
        self.assertEqual(
            (cid, "queued"), (line["correlation_id"], line["correlation"]["operation"])
        )

    def test_records_survive_pickling_with_their_context(self) -> None:
        """A record sent through SocketHandler (pickle protocol 1) or a process queue keeps
        its correlation when formatted on the other side, after a formatter has cached it."""
        catcher = CapturingHandler()
        captured = catcher.records
        self.std.addHandler(catcher)
        self.addCleanup(self.std.removeHandler, catcher)
        with correlation_context(operation="clone_all") as cid:
            self.log.info("shipped", repo="r")
        record = captured[0]
        StructuredFormatter().format(record)  # fills the scope's rendering caches
        sender = logging.handlers.SocketHandler("localhost", None)
        self.addCleanup(sender.close)
        wire = sender.makePickle(record)
        for payload in (pickle.loads(wire[4:]), pickle.loads(pickle.dumps(record.__dict__))):
            line = json.loads(StructuredFormatter().format(logging.makeLogRecord(payload)))
            self.assertEqual(
                (cid, "clone_all", "r"),
                (line["correlation_id"], line["correlation"]["operation"], line["repo"]),
            )


class TestCorrelationRenderingCache(unittest.TestCase):
    """The correlation object is rendered once per attribute dict and masker, and reused."""

    def capture(self) -> List[logging.LogRecord]:
        name = unique_name()
        logger = logging.getLogger(name)
        catcher = CapturingHandler()
        records = catcher.records
        logger.addHandler(catcher)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        self.addCleanup(logger.removeHandler, catcher)
        self.log = StructuredLogger(logger)
        return records

    def test_each_formatter_masks_with_its_own_masker(self) -> None:
        """Two formatters with different maskers format one scope's records differently."""
        records = self.capture()
        with correlation_context(operation="sync", team="blue"):
            self.log.info("a")
        strict = StructuredFormatter(masker=CredentialMasker(sensitive_keys=["team"]))
        plain = StructuredFormatter(mask_credentials=False)
        default = StructuredFormatter()
        for _ in range(2):  # the second round answers from the caches
            self.assertEqual("***", json.loads(strict.format(records[0]))["correlation"]["team"])
            self.assertEqual("blue", json.loads(plain.format(records[0]))["correlation"]["team"])
            self.assertEqual("blue", json.loads(default.format(records[0]))["correlation"]["team"])

    def test_scopes_sharing_attributes_keep_their_own_ids(self) -> None:
        """Scopes that share an attribute dict each render their own correlation and span ids."""
        records = self.capture()
        formatter = StructuredFormatter()
        with correlation_context(operation="sync", token="ghp_" + "x" * 36):
            for _ in range(2):
                with correlation_context(operation="sync") as cid:  # changes nothing: shared
                    self.log.info("inner")
                    self.assertEqual(
                        cid, json.loads(formatter.format(records[-1]))["correlation_id"]
                    )
        first, second = (json.loads(formatter.format(r)) for r in records)
        self.assertNotEqual(first["span_id"], second["span_id"])
        for line in (first, second):
            self.assertEqual(
                {"correlation_id": line["correlation_id"], "operation": "sync", "token": "***"},
                line["correlation"],
            )
        self.assertEqual(first["correlation_id"], second["correlation_id"])


class TestNoCorrelation(LogTestCase):
    formatter_kwargs = {"include_correlation": False}

    def test_include_correlation_false_omits_ids(self) -> None:
        """include_correlation=False leaves correlation_id, span_id and correlation out."""
        with correlation_context(operation="x"):
            self.log.info("m")
        line = self.one()
        for key in ("correlation_id", "span_id", "correlation"):
            self.assertNotIn(key, line)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Plain:
    pass


class TestRobustness(LogTestCase):
    def test_non_serialisable_values_never_break_a_line(self) -> None:
        """bytes, sets, datetimes, exceptions, objects, NaN and cycles all give valid JSON."""
        cyclic: Dict[str, Any] = {"a": 1}
        cyclic["self"] = cyclic
        when = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
        self.log.info(
            "values",
            raw=b"\xffab",
            tags={"b", "a"},
            when=when,
            err=ValueError("boom"),
            obj=Plain(),
            bad=Unprintable(),
            nan=math.nan,
            key_tuple={(1, 2): "x"},
        )
        self.log.info("cycle", data=cyclic)
        values, cycle = self.lines()
        self.assertEqual("\\xffab", values["raw"])
        self.assertEqual(["a", "b"], values["tags"])
        self.assertEqual("2026-01-01T12:00:00+00:00", values["when"])
        self.assertEqual("ValueError: boom", values["err"])
        self.assertIn("Plain object at", values["obj"])
        self.assertEqual("<unrepresentable Unprintable>", values["bad"])
        self.assertEqual("nan", values["nan"])
        self.assertEqual({"(1, 2)": "x"}, values["key_tuple"])
        self.assertEqual("<circular>", cycle["data"]["self"])
        self.assertEqual([], self.handler.errors)

    def test_huge_int_never_breaks_a_line(self) -> None:
        """An int too long for str() (the int_max_str_digits limit) is written as a placeholder."""
        huge = 10**5000
        self.log.info("m", n=huge, nested={"n": [huge]})
        line = self.one()
        self.assertEqual([], self.handler.errors)
        if hasattr(sys, "get_int_max_str_digits"):  # 3.11+, and backported to 3.8-3.10
            self.assertRegex(line["n"], r"^<int of \d+ bits>$")
        else:
            self.assertEqual(huge, line["n"])

    def test_failure_goes_through_handle_error(self) -> None:
        """A message whose %-args do not fit goes to Handler.handleError, not the caller."""
        self.log.info("%d items", "not a number")
        self.std.info("%s %s", "only one")
        self.assertEqual(2, len(self.handler.errors))
        self.assertEqual("", self.stream.getvalue())

    def test_record_and_caller_dicts_are_not_mutated(self) -> None:
        """Formatting changes neither the LogRecord nor the dicts the caller passed."""
        fields = {"password": "hunter2", "nested": {"token": "abc", "list": ["https://u:p@h.io/"]}}
        snapshot = json.dumps(fields)
        self.log.info("m", **fields)
        self.assertEqual(snapshot, json.dumps(fields))
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m %s", ("a",), None)
        try:
            raise ValueError("x")
        except ValueError:
            record.exc_info = sys.exc_info()
        before = dict(record.__dict__)
        StructuredFormatter().format(record)
        self.assertEqual(before, record.__dict__)

    def test_surrogate_escaped_paths_stay_valid_utf8(self) -> None:
        """An undecodable file name is written as a JSON escape that round-trips, not an error."""
        path = os.fsdecode(b"/tmp/caf\xe9/\xff.txt")
        self.log.info("opening %s", path, path=path, word="café")
        raw = self.stream.getvalue()
        raw.encode("utf-8")  # would raise on a lone surrogate
        line = self.one()
        self.assertEqual(path, line["path"])
        self.assertEqual("café", line["word"])
        self.assertEqual(f"opening {path}", line["message"])

    def test_taskname_is_not_a_field(self) -> None:
        """Records made inside an asyncio task carry no stray taskName field."""
        import asyncio

        async def main() -> None:
            self.log.info("in task")
            self.std.info("plain in task")

        asyncio.run(main())
        for line in self.lines():
            self.assertNotIn("taskName", line)

    def capture_records(self) -> List[logging.LogRecord]:
        catcher = CapturingHandler()
        captured = catcher.records
        self.std.addHandler(catcher)
        self.addCleanup(self.std.removeHandler, catcher)
        return captured

    def test_records_are_the_loggers_own(self) -> None:
        """The structured logger's records are what the logger's makeRecord builds, with the
        caller's file, line and function, plus the fields and the scope as two attributes."""
        captured = self.capture_records()
        args: Dict[str, Any] = {"k": 1}
        with correlation_context(operation="sync"):
            self.log.warning("m %(k)s", args, repo="r")
        line_no = sys._getframe().f_lineno - 1
        made = captured[0]
        ref = self.std.makeRecord(
            self.name,
            logging.WARNING,
            __file__,
            line_no,
            "m %(k)s",
            (args,),
            None,
            "test_records_are_the_loggers_own",
        )
        self.assertIs(type(ref), type(made))
        got = dict(made.__dict__)
        self.assertEqual({"repo": "r"}, got.pop(FIELDS_ATTR))
        self.assertEqual("sync", got.pop(CONTEXT_ATTR).attrs["operation"])
        times = ("created", "msecs", "relativeCreated")
        for key in times:
            self.assertAlmostEqual(ref.__dict__.pop(key), got.pop(key), delta=5000)
        self.assertEqual(ref.__dict__, got)
        self.assertEqual("m 1", made.getMessage())

    def test_logger_subclass_make_record_is_honoured(self) -> None:
        """A Logger subclass's makeRecord builds the structured logger's records."""

        class TaggingLogger(logging.Logger):
            def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:  # noqa: N802
                record = super().makeRecord(*args, **kwargs)
                record.host_tag = "tagged"
                return record

        host = TaggingLogger(unique_name())
        host.addHandler(self.handler)
        StructuredLogger(host).info("m", repo="r")
        line = self.one()
        self.assertEqual(("tagged", "r"), (line["host_tag"], line["repo"]))

    def test_operation_times_come_from_the_injected_clock(self) -> None:
        """operation_start/operation_end read the clock given to the constructor."""
        ticks = iter([1767225600.5, 1767225603.0])
        slog = StructuredLogger(self.std, clock=lambda: next(ticks))
        slog.operation_start("clone")
        slog.operation_end("clone", duration=2.5)
        start, end = self.lines()
        self.assertEqual((1767225600.5, 1767225603.0), (start["start_time"], end["end_time"]))

    def test_record_timestamp_comes_from_the_record_factory(self) -> None:
        """The line's time is the record's: a host's record factory (here a frozen clock)
        decides it, and the line shows it in UTC."""

        def frozen(record: logging.LogRecord) -> None:
            record.created, record.msecs = 1767225600.987654, 987.0

        record_factory(self, frozen)
        self.log.info("m")
        self.assertEqual("2026-01-01T00:00:00.987Z", self.one()["timestamp"])

    def test_custom_record_factory_is_honoured(self) -> None:
        """A host's LogRecord factory still builds the structured logger's records."""
        record_factory(self, lambda record: setattr(record, "host_tag", "tagged"))
        self.log.info("m")
        self.assertEqual("tagged", self.one()["host_tag"])


class TestMaskingInLines(LogTestCase):
    def test_message_args_fields_and_exceptions_are_masked(self) -> None:
        """Secrets in the message, its args, nested fields and the exception are masked."""
        token = "ghp_" + "FAKE" * 9
        try:
            raise RuntimeError(f"git failed for https://x-access-token:{token}@github.com/o/r.git")
        except RuntimeError:
            self.log.exception(
                "pushing with %s",
                token,
                password="hunter2",
                remote="https://u:pw123@github.com/o/r.git",
                nested={
                    "headers": {"Authorization": "Bearer abc"},
                    "argv": ["git", f"-c http.extraHeader=AUTHORIZATION: basic {token}"],
                },
            )
        raw = self.stream.getvalue()
        for secret in (token[4:], "hunter2", "pw123", "Bearer abc"):
            self.assertNotIn(secret, raw)
        line = self.one()
        self.assertEqual("pushing with ghp_***", line["message"])
        self.assertEqual("***", line["password"])
        self.assertEqual("https://u:***@github.com/o/r.git", line["remote"])
        self.assertEqual("***", line["nested"]["headers"]["Authorization"])
        self.assertEqual(
            "git failed for https://x-access-token:ghp_***@github.com/o/r.git",
            line["exception"]["message"],
        )
        self.assertIn("x-access-token:***@github.com", line["exception"]["traceback"])

    def test_context_attributes_are_masked(self) -> None:
        """A secret placed in the correlation context is masked in the correlation object."""
        with correlation_context(operation="clone", remote="https://u:pw123@h.io/r.git"):
            self.log.info("m")
        self.assertEqual("https://u:***@h.io/r.git", self.one()["correlation"]["remote"])

    def test_context_values_of_any_type_are_masked_in_every_profile(self) -> None:
        """bytes and exceptions in the correlation context are masked, ECS labels included."""
        for profile in ("default", "ecs", "gcp"):
            with self.subTest(profile=profile):
                self.stream.seek(0)
                self.stream.truncate()
                self.handler.setFormatter(StructuredFormatter(profile=profile))
                with correlation_context(
                    operation="clone",
                    remote=b"https://u:pw123@h.io/r.git",
                    err=ValueError("token=abc123"),
                ):
                    self.log.info("m")
                raw = self.stream.getvalue()
                self.assertNotIn("pw123", raw)
                self.assertNotIn("abc123", raw)
                self.assertIn("https://u:***@h.io/r.git", raw)

    def test_non_string_keys_and_mappings_are_masked(self) -> None:
        """A tuple key holding a URL and a read-only mapping with a secret key are masked."""
        self.log.info(
            "m",
            by_remote={("https://u:pw123@h.io/r.git", 1): "ok"},
            settings=MappingProxyType({"pat": "abc123", "org": "acme"}),
        )
        line = self.one()
        self.assertNotIn("pw123", self.stream.getvalue())
        self.assertEqual({"('https://u:***@h.io/r.git', 1)": "ok"}, line["by_remote"])
        self.assertEqual({"pat": "***", "org": "acme"}, line["settings"])

    def test_filter_attributes_and_stack_info_are_masked(self) -> None:
        """Attributes a host filter adds, and the source lines in stack_info, are masked."""

        def add_header(record: logging.LogRecord) -> bool:
            record.request = "GET / Authorization: Bearer abc123"
            return True

        self.std.addFilter(add_header)
        self.addCleanup(self.std.removeFilter, add_header)
        self.std.info("m", stack_info=True)  # token=abc123 (shown in the stack)
        line = self.one()
        self.assertNotIn("abc123", self.stream.getvalue())
        self.assertEqual("GET / Authorization: Bearer ***", line["request"])
        self.assertIn("# token=*** (shown in the stack)", line["stack_info"])

    def test_masked_non_string_values(self) -> None:
        """A secret inside bytes or an exception object given as a field is masked too."""
        self.log.info("m", raw=b"password=hunter2", err=ValueError("token=abc123"))
        line = self.one()
        self.assertEqual(("password=***", "ValueError: token=***"), (line["raw"], line["err"]))

    def test_git_sha_and_the_word_token_survive(self) -> None:
        """Commit ids and prose about tokens are not masked."""
        self.log.info("Invalid token for org", sha="3f786850e387550fdab836ed7e6dc881de23001b")
        line = self.one()
        self.assertEqual(
            ("Invalid token for org", "3f786850e387550fdab836ed7e6dc881de23001b"),
            (line["message"], line["sha"]),
        )

    def test_random_secrets_in_messages_fields_and_exceptions(self) -> None:
        """Every secret kind at random positions is masked wherever it goes: message, %-args,
        fields, nested lists and dict keys, extra=, the context, exceptions, every profile."""
        seed = int(
            os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32))
        )
        rng = random.Random(seed)
        for i, (kind, gen) in enumerate(secret_generators() * 6):
            secret_text, secret = gen(rng)
            prefix, suffix, text = embed(rng, secret_text)
            self.stream.seek(0)
            self.stream.truncate()
            where = f"seed={seed} iteration={i} kind={kind} text={text!r}"
            profile = ("default", "ecs", "gcp")[i % 3]
            self.handler.setFormatter(StructuredFormatter(profile=profile))
            with correlation_context(operation="op", remote=text):
                try:
                    raise RuntimeError(text)
                except RuntimeError:
                    self.std.error("%s", text, exc_info=True, extra={"via_extra": text})
                    self.handler.setFormatter(StructuredFormatter())
                    self.log.exception(text, field=text, nested={"list": [text], text: 1})
            raw = self.stream.getvalue()
            self.assertNotIn(secret, raw, where)
            line = json.loads(raw.splitlines()[1])
            for value in (
                line["message"],
                line["field"],
                line["nested"]["list"][0],
                line["exception"]["message"],
            ):
                self.assertTrue(value.startswith(prefix), where)
                self.assertTrue(value.endswith(suffix), where)
                self.assertIn("***", value, where)


class TestUnmasked(LogTestCase):
    formatter_kwargs = {"mask_credentials": False}

    def test_mask_credentials_false_leaves_text(self) -> None:
        """mask_credentials=False writes values as given."""
        self.log.info("token=abc", password="hunter2")
        line = self.one()
        self.assertEqual(("token=abc", "hunter2"), (line["message"], line["password"]))


class TestProfiles(LogTestCase):
    def format_with(self, profile: str, **kw: Any) -> Dict[str, Any]:
        self.handler.setFormatter(StructuredFormatter(profile=profile, **kw))
        with correlation_context(operation="clone_all") as cid:
            try:
                raise ValueError("bad")
            except ValueError:
                self.log.exception("failed", repo="r")
        line = self.one()
        line["_cid"] = cid
        return line

    def test_ecs_profile(self) -> None:
        """The ecs profile writes @timestamp, log.level, ecs.version, trace.id and error.*."""
        line = self.format_with("ecs")
        self.assertEqual(["@timestamp", "log.level", "message", "ecs.version"], list(line)[:4])
        self.assertRegex(line["@timestamp"], TS)
        self.assertEqual("error", line["log.level"])
        self.assertEqual(line["_cid"], line["trace.id"])
        self.assertEqual({"operation": "clone_all"}, line["labels"])
        self.assertEqual(("ValueError", "bad"), (line["error.type"], line["error.message"]))
        self.assertIn("Traceback", line["error.stack_trace"])
        self.assertEqual("r", line["repo"])

    def test_gcp_profile(self) -> None:
        """The gcp profile writes severity and logging.googleapis.com/trace."""
        line = self.format_with("gcp", gcp_project="proj-1")
        self.assertEqual("ERROR", line["severity"])
        self.assertEqual(
            f"projects/proj-1/traces/{line['_cid']}", line["logging.googleapis.com/trace"]
        )
        self.assertEqual("clone_all", line["correlation"]["operation"])
        self.assertEqual("ValueError", line["exception"]["type"])

    def test_invalid_profile_is_a_clear_error(self) -> None:
        """An unknown profile raises ConfigError naming it."""
        with self.assertRaisesRegex(ConfigError, "'splunk'"):
            StructuredFormatter(profile="splunk")


class CountingMasker(CredentialMasker):
    """A CredentialMasker that counts the texts it is asked to mask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.texts: List[str] = []

    def mask_text(self, text: str) -> str:
        self.texts.append(text)
        return super().mask_text(text)


def reference_members(
    masker: CredentialMasker | None, reserved: frozenset, fields: Dict[str, Any]
) -> str:
    """What LineEncoder.members must return: the whole dict masked, clashes moved under
    "fields", then plain json (NaN, inf and ints past the digit limit as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if type(value) is int:
            try:
                int.__repr__(value)
            except ValueError:
                return f"<int of {value.bit_length()} bits>"
        return value

    masked = masker.mask(fields) if masker is not None else fields
    out: Dict[str, Any] = {}
    clashes: Dict[str, Any] = {}
    for key, value in masked.items():
        (clashes if key in reserved else out)[key] = plain(value)
    if clashes:
        out["fields"] = clashes
    body = json.dumps(out, separators=(",", ":"), ensure_ascii=False)
    return "," + body[1:-1] if len(body) > 2 else ""


class TestLineEncoder(unittest.TestCase):
    RESERVED = frozenset({"message", "level", "fields"})

    def test_members_equal_masking_then_encoding(self) -> None:
        """For random flat fields (clean and secret strings, numbers, NaN, huge ints,
        booleans, None; plain, reserved, secret-named and secret-holding keys) the
        remembered-fragment path writes exactly what masking the dict and encoding it does,
        the first time and from its caches."""
        seed = int(
            os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32))
        )
        rng = random.Random(seed)
        generators = secret_generators()
        secret_url = "https://u:pw123@h.io/r.git"

        def value() -> Any:
            pick = rng.randrange(10)
            if pick == 0:
                return embed(rng, rng.choice(generators)[1](rng)[0])[2]
            if pick == 1:
                return rng.choice([math.nan, math.inf, -math.inf, 10**5000, 10**700, -(10**601)])
            if pick == 2:
                return rng.choice([None, True, False])
            if pick == 3:
                return rng.randrange(-(10**12), 10**12)
            if pick == 4:
                return rng.uniform(-1e6, 1e6)
            if pick == 5:
                return rng.choice(["café ✓", 'quo"te\\', "line\nbreak", ""])
            return rng.choice(["github.com/org/repo", "clone", "main", "3f786850e387"])

        keys = [
            "repo",
            "n",
            "duration_ms",
            "message",
            "level",
            "fields",
            "password",
            "github_token",
            "api-key",
            secret_url,
            "café",
            "x y",
        ]
        maskers: List[CredentialMasker | None] = [
            CredentialMasker(),
            CredentialMasker(cache_size=0),
            None,
        ]
        for i in range(300):
            fields = {rng.choice(keys): value() for _ in range(rng.randrange(6))}
            for masker in maskers:
                encoder = LineEncoder(masker, self.RESERVED)
                want = reference_members(masker, self.RESERVED, fields)
                for attempt in ("first", "cached"):
                    self.assertEqual(
                        want,
                        encoder.members(fields),
                        f"seed={seed} i={i} {attempt} {[(k, type(v)) for k, v in fields.items()]}",
                    )

    def test_values_json_cannot_encode_still_give_json(self) -> None:
        """members() and encode() turn bytes, sets, objects and cycles into strings, masked."""
        encoder = LineEncoder(CredentialMasker())
        cyclic: List[Any] = []
        cyclic.append(cyclic)
        body = (
            "{"
            + encoder.members({"raw": b"password=hunter2", "tags": {"b", "a"}, "loop": cyclic})[1:]
            + "}"
        )
        self.assertEqual(
            {"raw": "password=***", "tags": ["a", "b"], "loop": ["<circular>"]}, json.loads(body)
        )

    def test_secrets_are_never_remembered(self) -> None:
        """Only clean strings are kept with their JSON; a masked one is masked again."""
        masker = CountingMasker()
        encoder = LineEncoder(masker)
        for _ in range(2):
            self.assertEqual('"password=***"', encoder.text("password=hunter2"))
            self.assertEqual('"clean"', encoder.text("clean"))
        self.assertEqual(["password=hunter2", "clean", "password=hunter2"], masker.texts)
        self.assertNotIn("password=hunter2", encoder.texts)

    def test_a_masker_without_cache_scans_every_time(self) -> None:
        """With a masker whose cache_size is 0 the formatter scans every line's strings."""
        masker = CountingMasker(cache_size=0)
        stream = io.StringIO()
        logger = logging.getLogger(unique_name())
        logger.propagate = False
        handler = logging.StreamHandler(stream)
        handler.setFormatter(StructuredFormatter(masker=masker))
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        slog = StructuredLogger(logger)
        slog.warning("same message", repo="same repo")
        slog.warning("same message", repo="same repo")
        self.assertEqual(2, masker.texts.count("same message"))
        self.assertEqual(2, masker.texts.count("same repo"))


class TestCallSites(LogTestCase):
    def test_lines_from_one_call_site_differ_where_the_records_do(self) -> None:
        """Lines rendered from the same call site carry each record's own level, logger,
        function and line (what is remembered per call site is keyed by all of them)."""
        other = StructuredLogger(logging.getLogger(self.name + ".child"))

        def site(slog: StructuredLogger, level: int) -> None:
            slog.log(level, "same place")

        self.std.setLevel(logging.INFO)
        site(self.log, logging.INFO)
        site(self.log, logging.ERROR)
        site(other, logging.INFO)  # propagates to our handler
        self.log.info("elsewhere")
        lines = self.lines()
        self.assertEqual(
            [
                ("INFO", self.name, "site"),
                ("ERROR", self.name, "site"),
                ("INFO", self.name + ".child", "site"),
                ("INFO", self.name, "test_lines_from_one_call_site_differ_where_the_records_do"),
            ],
            [(x["level"], x["logger"], x["function"]) for x in lines],
        )
        self.assertEqual(1, len({x["line"] for x in lines[:3]}))
        self.assertNotEqual(lines[0]["line"], lines[3]["line"])

    def test_a_field_never_repeats_a_key_of_the_line(self) -> None:
        """In every profile a caller field named like one of the line's keys goes under
        "fields", so no line ever holds a key twice."""
        for profile in ("default", "ecs", "gcp"):
            with self.subTest(profile=profile):
                self.stream.seek(0)
                self.stream.truncate()
                self.handler.setFormatter(StructuredFormatter(profile=profile))
                own = {
                    "default": "line",
                    "ecs": "log.origin.stack_trace",
                    "gcp": "logging.googleapis.com/sourceLocation",
                }[profile]
                self.log.info("m", stack_info=True, **{own: "mine"})
                raw = self.stream.getvalue()
                pairs = json.loads(raw, object_pairs_hook=lambda kv: kv)
                names = [k for k, _ in pairs]
                self.assertEqual(len(names), len(set(names)), names)
                self.assertEqual({own: "mine"}, dict(dict(pairs)["fields"]))


class TestDictConfig(unittest.TestCase):
    def configure(self, formatter: Dict[str, Any]) -> Dict[str, Any]:
        name = unique_name()
        stream = io.StringIO()
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"json": formatter},
                "handlers": {
                    "h": {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}
                },
                "loggers": {name: {"handlers": ["h"], "level": "INFO", "propagate": False}},
            }
        )
        logger = logging.getLogger(name)
        self.addCleanup(lambda: [logger.removeHandler(h) for h in list(logger.handlers)])
        get_structured_logger(name).info("configured", token="abc")
        return dict(json.loads(stream.getvalue()))

    def test_factory_key(self) -> None:
        """dictConfig builds the formatter from '()' with keyword options."""
        line = self.configure({"()": "mgit_monitoring.logs.StructuredFormatter", "profile": "ecs"})
        self.assertEqual(
            ("info", "configured", "***"), (line["log.level"], line["message"], line["token"])
        )

    def test_class_key(self) -> None:
        """dictConfig builds the formatter from 'class' (it passes fmt/datefmt/style)."""
        line = self.configure(
            {"class": "mgit_monitoring.logs.StructuredFormatter", "format": "%(message)s"}
        )
        self.assertEqual(("INFO", "configured"), (line["level"], line["message"]))


class SetupTestCase(unittest.TestCase):
    """Runs setup_structured_logging against a private logger, restored afterwards."""

    def setUp(self) -> None:
        reset_process_trace()
        self.addCleanup(reset_process_trace)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.name = unique_name("test.setup")
        self.target = logging.getLogger(self.name)
        self.target.propagate = False
        self.addCleanup(self.cleanup_target)
        self.stream = io.StringIO()

    def cleanup_target(self) -> None:
        for h in list(self.target.handlers):
            self.target.removeHandler(h)
            h.close()

    def setup(self, **kw: Any) -> List[logging.Handler]:
        kw.setdefault("environ", {})
        kw.setdefault("stream", self.stream)
        return setup_structured_logging(logger=self.target, **kw)


class TestSetup(SetupTestCase):
    def test_idempotent_and_keeps_host_handlers(self) -> None:
        """Calling setup twice writes each line once and leaves the host's handler in place."""
        host_stream = io.StringIO()
        host = logging.StreamHandler(host_stream)
        self.target.addHandler(host)
        self.setup()
        self.setup()
        get_structured_logger(self.name).info("once")
        self.assertEqual(1, len(self.stream.getvalue().splitlines()))
        self.assertIn(host, self.target.handlers)
        self.assertEqual("once\n", host_stream.getvalue())

    def test_console_goes_to_stderr_by_default(self) -> None:
        """Without a stream, lines go to the current sys.stderr, never stdout."""
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            setup_structured_logging(logger=self.target, environ={})
            get_structured_logger(self.name).info("to stderr")
        self.assertEqual("", out.getvalue())
        self.assertEqual("to stderr", json.loads(err.getvalue())["message"])

    def test_non_utf8_console_still_gets_valid_json(self) -> None:
        """On an ASCII stderr (PYTHONIOENCODING=ascii), non-ASCII text is escaped, not broken."""
        raw = io.BytesIO()
        ascii_err = io.TextIOWrapper(raw, encoding="ascii", errors="backslashreplace")
        self.setup(stream=ascii_err)
        get_structured_logger(self.name).info("café ✓", repo="zürich")
        ascii_err.flush()
        line = json.loads(raw.getvalue().decode("ascii"))
        self.assertEqual(("café ✓", "zürich"), (line["message"], line["repo"]))

    def test_levels(self) -> None:
        """console_level filters stderr, log_level the file, even when console is more verbose."""
        path = os.path.join(self.tmp.name, "app.log")
        self.setup(log_file=path, log_level="WARNING", console_level="debug")
        slog = get_structured_logger(self.name)
        slog.debug("d")
        slog.warning("w")
        self.assertEqual(
            ["d", "w"], [json.loads(x)["message"] for x in self.stream.getvalue().splitlines()]
        )
        with open(path, encoding="utf-8") as fh:
            self.assertEqual(["w"], [json.loads(x)["message"] for x in fh])

    def test_env_level_default(self) -> None:
        """MGIT_MONITORING_LOG_LEVEL sets the default level; an explicit argument wins."""
        self.setup(
            environ={"MGIT_MONITORING_LOG_LEVEL": "ERROR"},
            console=False,
            log_file=os.path.join(self.tmp.name, "a.log"),
        )
        self.assertEqual(logging.ERROR, self.target.handlers[0].level)
        self.setup(
            environ={"MGIT_MONITORING_LOG_LEVEL": "ERROR"},
            log_level="DEBUG",
            console=False,
            log_file=os.path.join(self.tmp.name, "a.log"),
        )
        self.assertEqual(logging.DEBUG, self.target.handlers[0].level)

    def test_env_level_applies_to_stderr_without_a_file(self) -> None:
        """MGIT_MONITORING_LOG_LEVEL (or log_level) also sets stderr's level by default."""
        slog = get_structured_logger(self.name)
        self.setup(environ={"MGIT_MONITORING_LOG_LEVEL": "DEBUG"})
        slog.debug("debug shown")
        self.setup(log_level="ERROR")
        slog.warning("warning hidden")
        slog.error("error shown")
        self.assertEqual(
            ["debug shown", "error shown"],
            [json.loads(x)["message"] for x in self.stream.getvalue().splitlines()],
        )

    def test_a_more_verbose_host_level_is_kept(self) -> None:
        """setup lowers the logger's level if needed but never raises one the host set."""
        host_stream = io.StringIO()
        self.target.addHandler(logging.StreamHandler(host_stream))
        self.target.setLevel(logging.DEBUG)
        self.setup(log_level="INFO")
        get_structured_logger(self.name).debug("for the host")
        self.assertEqual("for the host\n", host_stream.getvalue())
        self.assertEqual("", self.stream.getvalue())
        other = logging.getLogger(unique_name("test.setup"))
        self.addCleanup(lambda: [other.removeHandler(h) for h in list(other.handlers)])
        setup_structured_logging(logger=other, log_level="DEBUG", stream=self.stream, environ={})
        setup_structured_logging(logger=other, log_level="ERROR", stream=self.stream, environ={})
        self.assertEqual(logging.ERROR, other.level)  # a level we set may go up again

    def test_invalid_levels_are_clear_errors(self) -> None:
        """An invalid level argument or environment value raises ConfigError naming it."""
        with self.assertRaisesRegex(ConfigError, "'LOUD'"):
            self.setup(log_level="LOUD")
        with self.assertRaisesRegex(ConfigError, "console_level 'verbose'"):
            self.setup(console_level="verbose")
        with self.assertRaisesRegex(ConfigError, "MGIT_MONITORING_LOG_LEVEL 'chatty'"):
            self.setup(environ={"MGIT_MONITORING_LOG_LEVEL": "chatty"})
        self.assertEqual([], self.target.handlers)

    def test_profile_from_environment_at_setup(self) -> None:
        """MGIT_MONITORING_LOG_FORMAT picks the profile when setup runs; bad values are errors."""
        self.setup(environ={"MGIT_MONITORING_LOG_FORMAT": "gcp"})
        get_structured_logger(self.name).info("m")
        self.assertEqual("INFO", json.loads(self.stream.getvalue())["severity"])
        with self.assertRaisesRegex(ConfigError, "MGIT_MONITORING_LOG_FORMAT 'xml'"):
            self.setup(environ={"MGIT_MONITORING_LOG_FORMAT": "xml"})

    def test_traceparent_adopted_at_setup(self) -> None:
        """setup adopts a valid TRACEPARENT from the environment it is given."""
        self.setup(
            environ={"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        )
        get_structured_logger(self.name).info("m")
        self.assertEqual(
            "4bf92f3577b34da6a3ce929d0e0e4736", json.loads(self.stream.getvalue())["correlation_id"]
        )

    def test_root_logger_by_default(self) -> None:
        """Without logger=, setup configures the root logger and restores cleanly."""
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)

        def restore() -> None:
            for h in list(root.handlers):
                if h not in saved[0]:
                    root.removeHandler(h)
                    h.close()
            root.setLevel(saved[1])

        self.addCleanup(restore)
        handlers = setup_structured_logging(stream=self.stream, environ={})
        self.assertTrue(all(h in root.handlers for h in handlers))
        for h in saved[0]:
            self.assertIn(h, root.handlers)


class TestLogFile(SetupTestCase):
    def test_file_created_with_private_permissions_and_parents(self) -> None:
        """The log file's parent directories are created and the file is mode 0600."""
        path = os.path.join(self.tmp.name, "a", "b", "app.log")
        self.setup(log_file=path, console=False)
        get_structured_logger(self.name).info("to file")
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        with open(path, encoding="utf-8") as fh:
            self.assertEqual("to file", json.loads(fh.read())["message"])

    def test_rotation_keeps_private_permissions(self) -> None:
        """The file rotates by size and every file, old and new, stays mode 0600."""
        path = os.path.join(self.tmp.name, "rot.log")
        self.setup(log_file=path, console=False, max_bytes=400, backup_count=2)
        slog = get_structured_logger(self.name)
        for i in range(20):
            slog.info("line", i=i)
        files = sorted(f for f in os.listdir(self.tmp.name) if f.startswith("rot.log"))
        self.assertEqual(["rot.log", "rot.log.1", "rot.log.2"], files)
        for f in files:
            self.assertEqual(
                0o600, stat.S_IMODE(os.stat(os.path.join(self.tmp.name, f)).st_mode), f
            )

    def test_unwritable_path_is_a_clear_error(self) -> None:
        """A log file that cannot be created raises ConfigError naming the path."""
        blocker = os.path.join(self.tmp.name, "file")
        with open(blocker, "w", encoding="utf-8"):
            pass
        bad = os.path.join(blocker, "sub", "app.log")
        with self.assertRaises(ConfigError) as cm:
            self.setup(log_file=bad)
        self.assertIn(repr(bad), str(cm.exception))
        self.assertEqual([], self.target.handlers)

    def test_surrogates_in_file_never_produce_logging_errors(self) -> None:
        """An undecodable path in a file line is valid UTF-8 and no '--- Logging error ---'."""
        path = os.path.join(self.tmp.name, "u.log")
        self.setup(log_file=path, console=False)
        err = io.StringIO()
        bad_name = os.fsdecode(b"repo-\xff\xfe")
        with contextlib.redirect_stderr(err):
            get_structured_logger(self.name).info("cloned %s", bad_name, path=bad_name)
        self.assertNotIn("Logging error", err.getvalue())
        with open(path, "rb") as fh:
            line = json.loads(fh.read().decode("utf-8"))
        self.assertEqual(bad_name, line["path"])


class TestSeedQueries(SetupTestCase):
    """The seed's 'Logs Analysis' queries, run with the real grep and jq over a real file."""

    CID = "abc123" + "0f" * 13

    def write_log(self) -> str:
        path = os.path.join(self.tmp.name, "mgit", "app.log")
        self.setup(log_file=path, console=False, log_level="INFO")
        slog = get_structured_logger(self.name)
        with correlation_context(
            operation="clone_all", organization="myorg", correlation_id=self.CID
        ):
            with provider_context("github", "myorg"):
                slog.info("Starting clone operation", repository="repo1")
                slog.error("Specific error occurred", error_details="timeout")
            slog.error("clone_all gave up")
        with correlation_context(operation="pull_all"):
            slog.error("other operation failed")
        with correlation_context(operation="clone_all"):
            slog.info("another clone_all run", note="correlation_id abc123 in a field only")
        return path

    def test_grep_by_correlation_id(self) -> None:
        """grep "correlation_id.*abc123" finds exactly the lines of that correlation id."""
        grep = need_executable("grep")
        path = self.write_log()
        out = subprocess.run(
            [grep, "correlation_id.*abc123", path], capture_output=True, text=True, check=True
        ).stdout
        messages = [json.loads(x)["message"] for x in out.splitlines()]
        self.assertEqual(
            ["Starting clone operation", "Specific error occurred", "clone_all gave up"],
            messages[:3],
        )
        # The seed's pattern is loose: a line merely mentioning abc123 after the key matches
        # too; the id-anchored form finds exactly the three.
        out = subprocess.run(
            [grep, f'"correlation_id":"{self.CID}"', path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.assertEqual(3, len(out.splitlines()))

    def test_grep_by_the_seeds_literal_id(self) -> None:
        """With the seed's own non-hex id "abc123", grep finds exactly that scope's lines."""
        grep = need_executable("grep")
        path = os.path.join(self.tmp.name, "seed.log")
        self.setup(log_file=path, console=False)
        slog = get_structured_logger(self.name)
        with correlation_context(operation="clone_all", correlation_id="abc123"):
            slog.info("first")
            with provider_context("github", "myorg"):
                slog.error("second")
        with correlation_context(operation="clone_all", correlation_id="xyz789"):
            slog.info("other")
        slog.info("outside")
        out = subprocess.run(
            [grep, "correlation_id.*abc123", path], capture_output=True, text=True, check=True
        ).stdout
        lines = [json.loads(x) for x in out.splitlines()]
        self.assertEqual(["first", "second"], [x["message"] for x in lines])
        self.assertEqual({"abc123"}, {x["correlation"]["external_correlation_id"] for x in lines})

    def test_jq_select_operation_and_level(self) -> None:
        """The seed's jq select on operation clone_all and level ERROR finds exactly two lines."""
        jq = need_executable("jq")
        path = self.write_log()
        out = subprocess.run(
            [jq, "-c", 'select(.correlation.operation == "clone_all" and .level == "ERROR")', path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        messages = [json.loads(x)["message"] for x in out.splitlines()]
        self.assertEqual(["Specific error occurred", "clone_all gave up"], messages)


class TestGetStructuredLogger(unittest.TestCase):
    def test_one_wrapper_per_name_and_no_side_effects(self) -> None:
        """get_structured_logger returns one wrapper per name and adds no handler or level."""
        name = unique_name()
        a = get_structured_logger(name)
        self.assertIs(a, get_structured_logger(name))
        std = logging.getLogger(name)
        self.assertEqual(([], logging.NOTSET), (std.handlers, std.level))
        get_structured_logger(name, level="debug")
        self.assertEqual(logging.DEBUG, std.level)


class TestWhereNamesLive(unittest.TestCase):
    def test_logs_reexports_the_homes_and_the_package_root_agrees(self) -> None:
        """`from mgit_monitoring.logs import X` and `mgit_monitoring.X` give the objects
        defined in log_formatter and structured_logger."""
        import mgit_monitoring
        import mgit_monitoring.logs as logs
        from mgit_monitoring import log_formatter, structured_logger

        homes = {
            "StructuredFormatter": log_formatter,
            "PROFILES": log_formatter,
            "StructuredLogger": structured_logger,
            "get_structured_logger": structured_logger,
        }
        for name, home in homes.items():
            self.assertIs(getattr(home, name), getattr(logs, name), name)
            self.assertIn(name, logs.__all__)
        for name in ("StructuredFormatter", "StructuredLogger", "get_structured_logger"):
            self.assertIs(getattr(homes[name], name), getattr(mgit_monitoring, name), name)
        self.assertIs(logs.setup_structured_logging, mgit_monitoring.setup_structured_logging)


if __name__ == "__main__":
    unittest.main()
