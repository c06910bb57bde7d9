"""The private rotating log file: a ``RotatingFileHandler`` whose files are mode 0600.

Its own module so that ``logging.handlers`` (and what it imports: ``socket``, ``queue``,
``pickle`` ... about 1.6 MB) is loaded only by a process that writes a log file:
:func:`~mgit_monitoring.logs.setup_structured_logging` imports this module when it is
given ``log_file``.
"""

from __future__ import annotations

import logging.handlers
import os
import sys
from typing import Any

__all__ = ["PrivateRotatingFileHandler"]


def _create_private(path: str) -> None:
    """Create ``path`` if missing, and make it mode 0600 (an existing file may be wider)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files, including each new one after a rollover, are
    mode 0600: the file is created private before the handler opens it (for append).
    An undecodable surrogate is written backslash-escaped (3.9+), never turned into
    ``--- Logging error ---``."""

    def __init__(self, filename: str, **kwargs: Any) -> None:
        _create_private(filename)
        if sys.version_info >= (3, 9):  # FileHandler's errors= is 3.9+
            kwargs.setdefault("errors", "backslashreplace")
        super().__init__(filename, **kwargs)
        self._failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """A file that cannot be written (full disk, removed directory, lost permission) is one
        warning naming it, on stderr, instead of a ``--- Logging error ---`` traceback per
        record; the application goes on and later records are tried again (silently)."""
        if self._failed:
            return
        self._failed = True
        exc = sys.exc_info()[1]
        try:
            sys.stderr.write(
                f"WARNING mgit_monitoring.logs: cannot write the log file {self.baseFilename}: "
                f"{type(exc).__name__}: {exc}; later records are tried again, without warning\n"
            )
        except Exception:  # noqa: BLE001  # nosec B110 # stderr itself is gone: nowhere to say it
            pass

    def rotate(self, source: str, dest: str) -> None:
        """Rotate as usual, then create the next file (``source``) private."""
        super().rotate(source, dest)
        _create_private(source)
