"""mgit_monitoring: production observability for mgit, standard library only.

Prometheus metrics, JSON logs with correlation ids and credential masking, health checks
and Kubernetes probes, a performance monitor, an HTTP server and a CLI. This module is the
table of contents: it names the public API and imports each piece only when first used
(PEP 562), so ``import mgit_monitoring`` starts no thread, opens no file or socket, reads
no environment variable and stays cheap for a CLI that imports it on every run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from mgit_monitoring.version import __version__

#: Public name -> the module (under this package) that defines it.
_EXPORTS: Dict[str, str] = {
    "ConfigError": "errors",
    "DuplicateMetricError": "errors",
    "MetricError": "errors",
    "MonitoringError": "errors",
    "PushError": "errors",
    "ServerError": "errors",
    "StoreError": "errors",
    "DEFAULT_BUCKETS": "samples",
    "MetricFamily": "samples",
    "Snapshot": "samples",
    "exponential_buckets": "samples",
    "linear_buckets": "samples",
    "Counter": "metric_types",
    "Gauge": "metric_types",
    "Histogram": "metric_types",
    "Registry": "registry",
    "get_default_registry": "registry",
    "CONTENT_TYPE_OPENMETRICS": "exposition",
    "CONTENT_TYPE_TEXT": "exposition",
    "choose_format": "exposition",
    "render_json": "exposition",
    "render_openmetrics": "exposition",
    "render_text": "exposition",
    "ProcessCollector": "process_metrics",
    "register_process_metrics": "process_metrics",
    "MetricsCollector": "collector",
    "get_metrics_collector": "collector",
    "reset_metrics_collector": "collector",
    "setup_metrics": "collector",
    "ContextThread": "context_threads",
    "ContextThreadPoolExecutor": "context_threads",
    "child_env": "context",
    "correlation_context": "context",
    "get_context": "context",
    "get_correlation_id": "context",
    "git_operation_context": "context",
    "operation_context": "context",
    "provider_context": "context",
    "submit_with_context": "context_threads",
    "CredentialMasker": "masking",
    "mask_credentials": "masking",
    "mask_structure": "masking",
    "StructuredFormatter": "log_formatter",
    "ConsoleFormatter": "log_console",
    "StructuredLogger": "structured_logger",
    "get_structured_logger": "structured_logger",
    "LogWriter": "log_writer",
    "flush_logs": "log_writer",
    "setup_structured_logging": "logs",
    "HealthCheckResult": "health",
    "HealthChecker": "health",
    "create_default_health_checker": "default_checks",
    "get_health_checker": "default_checks",
    "reset_health_checker": "default_checks",
    "set_health_checker": "default_checks",
    "MonitoringConfig": "config",
    "Store": "store",
    "OperationMetrics": "performance",
    "PerformanceMetrics": "performance",
    "PerformanceMonitor": "performance",
    "PerformanceTrace": "performance",
    "get_performance_monitor": "performance",
    "monitor_async_performance": "performance",
    "monitor_performance": "performance",
    "reset_performance_monitor": "performance",
    "set_performance_monitor": "performance",
    "MonitoringServer": "server",
    "TLSConfig": "server",
    "serve": "server",
    "start_monitoring_server": "server",
    "HttpAuth": "http_auth",
    "MonitoringContext": "integration",
    "MonitoringIntegration": "integration",
    "get_monitoring_integration": "integration",
    "monitor_async_mgit_operation": "integration",
    "monitor_authentication": "integration",
    "monitor_git_operation": "integration",
    "monitor_mgit_operation": "integration",
    "monitor_provider_api_call": "integration",
    "reset_monitoring_integration": "integration",
    "setup_monitoring_integration": "integration",
    "SharedMetrics": "shared_state",
    "merged_snapshot": "shared_state",
    "delete_from_gateway": "push",
    "push_to_gateway": "push",
    "try_push_to_gateway": "push",
    "write_textfile": "push",
    "make_wsgi_app": "wsgi",
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


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from mgit_monitoring.collector import (
        MetricsCollector,
        get_metrics_collector,
        reset_metrics_collector,
        setup_metrics,
    )
    from mgit_monitoring.config import (
        MonitoringConfig,
    )
    from mgit_monitoring.context import (
        child_env,
        correlation_context,
        get_context,
        get_correlation_id,
        git_operation_context,
        operation_context,
        provider_context,
    )
    from mgit_monitoring.context_threads import (
        ContextThread,
        ContextThreadPoolExecutor,
        submit_with_context,
    )
    from mgit_monitoring.default_checks import (
        create_default_health_checker,
        get_health_checker,
        reset_health_checker,
        set_health_checker,
    )
    from mgit_monitoring.errors import (
        ConfigError,
        DuplicateMetricError,
        MetricError,
        MonitoringError,
        PushError,
        ServerError,
        StoreError,
    )
    from mgit_monitoring.exposition import (
        CONTENT_TYPE_OPENMETRICS,
        CONTENT_TYPE_TEXT,
        choose_format,
        render_json,
        render_openmetrics,
        render_text,
    )
    from mgit_monitoring.health import (
        HealthChecker,
        HealthCheckResult,
    )
    from mgit_monitoring.http_auth import (
        HttpAuth,
    )
    from mgit_monitoring.integration import (
        MonitoringContext,
        MonitoringIntegration,
        get_monitoring_integration,
        monitor_async_mgit_operation,
        monitor_authentication,
        monitor_git_operation,
        monitor_mgit_operation,
        monitor_provider_api_call,
        reset_monitoring_integration,
        setup_monitoring_integration,
    )
    from mgit_monitoring.log_console import (
        ConsoleFormatter,
    )
    from mgit_monitoring.log_formatter import (
        StructuredFormatter,
    )
    from mgit_monitoring.logs import (
        setup_structured_logging,
    )
    from mgit_monitoring.masking import (
        CredentialMasker,
        mask_credentials,
        mask_structure,
    )
    from mgit_monitoring.metric_types import (
        Counter,
        Gauge,
        Histogram,
    )
    from mgit_monitoring.performance import (
        OperationMetrics,
        PerformanceMetrics,
        PerformanceMonitor,
        PerformanceTrace,
        get_performance_monitor,
        monitor_async_performance,
        monitor_performance,
        reset_performance_monitor,
        set_performance_monitor,
    )
    from mgit_monitoring.process_metrics import (
        ProcessCollector,
        register_process_metrics,
    )
    from mgit_monitoring.push import (
        delete_from_gateway,
        push_to_gateway,
        try_push_to_gateway,
        write_textfile,
    )
    from mgit_monitoring.registry import (
        Registry,
        get_default_registry,
    )
    from mgit_monitoring.samples import (
        DEFAULT_BUCKETS,
        MetricFamily,
        Snapshot,
        exponential_buckets,
        linear_buckets,
    )
    from mgit_monitoring.server import (
        MonitoringServer,
        TLSConfig,
        serve,
        start_monitoring_server,
    )
    from mgit_monitoring.shared_state import (
        SharedMetrics,
        merged_snapshot,
    )
    from mgit_monitoring.store import (
        Store,
    )
    from mgit_monitoring.structured_logger import (
        StructuredLogger,
        get_structured_logger,
    )
    from mgit_monitoring.wsgi import (
        make_wsgi_app,
    )
