"""Tests for mgit_monitoring.context: correlation ids, scopes, threads, asyncio, traceparent."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

from mgit_monitoring.context import (
    CURRENT_SCOPE,
    PROCESS_SCOPE,
    Scope,
    TraceParent,
    adopt_traceparent,
    child_env,
    correlation_context,
    current_scope,
    enter_scope,
    get_context,
    get_correlation_id,
    get_span_id,
    get_traceparent,
    git_operation_context,
    new_span_id,
    new_trace_id,
    operation_context,
    parse_traceparent,
    provider_context,
    reset_process_trace,
)
from mgit_monitoring.context_threads import (
    ContextThread,
    ContextThreadPoolExecutor,
    submit_with_context,
)
from tests.support import need_executable

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
VALID_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ContextTestCase(unittest.TestCase):
    def setUp(self) -> None:
        reset_process_trace()
        self.addCleanup(reset_process_trace)


class TestIds(ContextTestCase):
    def test_new_ids_are_w3c_shaped_and_distinct(self) -> None:
        """new_trace_id/new_span_id return 32/16 lowercase hex and differ on each call."""
        self.assertRegex(new_trace_id(), HEX32)
        self.assertRegex(new_span_id(), HEX16)
        self.assertNotEqual(new_trace_id(), new_trace_id())

    def test_id_outside_any_context_is_minted_once(self) -> None:
        """Outside a context get_correlation_id() mints one id and keeps returning it."""
        first = get_correlation_id()
        self.assertRegex(first, HEX32)
        self.assertEqual(first, get_correlation_id())
        self.assertRegex(get_span_id(), HEX16)
        self.assertEqual({}, dict(get_context()))


class TestCorrelationContext(ContextTestCase):
    def test_nested_contexts_inherit_id_and_merge_attributes(self) -> None:
        """An inner context keeps the outer id and merges its attributes over the outer ones."""
        with correlation_context(operation="clone_all", organization="myorg") as outer_id:
            self.assertRegex(outer_id, HEX32)
            self.assertEqual(outer_id, get_correlation_id())
            outer_span = get_span_id()
            with provider_context("github", "myorg"):
                self.assertEqual(outer_id, get_correlation_id())
                self.assertNotEqual(outer_span, get_span_id())
                self.assertEqual(
                    {"operation": "clone_all", "organization": "myorg", "provider": "github"},
                    dict(get_context()),
                )
                with correlation_context(operation="clone"):
                    self.assertEqual("clone", get_context()["operation"])
            self.assertEqual(
                {"operation": "clone_all", "organization": "myorg"}, dict(get_context())
            )
        self.assertEqual({}, dict(get_context()))
        self.assertNotEqual(outer_id, get_correlation_id())

    def test_top_level_contexts_get_fresh_ids(self) -> None:
        """Two sibling top-level contexts (no adopted TRACEPARENT) get different ids."""
        with correlation_context(operation="a") as first:
            pass
        with correlation_context(operation="b") as second:
            pass
        self.assertNotEqual(first, second)

    def test_explicit_id_wins_and_is_normalised(self) -> None:
        """correlation_id= overrides the outer id; upper-case hex and UUIDs are normalised."""
        explicit = "ABC123" + "0" * 25 + "1"
        with correlation_context(operation="x"), correlation_context(
            correlation_id=explicit
        ) as cid:
            self.assertEqual("abc123" + "0" * 25 + "1", cid)
            self.assertEqual(cid, get_correlation_id())
            self.assertEqual("x", get_context()["operation"])
        with correlation_context(correlation_id="123e4567-e89b-12d3-a456-426614174000") as cid:
            self.assertEqual("123e4567e89b12d3a456426614174000", cid)

    def test_foreign_explicit_id_maps_to_a_stable_trace_id(self) -> None:
        """A foreign correlation_id never raises: it maps to a stable trace-id and is kept."""
        for foreign in ("abc123", "job-42", "g" * 32, 42):
            with self.subTest(foreign=foreign):
                with correlation_context(correlation_id=foreign) as first:  # type: ignore[arg-type]
                    self.assertRegex(first, r"\A[0-9a-f]{32}\Z")
                    self.assertEqual(str(foreign), get_context()["external_correlation_id"])
                with correlation_context(correlation_id=foreign) as again:  # type: ignore[arg-type]
                    self.assertEqual(first, again)

    def test_inner_trace_id_drops_the_outer_external_id(self) -> None:
        """An inner explicit trace-id starts a new trace: the outer foreign id is not kept."""
        inner_id = "ab" * 16
        with correlation_context(correlation_id="job-42", operation="sync"):
            with correlation_context(correlation_id=inner_id) as cid:
                self.assertEqual(inner_id, cid)
                self.assertEqual({"operation": "sync"}, dict(get_context()))
            with correlation_context(repo="r"):
                self.assertEqual("job-42", get_context()["external_correlation_id"])

    def test_empty_or_zero_explicit_id_is_ignored(self) -> None:
        """An empty or all-zero correlation_id is ignored: the scope inherits or mints an id."""
        with correlation_context(operation="outer") as outer:
            for ignored in ("", "   ", "0" * 32):
                with self.subTest(ignored=ignored), correlation_context(
                    correlation_id=ignored
                ) as cid:
                    self.assertEqual(outer, cid)

    def test_none_attributes_are_not_set(self) -> None:
        """provider_context without an organization does not add an organization key."""
        with provider_context("gitlab"):
            self.assertEqual({"provider": "gitlab"}, dict(get_context()))

    def test_shorthand_contexts(self) -> None:
        """operation_context and git_operation_context set their documented keys."""
        with operation_context("sync", team="t"), git_operation_context("fetch", "org/repo"):
            self.assertEqual(
                {
                    "operation": "sync",
                    "team": "t",
                    "git_operation": "fetch",
                    "repository": "org/repo",
                },
                dict(get_context()),
            )

    def test_get_context_is_read_only(self) -> None:
        """The mapping get_context() returns cannot be used to change the active context."""
        with correlation_context(operation="x"):
            view = get_context()
            with self.assertRaises(TypeError):
                view["operation"] = "y"  # type: ignore[index]

    def test_context_is_restored_after_an_exception(self) -> None:
        """Leaving a context by an exception restores the outer scope."""
        with correlation_context(operation="outer") as outer:
            with self.assertRaises(RuntimeError), correlation_context(operation="inner"):
                raise RuntimeError("boom")
            self.assertEqual(outer, get_correlation_id())
            self.assertEqual("outer", get_context()["operation"])


class TestScopeObject(ContextTestCase):
    def test_scope_is_computed_when_entered(self) -> None:
        """A context created outside a scope and entered inside it inherits that scope."""
        inner = correlation_context(operation="inner")
        outer = correlation_context(operation="outer", organization="acme")
        with outer as outer_id, inner as inner_id:
            self.assertEqual(outer_id, inner_id)
            self.assertEqual({"operation": "inner", "organization": "acme"}, dict(get_context()))

    def test_reentering_an_active_scope_raises(self) -> None:
        """The same correlation_context object cannot be entered twice at once."""
        scope = correlation_context(operation="x")
        with scope, self.assertRaises(RuntimeError):
            scope.__enter__()
        self.assertEqual({}, dict(get_context()))

    def test_usable_as_a_decorator(self) -> None:
        """As a function decorator, every call runs in a scope of its own."""
        seen = []

        @correlation_context(operation="decorated", provider="github")
        def work() -> None:
            seen.append((get_correlation_id(), dict(get_context())))

        work()
        work()
        self.assertNotEqual(seen[0][0], seen[1][0])
        self.assertEqual({"operation": "decorated", "provider": "github"}, seen[0][1])
        self.assertEqual({}, dict(get_context()))

    def test_usable_as_a_decorator_of_coroutine_functions(self) -> None:
        """A decorated coroutine function runs its body in a scope of its own, per run."""

        @correlation_context(operation="async_op", provider="gitlab")
        async def work() -> tuple:
            await asyncio.sleep(0)
            return get_correlation_id(), dict(get_context())

        async def main() -> list:
            return list(await asyncio.gather(work(), work()))

        first, second = asyncio.run(main())
        self.assertEqual({"operation": "async_op", "provider": "gitlab"}, first[1])
        self.assertEqual(first[1], second[1])
        self.assertNotEqual(first[0], second[0])
        self.assertEqual("work", work.__name__)

    def test_inner_scope_without_changes_keeps_attributes(self) -> None:
        """An inner scope repeating the outer attributes has the same context and a new span."""
        with correlation_context(operation="sync", provider="github") as cid:
            outer_span = get_span_id()
            with correlation_context(operation="sync", provider="github", organization=None):
                self.assertEqual(cid, get_correlation_id())
                self.assertNotEqual(outer_span, get_span_id())
                self.assertEqual({"operation": "sync", "provider": "github"}, dict(get_context()))
            with correlation_context():
                self.assertEqual({"operation": "sync", "provider": "github"}, dict(get_context()))


class TestScopeApi(ContextTestCase):
    """The public scope names the logging, performance and integration modules use."""

    def test_current_scope_is_the_active_or_the_process_scope(self) -> None:
        """current_scope() is CURRENT_SCOPE's value inside a context, PROCESS_SCOPE's outside."""
        self.assertIsNone(CURRENT_SCOPE.get())
        self.assertIs(PROCESS_SCOPE.get(), current_scope())
        self.assertEqual(get_correlation_id(), current_scope().trace_id)
        with correlation_context(operation="sync") as cid:
            scope = current_scope()
            self.assertIs(CURRENT_SCOPE.get(), scope)
            self.assertEqual((cid, get_span_id()), (scope.trace_id, scope.span_id))
            self.assertEqual({"operation": "sync"}, dict(scope.view))

    def test_enter_scope_matches_correlation_context(self) -> None:
        """enter_scope(attrs) enters what correlation_context(**attrs) would, until reset."""
        with correlation_context(operation="clone_all", organization="org") as cid:
            token, scope = enter_scope({"repository": "r1"})
            try:
                self.assertIs(scope, current_scope())
                self.assertEqual(cid, scope.trace_id)
                self.assertEqual(
                    {"operation": "clone_all", "organization": "org", "repository": "r1"},
                    dict(get_context()),
                )
            finally:
                CURRENT_SCOPE.reset(token)
            self.assertEqual({"operation": "clone_all", "organization": "org"}, dict(get_context()))
        token, scope = enter_scope({"operation": "top"})
        CURRENT_SCOPE.reset(token)
        self.assertRegex(scope.trace_id, HEX32)
        self.assertIsNone(CURRENT_SCOPE.get())

    def test_enter_scope_shares_the_callers_attributes_and_cache(self) -> None:
        """Scopes entered with one attrs dict share it and its rendering cache, each with
        ids of its own; under an outer scope that has the same attributes they share the
        outer scope's instead."""
        attrs = {"operation": "pull"}
        cache: dict = {}
        scopes = []
        for _ in range(2):
            token, scope = enter_scope(attrs, cache)
            CURRENT_SCOPE.reset(token)
            scopes.append(scope)
        with correlation_context(operation="pull"):
            outer = current_scope()
            token, scope = enter_scope(attrs, cache)
            CURRENT_SCOPE.reset(token)
            scopes.append(scope)
        for scope in scopes[:2]:
            self.assertIs(attrs, scope.attrs)
            self.assertIs(cache, scope.attrs_cache)
        self.assertIs(outer.attrs, scopes[2].attrs)
        self.assertIs(outer.attrs_cache, scopes[2].attrs_cache)
        self.assertEqual(3, len({s.span_id for s in scopes}))

    def test_scope_pickles_without_its_caches(self) -> None:
        """A Scope survives pickling (a queued log record) with its ids and attributes."""
        import pickle

        scope = Scope("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01", {"a": 1})
        scope.log_cache = ("formatter", "rendered")
        copy = pickle.loads(pickle.dumps(scope, protocol=1))
        self.assertEqual(
            (scope.trace_id, scope.span_id, scope.flags, scope.attrs),
            (copy.trace_id, copy.span_id, copy.flags, copy.attrs),
        )
        self.assertIsNone(copy.log_cache)
        self.assertEqual({}, copy.attrs_cache)

    def test_process_scope_records_adoption(self) -> None:
        """PROCESS_SCOPE.adopted says whether the process trace came from TRACEPARENT."""
        self.assertFalse(PROCESS_SCOPE.adopted)
        self.assertTrue(adopt_traceparent({"TRACEPARENT": VALID_TP}))
        self.assertTrue(PROCESS_SCOPE.adopted)
        self.assertEqual("4bf92f3577b34da6a3ce929d0e0e4736", PROCESS_SCOPE.get().trace_id)
        reset_process_trace()
        self.assertFalse(PROCESS_SCOPE.adopted)


