"""What the integration and decorator tests share: fresh package defaults, a temporary
state dir and a JSON log capture per test."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import unittest
from typing import Any, Dict, List, Optional

from mgit_monitoring.collector import get_metrics_collector
from mgit_monitoring.integration import (
    MonitoringIntegration,
    reset_monitoring_integration,
    setup_monitoring_integration,
)
from mgit_monitoring.log_writer import flush_logs
from mgit_monitoring.logs import StructuredFormatter

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SECRET_URL = f"https://x-access-token:{TOKEN}@github.com/acme/widgets.git"
BARE_TOKEN_URL = "https://s3cr3tpat0000000000000000000000000000000000000@dev.azure.com/o/p/_git/r"


LOGGER = "mgit_monitoring.integration"
"""Where monitoring's own warnings go."""

WRITER_LOGGER = "mgit_monitoring.log_writer"
"""Where the background log writer reports a line it could not write."""


def value(name: str, labels: Optional[Dict[str, str]] = None) -> Optional[float]:
    """A sample of the default collector's registry (None when absent)."""
    return get_metrics_collector().registry.snapshot().get_sample_value(name, labels)


class LogCapture(io.StringIO):
    """A log capture whose reader sees every line written so far: the integration's
    background writer may still hold lines, so reading writes them first (what a user
    reading the log after an operation does with ``flush_logs()``)."""

    def getvalue(self) -> str:
        flush_logs()
        return super().getvalue()


class IntegrationCase(unittest.TestCase):
    """Fresh defaults, a temporary state dir and a JSON log capture per test."""

    def setUp(self) -> None:
        reset_monitoring_integration()
        self.addCleanup(reset_monitoring_integration)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.state_dir = tmp.name
        self.module = f"tests.integration.{self._testMethodName}"
        self.stream = LogCapture()
        # The decorated functions' own loggers at DEBUG: the "Operation started" line is
        # DEBUG, so a test sees both of an operation's lines.
        self.capture(self.module, logging.DEBUG)
        self.capture(type(self).__module__, logging.DEBUG)  # functions not given this
        # test's name log here
        self.capture(LOGGER)
        self.capture("mgit_monitoring.performance")
        self.capture("mgit_monitoring.config")  # a bad MGIT_MONITORING_* value's one warning
        self.capture(WRITER_LOGGER)

    def capture(self, name: str, level: int = logging.INFO) -> None:
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(StructuredFormatter())
        old = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        self.addCleanup(logger.removeHandler, handler)
        self.addCleanup(setattr, logger, "propagate", old[1])
        self.addCleanup(logger.setLevel, old[0])

    def setup(self, **overrides: Any) -> MonitoringIntegration:
        overrides.setdefault("state_dir", self.state_dir)
        overrides.setdefault("persist", False)
        return setup_monitoring_integration(environ={}, **overrides)

    def own(self, func: Any) -> Any:
        """Give ``func`` this test's module name, hence its own logger."""
        func.__module__ = self.module
        return func

    def lines(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def op_lines(self) -> List[Dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == self.module]
