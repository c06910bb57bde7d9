"""Wiring: the one set of objects mgit's monitoring reports to, and its decorators.

::

    from mgit_monitoring.integration import (
        monitor_git_operation, monitor_mgit_operation, monitor_provider_api_call,
        setup_monitoring_integration,
    )

    setup_monitoring_integration()          # once at start-up (idempotent, thread-safe)

    @monitor_mgit_operation(operation_name="clone_all", provider="github")
    def clone_all_repositories(org, dest): ...

    @monitor_git_operation(operation_type="clone")
    def git_clone(repo_url, destination): ...

    @monitor_provider_api_call(provider_name="github", endpoint="/repos")
    def list_repositories(org): ...

:func:`setup_monitoring_integration` reads the configuration once
(:meth:`MonitoringConfig.from_env`: defaults < ``MGIT_MONITORING_*`` < keyword overrides),
builds ONE registry shared by the metrics collector, the performance monitor (anomaly
counter) and the health checker (health metrics), opens the shared sqlite store under the
state directory when persistence is on (traces and cross-process metrics), and installs
them as the package defaults, so ``get_metrics_collector()``, ``get_performance_monitor()``
and ``get_health_checker()`` return these objects. An existing default metrics collector
is adopted rather than replaced (anything holding it keeps working). It adds no logging
handler unless ``configure_logging=True``: the host application owns logging.

The decorators and :class:`MonitoringContext` live in
:mod:`mgit_monitoring.operation_decorators` (what one monitored call does, enabled or
not), the reading of provider responses in :mod:`mgit_monitoring.api_responses`; both are
importable from here, as the original's names were. With ``enabled=False``
(``MGIT_MONITORING_ENABLED=false``) every decorator and every ``record_*`` method of the
metrics collector is a pass-through; before any setup the flag is read once from the
environment and the in-memory defaults are used (nothing is persisted).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any, Dict, Mapping, NamedTuple

from mgit_monitoring.api_responses import extract_status_code, is_rate_limited
from mgit_monitoring.collector import MetricsCollector, reset_metrics_collector, setup_metrics
from mgit_monitoring.config import MonitoringConfig
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.logs import setup_structured_logging
from mgit_monitoring.operation_decorators import (
    LOGGER_NAME,
    REPOSITORY_PARAMETERS,
    WARNINGS,
    MonitoringContext,
    is_monitoring_enabled,
    mask_repository,
    monitor_async_mgit_operation,
    monitor_authentication,
    monitor_git_operation,
    monitor_mgit_operation,
    monitor_provider_api_call,
    set_monitoring_enabled,
    warn_skipped,
)
from mgit_monitoring.performance import (
    PerformanceMonitor,
    reset_performance_monitor,
    set_performance_monitor,
)
from mgit_monitoring.registry import Registry
from mgit_monitoring.structured_logger import StructuredLogger, get_structured_logger

if TYPE_CHECKING:  # imported when setup runs: the decorators alone do not need asyncio
    from mgit_monitoring.health import HealthChecker

__all__ = [
    "MonitoringContext",
    "MonitoringIntegration",
    "REPOSITORY_PARAMETERS",
    "extract_status_code",
    "get_monitoring_integration",
    "is_monitoring_enabled",
    "is_rate_limited",
    "mask_repository",
    "monitor_async_mgit_operation",
    "monitor_authentication",
    "monitor_git_operation",
    "monitor_mgit_operation",
    "monitor_provider_api_call",
    "reset_monitoring_integration",
    "setup_monitoring_integration",
]


class MonitoringIntegration(NamedTuple):
    """What :func:`setup_monitoring_integration` wired together (all share ``registry``)."""

    config: MonitoringConfig
    registry: Registry
    metrics: MetricsCollector
    performance: PerformanceMonitor
    health: HealthChecker
    logger: StructuredLogger
    store: Any = None
    """The shared :class:`~mgit_monitoring.store.Store`, or None when persistence is off."""
    shared: Any = None
    """The :class:`~mgit_monitoring.shared_state.SharedMetrics` flusher, or None."""


_lock = threading.RLock()
_integration: MonitoringIntegration | None = None


def get_monitoring_integration() -> MonitoringIntegration | None:
    """The objects of the last :func:`setup_monitoring_integration`, or None."""
    return _integration


# -- setup and teardown --------------------------------------------------------------------


def _build_config(
    config: MonitoringConfig | None, environ: Mapping[str, str] | None, overrides: Dict[str, Any]
) -> MonitoringConfig:
    if config is None:
        return MonitoringConfig.from_env(environ, **overrides)
    if not isinstance(config, MonitoringConfig):
        raise ConfigError(f"config={config!r}: expected a MonitoringConfig")
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(MonitoringConfig)})
    if unknown:
        raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
    return dataclasses.replace(config, **given)


def _start_shared_metrics(config: MonitoringConfig, store: Any, registry: Registry) -> Any:
    """Start cross-process metrics persistence on ``store``; None when unavailable.

    The hook between the integration and :mod:`mgit_monitoring.shared_state`: failures are
    reported once and monitoring continues with in-process metrics only.
    """
    if store is None:
        return None
    try:
        from mgit_monitoring.shared_state import SharedMetrics

        return SharedMetrics(store, registry).start(config.flush_interval_seconds)
    except Exception as exc:  # noqa: BLE001 - persistence is best effort
        warn_skipped("shared metrics", exc)
        return None


def setup_monitoring_integration(
    config: MonitoringConfig | None = None,
    *,
    force: bool = False,
    configure_logging: bool = False,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> MonitoringIntegration:
    """Wire configuration, metrics, performance monitor, health checker and logger; once.

    Args:
        config: a ready :class:`MonitoringConfig`; None builds one with
            ``MonitoringConfig.from_env(environ, **overrides)`` (defaults < environment <
            overrides). With both, ``overrides`` replace fields of ``config``.
        force: rebuild even if already set up (the previous objects are flushed, closed and
            replaced; code that kept them keeps an orphan). Without it, a second call returns
            the same objects and ignores its arguments (with one warning if it had some).
        configure_logging: also call :func:`~mgit_monitoring.logs.setup_structured_logging`
            (JSON to stderr at ``config.log_level``). Off by default: the host owns logging.
        environ: the environment to read (default ``os.environ``); also what the health
            checks inspect for proxies and provider credentials.
        overrides: configuration fields (``state_dir=...``, ``enabled=False`` ...).

    Returns the :class:`MonitoringIntegration`. Raises ConfigError for a bad setting.
    """
    global _integration
    with _lock:
        current = _integration
        if current is not None and not force:
            if (
                config is not None
                or configure_logging
                or any(v is not None for v in overrides.values())
            ):
                warn_skipped(
                    "setup_monitoring_integration",
                    "already set up; arguments ignored (force=True rebuilds)",
                )
            return current
        cfg = _build_config(config, environ, overrides)
        env = os.environ if environ is None else environ
        from mgit_monitoring.default_checks import (
            create_default_health_checker,
            set_health_checker,
        )

        if current is not None:
            _teardown(current)
            reset_metrics_collector()
        if configure_logging:
            setup_structured_logging(
                log_level=cfg.log_level, console_level=cfg.log_level, environ=env
            )
        # Adopts an existing default collector: replacing it orphaned its holders.
        metrics = setup_metrics()
        metrics.enabled = cfg.enabled  # an adopted collector follows this configuration too
        registry = metrics.registry
        store = None
        store_dir = cfg.store_dir  # None when disabled or persistence is off
        if store_dir is not None:
            from mgit_monitoring.store import Store

            store = Store.open(
                store_dir,
                timeout=cfg.store_timeout_seconds,
                flush_interval=cfg.flush_interval_seconds,
            )
        try:
            performance = PerformanceMonitor.from_config(cfg, registry, store=store, state_dir=None)
            health = create_default_health_checker(registry=registry, config=cfg, environ=env)
        except BaseException:
            if store is not None:
                store.close()
            raise
        shared = _start_shared_metrics(cfg, store, registry) if cfg.enabled else None
        logger = get_structured_logger(LOGGER_NAME)
        integration = MonitoringIntegration(
            cfg, registry, metrics, performance, health, logger, store, shared
        )
        set_performance_monitor(performance)
        set_health_checker(health)
        _integration = integration
        set_monitoring_enabled(cfg.enabled)
    try:
        logger.info(
            "Monitoring integration initialized",
            enabled=cfg.enabled,
            state_dir=store_dir,
            components=["structured_logging", "metrics", "health_checks", "performance"],
        )
    except Exception as exc:  # noqa: BLE001
        warn_skipped("setup log", exc)
    return integration


def _teardown(integration: MonitoringIntegration) -> None:
    """Flush and close what ``integration`` opened; never raises."""
    for step, action in (
        ("stop shared metrics", lambda: integration.shared and integration.shared.stop()),
        ("flush traces", integration.performance.close),
        ("stop health", integration.health.stop_background),
        ("close store", lambda: integration.store and integration.store.close()),
    ):
        try:
            action()
        except Exception as exc:  # noqa: BLE001
            warn_skipped(step, exc)


def reset_monitoring_integration() -> None:
    """Tear down the integration and every package default (tests; a fresh start).

    Flushes and closes the store, stops background threads, forgets the default metrics
    collector, performance monitor and health checker, and the enabled flag (re-read from
    the environment on the next decorated call unless setup runs again).
    """
    global _integration
    with _lock:
        current, _integration = _integration, None
        set_monitoring_enabled(None)
        if current is not None:
            _teardown(current)
        reset_metrics_collector()
        reset_performance_monitor()
        from mgit_monitoring.default_checks import reset_health_checker

        reset_health_checker()
        WARNINGS.clear()
