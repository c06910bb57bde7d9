"""The health runner: coercion, timeouts, deadline, caching, single-flight, probes, metrics."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import threading
import unittest

from mgit_monitoring import health
from mgit_monitoring.collector import MetricsCollector
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthChecker,
    HealthCheckResult,
    RegisteredCheck,
    health_to_dict,
    to_health_json,
)
from mgit_monitoring.registry import Registry
from tests.support import Clock, run_python

FAKE_TOKEN = "ghp_" + "FAKE" * 9  # 36 characters after the prefix, the GitHub PAT shape


def setUpModule():
    # The runner logs status changes; keep the test output readable.
    logger = logging.getLogger("mgit_monitoring.health")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    saved = logger.propagate
    logger.propagate = False
    unittest.addModuleCleanup(logger.removeHandler, handler)
    unittest.addModuleCleanup(setattr, logger, "propagate", saved)


class Blocker:
    """A check that blocks until released, counting its invocations."""

    def __init__(self, result=None) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.lock = threading.Lock()
        self.result = result

    def __call__(self):
        with self.lock:
            self.calls += 1
        self.entered.set()
        self.release.wait(10)
        return self.result


def join_check_threads(name: str) -> None:
    for thread in threading.enumerate():
        if thread.name == f"mgit-health-{name}":
            thread.join(10)


class TestRunner(unittest.TestCase):
    def setUp(self):
        self.checker = HealthChecker(default_timeout=5.0, deadline=10.0)

    def test_return_values_are_coerced(self):
        """None, bools, status strings and dicts become results; other values become unknown."""
        c = self.checker
        c.register_check("none", lambda: None)
        c.register_check("false", lambda: False)
        c.register_check("word", lambda: "warn")
        c.register_check("dict", lambda: {"status": "fail", "message": "m", "details": {"k": 1}})
        c.register_check("garbage", lambda: 42)
        c.register_check("text", lambda: "all good, probably")
        c.register_check("baddict", lambda: {"status": "sideways", "message": "m"})
        c.register_check("list", lambda: ["healthy"])
        mutated = HealthCheckResult("m", HEALTHY, "")
        mutated.status = "sideways"
        c.register_check("bad", lambda: mutated)
        got = {x.name: x for x in c.run_checks_sync()}
        self.assertEqual(got["none"].status, HEALTHY)
        self.assertEqual(got["false"].status, UNHEALTHY)
        self.assertEqual(got["word"].status, DEGRADED)
        self.assertEqual((got["dict"].status, got["dict"].details), (UNHEALTHY, {"k": 1}))
        self.assertEqual(got["garbage"].status, UNKNOWN)
        self.assertIn("int", got["garbage"].message)
        self.assertEqual(got["bad"].status, UNKNOWN)
        for name, kind in (("text", "str"), ("baddict", "dict"), ("list", "list")):
            self.assertEqual(got[name].status, UNKNOWN, name)
            self.assertIn(f"a value of type {kind}", got[name].message)

    def test_raising_check_is_unhealthy(self):
        """An exception becomes an unhealthy result naming it; the caller sees no exception."""

        def boom():
            raise RuntimeError("disk on fire")

        self.checker.register_check("boom", boom, critical=True)
        with self.assertLogs("mgit_monitoring.health", "WARNING") as logs:
            result = self.checker.run_check_sync("boom")
        self.assertIn("health check boom is unhealthy", logs.output[0])
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("RuntimeError: disk on fire", result.message)
        self.assertEqual(result.details["error_type"], "RuntimeError")
        self.assertTrue(result.critical)

    def test_long_exception_text_is_masked_before_it_is_shortened(self):
        """A token straddling the 500-character cut of the error text does not leak in part."""

        def boom():
            raise RuntimeError("x" * 470 + f" https://user:{FAKE_TOKEN}@github.com/o/r.git")

        self.checker.register_check("boom", boom)
        with self.assertLogs("mgit_monitoring.health", "WARNING") as logs:
            result = self.checker.run_check_sync("boom")
        self.assertEqual(len(result.details["error"]), 500)
        text = json.dumps(health_to_dict([result])) + json.dumps(to_health_json([result]))
        self.assertIn("https://user:", text)
        self.assertNotIn("FAKEFAKE", text + repr(result) + "".join(logs.output))

    def test_result_is_renamed_and_timed(self):
        """The runner sets the registered name and a duration."""
        self.checker.register_check("mine", lambda: HealthCheckResult("other", "pass", "fine"))
        result = self.checker.run_check_sync("mine")
        self.assertEqual((result.name, result.status, result.message), ("mine", HEALTHY, "fine"))
        self.assertGreaterEqual(result.duration_ms, 0.0)

    def test_unknown_name(self):
        """Running a check that does not exist gives the original's unknown result."""
        result = self.checker.run_check_sync("nope")
        self.assertEqual(result.status, UNKNOWN)
        self.assertEqual(result.message, "Health check 'nope' not found")

    def test_sync_checks_run_off_the_caller_thread_with_its_context(self):
        """A check runs on another thread but sees the caller's contextvars."""
        var: contextvars.ContextVar[str] = contextvars.ContextVar("test_health_var", default="-")
        seen = {}

        def check():
            seen["thread"] = threading.get_ident()
            seen["var"] = var.get()

        self.checker.register_check("ctx", check)
        token = var.set("request-42")
        self.addCleanup(var.reset, token)
        self.checker.run_check_sync("ctx")
        self.assertNotEqual(seen["thread"], threading.get_ident())
        self.assertEqual(seen["var"], "request-42")

    def test_async_check_from_sync_caller(self):
        """An async check works for a caller without an event loop."""

        async def check():
            await asyncio.sleep(0)
            return HealthCheckResult("x", "healthy", "async ok")

        self.checker.register_check("async", check)
        self.assertEqual(self.checker.run_check_sync("async").message, "async ok")

    def test_timeout_gives_unhealthy_and_no_second_thread(self):
        """A hung check times out as unhealthy; later calls reuse the one stuck thread."""
        blocker = Blocker()
        self.addCleanup(join_check_threads, "hang")
        self.addCleanup(blocker.release.set)
        self.checker.register_check("hang", blocker, timeout=0.2, ttl=0.001)
        first = self.checker.run_check_sync("hang")
        self.assertEqual(first.status, UNHEALTHY)
        self.assertIn("timed out after 0.2 s", first.message)
        for _ in range(3):
            again = self.checker.run_check_sync("hang", use_cache=False)
            self.assertIn("timed out", again.message)
        self.assertEqual(blocker.calls, 1)
        # When the stuck run finally returns, its late result becomes the current one.
        blocker.release.set()
        join_check_threads("hang")
        self.assertEqual(self.checker.latest_results()[0].status, HEALTHY)
        self.checker.run_check_sync("hang", use_cache=False)
        self.assertEqual(blocker.calls, 2)

    def test_overall_deadline(self):
        """A check still within its own timeout at the overall deadline reads unknown."""
        checker = HealthChecker(default_timeout=5.0, deadline=0.2)
        blocker = Blocker()
        self.addCleanup(join_check_threads, "slow")
        self.addCleanup(blocker.release.set)
        checker.register_check("slow", blocker)
        checker.register_check("fast", lambda: None)
        got = {x.name: x for x in checker.run_checks_sync()}
        self.assertEqual(got["slow"].status, UNKNOWN)
        self.assertIn("overall deadline", got["slow"].message)
        self.assertEqual(got["fast"].status, HEALTHY)

    def test_single_flight_across_threads_and_asyncio(self):
        """Concurrent sync threads and an asyncio caller share one run of the check."""
        blocker = Blocker(HealthCheckResult("x", "pass", "shared"))
        self.addCleanup(blocker.release.set)
        self.checker.register_check("shared", blocker, ttl=60)
        results = []

        def sync_caller():
            results.append(self.checker.run_check_sync("shared"))

        threads = [threading.Thread(target=sync_caller) for _ in range(8)]
        for t in threads:
            t.start()

        async def async_caller():
            task = asyncio.ensure_future(self.checker.run_check("shared"))
            await asyncio.get_running_loop().run_in_executor(None, blocker.entered.wait, 10)
            blocker.release.set()
            return await task

        results.append(asyncio.run(async_caller()))
        for t in threads:
            t.join(10)
        self.assertEqual(blocker.calls, 1)
        self.assertEqual(len(results), 9)
        self.assertEqual({x.message for x in results}, {"shared"})

    def test_ttl_cache_and_force(self):
        """A result is reused within its ttl, re-run after it, and use_cache=False forces a run."""
        clock = Clock()
        checker = HealthChecker(clock=clock)
        calls = []
        checker.register_check("c", lambda: calls.append(1), ttl=30)
        checker.run_check_sync("c")
        checker.run_check_sync("c")
        self.assertEqual(len(calls), 1)
        clock.now += 31
        checker.run_check_sync("c")
        self.assertEqual(len(calls), 2)
        checker.run_check_sync("c", use_cache=False)
        self.assertEqual(len(calls), 3)

    def test_ttl_zero_never_caches(self):
        """ttl=0 (or interval=0): every request runs the check, even when the clock stands still."""
        clock = Clock()
        checker = HealthChecker(clock=clock)
        calls = []
        checker.register_check("c", lambda: calls.append(1), ttl=0)
        checker.register_check("d", lambda: calls.append(2), interval=0)
        self.assertEqual(checker.get_check("c").ttl, 0.0)
        self.assertEqual(checker.get_check("d").ttl, 0.0)
        for _ in range(3):
            self.assertEqual(checker.run_check_sync("c").status, HEALTHY)
        self.assertEqual(checker.check_health_sync()["status"], HEALTHY)
        self.assertEqual(calls, [1, 1, 1, 1, 2])

    def test_ttl_zero_is_still_single_flight(self):
        """ttl=0: requests arriving while a run is in flight share it; the next one runs again."""
        checker = HealthChecker(clock=Clock())
        blocker = Blocker(HealthCheckResult("x", "pass", "shared"))
        self.addCleanup(blocker.release.set)
        checker.register_check("z", blocker, ttl=0)
        results = []
        starter = threading.Thread(target=lambda: results.append(checker.run_check_sync("z")))
        starter.start()
        self.assertTrue(blocker.entered.wait(10))

        async def joiners():
            tasks = [asyncio.ensure_future(checker.run_check("z")) for _ in range(8)]
            await asyncio.sleep(0)  # each task has now asked for the check and is waiting
            self.assertFalse(any(t.done() for t in tasks))
            # A refresh while in flight joins the run too, it does not start a second one.
            self.assertEqual(checker.latest_results(refresh=True)[0].status, UNKNOWN)
            blocker.release.set()
            return await asyncio.gather(*tasks)

        results.extend(asyncio.run(joiners()))
        starter.join(10)
        self.assertEqual(blocker.calls, 1)
        self.assertEqual(len(results), 9)
        self.assertEqual({x.message for x in results}, {"shared"})
        # The run is over: the next request does not reuse its result.
        self.assertEqual(checker.run_check_sync("z").message, "shared")
        self.assertEqual(blocker.calls, 2)

    def test_ttl_validation(self):
        """A negative, infinite or non-numeric ttl is refused by name; 0 is accepted."""
        for bad in (-1, float("nan"), float("inf"), "5", True):
            with self.subTest(ttl=bad), self.assertRaisesRegex(ConfigError, "x.ttl="):
                self.checker.register_check("x", lambda: None, ttl=bad)
        self.checker.register_check("x", lambda: None, ttl=0.0)
        self.assertEqual(self.checker.get_check("x").ttl, 0.0)

    def test_get_overall_health_async_and_sync_agree(self):
        """The async and sync entry points give the same document."""
        self.checker.register_check("a", lambda: None, critical=True)
        self.checker.register_check("b", lambda: "degraded")
        sync_doc = self.checker.check_health_sync()
        async_doc = asyncio.run(self.checker.get_overall_health())
        self.assertEqual(sync_doc["status"], DEGRADED)
        self.assertEqual(async_doc["summary"], sync_doc["summary"])

    def test_event_loop_keeps_running_while_a_check_is_slow(self):
        """The loop keeps ticking while a check blocks; the check ends only because it ticked."""
        ticked = threading.Event()
        ticks = []

        def slow_check():
            # Finishes only after the loop has ticked: proof the loop was never blocked.
            return "healthy" if ticked.wait(10) else "unhealthy"

        self.checker.register_check("slow", slow_check)

        async def main():
            async def ticker():
                while True:
                    ticks.append(1)
                    if len(ticks) >= 5:
                        ticked.set()
                    await asyncio.sleep(0.001)

            task = asyncio.ensure_future(ticker())
            try:
                return await self.checker.get_overall_health()
            finally:
                task.cancel()

        doc = asyncio.run(main())
        self.assertEqual(doc["status"], HEALTHY)
        self.assertGreaterEqual(len(ticks), 5)

    def test_register_check_validation(self):
        """Bad names, non-callables and bad timeouts are rejected by name."""
        with self.assertRaisesRegex(ConfigError, "'a b'"):
            self.checker.register_check("a b", lambda: None)
        with self.assertRaisesRegex(ConfigError, "not callable"):
            self.checker.register_check("x", 3)  # type: ignore[arg-type]
        with self.assertRaisesRegex(ConfigError, "x.timeout=0"):
            self.checker.register_check("x", lambda: None, timeout=0)

    def test_registrations_are_readable(self):
        """get_check and registered_checks show each check with its settings, in order."""

        def check():
            return None

        self.checker.register_check("a", check, critical=True, timeout=2, ttl=7)
        self.checker.register_check("b", check, interval=9)
        self.assertEqual(self.checker.get_check("a"), RegisteredCheck("a", check, True, 2.0, 7.0))
        self.assertEqual(
            (self.checker.get_check("b").timeout, self.checker.get_check("b").ttl), (5.0, 9.0)
        )
        self.assertIsNone(self.checker.get_check("c"))
        self.assertEqual([c.name for c in self.checker.registered_checks], ["a", "b"])
        self.checker.unregister_check("a")
        self.assertIsNone(self.checker.get_check("a"))

    def test_replace_and_unregister(self):
        """Registering a name again replaces the check; unregister removes it."""
        self.checker.register_check("a", lambda: "fail")
        self.checker.register_check("a", lambda: "pass")
        self.assertEqual(self.checker.check_names, ["a"])
        self.assertEqual(self.checker.run_check_sync("a").status, HEALTHY)
        self.assertTrue(self.checker.unregister_check("a"))
        self.assertEqual(self.checker.check_names, [])


