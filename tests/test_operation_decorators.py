"""The monitoring decorators and MonitoringContext: what each monitored call records."""

from __future__ import annotations

import asyncio
import functools
import gc
import http.server
import inspect
import logging
import os
import threading
import traceback
import unittest
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional
from unittest import mock

from mgit_monitoring.collector import get_metrics_collector, setup_metrics
from mgit_monitoring.context import correlation_context, get_context, get_correlation_id
from mgit_monitoring.integration import (
    MonitoringContext,
    extract_status_code,
    is_monitoring_enabled,
    mask_repository,
    monitor_async_mgit_operation,
    monitor_authentication,
    monitor_git_operation,
    monitor_mgit_operation,
    monitor_provider_api_call,
    reset_monitoring_integration,
)
from mgit_monitoring.performance import get_performance_monitor
from tests.integration_case import (
    BARE_TOKEN_URL,
    LOGGER,
    SECRET_URL,
    TOKEN,
    WRITER_LOGGER,
    IntegrationCase,
    value,
)


class OperationDecoratorTest(IntegrationCase):
    def test_sync_success_records_everything(self) -> None:
        """Metrics, a trace and two log lines sharing the correlation id and operation."""
        self.setup()

        seen: List[Optional[float]] = []

        def clone_all(org: str, dest: str = ".") -> str:
            seen.append(value("mgit_concurrent_operations"))
            return f"{org}->{dest}"

        clone_all = monitor_mgit_operation(operation_name="clone_all", provider="github")(
            self.own(clone_all)
        )
        self.assertEqual(clone_all("acme", dest="/tmp/x"), "acme->/tmp/x")
        labels = {"operation": "clone_all", "provider": "github"}
        self.assertEqual(value("mgit_operations_total", labels), 1)
        self.assertEqual(value("mgit_operations_success_total", labels), 1)
        self.assertIsNone(value("mgit_operations_failure_total", labels))
        self.assertEqual(value("mgit_operation_duration_seconds_count", labels), 1)
        self.assertEqual(seen, [1])
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        self.assertEqual(get_performance_monitor().get_operation_metrics("clone_all").count, 1)
        start, end = self.op_lines()
        self.assertEqual(start["message"], "Operation started: clone_all")
        self.assertTrue(end["message"].startswith("Operation completed: clone_all"))
        self.assertEqual(start["correlation_id"], end["correlation_id"])
        self.assertRegex(start["correlation_id"], r"^[0-9a-f]{32}$")
        for line in (start, end):
            self.assertEqual(line["correlation"]["operation"], "clone_all")
            self.assertEqual(line["correlation"]["provider"], "github")
            self.assertEqual(line["operation"], "clone_all")
            # The line names the call site, not the decorator's internals.
            self.assertEqual(line["function"], "test_sync_success_records_everything")

    def test_metadata_preserved(self) -> None:
        """Name, docstring, signature and coroutine-ness survive decoration."""

        async def fetch(org: str, *, page: int = 1) -> List[str]:
            """Fetch a page."""
            return []

        def plain(a: int, b: int = 2) -> int:
            """Add."""
            return a + b

        for decorate in (
            monitor_mgit_operation("x"),
            monitor_git_operation("clone"),
            monitor_provider_api_call("github"),
            monitor_authentication("github"),
        ):
            for func in (fetch, plain):
                wrapped = decorate(func)
                self.assertEqual(wrapped.__name__, func.__name__)
                self.assertEqual(wrapped.__doc__, func.__doc__)
                self.assertEqual(inspect.signature(wrapped), inspect.signature(func))
                self.assertEqual(
                    inspect.iscoroutinefunction(wrapped), inspect.iscoroutinefunction(func)
                )

    def test_positional_and_bare_forms(self) -> None:
        """@monitor_mgit_operation("name") and bare @monitor_mgit_operation both work."""
        self.setup()

        @monitor_mgit_operation("risky_operation")
        def risky() -> int:
            return 1

        @monitor_mgit_operation
        def sync_all() -> int:
            return 2

        self.assertEqual(risky() + sync_all(), 3)
        self.assertEqual(
            value("mgit_operations_total", {"operation": "risky_operation", "provider": ""}), 1
        )
        self.assertEqual(
            value("mgit_operations_total", {"operation": "sync_all", "provider": ""}), 1
        )

    def test_exception_propagates_unchanged_and_counts_by_type(self) -> None:
        """The very same exception object propagates; failure and error type are recorded."""
        self.setup()
        error = KeyError("missing")

        def broken() -> None:
            raise error

        broken = monitor_mgit_operation("broken", provider="gitlab")(self.own(broken))
        with self.assertRaises(KeyError) as caught:
            broken()
        self.assertIs(caught.exception, error)
        labels = {"operation": "broken", "provider": "gitlab"}
        self.assertEqual(value("mgit_operations_failure_total", labels), 1)
        self.assertIsNone(value("mgit_operations_success_total", labels))
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "KeyError", "operation": "broken", "provider": "gitlab"},
            ),
            1,
        )
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        stats = get_performance_monitor().get_operation_metrics("broken")
        self.assertEqual((stats.error_count, dict(stats.error_types)), (1, {"KeyError": 1}))
        end = self.op_lines()[-1]
        self.assertEqual((end["level"], end["error_type"]), ("ERROR", "KeyError"))

    def test_base_exceptions_are_failures(self) -> None:
        """KeyboardInterrupt is a failure and re-raised; SystemExit(0) is a success."""
        self.setup()

        @monitor_mgit_operation("interrupted")
        def interrupted() -> None:
            raise KeyboardInterrupt

        @monitor_mgit_operation("exits")
        def exits() -> None:
            raise SystemExit(0)

        with self.assertRaises(KeyboardInterrupt):
            interrupted()
        with self.assertRaises(SystemExit):
            exits()
        self.assertEqual(
            value("mgit_operations_failure_total", {"operation": "interrupted", "provider": ""}), 1
        )
        self.assertEqual(
            value("mgit_operations_success_total", {"operation": "exits", "provider": ""}), 1
        )
        self.assertEqual(value("mgit_concurrent_operations"), 0)

    def test_async_success_failure_and_cancellation(self) -> None:
        """Coroutines: awaited result, exception type, and CancelledError as a failure."""
        self.setup()

        @monitor_async_mgit_operation("fetch", provider="github")
        async def fetch(n: int) -> int:
            await asyncio.sleep(0)
            return n * 2

        @monitor_mgit_operation("fail")
        async def fail() -> None:
            await asyncio.sleep(0)
            raise ValueError("nope")

        async def main() -> None:
            gate = asyncio.Event()

            @monitor_mgit_operation("hang")
            async def hang() -> None:
                gate.set()
                await asyncio.Event().wait()

            self.assertEqual(await fetch(21), 42)
            with self.assertRaises(ValueError):
                await fail()
            task = asyncio.ensure_future(hang())
            await gate.wait()
            self.assertEqual(value("mgit_concurrent_operations"), 1)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        self.assertEqual(
            value("mgit_operations_success_total", {"operation": "fetch", "provider": "github"}), 1
        )
        self.assertEqual(
            value("mgit_operations_failure_total", {"operation": "fail", "provider": ""}), 1
        )
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "CancelledError", "operation": "hang", "provider": ""},
            ),
            1,
        )
        self.assertEqual(value("mgit_concurrent_operations"), 0)

    def test_async_tasks_keep_their_own_correlation(self) -> None:
        """Concurrent tasks log under their own ids (contextvars, not thread-locals)."""
        self.setup()

        async def step(i: int) -> None:
            await asyncio.sleep(0)

        step = monitor_mgit_operation("step")(self.own(step))

        async def main() -> None:
            await asyncio.gather(*(step(i) for i in range(3)))

        asyncio.run(main())
        by_id: Dict[str, List[str]] = {}
        for line in self.op_lines():
            by_id.setdefault(line["correlation_id"], []).append(line["operation_status"])
        self.assertEqual(len(by_id), 3)
        for statuses in by_id.values():
            self.assertEqual(statuses, ["started", "completed"])

    def test_nested_operations_share_the_outer_id(self) -> None:
        """An operation inside another logs the outer correlation id; gauge counts both."""
        self.setup()
        inside: List[Optional[float]] = []

        def inner() -> None:
            inside.append(value("mgit_concurrent_operations"))

        inner = monitor_git_operation("fetch")(self.own(inner))

        def outer() -> None:
            inner()

        outer = monitor_mgit_operation("sync")(self.own(outer))
        outer()
        ids = {line["correlation_id"] for line in self.op_lines()}
        self.assertEqual(len(ids), 1)
        self.assertEqual(inside, [1])  # git operations are not mgit operations

    def test_each_call_gets_its_own_scope_with_the_same_attributes(self) -> None:
        """Successive calls log distinct ids with the same correlation attributes."""
        self.setup()
        seen: List[Any] = []

        def op() -> None:
            seen.append((get_correlation_id(), dict(get_context())))

        op = monitor_mgit_operation("sync", provider="github")(self.own(op))
        op()
        op()
        self.assertNotEqual(seen[0][0], seen[1][0])
        expected = {"operation": "sync", "provider": "github"}
        self.assertEqual([seen[0][1], seen[1][1]], [expected, expected])
        lines = self.op_lines()
        self.assertEqual(
            [line["correlation_id"] for line in lines], [seen[0][0]] * 2 + [seen[1][0]] * 2
        )
        self.assertNotEqual(lines[0]["span_id"], lines[2]["span_id"])
        for line in lines:
            self.assertEqual(
                line["correlation"], {"correlation_id": line["correlation_id"], **expected}
            )

    def test_outer_scope_attributes_are_merged(self) -> None:
        """Inside an outer correlation scope a call adds its attributes to the outer ones."""
        self.setup()
        seen: List[Any] = []

        def op() -> None:
            seen.append(dict(get_context()))

        op = monitor_mgit_operation("sync", provider="github")(self.own(op))
        with correlation_context("bulk", organization="acme") as outer_id:
            op()
            self.assertEqual(dict(get_context()), {"operation": "bulk", "organization": "acme"})
        with correlation_context("sync", provider="github"):
            op()  # the same attributes as the outer scope's
        op()  # and no outer scope again
        self.assertEqual(
            seen,
            [
                {"operation": "sync", "organization": "acme", "provider": "github"},
                {"operation": "sync", "provider": "github"},
                {"operation": "sync", "provider": "github"},
            ],
        )
        first = self.op_lines()[0]
        self.assertEqual(first["correlation_id"], outer_id)
        self.assertEqual(
            first["correlation"],
            {
                "correlation_id": outer_id,
                "operation": "sync",
                "organization": "acme",
                "provider": "github",
            },
        )

    def test_threads_count_exactly_and_gauge_returns_to_zero(self) -> None:
        """Eight threads x 50 calls: exact totals, half failures, gauge back at 0."""
        self.setup()

        @monitor_mgit_operation("parallel", log_result=False)
        def work(i: int) -> None:
            if i % 2:
                raise RuntimeError(str(i))

        def run() -> None:
            for i in range(50):
                try:
                    work(i)
                except RuntimeError:
                    pass

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        labels = {"operation": "parallel", "provider": ""}
        self.assertEqual(value("mgit_operations_total", labels), 400)
        self.assertEqual(value("mgit_operations_failure_total", labels), 200)
        self.assertEqual(value("mgit_concurrent_operations"), 0)

    def test_lookup_happens_at_call_time(self) -> None:
        """Decorated before setup, called after: records into the objects setup installed."""

        @monitor_mgit_operation("early")
        def early() -> int:
            return 7

        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "true"}):
            early()  # before setup: in-memory defaults, enabled read from the environment
        before = get_metrics_collector()
        reset_monitoring_integration()
        wired = self.setup()
        self.assertIsNot(wired.metrics, before)
        early()
        snap = wired.registry.snapshot()
        self.assertEqual(
            snap.get_sample_value("mgit_operations_total", {"operation": "early", "provider": ""}),
            1,
        )
        self.assertEqual(wired.performance.get_operation_metrics("early").count, 1)

    def test_broken_logging_never_breaks_the_call(self) -> None:
        """A filter that raises: the call succeeds, metrics still count, one warning total."""
        self.setup()

        class Boom(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                raise RuntimeError("filter exploded")

        logger = logging.getLogger(self.module)
        boom = Boom()
        logger.addFilter(boom)
        self.addCleanup(logger.removeFilter, boom)

        def work() -> str:
            return "ok"

        work = monitor_mgit_operation("fragile")(self.own(work))
        self.assertEqual([work(), work(), work()], ["ok"] * 3)
        self.assertEqual(
            value("mgit_operations_total", {"operation": "fragile", "provider": ""}), 3
        )
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        # Written on the calling thread, the decorator reports it; by the background
        # writer, the writer does. Either way: one warning, naming the cause.
        warnings = [line for line in self.lines() if line["logger"] in (LOGGER, WRITER_LOGGER)]
        warnings = [w for w in warnings if w["level"] == "WARNING"]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("filter exploded", warnings[0]["message"])

    def test_broken_metric_never_breaks_the_call(self) -> None:
        """A gauge that raises is skipped with a warning; the function still runs."""
        wired = self.setup()
        gauge = wired.registry.get("mgit_concurrent_operations")
        with mock.patch.object(gauge, "inc", side_effect=RuntimeError("gauge broken")):

            @monitor_mgit_operation("gauge_broken")
            def work() -> int:
                return 5

            self.assertEqual(work(), 5)
            self.assertEqual(work(), 5)
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        self.assertEqual(self.stream.getvalue().count("gauge broken"), 1)


class DisabledTest(IntegrationCase):
    def _decorated(self) -> List[Any]:
        @monitor_mgit_operation("off_op")
        def op(x: int) -> int:
            return x + 1

        @monitor_git_operation("clone")
        def clone(repo_url: str) -> str:
            return repo_url

        @monitor_provider_api_call("github", "/repos")
        def api() -> int:
            return 3

        @monitor_authentication("github")
        def auth(organization: str) -> bool:
            return True

        @monitor_mgit_operation("off_async")
        async def aop() -> int:
            return 4

        return [op, clone, api, auth, aop]

    def assert_nothing_recorded(self) -> None:
        snap = get_metrics_collector().registry.snapshot()
        for name in (
            "mgit_operations_total",
            "mgit_git_operations_total",
            "mgit_api_requests_total",
            "mgit_auth_attempts_total",
        ):
            family = snap.family(name)
            self.assertEqual(family.series if family else (), (), name)
        self.assertEqual(get_performance_monitor().get_all_operation_metrics(), {})
        self.assertEqual(self.op_lines(), [])

    def test_disabled_by_setup_is_a_pass_through(self) -> None:
        """enabled=False: every decorator returns the result and records nothing."""
        self.setup(enabled=False)
        op, clone, api, auth, aop = self._decorated()
        self.assertEqual(op(1), 2)
        self.assertEqual(clone(SECRET_URL), SECRET_URL)
        self.assertEqual(api(), 3)
        self.assertTrue(auth("acme"))
        self.assertEqual(asyncio.run(aop()), 4)
        with MonitoringContext("ctx") as ctx:
            self.assertIsNone(ctx.correlation_id)
        self.assert_nothing_recorded()

    def test_disabled_by_environment_before_setup(self) -> None:
        """MGIT_MONITORING_ENABLED=false is honoured even when setup was never called."""
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "false"}):
            op, clone, api, auth, aop = self._decorated()
            self.assertEqual(op(1), 2)
            self.assertEqual(asyncio.run(aop()), 4)
            self.assertFalse(is_monitoring_enabled())
        self.assert_nothing_recorded()

    def test_decorated_while_disabled_returns_the_function_itself(self) -> None:
        """Disabled when the decorator runs: the very same function comes back (zero overhead)."""
        with mock.patch.dict(os.environ, {"MGIT_MONITORING_ENABLED": "false"}):

            def op(x: int) -> int:
                return x + 1

            async def aop() -> int:
                return 4

            decorated = [
                monitor_mgit_operation("off_op")(op),
                monitor_mgit_operation(op),
                monitor_git_operation("clone")(op),
                monitor_provider_api_call("github", "/repos")(op),
                monitor_authentication("github")(op),
            ]
            for func in decorated:
                self.assertIs(func, op)
            self.assertIs(monitor_mgit_operation("off_async")(aop), aop)
        # Enabling later does not reach a function that was never wrapped (documented).
        self.setup(enabled=True)
        self.assertEqual(decorated[0](1), 2)
        self.assert_nothing_recorded()

    def test_disabled_after_decoration_tests_a_flag(self) -> None:
        """Decorated while enabled, then setup(enabled=False, force=True): a pass-through."""
        self.setup()
        calls: List[int] = []

        def op(x: int) -> int:
            calls.append(x)
            return x + 1

        wrapped = monitor_mgit_operation("flag_op")(self.own(op))
        self.assertIsNot(wrapped, op)
        self.assertIs(wrapped.__wrapped__, op)  # type: ignore[attr-defined]
        self.setup(enabled=False, force=True)
        self.assertFalse(get_metrics_collector().enabled)
        self.assertEqual(wrapped(1), 2)
        self.assert_nothing_recorded()
        self.setup(enabled=True, force=True)
        self.assertTrue(get_metrics_collector().enabled)
        self.assertEqual(wrapped(2), 3)
        self.assertEqual(calls, [1, 2])
        self.assertEqual(
            value("mgit_operations_total", {"operation": "flag_op", "provider": ""}), 1
        )

    def test_disabled_setup_disables_an_adopted_collector(self) -> None:
        """A default collector made before setup(enabled=False) stops recording too."""
        before = get_metrics_collector()
        integration_objects = self.setup(enabled=False)
        self.assertIs(integration_objects.metrics, before)
        self.assertFalse(before.enabled)
        before.record_operation("direct", True, 1.0)
        self.assertIsNone(value("mgit_operations_total", {"operation": "direct", "provider": ""}))

    def test_exceptions_still_propagate_when_disabled(self) -> None:
        """The pass-through does not swallow errors."""
        self.setup(enabled=False)

        @monitor_mgit_operation("off")
        def broken() -> None:
            raise ValueError("x")

        with self.assertRaises(ValueError):
            broken()


