"""One place to run code in a child process after ``os.fork()``.

Locks held by another thread at fork time stay locked forever in the child, and ids or
flush threads copied from the parent are wrong there. Each module that owns such state
registers a callback here, once, instead of calling ``os.register_at_fork`` itself; the
single hook is installed on the first registration (never at import) and runs the
callbacks in registration order. Where the platform has no ``register_at_fork`` (Windows),
registration is a no-op and callers keep their own pid checks.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, List

__all__ = ["after_fork_in_child", "FORK_SUPPORTED"]

FORK_SUPPORTED = hasattr(os, "register_at_fork")
"""Whether callbacks registered here will run (os.register_at_fork exists)."""

_callbacks: List[Callable[[], None]] = []
_lock = threading.Lock()
_installed = False


def _run_callbacks() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:  # noqa: BLE001 - one broken hook must not stop the others
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
