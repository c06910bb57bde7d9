"""The decorator machinery the performance monitor and the integration decorators share.

- :func:`is_success`: whether a call that ended with an exception (or none) succeeded;
- :func:`wrap_generator_function`: a generator or async generator function monitored over
  its ITERATION, not over the call that only creates the generator;
- :func:`for_descriptors`: a decorator that also accepts a ``classmethod``/``staticmethod``
  object (decorators stacked above ``@classmethod``);
- :func:`qualified_name`: ``module.qualname`` of a function or of the one in a partial;
- :func:`function_kind`: plain, coroutine, generator or async generator function.

Nothing here knows about metrics, traces or logs: a wrapper calls ``begin(args, kwargs)``
and the object it returns gets ``finish(exc, result)``.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import types
from typing import Any, Callable, Dict, Tuple, TypeVar, cast

__all__ = [
    "for_descriptors",
    "function_kind",
    "is_success",
    "qualified_name",
    "wrap_generator_function",
]

_F = TypeVar("_F", bound=Callable[..., Any])


# The code object flags inspect.CO_GENERATOR, CO_COROUTINE and CO_ASYNC_GENERATOR (the same
# values on every CPython since 3.6).
_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


def function_kind(func: Any) -> str:
    """``"async_generator"``, ``"generator"``, ``"coroutine"`` or ``"function"``: what
    calling ``func`` returns, as ``inspect.isasyncgenfunction``, ``isgeneratorfunction``
    and ``iscoroutinefunction`` say.

    Decorating runs at the import of every monitored module, so for a plain function (also
    behind bound methods and partials) the code object's flags are read, which is what
    ``inspect`` does, without loading ``inspect`` (a dozen modules). A function the flags
    call plain is also asked of ``inspect.iscoroutinefunction`` when ``inspect`` is loaded:
    only it knows ``inspect.markcoroutinefunction``, which cannot have been applied before
    ``inspect`` was loaded. Anything else (a callable object, a ``partialmethod``) is asked
    of ``inspect``. The answer is the same whether or not ``inspect`` was loaded before.
    """
    f = func
    while True:
        if isinstance(f, types.MethodType):
            f = f.__func__
        elif isinstance(f, functools.partial):
            f = f.func
        else:
            break
    if isinstance(f, types.FunctionType):
        flags = f.__code__.co_flags
        if flags & _CO_ASYNC_GENERATOR:
            return "async_generator"
        if flags & _CO_GENERATOR:
            return "generator"
        if flags & _CO_COROUTINE:
            return "coroutine"
        loaded = sys.modules.get("inspect")
        if loaded is not None and loaded.iscoroutinefunction(func):
            return "coroutine"  # marked with inspect.markcoroutinefunction (3.12+)
        return "function"
    import inspect  # a callable object, a partialmethod ...: rare, and inspect knows best

    if inspect.isasyncgenfunction(func):
        return "async_generator"
    if inspect.isgeneratorfunction(func):
        return "generator"
    return "coroutine" if inspect.iscoroutinefunction(func) else "function"


def is_success(exc: BaseException | None) -> bool:
    """Whether a call that ended with ``exc`` succeeded.

    No exception, ``SystemExit`` with code 0 or None (a clean exit), and ``GeneratorExit``
    (the consumer of a generator stopped early, or an unfinished coroutine was closed:
    nothing inside failed) are successes; anything else, BaseException included, is not.
    """
    if exc is None:
        return True
    if isinstance(exc, SystemExit):
        return exc.code in (0, None)
    return isinstance(exc, GeneratorExit)


class _InContext:
    """Awaits ``awaitable`` running each of its steps inside ``ctx`` (as a Task would).

    Lets an async generator's body see the context its monitoring entered, while the task
    iterating it keeps its own between steps. Sends, throws (cancellation) and close are
    passed through unchanged.
    """

    __slots__ = ("_awaitable", "_ctx")

    def __init__(self, ctx: contextvars.Context, awaitable: Any) -> None:
        self._ctx = ctx
        self._awaitable = awaitable

    def __await__(self) -> Any:
        it = self._awaitable.__await__()
        run = self._ctx.run
        step, arg = it.send, None
        while True:
            try:
                signal = run(step, arg)
            except StopIteration as stop:
                return stop.value
            try:
                arg = yield signal
            except GeneratorExit:
                run(it.close)
                raise
            except BaseException as exc:  # cancellation: thrown into the awaitable
                step, arg = it.throw, exc
            else:
                step = it.send


def wrap_generator_function(
    func: Callable[..., Any],
    begin: Callable[[Tuple[Any, ...], Dict[str, Any]], Any],
    active: Callable[[], bool] | None = None,
) -> Callable[..., Any]:
    """Wrap a generator or async generator function so that its ITERATION is monitored.

    ``begin(args, kwargs)`` runs at the first step (when the body would start), unless
    ``active()`` says no, and returns an object with ``finish(exc, result)``. (``begin`` is
    called straight from the wrapper, so a log line it writes with a fixed ``stacklevel``
    names the same frame as for a plain function.) ``finish`` runs when
    the generator is exhausted (``result`` is its return value), raises (``exc``), or is
    closed early (``exc`` is GeneratorExit). ``begin``, every step and ``finish`` run in one
    private copy of the context: the correlation scope and trace that monitoring enters are
    seen by the body and by the calls it makes, and never leak into the consumer's context
    between steps. Sends, throws and close reach the wrapped generator unchanged.
    """
    if function_kind(func) == "async_generator":

        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = contextvars.copy_context()
            agen = func(*args, **kwargs)
            run = ctx.run(begin, args, kwargs) if active is None or active() else None
            step, arg = agen.asend, None
            try:
                while True:
                    try:
                        item = await _InContext(ctx, step(arg))
                    except StopAsyncIteration:
                        break
                    try:
                        arg = yield item
                    except GeneratorExit:
                        await _InContext(ctx, agen.aclose())
                        raise
                    except BaseException as exc:
                        step, arg = agen.athrow, exc
                    else:
                        step = agen.asend
            except BaseException as exc:
                if run is not None:
                    ctx.run(run.finish, exc, None)
                raise
            if run is not None:
                ctx.run(run.finish, None, None)

        return agen_wrapper

    @functools.wraps(func)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        gen = func(*args, **kwargs)
        run = ctx.run(begin, args, kwargs) if active is None or active() else None
        step, arg = gen.send, None
        try:
            while True:
                try:
                    item = ctx.run(step, arg)
                except StopIteration as stop:
                    result = stop.value
                    break
                try:
                    arg = yield item
                except GeneratorExit:
                    ctx.run(gen.close)
                    raise
                except BaseException as exc:
                    step, arg = gen.throw, exc
                else:
                    step = gen.send
        except BaseException as exc:
            if run is not None:
                ctx.run(run.finish, exc, None)
            raise
        if run is not None:
            ctx.run(run.finish, None, result)
        return result

    return gen_wrapper


def for_descriptors(decorate: _F) -> _F:
    """``decorate`` that also accepts a classmethod/staticmethod object (decorators stacked
    above ``@classmethod``): the function inside is decorated and re-wrapped."""

    @functools.wraps(decorate)
    def apply(func: Any) -> Any:
        if isinstance(func, (classmethod, staticmethod)):
            return type(func)(decorate(func.__func__))
        return decorate(func)

    return cast(_F, apply)


def qualified_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a function (of the function inside a functools.partial)."""
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or type(target).__name__
    return f"{module}.{name}" if module else name