class GitDecoratorTest(IntegrationCase):
    def test_repository_found_by_parameter_name(self) -> None:
        """Positional, keyword, default and method-bound arguments are all found."""
        self.setup()
        seen: List[str] = []

        class Git:
            @monitor_git_operation(operation_type="clone")
            def clone(self, destination: str, repo_url: str = "https://example.com/d.git") -> None:
                seen.append(mask_repository(repo_url))

        @monitor_git_operation()
        def git_pull(path: str) -> None:
            pass

        @monitor_git_operation("fetch")
        def fetch(*args: Any) -> None:
            pass

        Git().clone("/tmp/a", "https://example.com/a.git")
        Git().clone("/tmp/b", repo_url="https://example.com/b.git")
        Git().clone("/tmp/c")
        git_pull("/srv/repos/widgets")
        fetch(42, "https://example.com/e.git")
        tags = [
            row.metadata["tags"]["repository"] for row in get_performance_monitor().recent_traces()
        ]
        self.assertEqual(
            tags,
            [
                "https://example.com/a.git",
                "https://example.com/b.git",
                "https://example.com/d.git",
                "/srv/repos/widgets",
                "https://example.com/e.git",
            ],
        )
        self.assertEqual(
            value("mgit_git_operations_total", {"operation": "pull", "status": "success"}), 1
        )
        self.assertEqual(
            value("mgit_git_operations_total", {"operation": "clone", "status": "success"}), 3
        )

    def test_credentials_never_reach_logs_labels_or_traces(self) -> None:
        """Tokens in URLs (and in error messages quoting them) are masked everywhere."""
        setup_metrics(repository_labels=True)  # adopted by setup: the label is on
        self.setup()

        def clone(repo_url: str, destination: str) -> None:
            raise RuntimeError(f"fatal: could not read from {repo_url}")

        def push(repo_url: str) -> None:
            pass

        clone = monitor_git_operation("clone")(self.own(clone))
        push = monitor_git_operation("push")(self.own(push))
        with self.assertRaises(RuntimeError) as caught:
            clone(SECRET_URL, "/tmp/w")
        self.assertIn(TOKEN, str(caught.exception))  # the caller's exception is untouched
        push(BARE_TOKEN_URL)
        exposition = get_metrics_collector().export_prometheus()
        logs = self.stream.getvalue()
        traces = repr(get_performance_monitor().recent_traces())
        for where, text in (("metrics", exposition), ("logs", logs), ("traces", traces)):
            self.assertNotIn(TOKEN, text, where)
            self.assertNotIn("s3cr3tpat", text, where)
        self.assertIn('repository="https://***@github.com/acme/widgets.git"', exposition)
        self.assertIn("https://***@dev.azure.com/o/p/_git/r", logs)
        failed = [line for line in self.op_lines() if line["operation_status"] == "failed"]
        self.assertEqual(failed[0]["error_type"], "RuntimeError")
        self.assertIn("https://***@github.com/acme/widgets.git", failed[0]["error"])
        self.assertEqual(
            failed[0]["correlation"]["repository"], "https://***@github.com/acme/widgets.git"
        )

    def test_async_git_operation(self) -> None:
        """Async git functions are monitored and failures counted."""
        self.setup()

        @monitor_git_operation("fetch")
        async def fetch(repository: str) -> None:
            raise OSError("network")

        with self.assertRaises(OSError):
            asyncio.run(fetch("https://example.com/x.git"))
        self.assertEqual(
            value("mgit_git_operations_total", {"operation": "fetch", "status": "failure"}), 1
        )

    def test_mask_repository(self) -> None:
        """Userinfo is replaced whole; paths and clean URLs are kept."""
        self.assertEqual(mask_repository(SECRET_URL), "https://***@github.com/acme/widgets.git")
        self.assertEqual(mask_repository("git@github.com:acme/w.git"), "git@github.com:acme/w.git")
        self.assertEqual(mask_repository(None), "unknown")
        from pathlib import Path

        self.assertEqual(mask_repository(Path("/srv/r")), "/srv/r")


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {
        "/ok": (200, {}),
        "/missing": (404, {}),
        "/limited": (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "60"}),
        "/forbidden": (403, {"X-RateLimit-Remaining": "59"}),
        "/slow-down": (429, {"Retry-After": "1"}),
        "/broken": (502, {}),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, headers = self.routes.get(self.path, (404, {}))
        body = b'{"ok": true}'
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class ApiDecoratorTest(IntegrationCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            response.read()
            return response

    def api(self, path: str, labels_endpoint: str = "/repos") -> Any:
        def call() -> Any:
            return self.get(path)

        return monitor_provider_api_call("github", labels_endpoint, method="get")(self.own(call))

    def test_urllib_success_and_http_error(self) -> None:
        """A real urllib response gives 200; a real HTTPError gives 404, re-raised as is."""
        self.setup()
        self.api("/ok")()
        with self.assertRaises(urllib.error.HTTPError) as caught:
            self.api("/missing")()
        self.assertEqual(caught.exception.code, 404)
        caught.exception.close()
        ok = {"method": "GET", "provider": "github", "status_code": "200", "endpoint": "/repos"}
        self.assertEqual(value("mgit_api_requests_total", ok), 1)
        self.assertEqual(value("mgit_api_requests_total", dict(ok, status_code="404")), 1)
        self.assertEqual(
            value("mgit_api_errors_total", {"provider": "github", "status_code": "404"}), 1
        )
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "HTTPError", "operation": "/repos", "provider": "github"},
            ),
            1,
        )
        lines = self.op_lines()
        self.assertEqual(
            [(line["level"], line["api_status_code"]) for line in lines],
            [("INFO", 200), ("ERROR", 404)],
        )
        self.assertEqual(lines[1]["error_type"], "HTTPError")
        self.assertEqual(
            {line["function"] for line in lines}, {"test_urllib_success_and_http_error"}
        )

    def test_rate_limits_from_a_real_server(self) -> None:
        """429 and 403 with X-RateLimit-Remaining: 0 are rate limits; a plain 403 is not."""
        self.setup()
        for path in ("/slow-down", "/limited", "/forbidden"):
            with self.assertRaises(urllib.error.HTTPError) as caught:
                self.api(path)()
            caught.exception.close()
        self.assertEqual(value("mgit_api_rate_limit_hits_total", {"provider": "github"}), 2)
        self.assertEqual(
            value("mgit_api_errors_total", {"provider": "github", "status_code": "403"}), 2
        )
        limited = [line.get("rate_limited", False) for line in self.op_lines()]
        self.assertEqual(limited, [True, True, False])

    def test_requests_like_objects(self) -> None:
        """status_code and request.method of a returned response; error.response of a raise."""
        self.setup()

        class Request:
            method = "post"

        class Response:
            def __init__(self, status: int, headers: Optional[Dict[str, str]] = None) -> None:
                self.status_code = status
                self.headers = headers or {}
                self.request = Request()

        class HTTPStatusError(Exception):
            def __init__(self, response: Response) -> None:
                super().__init__(f"HTTP {response.status_code}")
                self.response = response

        @monitor_provider_api_call(provider_name="gitlab", endpoint="/projects")
        def create() -> Response:
            return Response(201)

        @monitor_provider_api_call(provider_name="gitlab", endpoint="/projects")
        def fails() -> None:
            raise HTTPStatusError(Response(502))

        @monitor_provider_api_call(provider_name="gitlab", endpoint="/projects")
        def throttled() -> Response:
            return Response(403, {"x-ratelimit-remaining": "0"})

        self.assertEqual(create().status_code, 201)
        with self.assertRaises(HTTPStatusError):
            fails()
        throttled()
        base = {"provider": "gitlab", "endpoint": "/projects", "method": "POST"}
        self.assertEqual(value("mgit_api_requests_total", dict(base, status_code="201")), 1)
        self.assertEqual(value("mgit_api_requests_total", dict(base, status_code="502")), 1)
        self.assertEqual(value("mgit_api_rate_limit_hits_total", {"provider": "gitlab"}), 1)

    def test_no_status_is_not_invented(self) -> None:
        """Plain data returns as "unknown", transport errors as "error"; provider from self."""
        self.setup()

        class Client:
            provider_name = "bitbucket"

            @monitor_provider_api_call(endpoint="/workspaces")
            def list(self) -> List[str]:
                return ["a"]

            @monitor_provider_api_call(endpoint="/workspaces")
            async def down(self) -> None:
                raise ConnectionError("refused")

        self.assertEqual(Client().list(), ["a"])
        with self.assertRaises(ConnectionError):
            asyncio.run(Client().down())
        base = {"provider": "bitbucket", "endpoint": "/workspaces", "method": "unknown"}
        self.assertEqual(value("mgit_api_requests_total", dict(base, status_code="unknown")), 1)
        self.assertEqual(value("mgit_api_requests_total", dict(base, status_code="error")), 1)
        self.assertEqual(
            value(
                "mgit_errors_total",
                {
                    "error_type": "ConnectionError",
                    "operation": "/workspaces",
                    "provider": "bitbucket",
                },
            ),
            1,
        )


