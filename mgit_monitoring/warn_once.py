"""Warn once per distinct cause, with bounded memory.

Monitoring must never flood mgit's log: a failure that repeats on every call (a full disk,
a dead peer, a bad label) is logged as one warning, and later repeats at DEBUG. The set of
causes remembered is bounded, so a stream of distinct causes cannot grow memory without
limit; past the bound, new causes are logged at DEBUG too.
"""

from __future__ import annotations

import logging
import threading
from typing import Hashable, Set

__all__ = ["WarnOnce"]


class WarnOnce:
    """Log the first occurrence of each key at WARNING on ``logger``, the rest at DEBUG."""

    def __init__(self, logger: str | logging.Logger, limit: int = 256) -> None:
        self._logger = logger
        self.limit = int(limit)
        self._seen: Set[Hashable] = set()
        self._lock = threading.Lock()

    @property
    def logger(self) -> logging.Logger:
        """The logger (looked up on first use when given by name)."""
        if isinstance(self._logger, str):
            self._logger = logging.getLogger(self._logger)
        return self._logger

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (and while the memory bound is not reached)."""
        with self._lock:
            if key in self._seen or len(self._seen) >= self.limit:
                return False
            self._seen.add(key)
            return True

    def warn(self, key: Hashable, message: str, *args: object) -> bool:
        """Log ``message % args``: WARNING the first time for ``key``, DEBUG after. Returns
        whether it was the first time."""
        first = self.first(key)
        (self.logger.warning if first else self.logger.debug)(message, *args)
        return first

    def clear(self) -> None:
        """Forget every key (tests, and a reconfigured application)."""
        with self._lock:
            self._seen.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._seen
