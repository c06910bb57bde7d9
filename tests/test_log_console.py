"""Tests for the readable log line (log_console), the format choice at setup (console on a
terminal, JSON otherwise), and the library behaviour with logging unconfigured."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import select
import subprocess
import sys
import time
import unittest
from typing import Any, List

from mgit_monitoring.context import correlation_context, reset_process_trace
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_console import ConsoleFormatter
from mgit_monitoring.logs import StructuredLogger, get_structured_logger
from mgit_monitoring.masking import CredentialMasker
from tests.support import GH_TOKEN, ROOT, run_python
from tests.test_logs import SetupTestCase, unique_name

LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<level>[A-Z]+) +"
    r"\[(?P<logger>[^\]]+)\] (?P<rest>.*)$"
)


class ConsoleCase(unittest.TestCase):
    """A private logger writing console lines to a StringIO, restored afterwards."""

    def setUp(self) -> None:
        reset_process_trace()
        self.addCleanup(reset_process_trace)
        self.stream = io.StringIO()
        self.name = unique_name("test.console")
        self.std = logging.getLogger(self.name)
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(ConsoleFormatter())
        self.std.addHandler(self.handler)
        self.std.setLevel(logging.DEBUG)
        self.std.propagate = False
        self.addCleanup(self.std.removeHandler, self.handler)
        self.log = StructuredLogger(self.std)

    def text(self) -> str:
        return self.stream.getvalue()


class TestConsoleLine(ConsoleCase):
    def test_time_level_logger_message_then_fields(self) -> None:
        """One line: local time with ms, level, [logger], message, then key=value fields."""
        before = time.time()
        self.log.info("Starting clone operation", repository="repo1", count=3, ok=True)
        lines = self.text().splitlines()
        self.assertEqual(1, len(lines), lines)
        m = LINE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        assert m is not None
        self.assertEqual("INFO", m["level"])
        self.assertEqual(self.name, m["logger"])
        self.assertEqual("Starting clone operation  repository=repo1 count=3 ok=true", m["rest"])
        stamp = time.mktime(time.strptime(m["date"][:19], "%Y-%m-%d %H:%M:%S"))
        self.assertLessEqual(abs(stamp - before), 2)

    def test_values_quoted_when_they_need_it(self) -> None:
        """Spaces, quotes, '=', backslashes, newlines and the empty string are quoted (as
        JSON strings); None, floats and nested values are written as in the JSON lines."""
        self.log.warning(
            "m",
            spaced="repo one",
            quoted='say "hi"',
            eq="a=b",
            empty="",
            newline="two\nlines",
            none=None,
            ratio=0.5,
            nested={"a": [1, 2]},
            plain="github.com/org/repo",
        )
        rest = LINE.match(self.text().splitlines()[0])["rest"]  # type: ignore[index]
        self.assertEqual(
            'm  spaced="repo one" quoted="say \\"hi\\"" eq="a=b" empty="" '
            'newline="two\\nlines" none=null ratio=0.5 nested={"a":[1,2]} '
            "plain=github.com/org/repo",
            rest,
        )

    def test_extra_attributes_are_fields(self) -> None:
        """A plain logging call's extra= attributes are written as fields."""
        self.std.error("plain %s", "arg", extra={"repo": "r1"})
        self.assertTrue(self.text().rstrip("\n").endswith("] plain arg  repo=r1"), self.text())

    def test_newline_in_message_cannot_forge_a_line(self) -> None:
        """A message with a newline stays on its record's line."""
        self.log.info("first\n2026-01-01 00:00:00.000 ERROR    [x] forged")
        self.assertEqual(1, len(self.text().splitlines()), self.text())
        self.assertIn("first\\n2026", self.text())

    def test_masking_applies_everywhere(self) -> None:
        """Secrets are masked in the message, field values, sensitive keys, nested values
        and the context."""
        url = f"https://x-access-token:{GH_TOKEN}@github.com/o/r.git"
        with correlation_context("clone", remote=url):
            self.log.info(f"cloning {url}", url=url, password="hunter2", nested={"token": "abc"})
        text = self.text()
        self.assertNotIn(GH_TOKEN, text)
        self.assertNotIn("hunter2", text)
        self.assertNotIn('"abc"', text)
        self.assertIn("password=***", text)
        self.assertIn('nested={"token":"***"}', text)
        self.assertIn("operation=clone", text)

    def test_masking_off(self) -> None:
        """mask_credentials=False writes values as given."""
        self.handler.setFormatter(ConsoleFormatter(mask_credentials=False))
        self.log.info("m", password="hunter2")
        self.assertIn("password=hunter2", self.text())

    def test_exception_is_a_masked_traceback_after_the_line(self) -> None:
        """log.exception: the line, then the traceback with the secret masked."""
        try:
            raise RuntimeError(f"push failed for {GH_TOKEN}")
        except RuntimeError:
            self.log.exception("push failed", repository="r1")
        lines = self.text().splitlines()
        self.assertRegex(lines[0], r" ERROR +\[.*\] push failed  repository=r1")
        self.assertEqual("Traceback (most recent call last):", lines[1])
        self.assertTrue(lines[-1].startswith("RuntimeError: push failed for ghp_"), lines[-1])
        self.assertNotIn(GH_TOKEN, self.text())

    def test_correlation_inside_a_context_only(self) -> None:
        """Inside a context: its attributes and correlation_id; outside: neither."""
        self.log.info("outside")
        with correlation_context("sync", correlation_id="4bf92f3577b34da6a3ce929d0e0e4736"):
            self.log.info("inside", repository="r1")
        outside, inside = self.text().splitlines()
        self.assertNotIn("correlation_id", outside)
        self.assertTrue(
            inside.endswith(
                "inside  repository=r1 operation=sync "
                "correlation_id=4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            inside,
        )

    def test_include_correlation_false(self) -> None:
        self.handler.setFormatter(ConsoleFormatter(include_correlation=False))
        with correlation_context("sync"):
            self.log.info("m")
        self.assertNotIn("operation=", self.text())
        self.assertNotIn("correlation_id", self.text())

    def test_strict_masker_and_utc(self) -> None:
        """A masker can be given; utc=True writes UTC with Z."""
        masker = CredentialMasker(sensitive_keys=["fingerprint"])
        self.handler.setFormatter(ConsoleFormatter(masker=masker, utc=True))
        self.log.info("m", fingerprint="aa:bb")
        self.assertIn("fingerprint=***", self.text())
        self.assertRegex(self.text(), r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z INFO ")

    def test_unprintable_values_never_break_the_line(self) -> None:
        """bytes, sets, exceptions and lone surrogates become text; the line still writes."""
        self.log.info("m", data=b"\xff", tags={"b", "a"}, err=ValueError("bad"), name="\udcff")
        text = self.text()
        self.assertIn('tags=["a","b"]', text)
        self.assertIn('err="ValueError: bad"', text)
        self.assertIn("\\udcff", text)
        text.encode("utf-8")  # writable to a UTF-8 stream


class TestFormatChoice(SetupTestCase):
    def _pty_stream(self) -> Any:
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 - closed by cleanup
        self.addCleanup(stream.close)
        self.assertTrue(stream.isatty())
        return stream

    def test_log_format_console_from_environment(self) -> None:
        """MGIT_MONITORING_LOG_FORMAT=console gives readable lines on any stream."""
        self.setup(environ={"MGIT_MONITORING_LOG_FORMAT": "console"})
        get_structured_logger(self.name).info("hello", repo="r1")
        self.assertRegex(
            self.stream.getvalue(), r"^\S+ \S+ INFO +\[test\.setup\.[^\]]+\] hello  repo=r1\n$"
        )

    def test_profile_argument_console_and_json(self) -> None:
        """profile="console" and profile="json" (the default JSON shape) are accepted."""
        self.setup(profile="console")
        get_structured_logger(self.name).info("a")
        self.assertIn("] a", self.stream.getvalue())
        self.stream.truncate(0)
        self.stream.seek(0)
        self.setup(profile="JSON")
        get_structured_logger(self.name).info("b")
        self.assertEqual("b", json.loads(self.stream.getvalue())["message"])

    def test_terminal_gets_console_unless_a_format_is_set(self) -> None:
        """No format set: a terminal stream gets console lines; an explicit json wins."""
        tty = self._pty_stream()
        handler = self.setup(stream=tty)[0]
        self.assertIsInstance(handler.formatter, ConsoleFormatter)
        handler = self.setup(stream=tty, environ={"MGIT_MONITORING_LOG_FORMAT": "json"})[0]
        self.assertNotIsInstance(handler.formatter, ConsoleFormatter)

    def test_pipe_and_file_get_json_by_default(self) -> None:
        """No format set: a non-terminal stream and the log file are JSON, even when the
        console is a terminal."""
        path = os.path.join(self.tmp.name, "app.log")
        self.setup(stream=self._pty_stream(), log_file=path)
        get_structured_logger(self.name).info("to both")
        with open(path, encoding="utf-8") as fh:
            self.assertEqual("to both", json.loads(fh.read())["message"])
        self.setup()
        get_structured_logger(self.name).info("piped")
        self.assertEqual("piped", json.loads(self.stream.getvalue())["message"])

    def test_explicit_console_applies_to_the_file_too(self) -> None:
        path = os.path.join(self.tmp.name, "app.log")
        self.setup(log_file=path, console=False, profile="console")
        get_structured_logger(self.name).info("readable")
        with open(path, encoding="utf-8") as fh:
            self.assertRegex(fh.read(), r"^\S+ \S+ INFO +\[[^\]]+\] readable\n$")

    def test_bad_format_strict_and_lenient(self) -> None:
        """A bad variable raises by default; strict=False warns once, names it, and uses
        the default."""
        with self.assertRaisesRegex(ConfigError, "MGIT_MONITORING_LOG_FORMAT 'xml'.*console"):
            self.setup(environ={"MGIT_MONITORING_LOG_FORMAT": "xml"})
        with self.assertRaisesRegex(ConfigError, "profile 'xml'"):
            self.setup(profile="xml", strict=False)
        catcher = logging.getLogger("mgit_monitoring.logs")
        with self.assertLogs(catcher, "WARNING") as seen:
            self.setup(
                environ={"MGIT_MONITORING_LOG_FORMAT": "xml", "MGIT_MONITORING_LOG_LEVEL": "x"},
                strict=False,
            )
        joined = "\n".join(seen.output)
        self.assertIn("MGIT_MONITORING_LOG_FORMAT 'xml'", joined)
        self.assertIn("MGIT_MONITORING_LOG_LEVEL 'x'", joined)
        get_structured_logger(self.name).info("still logs")
        self.assertEqual("still logs", json.loads(self.stream.getvalue())["message"])


_PROGRAM = """
import logging, sys
from mgit_monitoring.logs import setup_structured_logging, get_structured_logger
setup_structured_logging()
get_structured_logger("app").info("ready", repo="r1")
"""


class TestTerminalInARealProcess(unittest.TestCase):
    def _run_on_pty(self, code: str, env: dict) -> str:
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=slave,
            )
        finally:
            os.close(slave)
        chunks: List[bytes] = []
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(master)
            proc.wait(timeout=60)
        return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")

    def test_stderr_terminal_console_pipe_json(self) -> None:
        """A process whose stderr is a terminal writes console lines; piped, JSON."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env["PYTHONPATH"] = ROOT
        text = self._run_on_pty(_PROGRAM, env)
        self.assertRegex(text, r"^\S+ \S+ INFO +\[app\] ready  repo=r1\n$")
        piped = subprocess.run(
            [sys.executable, "-c", _PROGRAM],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual("ready", json.loads(piped.stderr)["message"])
        text = self._run_on_pty(_PROGRAM, dict(env, MGIT_MONITORING_LOG_FORMAT="json"))
        self.assertEqual("ready", json.loads(text)["message"])


_FAILING_APP = """
import sys
{configure}
from mgit_monitoring.integration import monitor_git_operation, setup_monitoring_integration
setup_monitoring_integration()

@monitor_git_operation("pull")
def git_pull(repository):
    raise RuntimeError("remote end hung up")

git_pull("repo1")
"""


class TestUnconfiguredLoggingInARealProcess(unittest.TestCase):
    def _env(self, state: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.update(PYTHONPATH=ROOT, MGIT_MONITORING_STATE_DIR=state)
        return env

    def _run(self, configure: str) -> subprocess.CompletedProcess:
        import tempfile

        with tempfile.TemporaryDirectory() as state:
            return subprocess.run(
                [sys.executable, "-c", _FAILING_APP.format(configure=configure)],
                cwd=ROOT,
                env=self._env(state),
                capture_output=True,
                text=True,
                timeout=120,
            )

    def test_unconfigured_application_sees_only_its_own_traceback(self) -> None:
        """Logging never configured: no "Operation failed" line from us; the exception
        propagates and Python prints its traceback."""
        proc = self._run("")
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertNotIn("Operation failed", proc.stderr)
        self.assertTrue(proc.stderr.startswith("Traceback (most recent call last):"), proc.stderr)
        self.assertTrue(
            proc.stderr.rstrip("\n").endswith("RuntimeError: remote end hung up"), proc.stderr
        )

    def test_configured_application_gets_the_error_record(self) -> None:
        """With logging configured (basicConfig), the failure is logged as an ERROR."""
        proc = self._run("import logging; logging.basicConfig(format='%(levelname)s %(message)s')")
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertRegex(proc.stderr, r"(?m)^ERROR Operation failed: \S*pull")
        self.assertIn("RuntimeError: remote end hung up", proc.stderr)


class TestLibraryLoggers(unittest.TestCase):
    def test_null_handler_at_first_use_not_at_import(self) -> None:
        """import mgit_monitoring adds no handler; the first package logger adds one
        NullHandler to the top logger, so package warnings never reach lastResort."""
        proc = run_python(
            """
            import logging
            import mgit_monitoring
            top = logging.getLogger("mgit_monitoring")
            print(len(top.handlers))
            from mgit_monitoring.structured_logger import get_structured_logger
            get_structured_logger("mgit_monitoring.integration").warning("hidden")
            from mgit_monitoring.package_log import get_logger
            get_logger("mgit_monitoring.store").warning("also hidden")
            print([type(h).__name__ for h in top.handlers])
            logging.getLogger("app").warning("the app's own warning")
            """
        )
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual(["0", "['NullHandler']"], proc.stdout.split("\n")[:2])
        self.assertEqual("the app's own warning\n", proc.stderr)

    def test_structured_logger_on_an_app_logger_drops_without_handlers(self) -> None:
        """A StructuredLogger on a logger with no handler anywhere writes nothing; once
        the application adds a handler, it writes there."""
        proc = run_python(
            """
            import logging, sys
            from mgit_monitoring.structured_logger import get_structured_logger
            slog = get_structured_logger("app.sync")
            slog.error("not printed")
            logging.basicConfig(stream=sys.stdout, format="%(name)s %(message)s")
            slog.error("printed")
            """
        )
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual("", proc.stderr)
        self.assertEqual("app.sync printed\n", proc.stdout)


class TestLazyImports(unittest.TestCase):
    def test_idle_process_loads_neither_hashlib_nor_logging_handlers(self) -> None:
        """Correlation contexts and console logging load no hashlib (unless a non-hex id
        is hashed) and no logging.handlers (unless a log file is set up)."""
        proc = run_python(
            """
            import sys, random
            baseline = "hashlib" in sys.modules
            from mgit_monitoring.context import correlation_context
            from mgit_monitoring.logs import setup_structured_logging, get_structured_logger
            setup_structured_logging(stream=sys.stdout)
            with correlation_context("sync"):
                get_structured_logger("app").info("m")
            print(baseline or "hashlib" in sys.modules, "logging.handlers" in sys.modules)
            with correlation_context("sync", correlation_id="job-42"):
                pass
            import tempfile, os
            d = tempfile.mkdtemp()
            setup_structured_logging(log_file=os.path.join(d, "a.log"), console=False)
            print("hashlib" in sys.modules, "logging.handlers" in sys.modules)
            """
        )
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual(["False False", "True True"], proc.stdout.splitlines()[-2:])


if __name__ == "__main__":
    unittest.main()