class AuthAndContextTest(IntegrationCase):
    def test_authentication_outcomes(self) -> None:
        """Success, a False return and an exception are counted per provider and org."""
        self.setup()

        class Provider:
            provider_name = "azuredevops"

            @monitor_authentication()
            def authenticate(self, organization: str, ok: bool = True) -> bool:
                if ok is None:
                    raise PermissionError("bad token")
                return ok

        p = Provider()
        self.assertTrue(p.authenticate("contoso"))
        self.assertFalse(p.authenticate("contoso", ok=False))
        with self.assertRaises(PermissionError):
            p.authenticate(organization="fabrikam", ok=None)  # type: ignore[arg-type]
        key = {"provider": "azuredevops", "organization": "contoso"}
        self.assertEqual(value("mgit_auth_attempts_total", key), 2)
        self.assertEqual(value("mgit_auth_success_total", key), 1)
        self.assertEqual(value("mgit_auth_failures_total", key), 1)
        self.assertEqual(
            value(
                "mgit_auth_failures_total", {"provider": "azuredevops", "organization": "fabrikam"}
            ),
            1,
        )

    def test_monitoring_context_sync(self) -> None:
        """The block is an operation; metadata may use LogRecord names; errors not suppressed."""
        self.setup()
        with MonitoringContext(
            "bulk_clone", provider="github", repository=SECRET_URL, name="x", module="m"
        ) as ctx:
            self.assertRegex(ctx.correlation_id or "", r"^[0-9a-f]{32}$")
            self.assertIsNotNone(ctx.trace_id)
            self.assertEqual(value("mgit_concurrent_operations"), 1)
        with self.assertRaises(ValueError), MonitoringContext("bulk_clone", provider="github"):
            raise ValueError("inside")
        labels = {"operation": "bulk_clone", "provider": "github"}
        self.assertEqual(value("mgit_operations_success_total", labels), 1)
        self.assertEqual(value("mgit_operations_failure_total", labels), 1)
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        # Logged on the logger of the module that created the context.
        lines = [line for line in self.lines() if line["logger"] == __name__]
        self.assertEqual(
            [line["operation_status"] for line in lines],
            ["started", "completed", "started", "failed"],
        )
        self.assertEqual(
            lines[0]["correlation"]["repository"], "https://***@github.com/acme/widgets.git"
        )
        self.assertEqual(lines[0]["name"], "x")
        self.assertEqual(lines[1]["name"], "x")  # the metadata is on the end line too
        self.assertEqual(lines[1]["correlation_id"], lines[0]["correlation_id"])
        self.assertNotIn(TOKEN, self.stream.getvalue())
        # The traces carry the metadata and the tags (the masked repository among them).
        first, second = get_performance_monitor().recent_traces("bulk_clone")
        masked = "https://***@github.com/acme/widgets.git"
        self.assertEqual(
            {"name": "x", "module": "m", "tags": {"provider": "github", "repository": masked}},
            first.metadata,
        )
        self.assertEqual({"tags": {"provider": "github"}}, second.metadata)
        self.assertEqual("ValueError", second.error_type)

    def test_an_operations_trace_id_is_its_log_lines_span_id(self) -> None:
        """The trace of a decorated call is named by the span id its log lines carry, so a
        line leads to its trace and back; nested calls each have their own."""
        self.setup()
        logging.getLogger(__name__).setLevel(logging.INFO)  # restored by the case's cleanup

        @monitor_mgit_operation("inner")
        def inner() -> None:
            pass

        with MonitoringContext("outer", provider="github") as ctx:
            inner()
            outer_id = ctx.trace_id
        lines = {line["operation"]: line for line in self.lines() if line["logger"] == __name__}
        traces = {row.operation: row for row in get_performance_monitor().recent_traces()}
        self.assertEqual(outer_id, traces["outer"].trace_id)
        self.assertEqual(outer_id, lines["outer"]["span_id"])
        self.assertEqual(traces["inner"].trace_id, lines["inner"]["span_id"])
        self.assertEqual(outer_id, traces["inner"].parent_id)
        self.assertNotEqual(outer_id, traces["inner"].trace_id)

    def test_trace_metadata_of_each_decorator_shape(self) -> None:
        """A decorated operation's trace metadata holds its tags: the provider when it has
        one, the repository a Git operation names, nothing else; the tags of one call never
        reach another's trace."""
        self.setup()

        @monitor_mgit_operation("plain")
        def plain() -> None:
            pass

        @monitor_mgit_operation("sync_all", provider="bitbucket")
        def sync_all() -> None:
            pass

        @monitor_git_operation("pull")
        def pull(repo_url: str) -> None:
            pass

        plain()
        sync_all()
        pull("https://example.com/a.git")
        pull("https://example.com/b.git")
        changed = get_performance_monitor().recent_traces("sync_all")[0].metadata
        changed["tags"]["provider"] = "changed by a reader"  # its own copy
        changed["injected"] = True
        sync_all()
        rows = get_performance_monitor().recent_traces()
        self.assertEqual(
            [
                ("plain", None),
                ("sync_all", {"tags": {"provider": "bitbucket"}}),
                ("pull", {"tags": {"repository": "https://example.com/a.git"}}),
                ("pull", {"tags": {"repository": "https://example.com/b.git"}}),
                ("sync_all", {"tags": {"provider": "bitbucket"}}),
            ],
            [(row.operation, row.metadata) for row in rows],
        )

    def test_at_info_an_operation_writes_one_line_its_end(self) -> None:
        """With the function's logger at INFO (how mgit runs), each operation writes one
        line: its end, with the outcome, the duration and the metadata. The "started" line
        is DEBUG."""
        self.setup()
        logging.getLogger(__name__).setLevel(logging.INFO)  # restored by the case's cleanup
        with MonitoringContext("bulk_clone", provider="github", batch=7):
            pass
        with self.assertRaises(KeyError), MonitoringContext("bulk_clone", provider="github"):
            raise KeyError("missing")
        lines = [line for line in self.lines() if line["logger"] == __name__]
        self.assertEqual(
            [("INFO", "completed", True), ("ERROR", "failed", False)],
            [(ln["level"], ln["operation_status"], ln["success"]) for ln in lines],
        )
        self.assertEqual(7, lines[0]["batch"])
        self.assertIsInstance(lines[0]["duration_seconds"], float)
        self.assertEqual("KeyError", lines[1]["error_type"])

    def test_monitoring_context_async(self) -> None:
        """async with works the same way."""
        self.setup()

        async def main() -> None:
            async with MonitoringContext("async_block") as ctx:
                self.assertIsNotNone(ctx.trace_id)

        asyncio.run(main())
        self.assertEqual(get_performance_monitor().get_operation_metrics("async_block").count, 1)
        # Both lines name the coroutine that entered the block, not __aenter__/__aexit__.
        lines = [line for line in self.lines() if line.get("operation") == "async_block"]
        self.assertEqual(["started", "completed"], [ln["operation_status"] for ln in lines])
        self.assertEqual({"main"}, {ln["function"] for ln in lines})