class TestProbes(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.checker = HealthChecker(clock=self.clock, probe_wait=0.2)

    def test_readiness_uses_only_critical_checks(self):
        """A failing non-critical check leaves the service ready; a degraded critical one too."""
        self.checker.register_check("git", lambda: "degraded", critical=True)
        self.checker.register_check("net", lambda: "fail")
        self.assertTrue(self.checker.is_ready_sync())
        self.assertTrue(asyncio.run(self.checker.is_ready()))

    def test_unhealthy_critical_check_is_not_ready(self):
        """An unhealthy critical check makes the probe fail with its reason."""
        self.checker.register_check(
            "git", lambda: {"status": "fail", "message": "no git"}, critical=True
        )
        probe = self.checker.readiness_sync()
        self.assertFalse(probe.ok)
        self.assertIn("git: no git", probe.message)
        self.assertEqual(probe.to_dict()["status"], "fail")

    def test_hanging_check_does_not_hang_the_probe(self):
        """With no result yet, a probe waits only probe_wait and answers not ready (starting)."""
        blocker = Blocker()
        self.addCleanup(join_check_threads, "stuck")
        self.addCleanup(blocker.release.set)
        self.checker.register_check("stuck", blocker, critical=True, timeout=60)
        probe = self.checker.readiness_sync()
        self.assertFalse(probe.ok)
        self.assertIn("no result yet", probe.message)
        self.assertFalse(asyncio.run(self.checker.is_ready()))
        self.assertEqual(blocker.calls, 1)

    def test_hung_check_keeps_one_thread_over_many_probes(self):
        """Hundreds of probes and evaluations against a hung check start exactly one thread."""
        checker = HealthChecker(probe_wait=0.01, deadline=0.05)
        blocker = Blocker()
        self.addCleanup(join_check_threads, "hung")
        self.addCleanup(blocker.release.set)
        checker.register_check("hung", blocker, critical=True, timeout=0.05, ttl=0.001)

        async def async_probes():
            for _ in range(50):
                await checker.is_ready()
                await checker.get_overall_health(use_cache=False)

        for _ in range(100):
            checker.is_ready_sync()
            checker.latest_results(refresh=True)
        checker.run_checks_sync(use_cache=False)
        asyncio.run(async_probes())
        threads = [t for t in threading.enumerate() if t.name == "mgit-health-hung"]
        self.assertEqual(len(threads), 1)
        self.assertEqual(blocker.calls, 1)
        self.assertFalse(checker.is_ready_sync())  # timed out: a critical check is unhealthy
        self.assertIn("timed out", checker.readiness_sync().message)

    def test_probe_answers_from_cache_and_refreshes_stale_results_in_background(self):
        """Within ttl a probe runs nothing; past it, it answers the last result and kicks a run."""
        blocker = Blocker("healthy")
        blocker.release.set()
        self.checker.register_check("c", blocker, critical=True, ttl=10)
        self.assertTrue(self.checker.is_ready_sync())
        self.assertTrue(self.checker.is_ready_sync())
        self.assertEqual(blocker.calls, 1)
        blocker.release.clear()
        self.addCleanup(join_check_threads, "c")
        self.addCleanup(blocker.release.set)
        self.clock.now += 11
        self.assertTrue(self.checker.is_ready_sync())  # last known, not waiting for the run
        self.assertTrue(blocker.entered.wait(10))
        self.assertEqual(blocker.calls, 2)

    def test_probe_message_is_masked(self):
        """A readiness answer quoting a failing check's message never carries its token."""
        checker = HealthChecker(probe_wait=5)
        checker.register_check(
            "git",
            lambda: HealthCheckResult("git", UNHEALTHY, f"fetch with {FAKE_TOKEN} failed"),
            critical=True,
        )
        probe = checker.readiness_sync()
        self.assertFalse(probe.ok)
        text = json.dumps(probe.to_dict())
        self.assertIn("fetch with", text)
        self.assertNotIn(FAKE_TOKEN[4:], text)

    def test_liveness_without_heartbeat(self):
        """Liveness needs nothing external: it is true with no checks run at all."""
        calls = []
        self.checker.register_check("c", lambda: calls.append(1), critical=True)
        self.assertTrue(self.checker.is_alive_sync())
        self.assertTrue(asyncio.run(self.checker.is_alive()))
        self.assertEqual(calls, [])

    def test_liveness_heartbeat(self):
        """With heartbeat_timeout, liveness fails when beat() is overdue and recovers on a beat."""
        checker = HealthChecker(clock=self.clock, heartbeat_timeout=30)
        self.clock.now += 10
        self.assertTrue(checker.is_alive_sync())
        self.clock.now += 31
        probe = checker.liveness_sync()
        self.assertFalse(probe.ok)
        self.assertIn("no heartbeat for 41.0 s", probe.message)
        checker.beat()
        self.assertTrue(checker.is_alive_sync())

    def test_latest_results_never_waits(self):
        """latest_results answers unknown for never-run checks instead of running them inline."""
        blocker = Blocker()
        self.addCleanup(join_check_threads, "c")
        self.addCleanup(blocker.release.set)
        self.checker.register_check("c", blocker)
        results = self.checker.latest_results(refresh=True)
        self.assertEqual((results[0].status, results[0].message), (UNKNOWN, "not evaluated yet"))
        self.assertTrue(blocker.entered.wait(10))

    def test_background_refresh(self):
        """start_background runs the checks without anyone asking and stop_background ends it."""
        ran = threading.Event()
        self.checker.register_check("c", ran.set)
        self.checker.start_background(interval=60)
        self.addCleanup(self.checker.stop_background)
        self.assertTrue(ran.wait(10))
        self.checker.stop_background()
        self.assertFalse(
            any(t.name == "mgit-health-refresh" and t.is_alive() for t in threading.enumerate())
        )


class TestMetrics(unittest.TestCase):
    def setUp(self):
        self.registry = Registry()
        self.checker = HealthChecker(self.registry)

    def value(self, name, **labels):
        return self.registry.snapshot().get_sample_value(name, labels)

    def test_series_exist_before_the_first_run(self):
        """Registered checks show as unknown (-1) from the first scrape."""
        self.checker.register_check("git", lambda: None, critical=True)
        self.assertEqual(self.value("mgit_health_check_status", check="git"), -1.0)
        self.assertEqual(self.value("mgit_health_overall"), -1.0)

    def test_percentage_is_nan_until_a_check_is_known(self):
        """The percentage is NaN (no '< 80%' alert) before any run and when all are unknown."""
        self.checker.register_check("c", lambda: 7)  # garbage: unknown
        self.assertTrue(math.isnan(self.value("mgit_health_percentage")))
        self.checker.check_health_sync()
        self.assertTrue(math.isnan(self.value("mgit_health_percentage")))
        self.checker.register_check("a", lambda: None)
        self.checker.check_health_sync(use_cache=False)
        self.assertEqual(100.0, self.value("mgit_health_percentage"))
        collector_registry = MetricsCollector(process_metrics=False).registry
        fresh = collector_registry.snapshot().get_sample_value("mgit_health_percentage")
        self.assertTrue(math.isnan(fresh))

    def test_values_follow_results(self):
        """Status gauges use 1/0.5/0/-1, the histogram counts runs, overall is aggregated."""
        self.checker.register_check("a", lambda: None, critical=True)
        self.checker.register_check("b", lambda: "degraded")
        self.checker.register_check("c", lambda: 7)
        doc = self.checker.check_health_sync()
        self.assertEqual(self.value("mgit_health_check_status", check="a"), 1.0)
        self.assertEqual(self.value("mgit_health_check_status", check="b"), 0.5)
        self.assertEqual(self.value("mgit_health_check_status", check="c"), -1.0)
        self.assertEqual(self.value("mgit_health_check_duration_seconds_count", check="a"), 1)
        self.assertEqual(self.value("mgit_health_overall"), 0.5)
        self.assertEqual(self.value("mgit_health_percentage"), doc["summary"]["health_percentage"])
        self.assertEqual(self.value("mgit_health_percentage"), 75.0)

    def test_unregister_drops_the_series(self):
        """An unregistered check's series disappears and the overall value is recomputed."""
        self.checker.register_check("a", lambda: None, critical=True)
        self.checker.register_check("b", lambda: "fail")
        self.checker.check_health_sync()
        self.assertEqual(self.value("mgit_health_overall"), 0.5)
        self.checker.unregister_check("b")
        self.assertIsNone(self.value("mgit_health_check_status", check="b"))
        self.assertIsNone(self.value("mgit_health_check_duration_seconds_count", check="b"))
        self.assertEqual(self.value("mgit_health_overall"), 1.0)
        self.assertEqual(self.value("mgit_health_percentage"), 100.0)

    def test_late_run_of_a_replaced_check_does_not_overwrite_its_series(self):
        """A hung run that returns after its check was replaced does not touch the metrics."""
        blocker = Blocker("fail")
        self.addCleanup(join_check_threads, "c")
        self.addCleanup(blocker.release.set)
        self.checker.register_check("c", blocker, timeout=0.05)
        self.assertIn("timed out", self.checker.run_check_sync("c").message)
        self.checker.register_check("c", lambda: "pass")
        self.assertEqual(self.checker.run_check_sync("c").status, HEALTHY)
        blocker.release.set()
        join_check_threads("c")
        self.assertEqual(self.value("mgit_health_check_status", check="c"), 1.0)
        self.assertEqual(self.checker.latest_results()[0].status, HEALTHY)

    def test_same_definitions_can_be_registered_twice(self):
        """A second checker on the same registry (or the collector) reuses the metrics."""
        HealthChecker(self.registry)
        self.assertIsNotNone(self.registry.get("mgit_health_overall"))


class TestModule(unittest.TestCase):
    def test_package_exports(self):
        """The module's public names are listed in __all__."""
        for name in health.__all__:
            self.assertTrue(hasattr(health, name), name)

    def test_runner_imports_no_check(self):
        """Importing the runner loads none of the standard checks nor the default assembly."""
        out = run_python(
            """
            import sys
            import mgit_monitoring.health
            print(" ".join(sorted(m for m in sys.modules if m.startswith("mgit_monitoring."))))
            """
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        loaded = set(out.stdout.split())
        self.assertIn("mgit_monitoring.health_report", loaded)
        for name in ("default_checks", "check_support", "host_checks", "git_check"):
            self.assertNotIn(f"mgit_monitoring.{name}", loaded)
        for name in ("network_checks", "credential_check", "config", "registry"):
            self.assertNotIn(f"mgit_monitoring.{name}", loaded)


if __name__ == "__main__":
    unittest.main()
