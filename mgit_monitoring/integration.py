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

:func:`setup_monitoring_integration` reads the configuration once, leniently
(:meth:`MonitoringConfig.from_env` with ``strict=False``: defaults < ``MGIT_MONITORING_*``
< keyword overrides; a bad variable is one warning naming it and its default, never an
exception into mgit), builds ONE registry shared by the metrics collector, the performance
monitor (anomaly counter) and the health checker (health metrics), and installs them as the
package defaults, so ``get_metrics_collector()`` and ``get_performance_monitor()`` return
these objects, and ``get_health_checker()`` the integration's checker once it is built.
An existing default metrics collector is adopted rather than replaced (anything holding it
keeps working). It adds no logging handler unless ``configure_logging=True``: the host
application owns logging.

Start-up stays cheap: the shared sqlite store under the state directory (traces and
cross-process metrics, when persistence is on) opens when first needed, and the health
checker is built on first use of ``integration.health``; a command that records nothing
loads neither sqlite3 nor asyncio, ssl, urllib or http.client.

The decorators and :class:`MonitoringContext` live in
:mod:`mgit_monitoring.operation_decorators` (what one monitored call does, enabled or
not), the reading of provider responses in :mod:`mgit_monitoring.api_responses`; both are
importable from here, as the original's names were. With ``enabled=False``
(``MGIT_MONITORING_ENABLED=false``) every decorator and every ``record_*`` method of the
metrics collector is a pass-through; before any setup the flag is read once from the
environment and the in-memory defaults are used (nothing is persisted).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, Mapping, cast

from mgit_monitoring.api_responses import extract_status_code, is_rate_limited
from mgit_monitoring.collector import MetricsCollector, reset_metrics_collector, setup_metrics
from mgit_monitoring.config import ENV_WARNINGS, MonitoringConfig
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_writer import flush_logs, get_log_writer
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

if TYPE_CHECKING:  # imported when first used: setup needs neither asyncio nor the checks
    from mgit_monitoring.health import HealthChecker
    from mgit_monitoring.structured_logger import StructuredLogger