class CallableKindsTest(IntegrationCase):
    """Methods, classmethods, staticmethods, partials, generators: monitored, never broken."""

    def test_methods_classmethods_staticmethods_in_either_order(self) -> None:
        """The decorator works above or below @classmethod/@staticmethod and on methods."""
        self.setup()

        class Provider:
            provider_name = "gitlab"

            @monitor_mgit_operation("method")
            def method(self, x: int) -> int:
                return x

            @classmethod
            @monitor_mgit_operation("cls_inner")
            def cls_inner(cls, x: int) -> Any:
                return cls, x

            @monitor_mgit_operation("cls_outer")
            @classmethod
            def cls_outer(cls, x: int) -> Any:
                return cls, x

            @monitor_git_operation("clone")
            @staticmethod
            def static_outer(repo_url: str) -> str:
                return repo_url

            @monitor_provider_api_call
            @classmethod
            def api(cls) -> int:
                return 7

        p = Provider()
        self.assertEqual(p.method(1), 1)
        self.assertEqual(Provider.cls_inner(2), (Provider, 2))
        self.assertEqual(p.cls_outer(3), (Provider, 3))
        self.assertEqual(Provider.static_outer(SECRET_URL), SECRET_URL)
        self.assertEqual(Provider.api(), 7)
        for name in ("method", "cls_inner", "cls_outer"):
            labels = {"operation": name, "provider": ""}
            self.assertEqual(value("mgit_operations_success_total", labels), 1, name)
        self.assertEqual(
            value("mgit_git_operations_total", {"operation": "clone", "status": "success"}), 1
        )
        self.assertNotIn(TOKEN, self.stream.getvalue())

    def test_partial_objects(self) -> None:
        """functools.partial of a sync or async function can be decorated and called."""
        self.setup()

        def add(a: int, b: int) -> int:
            return a + b

        async def aadd(a: int, b: int) -> int:
            return a + b

        sync = monitor_mgit_operation("p_sync")(functools.partial(add, 1))
        bare = monitor_git_operation(functools.partial(add, 1))
        coro = monitor_mgit_operation("p_async")(functools.partial(aadd, 1))
        self.assertEqual(sync(2), 3)
        self.assertEqual(bare(3), 4)
        self.assertTrue(inspect.iscoroutinefunction(coro))
        self.assertEqual(asyncio.run(coro(4)), 5)
        for name in ("p_sync", "p_async"):
            labels = {"operation": name, "provider": ""}
            self.assertEqual(value("mgit_operations_success_total", labels), 1, name)

    def test_traceback_is_intact(self) -> None:
        """The propagated exception's traceback still ends in the frame that raised it."""
        self.setup()

        def deep() -> None:
            raise OSError("disk")

        @monitor_mgit_operation("tb")
        def op() -> None:
            deep()

        try:
            op()
        except OSError as exc:
            frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
        self.assertEqual(frames[-2:], ["op", "deep"])

    def test_generator_monitored_over_its_iteration(self) -> None:
        """A generator is one operation from first step to exhaustion; its body and the calls
        it makes share its scope and trace; the consumer's own scope is untouched."""
        self.setup()

        @monitor_git_operation("fetch")
        def fetch(repo_url: str) -> str:
            return get_correlation_id()

        @monitor_mgit_operation("listing", provider="github")
        def listing(n: int) -> Any:
            for i in range(n):
                yield get_context().get("operation"), fetch(f"https://github.com/acme/{i}.git")
            return "done"

        self.assertTrue(inspect.isgeneratorfunction(listing))
        seen = []
        with correlation_context("consumer") as outer:
            gen = listing(2)
            self.assertIsNone(
                value("mgit_operations_total", {"operation": "listing", "provider": "github"})
            )
            for op, cid in gen:
                seen.append((op, cid, get_context()["operation"]))
                self.assertEqual(value("mgit_concurrent_operations"), 1)
        self.assertEqual(seen, [("listing", outer, "consumer")] * 2)
        labels = {"operation": "listing", "provider": "github"}
        self.assertEqual(value("mgit_operations_success_total", labels), 1)
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        rows = get_performance_monitor().recent_traces()
        (parent,) = [r for r in rows if r.operation == "listing"]
        children = [r for r in rows if r.operation == "fetch"]
        self.assertEqual([r.parent_id for r in children], [parent.trace_id] * 2)

    def test_generator_failure_early_stop_send_and_return(self) -> None:
        """An error mid-iteration is a failure by type; break is a success; send, throw and
        the return value pass through unchanged."""
        self.setup()

        @monitor_mgit_operation("gen_fail")
        def fails() -> Any:
            yield 1
            raise KeyError("k")

        @monitor_mgit_operation("gen_stop")
        def endless() -> Any:
            while True:
                yield 1

        @monitor_mgit_operation("echo")
        def echo() -> Any:
            got = yield "ready"
            while got is not None:
                try:
                    got = yield got * 2
                except ValueError:
                    got = yield "caught"
            return "fin"

        with self.assertRaises(KeyError):
            list(fails())
        for _ in endless():
            break
        gc.collect()  # the abandoned generator is closed

        def drive() -> Any:
            return (yield from echo())

        g = drive()
        self.assertEqual(
            [next(g), g.send(2), g.throw(ValueError), g.send(5)], ["ready", 4, "caught", 10]
        )
        with self.assertRaises(StopIteration) as stop:
            g.send(None)
        self.assertEqual(stop.exception.value, "fin")
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "KeyError", "operation": "gen_fail", "provider": ""},
            ),
            1,
        )
        for name in ("gen_stop", "echo"):
            labels = {"operation": name, "provider": ""}
            self.assertEqual(value("mgit_operations_success_total", labels), 1, name)
            self.assertIsNone(value("mgit_operations_failure_total", labels), name)
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        self.assertEqual(get_performance_monitor().active_trace_count, 0)

    def test_async_generator_iteration_and_cancellation(self) -> None:
        """An async generator is monitored over its iteration; cancelling it inside a step
        records CancelledError and propagates it."""
        self.setup()

        @monitor_mgit_operation("astream")
        async def astream() -> Any:
            for i in range(3):
                await asyncio.sleep(0)
                yield i, get_context().get("operation")

        @monitor_mgit_operation("ahang")
        async def ahang(started: asyncio.Event) -> Any:
            yield 1
            started.set()
            await asyncio.Event().wait()
            yield 2  # pragma: no cover - never reached

        self.assertTrue(inspect.isasyncgenfunction(astream))

        async def main() -> List[Any]:
            got = [item async for item in astream()]
            started = asyncio.Event()

            async def consume() -> None:
                async for _ in ahang(started):
                    pass

            task = asyncio.ensure_future(consume())
            await started.wait()
            self.assertEqual(value("mgit_concurrent_operations"), 1)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return got

        got = asyncio.run(main())
        self.assertEqual(got, [(0, "astream"), (1, "astream"), (2, "astream")])
        self.assertEqual(
            value("mgit_operations_success_total", {"operation": "astream", "provider": ""}), 1
        )
        self.assertEqual(
            value(
                "mgit_errors_total",
                {"error_type": "CancelledError", "operation": "ahang", "provider": ""},
            ),
            1,
        )
        self.assertEqual(value("mgit_concurrent_operations"), 0)
        self.assertEqual(get_performance_monitor().active_trace_count, 0)

    def test_nested_operation_git_and_api_calls(self) -> None:
        """An operation calling git operations calling API calls: one correlation id in every
        line and each git trace a child of the operation's trace."""
        self.setup()

        class Response:
            status_code = 200

        def api() -> Response:
            return Response()

        def git_clone(repo_url: str) -> None:
            api()

        def clone_all() -> None:
            git_clone("https://github.com/acme/a.git")
            git_clone("https://github.com/acme/b.git")

        api = monitor_provider_api_call("github", endpoint="/repos")(self.own(api))
        git_clone = monitor_git_operation(self.own(git_clone))
        clone_all = monitor_mgit_operation("clone_all")(self.own(clone_all))
        clone_all()
        lines = self.op_lines()
        self.assertEqual(len(lines), 2 + 2 * 3)
        self.assertEqual(len({line["correlation_id"] for line in lines}), 1)
        rows = get_performance_monitor().recent_traces()
        (top,) = [r for r in rows if r.operation == "clone_all"]
        self.assertEqual([r.parent_id for r in rows if r.operation == "clone"], [top.trace_id] * 2)
        self.assertEqual(len({r.correlation_id for r in rows}), 1)


