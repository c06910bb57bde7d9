"""Carrying the correlation context into threads: a thread pool, a submit helper, a thread.

``contextvars`` give every asyncio task its own view, but a thread starts with an empty
context: mgit's parallel cloner uses :class:`ContextThreadPoolExecutor` (or
:func:`submit_with_context` on an executor it already has, or :class:`ContextThread`) so
that log lines from worker threads carry the operation's correlation id. A module of its
own so that ``concurrent.futures`` is loaded only by code that uses a pool.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

__all__ = ["ContextThread", "ContextThreadPoolExecutor", "submit_with_context"]

_T = TypeVar("_T")


def submit_with_context(
    executor: Any, fn: Callable[..., _T], *args: Any, **kwargs: Any
) -> Future[_T]:
    """``executor.submit(fn, ...)`` that runs ``fn`` in a copy of the submitter's context."""
    ctx = contextvars.copy_context()  # captured here, in the submitting thread
    future: Future[_T] = executor.submit(ctx.run, fn, *args, **kwargs)
    return future


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks (``submit`` and ``map``) see the submitter's context.

    Each task runs in its own copy, so what a task sets stays in that task.
    """

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        # One copy per task: a Context object cannot be entered by two threads at once.
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


class ContextThread(threading.Thread):
    """A threading.Thread that runs in a copy of the context of the thread that created it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mgit_context = contextvars.copy_context()

    def run(self) -> None:
        self._mgit_context.run(super().run)
