"""mgit_monitoring: production observability for mgit, standard library only.

Prometheus metrics, JSON logs with correlation ids and credential masking, health checks
and Kubernetes probes, a performance monitor, an HTTP server and a CLI. This module is the
table of contents: it names the public API and imports each piece only when first used,
so ``import mgit_monitoring`` starts no thread, opens no file or socket, reads no
environment variable and stays cheap for a CLI that imports it on every run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict

__version__ = "0.1.0"

#: Public name -> the module (under this package) that defines it.
_EXPORTS: Dict[str, str] = {
    # errors
    "ConfigError": "errors",
    "DuplicateMetricError": "errors",
    "MetricError": "errors",
    "MonitoringError": "errors",
    "PushError": "errors",
    "StoreError": "errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'mgit_monitoring' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from mgit_monitoring.errors import (
        ConfigError,
        DuplicateMetricError,
        MetricError,
        MonitoringError,
        PushError,
        StoreError,
    )