class StatusAndMaskingTest(IntegrationCase):
    def test_status_of_a_wrapped_error(self) -> None:
        """A provider error raised from an HTTP error reports that error's status."""
        self.setup()

        class Response:
            status_code = 429
            headers = {"Retry-After": "30"}

        class HTTPError(Exception):
            response = Response()

        class ProviderError(Exception):
            pass

        @monitor_provider_api_call("github", endpoint="/orgs")
        def call() -> None:
            try:
                raise HTTPError("429")
            except HTTPError as exc:
                raise ProviderError("listing failed") from exc

        with self.assertRaises(ProviderError):
            call()
        labels = {"method": "unknown", "provider": "github", "endpoint": "/orgs"}
        self.assertEqual(value("mgit_api_requests_total", dict(labels, status_code="429")), 1)
        self.assertEqual(value("mgit_api_rate_limit_hits_total", {"provider": "github"}), 1)
        try:
            raise ProviderError("x") from HTTPError("y")
        except ProviderError as exc:
            self.assertEqual(extract_status_code(exc), 429)
        try:  # implicit context is not a cause: it may be unrelated
            try:
                raise HTTPError("y")
            except HTTPError:
                raise ProviderError("x")  # noqa: B904
        except ProviderError as exc:
            self.assertIsNone(extract_status_code(exc))

    def test_password_containing_at_sign_is_masked_whole(self) -> None:
        """Everything before the host's @ is masked, even an unencoded @ in the password."""
        self.assertEqual(mask_repository("https://u:p@ss@host/x.git"), "https://***@host/x.git")
        self.assertEqual(
            mask_repository("clone of https://u:tok@h/x failed; mail a@b.c"),
            "clone of https://***@h/x failed; mail a@b.c",
        )


