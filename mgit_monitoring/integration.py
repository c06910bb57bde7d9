"""Wiring and decorators: the part of mgit_monitoring that mgit's own code touches.

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

The decorators work on sync and async functions, preserve name, docstring and signature,
and look the collector and monitor up at CALL time, so decorating at import and calling
:func:`setup_monitoring_integration` later works (the original captured them when it
decorated). Exceptions, BaseException included (KeyboardInterrupt, task cancellation),
propagate unchanged and are recorded as failures by type; ``SystemExit`` with code 0 or
None counts as success. With ``enabled=False`` (``MGIT_MONITORING_ENABLED=false``) every
decorator is a pass-through that tests one flag. Before any setup the flag is read once
from the environment and the in-memory defaults are used (nothing is persisted). A failure
inside monitoring (a broken handler, filter or metric) never breaks the decorated call:
it is swallowed with one warning per kind on the ``mgit_monitoring.integration`` logger.

Decorator log lines go to the logger named after the decorated function's module (as
``logging.getLogger(__name__)`` would), so the host's logging configuration applies.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import re
import sys
import threading
import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Set, Tuple, TypeVar, cast

from mgit_monitoring.collector import (
    MetricsCollector,
    get_metrics_collector,
    reset_metrics_collector,
    setup_metrics,
)
from mgit_monitoring.config import MonitoringConfig
from mgit_monitoring.context import correlation_context, get_correlation_id
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health import (
    HealthChecker,
    create_default_health_checker,
    reset_health_checker,
    set_health_checker,
)
from mgit_monitoring.logs import StructuredLogger, get_structured_logger, setup_structured_logging
from mgit_monitoring.masking import mask_credentials
from mgit_monitoring.performance import (
    PerformanceMonitor,
    get_performance_monitor,
    reset_performance_monitor,
    set_performance_monitor,
)
from mgit_monitoring.registry import Registry

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

_F = TypeVar("_F", bound=Callable[..., Any])

_log = logging.getLogger("mgit_monitoring.integration")

#: Parameter names a repository is taken from by :func:`monitor_git_operation`, in order.
REPOSITORY_PARAMETERS: Tuple[str, ...] = (
    "repo_url",
    "url",
    "repository",
    "repo",
    "repo_name",
    "clone_url",
    "remote_url",
    "repo_path",
    "path",
)
_ORG_PARAMETERS = ("organization", "org", "org_name", "organization_name")
_RATE_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
_URL_USERINFO = re.compile(r"\A([A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^/@?#]*@")
_MAX_WARNED = 64
_MAX_ERROR_TEXT = 500
_clock = time.perf_counter


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


# -- module state --------------------------------------------------------------------------

_lock = threading.RLock()
_integration: MonitoringIntegration | None = None
# The one flag every wrapper tests: True/False once known, None before the first setup
# or call (then resolved from the environment on first use).
_enabled: bool | None = None
_warned: Set[Tuple[str, str]] = set()


def _warn_once(where: str, exc: BaseException | str) -> None:
    """One WARNING per (site, exception type); never raises, bounded memory."""
    kind = type(exc).__name__ if isinstance(exc, BaseException) else str(exc)
    key = (where, kind)
    if key in _warned or len(_warned) >= _MAX_WARNED:
        return
    _warned.add(key)
    try:
        _log.warning("monitoring disabled for this step (%s): %s: %s", where, kind, exc)
    except Exception:  # noqa: BLE001 - logging itself may be what is broken
        pass


def _resolve_enabled() -> bool:
    """The enabled flag; before any setup it comes from the environment, read once."""
    global _enabled
    with _lock:
        if _enabled is None:
            try:
                _enabled = MonitoringConfig.from_env().enabled
            except Exception as exc:  # noqa: BLE001 - a bad variable must not break mgit
                _warn_once("configuration", exc)
                _enabled = True
        return _enabled


def is_monitoring_enabled() -> bool:
    """Whether the decorators record anything (``MonitoringConfig.enabled``)."""
    flag = _enabled
    return flag if flag is not None else _resolve_enabled()


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
        _warn_once("shared metrics", exc)
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
    global _integration, _enabled
    with _lock:
        current = _integration
        if current is not None and not force:
            if config is not None or configure_logging or any(
                v is not None for v in overrides.values()
            ):
                _warn_once("setup", "already set up; arguments ignored (force=True rebuilds)")
            return current
        cfg = _build_config(config, environ, overrides)
        env = os.environ if environ is None else environ
        if current is not None:
            _teardown(current)
            reset_metrics_collector()
        if configure_logging:
            setup_structured_logging(
                log_level=cfg.log_level, console_level=cfg.log_level, environ=env
            )
        # Adopts an existing default collector: replacing it orphaned its holders.
        metrics = setup_metrics()
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
        performance = PerformanceMonitor.from_config(cfg, registry, store=store, state_dir=None)
        health = create_default_health_checker(registry=registry, config=cfg, environ=env)
        shared = _start_shared_metrics(cfg, store, registry) if cfg.enabled else None
        logger = get_structured_logger(_log.name)
        integration = MonitoringIntegration(
            cfg, registry, metrics, performance, health, logger, store, shared
        )
        set_performance_monitor(performance)
        set_health_checker(health)
        _integration = integration
        _enabled = cfg.enabled
    try:
        logger.info(
            "Monitoring integration initialized",
            enabled=cfg.enabled,
            state_dir=store_dir,
            components=["structured_logging", "metrics", "health_checks", "performance"],
        )
    except Exception as exc:  # noqa: BLE001
        _warn_once("setup log", exc)
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
            _warn_once(step, exc)


def reset_monitoring_integration() -> None:
    """Tear down the integration and every package default (tests; a fresh start).

    Flushes and closes the store, stops background threads, forgets the default metrics
    collector, performance monitor and health checker, and the enabled flag (re-read from
    the environment on the next decorated call unless setup runs again).
    """
    global _integration, _enabled
    with _lock:
        current, _integration = _integration, None
        _enabled = None
        if current is not None:
            _teardown(current)
        reset_metrics_collector()
        reset_performance_monitor()
        reset_health_checker()
        _warned.clear()


# -- helpers shared by the decorators -------------------------------------------------------


def mask_repository(repository: Any) -> str:
    """The repository as text safe for logs, labels and traces ("unknown" when None).

    URL user information is replaced whole (``https://***@host/org/repo.git``: a bare token
    used as the user name is a secret too), then the package's credential masking runs.
    """
    if repository is None:
        return "unknown"
    if isinstance(repository, os.PathLike):
        repository = os.fspath(repository)
    if isinstance(repository, bytes):
        repository = repository.decode("utf-8", "backslashreplace")
    text = repository if isinstance(repository, str) else str(repository)
    if "@" in text:
        text = _URL_USERINFO.sub(r"\1***@", text)
    return mask_credentials(text)


def _is_success(exc: BaseException | None) -> bool:
    if exc is None:
        return True
    return isinstance(exc, SystemExit) and exc.code in (0, None)


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = f"<unprintable {type(exc).__name__}>"
    return mask_repository(text[:_MAX_ERROR_TEXT]) if text else ""


def _http_int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return int(value)
    return None


def _status_of(obj: Any) -> Optional[int]:
    for attr in ("status_code", "status", "code"):
        try:
            code = _http_int(getattr(obj, attr, None))
        except Exception:  # noqa: BLE001 - a property may raise
            continue
        if code is not None:
            return code
    getcode = getattr(obj, "getcode", None)
    if callable(getcode):
        try:
            return _http_int(getcode())
        except Exception:  # noqa: BLE001
            return None
    return None


def _response_of(obj: Any) -> Any:
    """``obj`` itself when it carries a status, else its ``.response`` (requests/httpx errors)."""
    if obj is None:
        return None
    if _status_of(obj) is not None:
        return obj
    try:
        response = getattr(obj, "response", None)
    except Exception:  # noqa: BLE001
        return None
    if response is not None and _status_of(response) is not None:
        return response
    return None


def extract_status_code(obj: Any) -> Optional[int]:
    """The HTTP status a response or an exception carries, duck-typed; None if none.

    Tried in order: ``.status_code`` (requests, httpx), ``.status`` (urllib responses,
    aiohttp), ``.code`` and ``.getcode()`` (urllib), then the same on ``.response`` (the
    errors of requests and httpx). Only integers 100..599 count.
    """
    response = _response_of(obj)
    return None if response is None else _status_of(response)


def _header(headers: Any, names: Tuple[str, ...]) -> Any:
    if headers is None:
        return None
    if isinstance(headers, dict):  # a plain dict is case-sensitive
        lowered = {str(k).lower(): v for k, v in headers.items()}
        for name in names:
            if name in lowered:
                return lowered[name]
        return None
    get = getattr(headers, "get", None)
    if not callable(get):
        return None
    for name in names:
        value = get(name)
        if value is not None:
            return value
    return None


def is_rate_limited(obj: Any, status: Optional[int] = None) -> bool:
    """True for HTTP 429, or 403 with a zero remaining quota (or a ``Retry-After``).

    ``obj`` is a response or an exception (its ``.response`` is used); the quota header is
    ``X-RateLimit-Remaining`` (GitHub, Bitbucket, Azure DevOps) or ``RateLimit-Remaining``
    (GitLab), any case.
    """
    try:
        response = _response_of(obj)
        if status is None:
            status = _status_of(response) if response is not None else None
        if status == 429:
            return True
        if status != 403 or response is None:
            return False
        headers = getattr(response, "headers", None)
        remaining = _header(headers, _RATE_REMAINING)
        if remaining is not None:
            try:
                return int(str(remaining).strip()) == 0
            except ValueError:
                return False
        return _header(headers, ("retry-after",)) is not None
    except Exception:  # noqa: BLE001 - a strange response object must not break the call
        return False


def _method_of(obj: Any) -> Optional[str]:
    try:
        request = getattr(obj, "request", None)
        method = getattr(request, "method", None) if request is not None else None
        if method is None:
            method = getattr(obj, "method", None)
    except Exception:  # noqa: BLE001 - e.g. httpx raises when a response has no request
        return None
    return method if isinstance(method, str) and method else None


class _ArgPicker:
    """Takes one argument out of a call by parameter name (the signature is read once)."""

    __slots__ = ("default", "index", "keyword")

    def __init__(self, func: Callable[..., Any], names: Tuple[str, ...]) -> None:
        self.keyword: Optional[str] = None
        self.index: Optional[int] = None
        self.default: Any = None
        try:
            params = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return
        by_name = {p.name: (i, p) for i, p in enumerate(params)}
        for name in names:
            if name not in by_name:
                continue
            i, p = by_name[name]
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                self.index = i
            if p.kind is not p.POSITIONAL_ONLY:
                self.keyword = name
            if p.default is not p.empty:
                self.default = p.default
            return

    @property
    def found(self) -> bool:
        return self.keyword is not None or self.index is not None

    def pick(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        keyword = self.keyword
        if keyword is not None and keyword in kwargs:
            return kwargs[keyword]
        index = self.index
        if index is not None and index < len(args):
            return args[index]
        return self.default


def _guess_repository(args: Tuple[Any, ...]) -> Any:
    """The original's fallback: the first positional str that looks like a repository."""
    for arg in args:
        if isinstance(arg, os.PathLike):
            return arg
        if isinstance(arg, str) and ("/" in arg or ".git" in arg):
            return arg
    return None


def _provider_of(args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The original's fallback: ``self.provider_name``, else a ``provider`` argument."""
    if args:
        try:
            name = getattr(args[0], "provider_name", None)
        except Exception:  # noqa: BLE001
            name = None
        if isinstance(name, str) and name:
            return name
    name = kwargs.get("provider") or kwargs.get("provider_name")
    return name if isinstance(name, str) and name else "unknown"


