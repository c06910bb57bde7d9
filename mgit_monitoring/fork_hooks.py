"""One place to run code in a child process after ``os.fork()``.

Locks held by another thread at fork time stay locked forever in the child, and ids or
flush threads copied from the parent are wrong there. Each module that owns such state
registers a callback here, once, instead of calling ``os.register_at_fork`` itself; the
single hook is installed on the first registration (never at import) and runs the
callbacks in registration order. State that must be quiesced in the parent around the fork
itself (a transaction another thread has open) registers a ``before``/``after`` pair with
:func:`around_fork_in_parent`. Where the platform has no ``register_at_fork`` (Windows),
registration is a no-op and callers keep their own pid checks.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, List, Tuple

__all__ = ["after_fork_in_child", "around_fork_in_parent", "FORK_SUPPORTED"]

FORK_SUPPORTED = hasattr(os, "register_at_fork")
"""Whether callbacks registered here will run (os.register_at_fork exists)."""

_callbacks: List[Callable[[], None]] = []
_parent_pairs: List[Tuple[Callable[[], None], Callable[[], None]]] = []
_lock = threading.Lock()
_installed = False
_parent_installed = False


def _run_callbacks() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread
    for callback in list(_callbacks):
        try:
            callback()
        # No logging here: its locks may be held by a thread the child does not have.
        except Exception:  # noqa: BLE001  # nosec B110 # one broken hook must not stop the others
            pass


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback()`` in every child forked from now on (once per callback object)."""
    global _installed
    with _lock:
        if callback in _callbacks:
            return
        _callbacks.append(callback)
        if not _installed and FORK_SUPPORTED:
            os.register_at_fork(after_in_child=_run_callbacks)
            _installed = True


def _run_before() -> None:
    for before, _after in reversed(list(_parent_pairs)):
        try:
            before()
        except Exception:  # noqa: BLE001  # nosec B110 # never break os.fork() (and no logging)
            pass


def _run_after_in_parent() -> None:
    for _before, after in list(_parent_pairs):
        try:
            after()
        except Exception:  # noqa: BLE001  # nosec B110 # as in _run_before
            pass


def around_fork_in_parent(before: Callable[[], None], after: Callable[[], None]) -> None:
    """Run ``before()`` in the forking process just before every ``os.fork()`` from now on and
    ``after()`` in it just after (once per pair; pairs registered later run their ``before``
    first, as ``os.register_at_fork`` does)."""
    global _parent_installed
    with _lock:
        if (before, after) in _parent_pairs:
            return
        _parent_pairs.append((before, after))
        if not _parent_installed and FORK_SUPPORTED:
            os.register_at_fork(before=_run_before, after_in_parent=_run_after_in_parent)
            _parent_installed = True
