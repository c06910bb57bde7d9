"""The shared decorator machinery: success rules, generator wrapping, descriptors, names."""

from __future__ import annotations

import asyncio
import contextvars
import functools
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
