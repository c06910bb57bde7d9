"""The package's loggers behave as a library's: silent until the application configures logging.

What the logging HOWTO asks of a library ("Configuring Logging for a Library"): log to
loggers under the package's own name, add no handler but a ``logging.NullHandler`` on the
top-level ``mgit_monitoring`` logger, and leave every other choice (handlers, levels,
format) to the application. Without it, an application that never configured logging
gets the package's warnings printed bare on stderr by ``logging.lastResort``.

The NullHandler is added at first use (:func:`get_logger`, or a
:class:`~mgit_monitoring.structured_logger.StructuredLogger` for a package name), never at
``import mgit_monitoring``, which stays free of side effects. Once the application
configures logging (``logging.basicConfig``, ``dictConfig``, or
:func:`~mgit_monitoring.logs.setup_structured_logging`), the records propagate to its
handlers as usual; the NullHandler writes nothing.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["PACKAGE_LOGGER", "get_logger", "install_null_handler"]

PACKAGE_LOGGER = "mgit_monitoring"
"""The top-level logger every package logger is under."""

_lock = threading.Lock()


def install_null_handler() -> None:
    """Give the ``mgit_monitoring`` logger a ``NullHandler`` unless it has one."""
    top = logging.getLogger(PACKAGE_LOGGER)
    with _lock:
        if not any(isinstance(h, logging.NullHandler) for h in top.handlers):
            top.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` for a package logger (``mgit_monitoring.store`` ...),
    with the package's NullHandler in place."""
    install_null_handler()
    return logging.getLogger(name)