__all__ = [
    "MonitoringContext",
    "MonitoringIntegration",
    "REPOSITORY_PARAMETERS",
    "extract_status_code",
    "flush_logs",
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


class MonitoringIntegration:
    """What :func:`setup_monitoring_integration` wired together (all share ``registry``).

    ``config``, ``registry``, ``metrics`` and ``performance`` exist from setup.
    ``health``, ``store``, ``shared`` and ``logger`` are built the first time they are
    needed, so that start-up loads neither the health checks (asyncio, ssl, urllib,
    http.client) nor the store (sqlite3) nor the log formatting: reading the attribute
    builds it.
    """

    __slots__ = (
        "_environ",
        "_health",
        "_lock",
        "_persistence",
        "config",
        "metrics",
        "performance",
        "registry",
    )

    def __init__(
        self,
        config: MonitoringConfig,
        registry: Registry,
        metrics: MetricsCollector,
        performance: PerformanceMonitor,
        persistence: _Persistence,
        environ: Mapping[str, str],
    ) -> None:
        self.config = config
        self.registry = registry
        self.metrics = metrics
        self.performance = performance
        self._persistence = persistence
        self._environ = environ
        self._health: HealthChecker | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        cfg = self.config
        return f"<MonitoringIntegration enabled={cfg.enabled} store_dir={cfg.store_dir!r}>"

    @property
    def health(self) -> HealthChecker:
        """The health checker (mgit's default checks on ``registry``), built on first use and
        installed as the package default
        (:func:`~mgit_monitoring.default_checks.get_health_checker`)."""
        checker = self._health
        if checker is None:
            from mgit_monitoring.default_checks import (
                create_default_health_checker,
                set_health_checker,
            )

            with self._lock:
                checker = self._health
                if checker is None:
                    checker = create_default_health_checker(
                        registry=self.registry, config=self.config, environ=self._environ
                    )
                    self._health = checker
                    if _integration is self:
                        set_health_checker(checker)
        return checker

    @property
    def logger(self) -> StructuredLogger:
        """The structured logger monitoring's own lines go to (``mgit_monitoring.integration``)."""
        from mgit_monitoring.structured_logger import get_structured_logger

        return get_structured_logger(LOGGER_NAME)

    @property
    def store(self) -> Any:
        """The shared :class:`~mgit_monitoring.store.Store` (opened now if it was not yet),
        or None when persistence is off or the store cannot be opened."""
        return self._persistence.open()

    @property
    def shared(self) -> Any:
        """The :class:`~mgit_monitoring.shared_state.SharedMetrics` flusher (started with the
        store), or None."""
        self._persistence.open()
        return self._persistence.shared


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
        # Lenient: inside mgit a bad MGIT_MONITORING_* value is one warning and its default,
        # never an exception (the CLI and the server read it strictly and exit 2).
        return MonitoringConfig.from_env(environ, strict=False, **overrides)
    if not isinstance(config, MonitoringConfig):
        raise ConfigError(f"config={config!r}: expected a MonitoringConfig")
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    unknown = sorted(set(given) - set(config.as_dict()))
    if unknown:
        raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
    return config.replace(**given)


class _Persistence:
    """The shared store and the metrics flusher, opened together the first time either is
    needed: the first completed trace (the performance monitor asks), a reader of
    ``integration.store``, the first periodic flush (a timer started at setup fires after
    ``flush_interval_seconds``), or interpreter exit when something was recorded. A process
    that records nothing (``mgit --help``) never loads sqlite3 or touches the state dir.
    Failures are reported once and monitoring continues in memory."""

    def __init__(self, config: MonitoringConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.store: Any = None
        self.shared: Any = None
        self._opened = config.store_dir is None  # nothing to open when persistence is off
        self._closed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._initial: str | None = None

    def arm(self) -> None:
        """Start the timer and the exit hook that open the store if nothing else did."""
        if self._opened:
            return
        self._initial = _state(self.registry)
        timer = threading.Timer(self.config.flush_interval_seconds, self._on_timer)
        timer.daemon = True
        timer.name = "mgit-monitoring-open-store"
        self._timer = timer
        timer.start()
        atexit.register(self._at_exit)

    def _on_timer(self) -> None:
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001 - never in the application's way
            warn_skipped("open store", exc)

    def _at_exit(self) -> None:
        # Only when this process recorded something: its metrics must reach the store.
        if self._opened or self._closed:
            return
        now = _state(self.registry)
        if now is None or now != self._initial:
            self.open()
            shared = self.shared
            if shared is not None:
                shared.flush()

    def open(self) -> Any:
        """The store, opening it (and starting the shared metrics) the first time."""
        if self._opened:
            return self.store
        with self._lock:
            if self._opened:
                return self.store
            timer, self._timer = self._timer, None
            if timer is not None and timer is not threading.current_thread():
                timer.cancel()
            store = None
            try:
                from mgit_monitoring.store import Store

                store = Store.open(
                    cast(str, self.config.store_dir),
                    timeout=self.config.store_timeout_seconds,
                    flush_interval=self.config.flush_interval_seconds,
                )
            except Exception as exc:  # noqa: BLE001 - persistence is best effort
                warn_skipped("store", exc)
            self.store = store
            if store is not None and self.config.enabled and not self._closed:
                self.shared = _start_shared_metrics(self.config, store, self.registry)
            self._opened = True
            return store

    def close(self) -> None:
        """Stop the timer; stop the flusher and close the store if they were opened."""
        with self._lock:
            self._closed = True
            self._opened = True  # nothing opens after close
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            atexit.unregister(self._at_exit)
        except Exception:  # noqa: BLE001  # nosec B110 # pragma: no cover
            pass
        if self.shared is not None:
            try:
                self.shared.stop()
            except Exception as exc:  # noqa: BLE001
                warn_skipped("stop shared metrics", exc)
        if self.store is not None:
            try:
                self.store.close()
            except Exception as exc:  # noqa: BLE001
                warn_skipped("close store", exc)


def _state(registry: Registry) -> str | None:
    """What the mgit_* metrics hold now, comparable (None when it cannot be read)."""
    try:
        families = registry.snapshot().families
        return repr([(f.name, f.series) for f in families if f.name.startswith("mgit_")])
    except Exception:  # noqa: BLE001 - when in doubt, flush
        return None


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
            ``MonitoringConfig.from_env(environ, strict=False, **overrides)`` (defaults <
            environment < overrides). With both, ``overrides`` replace fields of ``config``.
        force: rebuild even if already set up (the previous objects are flushed, closed and
            replaced; code that kept them keeps an orphan). Without it, a second call returns
            the same objects and ignores its arguments (with one warning if it had some).
        configure_logging: also call :func:`~mgit_monitoring.logs.setup_structured_logging`
            (JSON to stderr at ``config.log_level``). Off by default: the host owns logging.
        environ: the environment to read (default ``os.environ``); also what the health
            checks inspect for proxies and provider credentials.
        overrides: configuration fields (``state_dir=...``, ``enabled=False`` ...).

    Returns the :class:`MonitoringIntegration`. A bad ``MGIT_MONITORING_*`` variable does
    not raise: it is one warning naming it (logger ``mgit_monitoring.config``) and its
    default is used; a bad ``MGIT_MONITORING_ENABLED`` turns monitoring off. A bad
    ``config`` or keyword override (the calling code's own mistake) raises ConfigError.

    Setup is cheap (no sqlite3, asyncio, ssl, urllib or health checks are loaded): the
    store opens on first need and the health checker is built on first use (see
    :class:`MonitoringIntegration`).
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
        if current is not None:
            _integration = None
            _teardown(current)
            reset_metrics_collector()
            _reset_health_default()
        if configure_logging:
            from mgit_monitoring.logs import setup_structured_logging

            setup_structured_logging(
                log_level=cfg.log_level, console_level=cfg.log_level, environ=env, strict=False
            )
        # Adopts an existing default collector: replacing it orphaned its holders.
        metrics = setup_metrics()
        metrics.enabled = cfg.enabled  # an adopted collector follows this configuration too
        registry = metrics.registry
        persistence = _Persistence(cfg, registry)
        performance = PerformanceMonitor.from_config(
            cfg,
            registry,
            state_dir=None,
            store_opener=persistence.open if cfg.store_dir is not None else None,
        )
        integration = MonitoringIntegration(cfg, registry, metrics, performance, persistence, env)
        set_performance_monitor(performance)
        _integration = integration
        set_monitoring_enabled(cfg.enabled)
        get_log_writer().set_background(cfg.log_background)
        persistence.arm()
    try:
        if logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO):
            integration.logger.info(
                "Monitoring integration initialized",
                enabled=cfg.enabled,
                state_dir=cfg.store_dir,
                components=["structured_logging", "metrics", "health_checks", "performance"],
            )
    except Exception as exc:  # noqa: BLE001
        warn_skipped("setup log", exc)
    return integration


def _teardown(integration: MonitoringIntegration) -> None:
    """Flush and close what ``integration`` opened (nothing it never opened); never raises."""
    persistence = integration._persistence
    shared = persistence.shared
    health = integration._health

    def stop_health() -> None:
        if health is not None:
            health.stop_background()

    for step, action in (
        ("write queued log lines", lambda: get_log_writer().set_background(False)),
        ("stop shared metrics", lambda: shared and shared.stop()),
        ("flush traces", integration.performance.close),
        ("stop health", stop_health),
        ("close store", persistence.close),
    ):
        try:
            action()
        except Exception as exc:  # noqa: BLE001
            warn_skipped(step, exc)


def _reset_health_default() -> None:
    """Forget the default health checker, if the module holding it was ever loaded."""
    module = sys.modules.get("mgit_monitoring.default_checks")
    if module is not None:
        module.reset_health_checker()


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
        _reset_health_default()
        WARNINGS.clear()
        ENV_WARNINGS.clear()