class OneNamePerOperationTest(IntegrationCase):
    """The same operation has the same name in every metric, trace and log record."""

    def names(self, error_type: str) -> Dict[str, Any]:
        samples = list(get_metrics_collector().registry.snapshot().samples())

        def label(sample: str, key: str = "operation") -> set:
            return {s.labels.get(key) for s in samples if s.name == sample}

        return {
            "errors": {
                s.labels["operation"]
                for s in samples
                if s.name == "mgit_errors_total" and s.labels["error_type"] == error_type
            },
            "label": label,
            "traces": {r.operation for r in get_performance_monitor().recent_traces()},
            "logs": {line["operation"] for line in self.op_lines() if "operation" in line},
        }

    def test_git_operation(self) -> None:
        """A failing git pull: "pull" in its metrics, its error, its trace and its log lines."""
        self.setup()

        def git_pull(repo_path: str) -> None:
            raise RuntimeError("not a git repository")

        pull = monitor_git_operation()(self.own(git_pull))
        with self.assertRaises(RuntimeError):
            pull("/srv/repos/widgets")
        names = self.names("RuntimeError")
        self.assertEqual(names["label"]("mgit_git_operations_total"), {"pull"})
        self.assertEqual(names["label"]("mgit_git_operation_duration_seconds_count"), {"pull"})
        self.assertEqual(names["errors"], {"pull"})
        self.assertEqual(names["traces"], {"pull"})
        self.assertEqual(names["logs"], {"pull"})
        failed = [line for line in self.op_lines() if line.get("operation_status") == "failed"]
        self.assertEqual(failed[0]["git_operation"], "pull")
        self.assertTrue(failed[0]["message"].startswith("Operation failed: pull "))

    def test_mgit_operation_and_context(self) -> None:
        """An mgit operation and a MonitoringContext block keep the name they were given."""
        self.setup()

        def clone_all() -> None:
            raise KeyError("x")

        with self.assertRaises(KeyError):
            monitor_mgit_operation("clone-all")(self.own(clone_all))()
        names = self.names("KeyError")
        self.assertEqual(names["label"]("mgit_operations_total"), {"clone-all"})
        self.assertEqual(names["errors"], {"clone-all"})
        self.assertEqual(names["traces"], {"clone-all"})
        self.assertEqual(names["logs"], {"clone-all"})

    def test_api_call(self) -> None:
        """A provider call is named by its endpoint in its metrics, its error and its log."""
        self.setup()

        def list_repositories() -> None:
            raise ConnectionError("refused")

        call = monitor_provider_api_call("github", endpoint="/orgs/acme/repos")(
            self.own(list_repositories)
        )
        with self.assertRaises(ConnectionError):
            call()
        endpoints = self.names("ConnectionError")["label"]("mgit_api_requests_total", "endpoint")
        self.assertEqual(endpoints, {"/orgs/acme/repos"})
        self.assertEqual(self.names("ConnectionError")["errors"], {"/orgs/acme/repos"})
        self.assertEqual({line["endpoint"] for line in self.op_lines()}, {"/orgs/acme/repos"})

    def test_authentication(self) -> None:
        """A failed authentication: "authentication" in its error and its log line."""
        self.setup()

        def login(organization: str) -> None:
            raise PermissionError("bad token")

        with self.assertRaises(PermissionError):
            monitor_authentication("github")(self.own(login))("acme")
        self.assertEqual(self.names("PermissionError")["errors"], {"authentication"})
        self.assertEqual(self.names("PermissionError")["logs"], {"authentication"})


