"""The shared decorator machinery: success rules, generator wrapping, descriptors, names."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import subprocess
import sys
import textwrap
import unittest
from typing import Any, List, Tuple

from mgit_monitoring.wrapping import (
    for_descriptors,
    is_success,
    qualified_name,
    wrap_generator_function,
)

SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("test_wrapping_scope", default="-")


class Recorder:
    """A ``begin`` that enters a context value and records every begin and finish."""

    def __init__(self) -> None:
        self.events: List[Tuple[Any, ...]] = []

    def __call__(self, args: Tuple[Any, ...], kwargs: Any) -> Recorder:
        SCOPE.set("monitored")
        self.events.append(("begin", args, dict(kwargs)))
        return self

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        self.events.append(("finish", type(exc).__name__ if exc else None, result))


class IsSuccessTest(unittest.TestCase):
    def test_rules(self) -> None:
        """None, a clean SystemExit and GeneratorExit succeed; anything else fails."""
        for exc in (None, SystemExit(0), SystemExit(None), SystemExit(), GeneratorExit()):
            self.assertTrue(is_success(exc), repr(exc))
        for exc in (SystemExit(2), SystemExit("bye"), KeyboardInterrupt(), ValueError("x")):
            self.assertFalse(is_success(exc), repr(exc))


class GeneratorWrappingTest(unittest.TestCase):
    def test_begin_at_first_step_finish_with_return_value(self) -> None:
        """Nothing begins at the call; the body sees the scope begin entered, the consumer
        never does; finish gets the generator's return value."""
        rec = Recorder()

        def gen(n: int) -> Any:
            for i in range(n):
                yield i, SCOPE.get()
            return "done"

        wrapped = wrap_generator_function(gen, rec)
        it = wrapped(2)
        self.assertEqual([], rec.events)
        items = []
        for item in it:
            items.append(item)
            self.assertEqual("-", SCOPE.get())
        self.assertEqual([(0, "monitored"), (1, "monitored")], items)
        self.assertEqual([("begin", (2,), {}), ("finish", None, "done")], rec.events)
        self.assertEqual("gen", wrapped.__name__)

    def test_early_close_error_send_and_inactive(self) -> None:
        """close() finishes with GeneratorExit, an error with itself; send reaches the body;
        with active() false nothing begins or finishes."""
        rec = Recorder()

        def echo() -> Any:
            got = yield "first"
            if got == "boom":
                raise ValueError(got)
            yield got

        wrapped = wrap_generator_function(echo, rec)
        it = wrapped()
        self.assertEqual("first", next(it))
        self.assertEqual("hello", it.send("hello"))
        it.close()
        it = wrapped()
        next(it)
        with self.assertRaises(ValueError):
            it.send("boom")
        self.assertEqual(
            ["GeneratorExit", "ValueError"], [e[1] for e in rec.events if e[0] == "finish"]
        )
        off = Recorder()
        self.assertEqual(["first"], list(wrap_generator_function(echo, off, lambda: False)())[:1])
        self.assertEqual([], off.events)

    def test_async_generator(self) -> None:
        """An async generator's steps run in the monitored scope; finish runs at the end."""
        rec = Recorder()

        async def agen() -> Any:
            yield SCOPE.get()
            await asyncio.sleep(0)
            yield SCOPE.get()

        async def consume() -> List[str]:
            out = []
            async for item in wrap_generator_function(agen, rec)():
                out.append(item)
                out.append(SCOPE.get())
            return out

        self.assertEqual(["monitored", "-", "monitored", "-"], asyncio.run(consume()))
        self.assertEqual(["begin", "finish"], [e[0] for e in rec.events])


class DescriptorAndNameTest(unittest.TestCase):
    def test_for_descriptors(self) -> None:
        """A classmethod or staticmethod object is unwrapped, decorated and re-wrapped."""
        seen = []

        @for_descriptors
        def decorate(func: Any) -> Any:
            seen.append(func)
            return func

        class K:
            @decorate
            @classmethod
            def make(cls) -> Any:
                return cls

            @decorate
            @staticmethod
            def static() -> int:
                return 1

        self.assertIs(K, K.make())
        self.assertEqual(1, K.static())
        self.assertEqual(2, len(seen))
        self.assertFalse(any(isinstance(f, (classmethod, staticmethod)) for f in seen))

    def test_qualified_name(self) -> None:
        """module.qualname, looked through partials."""

        def add(a: int, b: int) -> int:
            return a + b

        expected = f"{__name__}.{add.__qualname__}"
        self.assertEqual(expected, qualified_name(add))
        self.assertEqual(expected, qualified_name(functools.partial(functools.partial(add, 1))))


if __name__ == "__main__":
    unittest.main()


class FunctionKindTest(unittest.TestCase):
    def test_same_answers_as_inspect_without_loading_it(self) -> None:
        """In a process that never loaded inspect, function_kind answers as inspect would
        (checked against inspect itself afterwards), and decorating does not load it."""
        code = textwrap.dedent(
            """
            import functools, sys
            from mgit_monitoring.wrapping import function_kind
            from mgit_monitoring.integration import monitor_mgit_operation

            def plain(): pass
            async def coro(): pass
            def gen(): yield 1
            async def agen(): yield 1
            class C:
                def m(self): pass
                async def am(self): pass
                def g(self): yield 1
                def __call__(self): pass
            cases = [plain, coro, gen, agen, C().m, C().am, C().g,
                     functools.partial(coro, 1), functools.partial(functools.partial(gen)),
                     lambda: None]
            ours = [function_kind(f) for f in cases]
            # Calling it returns a coroutine (3.8's inspect did not look inside the partial).
            assert function_kind(functools.partial(C().am)) == "coroutine"
            monitor_mgit_operation("x")(coro)
            assert "inspect" not in sys.modules, "inspect was loaded"
            others = [C(), len, print, C]  # not functions: inspect is asked
            ours += [function_kind(f) for f in others]
            cases += others
            import inspect
            def theirs(f):
                if inspect.isasyncgenfunction(f): return "async_generator"
                if inspect.isgeneratorfunction(f): return "generator"
                return "coroutine" if inspect.iscoroutinefunction(f) else "function"
            expected = [theirs(f) for f in cases]
            assert ours == expected, (ours, expected)
            assert [function_kind(f) for f in cases] == expected  # the same once loaded
            if sys.version_info >= (3, 12):
                def marked(): pass
                inspect.markcoroutinefunction(marked)
                assert function_kind(marked) == "coroutine"
            print("ok", ours[:4])
            """
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=root,
            env=dict(os.environ, PYTHONPATH=root),
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("ok ['function', 'coroutine', 'generator', 'async_generator']", proc.stdout)