class TestIdsAcrossThreads(ContextTestCase):
    def test_ids_are_unique_across_many_threads(self) -> None:
        """Trace and span ids drawn concurrently by many threads never repeat."""
        per_thread, threads = 3000, 8
        results: list = [None] * threads
        barrier = threading.Barrier(threads)

        def draw(i: int) -> None:
            barrier.wait()
            ids = [new_trace_id() for _ in range(per_thread)]
            with correlation_context(operation="t"):
                ids.append(get_correlation_id())
            results[i] = (ids, [new_span_id() for _ in range(per_thread)])

        workers = [threading.Thread(target=draw, args=(i,)) for i in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        traces = [x for ids, _ in results for x in ids]
        spans = [x for _, ids in results for x in ids]
        self.assertEqual(len(traces), len(set(traces)))
        self.assertEqual(len(spans), len(set(spans)))


class TestForkedIds(ContextTestCase):
    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_forked_child_does_not_repeat_the_parents_ids(self) -> None:
        """A forked child draws ids of its own, not the ones the parent draws next."""
        new_trace_id()  # the generator exists before the fork
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its next ids and leave at once
            try:
                os.write(write_end, (new_trace_id() + new_span_id()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            child = pipe.read().decode()
        os.waitpid(pid, 0)
        self.assertEqual(48, len(child))
        self.assertNotEqual(child, new_trace_id() + new_span_id())


class TestAsyncio(ContextTestCase):
    def test_concurrent_tasks_keep_their_own_ids(self) -> None:
        """Interleaved asyncio tasks each see only the id of their own context."""

        async def main() -> dict:
            seen: dict = {}
            ids: dict = {}
            events = [asyncio.Event() for _ in range(3)]

            async def worker(i: int) -> None:
                with correlation_context(operation=f"op{i}") as cid:
                    ids[i] = cid
                    if i < 2:
                        await events[i].wait()  # woken in reverse order, interleaving them
                    seen[i] = (get_correlation_id(), get_context()["operation"])
                    if i > 0:
                        events[i - 1].set()

            await asyncio.gather(*(worker(i) for i in range(3)))
            return {i: (seen[i], ids[i]) for i in range(3)}

        result = asyncio.run(main())
        for i, ((seen_id, seen_op), cid) in result.items():
            self.assertEqual(cid, seen_id)
            self.assertEqual(f"op{i}", seen_op)
        self.assertEqual(3, len({cid for _, cid in result.values()}))


class TestThreads(ContextTestCase):
    def test_plain_executor_loses_the_context(self) -> None:
        """A plain ThreadPoolExecutor task does not see the submitter's context (the problem)."""
        with correlation_context(operation="clone_all") as cid, ThreadPoolExecutor(1) as ex:
            self.assertNotEqual(cid, ex.submit(get_correlation_id).result())

    def test_context_executor_carries_the_context(self) -> None:
        """ContextThreadPoolExecutor.submit and .map run tasks in the submitter's context."""

        def probe(_: object = None) -> tuple:
            return get_correlation_id(), dict(get_context())

        with correlation_context(operation="clone_all") as cid, ContextThreadPoolExecutor(2) as ex:
            expected = (cid, {"operation": "clone_all"})
            self.assertEqual(expected, ex.submit(probe).result())
            self.assertEqual([expected] * 3, list(ex.map(probe, range(3))))

    def test_task_changes_stay_in_the_task(self) -> None:
        """A context entered inside a task does not leak to the submitter or other tasks."""

        def task(i: int) -> str:
            with correlation_context(repo=f"r{i}"):
                return str(get_context()["repo"])

        with correlation_context(operation="o"), ContextThreadPoolExecutor(2) as ex:
            self.assertEqual(["r0", "r1", "r2"], list(ex.map(task, range(3))))
            self.assertEqual({"operation": "o"}, dict(get_context()))

    def test_submit_with_context_on_a_plain_executor(self) -> None:
        """submit_with_context carries the context through any executor."""
        with correlation_context(operation="x") as cid, ThreadPoolExecutor(1) as ex:
            self.assertEqual(cid, submit_with_context(ex, get_correlation_id).result())

    def test_context_thread_carries_the_context(self) -> None:
        """ContextThread sees its creator's context; a plain Thread does not."""
        results: dict = {}

        def probe(key: str) -> None:
            results[key] = get_correlation_id()

        with correlation_context(operation="x") as cid:
            threads = [
                ContextThread(target=probe, args=("ctx",)),
                threading.Thread(target=probe, args=("plain",)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual(cid, results["ctx"])
        self.assertNotEqual(cid, results["plain"])


class TestTraceparent(ContextTestCase):
    def test_parse_valid(self) -> None:
        """A valid version-00 traceparent parses into its four fields."""
        self.assertEqual(
            TraceParent("00", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01"),
            parse_traceparent(VALID_TP),
        )

    def test_parse_future_version_allows_extra_fields(self) -> None:
        """A later version may carry extra fields after another dash (W3C §3.2.4)."""
        parsed = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
        self.assertIsNotNone(parsed)

    def test_parse_rejects_invalid_values(self) -> None:
        """Upper-case, all-zero ids, version ff, extra fields on 00 and garbage are ignored."""
        for bad in (
            VALID_TP.upper(),
            "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            VALID_TP + "-extra",
            "00-4bf92f35-00f067aa0ba902b7-01",
            "",
            "garbage",
            None,
        ):
            with self.subTest(bad=bad):
                self.assertIsNone(parse_traceparent(bad))

    def test_adopt_valid_traceparent(self) -> None:
        """An adopted TRACEPARENT becomes the process id and top-level contexts join it."""
        self.assertTrue(adopt_traceparent({"TRACEPARENT": VALID_TP}))
        self.assertEqual("4bf92f3577b34da6a3ce929d0e0e4736", get_correlation_id())
        self.assertNotEqual("00f067aa0ba902b7", get_span_id())
        with correlation_context(operation="clone_all") as cid:
            self.assertEqual("4bf92f3577b34da6a3ce929d0e0e4736", cid)

    def test_adopt_ignores_invalid_or_missing_values(self) -> None:
        """An invalid or absent TRACEPARENT is ignored without an error."""
        before = get_correlation_id()
        self.assertFalse(adopt_traceparent({"TRACEPARENT": "00-zz-zz-01"}))
        self.assertFalse(adopt_traceparent({}))
        self.assertEqual(before, get_correlation_id())

    def test_traceparent_is_not_read_at_import(self) -> None:
        """Importing the module does not adopt $TRACEPARENT; adopt_traceparent() does."""
        code = (
            "from mgit_monitoring.context import get_correlation_id, adopt_traceparent\n"
            "a = get_correlation_id(); adopt_traceparent(); print(a, get_correlation_id())\n"
        )
        env = dict(os.environ, TRACEPARENT=VALID_TP, PYTHONPATH=REPO_ROOT)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        self.assertNotEqual("4bf92f3577b34da6a3ce929d0e0e4736", out[0])
        self.assertEqual("4bf92f3577b34da6a3ce929d0e0e4736", out[1])


class TestChildEnv(ContextTestCase):
    def test_child_env_carries_trace_and_leaves_parent_alone(self) -> None:
        """child_env adds TRACEPARENT and GIT_TRACE2_PARENT_SID to a copy of the environment."""
        parent = {"PATH": "/usr/bin", "TRACEPARENT": "stale"}
        with correlation_context(operation="clone") as cid:
            env = child_env(parent, extra={"GIT_TERMINAL_PROMPT": "0"})
            self.assertEqual(get_traceparent(), env["TRACEPARENT"])
            span = get_span_id()
        parsed = parse_traceparent(env["TRACEPARENT"])
        self.assertEqual(TraceParent("00", cid, span, "01"), parsed)
        self.assertEqual(cid, env["GIT_TRACE2_PARENT_SID"])
        self.assertEqual("0", env["GIT_TERMINAL_PROMPT"])
        self.assertEqual("/usr/bin", env["PATH"])
        self.assertEqual({"PATH": "/usr/bin", "TRACEPARENT": "stale"}, parent)

    def test_git_trace2_nests_under_the_correlation_id(self) -> None:
        """Real git, given child_env(), writes trace2 events whose sid starts with our id."""
        git = need_executable("git")
        with tempfile.TemporaryDirectory() as tmp:
            trace_file = os.path.join(tmp, "trace2.json")
            with correlation_context(operation="clone") as cid:
                env = child_env(extra={"GIT_TRACE2_EVENT": trace_file, "HOME": tmp})
            subprocess.run([git, "version"], env=env, capture_output=True, check=True)
            with open(trace_file, encoding="utf-8") as fh:
                events = [json.loads(line) for line in fh if line.strip()]
        self.assertTrue(events)
        self.assertTrue(all(e["sid"].startswith(cid + "/") for e in events), events[0]["sid"])


if __name__ == "__main__":
    unittest.main()