class ApiMethodTest(IntegrationCase):
    """The ``method`` label: given, else carried by the response or the error, else unknown."""

    def methods(self) -> set:
        samples = get_metrics_collector().registry.snapshot().samples()
        return {
            (s.labels["method"], s.labels["status_code"])
            for s in samples
            if s.name == "mgit_api_requests_total"
        }

    def test_none_return(self) -> None:
        """A function returning None: the decorator's method if given, else "unknown"."""
        self.setup()

        def delete_hook() -> None:
            return None

        monitor_provider_api_call("github", "/hooks/1", method="delete")(self.own(delete_hook))()
        monitor_provider_api_call("github", "/hooks/2")(self.own(delete_hook))()
        self.assertEqual(self.methods(), {("DELETE", "unknown"), ("unknown", "unknown")})
        lines = self.op_lines()
        self.assertEqual([line["api_method"] for line in lines], ["DELETE", "unknown"])

    def test_method_from_a_transport_error(self) -> None:
        """A requests-style ConnectionError carries .request (no response): its method counts."""
        self.setup()

        class Request:
            method = "patch"

        class TransportError(Exception):
            request = Request()
            response = None

        def update() -> None:
            raise TransportError("connection reset")

        with self.assertRaises(TransportError):
            monitor_provider_api_call("gitlab", "/projects/1")(self.own(update))()
        self.assertEqual(self.methods(), {("PATCH", "error")})

    def test_recorded_directly(self) -> None:
        """record_api_call upper-cases methods but spells "unknown" one way."""
        self.setup()
        collector = get_metrics_collector()
        collector.record_api_call("get", "github", 200, 0.1, "/a")
        collector.record_api_call("UNKNOWN", "github", 200, 0.1, "/a")
        self.assertEqual(self.methods(), {("GET", "200"), ("unknown", "200")})


if __name__ == "__main__":
    unittest.main()
