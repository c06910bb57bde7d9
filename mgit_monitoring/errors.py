"""The exception tree of mgit_monitoring.

Every error a caller can see subclasses :class:`MonitoringError` and, where it means
"you passed a bad value", :class:`ValueError` too, so ``except ValueError`` keeps working::

    MonitoringError
    ├── ConfigError (ValueError)           a bad configuration value; names the variable
    ├── MetricError (ValueError)           a bad metric name, label or value
    │   └── DuplicateMetricError           a name registered twice with another definition
    ├── StoreError                         the shared sqlite store could not be used
    ├── PushError                          a Pushgateway or textfile export failed
    └── ServerError                        the HTTP server could not start

Messages name the bad value and fit on one line, so the CLI can print them as they are.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DuplicateMetricError",
    "MetricError",
    "MonitoringError",
    "PushError",
    "ServerError",
    "StoreError",
]


class MonitoringError(Exception):
    """Base class of every error raised by mgit_monitoring."""


class ConfigError(MonitoringError, ValueError):
    """A configuration value (argument or environment variable) is invalid."""


class MetricError(MonitoringError, ValueError):
    """A metric name, label name, label value or sample value is invalid."""


class DuplicateMetricError(MetricError):
    """A metric name is already registered with a different type, help or label names."""


class StoreError(MonitoringError):
    """The shared state store could not be opened, read or written."""


class PushError(MonitoringError):
    """Metrics could not be delivered to a Pushgateway or written to a textfile."""


class ServerError(MonitoringError):
    """The monitoring HTTP server could not start: port in use, bad address, unusable TLS files."""
