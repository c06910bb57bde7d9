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
decorator and every ``record_*`` method of the metrics collector is a pass-through. A
function decorated while monitoring is disabled is returned as it is (no wrapper, no
cost; enabling monitoring later does not reach it); one decorated while enabled and
disabled later (``setup_monitoring_integration(enabled=False, force=True)``) keeps a
wrapper that tests one flag per call. Before any setup the flag is read once from the
environment and the in-memory defaults are used (nothing is persisted). A failure
inside monitoring (a broken handler, filter or metric) never breaks the decorated call:
it is swallowed with one warning per kind on the ``mgit_monitoring.integration`` logger.

Decorator log lines go to the logger named after the decorated function's module (as
``logging.getLogger(__name__)`` would), so the host's logging configuration applies; their
module/function/line name the call site.

Methods, classmethods and staticmethods (the decorator above or below ``@classmethod``)
and ``functools.partial`` objects can be decorated. A generator or async generator
function is monitored over its ITERATION: from the first step until it is exhausted,
raises or is closed; closing it early (``break`` out of the loop) is a success, not a
failure. Its body, and the calls it makes, run in the operation's correlation scope and
under its trace; the consumer's own context is untouched between steps.
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
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Mapping,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    TypeVar,
    cast,
)

from mgit_monitoring import collector as _collector_module
from mgit_monitoring import context as _context
from mgit_monitoring import performance as _performance_module
from mgit_monitoring.collector import (
    MetricsCollector,
    get_metrics_collector,
    reset_metrics_collector,
    setup_metrics,
)
from mgit_monitoring.config import MonitoringConfig, enabled_from_env
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.logs import StructuredLogger, get_structured_logger, setup_structured_logging
from mgit_monitoring.masking import mask_credentials
from mgit_monitoring.performance import (
    PerformanceMonitor,
    _for_descriptors,
    _is_success,
    _wrap_generator_function,
    get_performance_monitor,
    reset_performance_monitor,
    set_performance_monitor,
)
from mgit_monitoring.registry import Registry

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
# scheme://userinfo@ anywhere in the text (a repository, or an error message quoting one).
_URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^/?#\s]*@")
_MAX_WARNED = 64
_MAX_ERROR_TEXT = 500
_MAX_CAUSES = 4  # the error itself and up to three it was raised from
_INFO, _ERROR = logging.INFO, logging.ERROR
_clock = time.perf_counter
_enter_scope = _context.enter_scope
_reset_scope = _context.CURRENT_SCOPE.reset


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
        if isinstance(exc, BaseException):
            _log.warning("monitoring step skipped (%s): %s: %s", where, kind, exc)
        else:
            _log.warning("%s: %s", where, exc)
    except Exception:  # noqa: BLE001 - logging itself may be what is broken
        pass


def _resolve_enabled() -> bool:
    """The enabled flag; before any setup it comes from the environment, read once."""
    global _enabled
    with _lock:
        if _enabled is None:
            try:
                _enabled = enabled_from_env()  # that variable alone: see its docstring
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
            if (
                config is not None
                or configure_logging
                or any(v is not None for v in overrides.values())
            ):
                _warn_once(
                    "setup_monitoring_integration",
                    "already set up; arguments ignored (force=True rebuilds)",
                )
            return current
        cfg = _build_config(config, environ, overrides)
        env = os.environ if environ is None else environ
        from mgit_monitoring.health import create_default_health_checker, set_health_checker

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
        from mgit_monitoring.health import reset_health_checker

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
    """``obj`` itself when it carries a status, else its ``.response`` (requests/httpx errors);
    for an exception without either, the same on the error it was raised from
    (``raise ProviderError(...) from http_error``), a few levels deep."""
    for _ in range(_MAX_CAUSES):
        if obj is None:
            return None
        if _status_of(obj) is not None:
            return obj
        try:
            response = getattr(obj, "response", None)
        except Exception:  # noqa: BLE001
            response = None
        if response is not None and _status_of(response) is not None:
            return response
        # __cause__ only: an explicit "from"; __context__ may be an unrelated earlier error.
        obj = obj.__cause__ if isinstance(obj, BaseException) else None
    return None


def extract_status_code(obj: Any) -> Optional[int]:
    """The HTTP status a response or an exception carries, duck-typed; None if none.

    Tried in order: ``.status_code`` (requests, httpx), ``.status`` (urllib responses,
    aiohttp, PyGithub errors), ``.code`` and ``.getcode()`` (urllib), then the same on
    ``.response`` (the errors of requests and httpx), then, for an exception, on the error
    it was raised from (``__cause__``, up to three levels). Only integers 100..599 count.
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

    __slots__ = ("default", "found", "index", "keyword")

    def __init__(self, func: Callable[..., Any], names: Tuple[str, ...]) -> None:
        self.keyword: Optional[str] = None
        self.index: Optional[int] = None
        self.default: Any = None
        self.found = False
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
            self.found = True
            return

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


# -- one monitored call ---------------------------------------------------------------------

# Frames between a log call made in begin()/finish() and the code that called the decorated
# function (or entered the context): _log <- logger method <- begin/finish <- wrapper or
# __enter__/__exit__ <- caller. The line's module/function/line then name the call site.
_STACKLEVEL = 3


class _Spec:
    """What a decorator knows at decoration time (names, options); nothing looked up yet."""

    __slots__ = (
        "endpoint",
        "fields",
        "func",
        "git",
        "kind",
        "log",
        "logger_name",
        "method",
        "name",
        "op_name",
        "picker",
        "provider",
        "scope",
        "scope_cache",
        "slogger",
        "tags",
        "track",
    )

    def __init__(
        self,
        kind: str,
        name: str,
        provider: Optional[str],
        logger_name: str,
        func: Optional[Callable[..., Any]] = None,
        track: bool = True,
        log: bool = True,
    ) -> None:
        self.kind = kind
        self.name = name
        self.provider = provider
        self.logger_name = logger_name
        self.func = func
        self.track = track
        self.log = log
        self.endpoint: Optional[str] = None
        self.method: Optional[str] = None
        self.picker: Optional[_ArgPicker] = None
        self.slogger: Optional[StructuredLogger] = None
        # Computed once: the per-call path only copies these when a repository is added.
        self.git = kind == "git"
        self.op_name = "git_" + name if self.git else name
        fields: Dict[str, Any] = {}
        if provider is not None:
            fields["provider"] = provider
        if self.git:
            fields["git_operation"] = name
        self.fields: Mapping[str, Any] = fields
        self.tags: Optional[Dict[str, str]] = {"provider": provider} if provider else None
        # The correlation scope of a call without a repository: one attribute dict (and its
        # log rendering cache) shared by every call, as correlation_context(name,
        # provider=provider) would build it.
        scope: Dict[str, Any] = {"operation": name}
        if provider is not None:
            scope["provider"] = provider
        self.scope = scope
        self.scope_cache: Dict[Any, Any] = {}

    def logger(self) -> StructuredLogger:
        # Loggers belong to logging and are never replaced: keeping one is not a stale
        # singleton, and the level/handler configuration still applies at call time.
        slogger = self.slogger
        if slogger is None:
            slogger = self.slogger = get_structured_logger(self.logger_name)
        return slogger

    def pick(self, names: Tuple[str, ...], args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        picker = self.picker
        if picker is None:  # first call: read the signature once per function
            if self.func is None:
                return None
            picker = self.picker = _ArgPicker(self.func, names)
        return picker.pick(args, kwargs) if picker.found else None


def _func_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


def _logger_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__module__", None)
    return name if isinstance(name, str) and name else _log.name


class _Run:
    """One monitored mgit or Git operation: :meth:`begin`, the call, then :meth:`finish`.

    Every step is guarded: a failing step is reported once and skipped; what began is
    always undone (the concurrency gauge, the correlation scope). The per-call work is
    kept to what depends on the call: names, fields, tags and the scope's attributes are
    built once per decorated function (:class:`_Spec`).
    """

    __slots__ = (
        "collector",
        "correlation_id",
        "fields",
        "gauge",
        "monitor",
        "repository",
        "spec",
        "t0",
        "token",
        "trace_id",
    )

    def __init__(
        self,
        spec: _Spec,
        args: Tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] = {},  # noqa: B006 - never mutated
        repository: Any = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Begin: creating the run starts the monitoring of one call."""
        self.spec = spec
        self.correlation_id: Optional[str] = None
        self.trace_id: Optional[str] = None
        # Three independent parts (context + metrics, log line, trace), each guarded on its
        # own: a broken logger must not cost the metrics or the trace. Warnings are keyed by
        # part, so one broken part warns once for start and end together.
        git = spec.git
        fields = spec.fields  # shared and never mutated; a per-call copy when it grows
        tags = spec.tags
        self.collector: Any = None
        self.monitor: Any = None
        self.gauge = self.token = self.repository = None
        try:
            self.collector = collector = _collector_module._default or get_metrics_collector()
            if git:
                try:
                    value = spec.pick(REPOSITORY_PARAMETERS, args, kwargs)
                    repository = value if value is not None else _guess_repository(args)
                except Exception as exc:  # noqa: BLE001
                    _warn_once("repository argument", exc)
                    repository = None
            if git or repository is not None:
                self.repository = repo = mask_repository(repository)
                fields = {**fields, "repository": repo}
                tags = {**(tags or {}), "repository": repo}
                if git:
                    attrs: Dict[str, Any] = {"git_operation": spec.name, "repository": repo}
                else:
                    attrs = {**spec.scope, "repository": repo}
                self.token, state = _enter_scope(attrs)
            else:
                self.token, state = _enter_scope(spec.scope, spec.scope_cache)
            self.correlation_id = state.trace_id
            if not git and collector.enabled:
                gauge = collector._concurrent
                gauge.inc()
                self.gauge = gauge
        except Exception as exc:  # noqa: BLE001 - monitoring never breaks the call
            _warn_once("metrics", exc)
        self.fields = fields
        if spec.log:
            try:
                slogger = spec.slogger or spec.logger()
                lg = slogger.logger
                try:  # lg.isEnabledFor(INFO) from its cache: no field dicts for a filtered line
                    on = lg._cache[_INFO]  # type: ignore[attr-defined]
                except (KeyError, AttributeError):
                    on = lg.isEnabledFor(_INFO)
                if on and not lg.disabled:
                    if metadata:
                        fields = {**metadata, **fields}
                    slogger.operation_start(spec.op_name, stacklevel=_STACKLEVEL, **fields)
            except Exception as exc:  # noqa: BLE001
                _warn_once("logging", exc)
        if spec.track:
            try:
                monitor = _performance_module._default or get_performance_monitor()
                self.trace_id = monitor.start_trace(spec.op_name, None, tags, metadata)
                self.monitor = monitor
            except Exception as exc:  # noqa: BLE001
                _warn_once("trace", exc)
        self.t0 = _clock()

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        duration = _clock() - self.t0
        spec = self.spec
        if exc is None:
            success, error_type = True, None
        else:
            success = _is_success(exc)
            error_type = None if success else type(exc).__name__
        try:
            collector = self.collector
            if collector is not None:
                if spec.git:
                    collector.record_git_operation(
                        spec.name, self.repository or "unknown", success, duration
                    )
                else:
                    collector.record_operation(spec.name, success, duration, spec.provider)
                if error_type is not None:
                    collector.record_error(error_type, spec.op_name, spec.provider)
        except Exception as err:  # noqa: BLE001
            _warn_once("metrics", err)
        if self.trace_id is not None:
            try:
                # The type name, not the exception: its message may hold a credential.
                self.monitor.end_trace(self.trace_id, success, error_type)
            except Exception as err:  # noqa: BLE001
                _warn_once("trace", err)
        if spec.log:
            try:
                slogger = spec.slogger or spec.logger()
                lg = slogger.logger
                level = _INFO if success else _ERROR
                try:
                    on = lg._cache[level]  # type: ignore[attr-defined]
                except (KeyError, AttributeError):
                    on = lg.isEnabledFor(level)
                if on and not lg.disabled:
                    fields = self.fields
                    if error_type is not None:
                        fields = {
                            **fields,
                            "error_type": error_type,
                            "error": _error_text(cast(BaseException, exc)),
                        }
                    slogger.operation_end(
                        spec.op_name, success, duration, stacklevel=_STACKLEVEL, **fields
                    )
            except Exception as err:  # noqa: BLE001
                _warn_once("logging", err)
        # Always undone, whatever failed above: a stuck gauge or scope would lie forever.
        gauge, token = self.gauge, self.token
        if gauge is not None:
            self.gauge = None
            try:
                gauge.dec()
            except Exception as err:  # noqa: BLE001
                _warn_once("metrics", err)
        if token is not None:
            self.token = None
            try:
                _reset_scope(token)
            except Exception as err:  # noqa: BLE001
                _warn_once("correlation context", err)


class _ApiCall:
    """One monitored provider API call: timing, status, errors, rate limiting, one log line."""

    __slots__ = ("provider", "spec", "t0")

    def __init__(self, spec: _Spec, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.spec = spec
        provider = spec.provider
        if provider is None:
            try:
                provider = _provider_of(args, kwargs)
            except Exception as exc:  # noqa: BLE001
                _warn_once("api provider", exc)
                provider = "unknown"
        self.provider = provider
        self.t0 = _clock()

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        duration = _clock() - self.t0
        spec, provider = self.spec, self.provider
        try:
            response = _response_of(result if exc is None else exc)
            status = _status_of(response) if response is not None else None
            method = spec.method or (_method_of(response) if response is not None else None)
            method = (method or "UNKNOWN").upper()
            limited = status == 429 or (status == 403 and is_rate_limited(response, status))
        except Exception as err:  # noqa: BLE001 - a strange response object
            _warn_once("api response", err)
            status, method, limited = None, "UNKNOWN", False
        if status is not None:
            code = str(status)
        else:  # no HTTP status seen: say so instead of inventing 200 or 500
            code = "unknown" if exc is None else "error"
        error_type = None if _is_success(exc) else type(exc).__name__
        endpoint = cast(str, spec.endpoint)
        try:
            collector = get_metrics_collector()
            collector.record_api_call(method, provider, code, duration, endpoint)
            if limited and status != 429:  # record_api_call already counts 429
                collector.record_rate_limit_hit(provider)
            if error_type is not None:
                collector.record_error(error_type, spec.name, provider)
        except Exception as err:  # noqa: BLE001
            _warn_once("metrics", err)
        if not spec.log:
            return
        try:
            fields: Dict[str, Any] = {
                "provider": provider,
                "endpoint": endpoint,
                "api_method": method,
                "api_status_code": status,
                "duration_seconds": duration,
                "stacklevel": _STACKLEVEL,
            }
            if limited:
                fields["rate_limited"] = True
            if error_type is not None:
                fields["error_type"] = error_type
                fields["error"] = _error_text(cast(BaseException, exc))
            logger = spec.logger()
            if error_type is not None or (status is not None and status >= 500):
                log = logger.error
            elif status is not None and status >= 400:
                log = logger.warning
            else:
                log = logger.info
            log("API %s %s -> %s (%.3fs)", method, endpoint, code, duration, **fields)
        except Exception as err:  # noqa: BLE001
            _warn_once("logging", err)


class _AuthCall:
    """One monitored authentication: outcome counted per provider and organization."""

    __slots__ = ("organization", "provider", "spec")

    def __init__(self, spec: _Spec, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.spec = spec
        self.provider = "unknown"
        self.organization = "unknown"
        try:
            self.provider = self.spec.provider or _provider_of(args, kwargs)
            org = self.spec.pick(_ORG_PARAMETERS, args, kwargs)
            if isinstance(org, str) and org:
                self.organization = org
        except Exception as exc:  # noqa: BLE001
            _warn_once("auth arguments", exc)

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        spec, provider, org = self.spec, self.provider, self.organization
        # A function that reports failure by returning False failed too.
        success = _is_success(exc) and result is not False
        error_type = None if _is_success(exc) else type(exc).__name__
        try:
            collector = get_metrics_collector()
            collector.record_authentication(provider, org, success)
            if error_type is not None:
                collector.record_error(error_type, spec.name, provider)
        except Exception as err:  # noqa: BLE001
            _warn_once("metrics", err)
        if not spec.log:
            return
        try:
            fields: Dict[str, Any] = {
                "auth_provider": provider,
                "auth_organization": org,
                "auth_success": success,
                "stacklevel": _STACKLEVEL,
            }
            if error_type is not None:
                fields["error_type"] = error_type
                fields["error"] = _error_text(cast(BaseException, exc))
            logger = spec.logger()
            if success:
                logger.info("Authentication succeeded: %s:%s", provider, org, **fields)
            else:
                logger.warning("Authentication failed: %s:%s", provider, org, **fields)
        except Exception as err:  # noqa: BLE001
            _warn_once("logging", err)


def _wrap(func: _F, spec: _Spec, call: Callable[..., Any]) -> _F:
    """The sync or async wrapper: one flag test, ``call(spec, args, kwargs)`` begins, the
    call, then ``finish``.

    Monitoring disabled when the decorator is applied (``MGIT_MONITORING_ENABLED=false``
    read then, or an earlier setup with ``enabled=False``): ``func`` itself is returned, so
    a disabled call costs exactly an undecorated one. Disabled later (setup with
    ``enabled=False, force=True``), the wrapper stays and tests one flag per call.
    """
    if not is_monitoring_enabled():
        return func
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        begin = functools.partial(call, spec)
        return cast(_F, _wrap_generator_function(func, begin, is_monitoring_enabled))
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if _enabled is not True and (_enabled is False or not is_monitoring_enabled()):
                return await func(*args, **kwargs)
            run = call(spec, args, kwargs)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                run.finish(exc, None)
                raise
            run.finish(None, result)
            return result

        return cast(_F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _enabled is not True and (_enabled is False or not is_monitoring_enabled()):
            return func(*args, **kwargs)
        run = call(spec, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            run.finish(exc, None)
            raise
        run.finish(None, result)
        return result

    return cast(_F, wrapper)


# -- the decorators -------------------------------------------------------------------------


def monitor_mgit_operation(
    operation_name: str | Callable[..., Any] | None = None,
    provider: str | None = None,
    track_performance: bool = True,
    log_result: bool = True,
) -> Any:
    """Decorator: monitor every call of an mgit operation (sync or async function).

    ``@monitor_mgit_operation(operation_name="clone_all", provider="github")``,
    ``@monitor_mgit_operation("clone_all")`` or bare ``@monitor_mgit_operation`` (the name is
    then the function's). Per call: a correlation scope (``operation``, ``provider``), the
    ``mgit_concurrent_operations`` gauge up and back down, "Operation started" and
    "Operation completed|failed" log lines (``log_result``), a performance trace
    (``track_performance``), ``mgit_operations_total``, ``..._success_total`` or
    ``..._failure_total``, ``mgit_operation_duration_seconds`` and, on failure,
    ``mgit_errors_total{error_type}``.
    """
    if callable(operation_name) or isinstance(operation_name, (classmethod, staticmethod)):
        return monitor_mgit_operation(None, provider, track_performance, log_result)(operation_name)

    @_for_descriptors
    def decorate(func: _F) -> _F:
        name = operation_name or _func_name(func)
        spec = _Spec("op", name, provider, _logger_name(func), func, track_performance, log_result)
        return _wrap(func, spec, _Run)

    return decorate


monitor_async_mgit_operation = monitor_mgit_operation
"""The original's async decorator name; :func:`monitor_mgit_operation` handles both."""


def monitor_git_operation(
    operation_type: str | Callable[..., Any] | None = None,
    track_performance: bool = True,
    log_result: bool = True,
) -> Any:
    """Decorator: monitor a Git operation; the repository comes from the call's arguments.

    ``operation_type`` defaults to the function name without a ``git_`` prefix. The
    repository is the argument named like one of :data:`REPOSITORY_PARAMETERS` (the first
    of them the function has; passed by position or keyword, else its default), otherwise
    the first positional string containing "/" or ".git". It is masked
    (:func:`mask_repository`) before it reaches the log lines, the correlation scope
    (``git_operation``, ``repository``), the trace (``git_<type>``, tag ``repository``) and
    ``mgit_git_operations_total{operation,status}``/``mgit_git_operation_duration_seconds``.
    """
    if callable(operation_type) or isinstance(operation_type, (classmethod, staticmethod)):
        return monitor_git_operation(None, track_performance, log_result)(operation_type)

    @_for_descriptors
    def decorate(func: _F) -> _F:
        name = operation_type or _func_name(func)
        if operation_type is None and name.startswith("git_"):
            name = name[4:]
        spec = _Spec("git", name, None, _logger_name(func), func, track_performance, log_result)
        return _wrap(func, spec, _Run)

    return decorate


def monitor_provider_api_call(
    provider_name: str | Callable[..., Any] | None = None,
    endpoint: str | None = None,
    method: str | None = None,
    log_result: bool = True,
) -> Any:
    """Decorator: time a provider API call and record its real outcome.

    ``provider_name`` defaults to ``self.provider_name`` (the first argument's), then a
    ``provider`` keyword argument; ``endpoint`` to the function name; ``method`` to the
    response's ``request.method``, else ``UNKNOWN``. The status code is the one the result
    or the raised error carries (:func:`extract_status_code`); without one it is recorded
    as ``unknown`` (returned) or ``error`` (raised), never invented. Records
    ``mgit_api_requests_total``, ``mgit_api_request_duration_seconds``,
    ``mgit_api_errors_total`` (status >= 400), ``mgit_api_rate_limit_hits_total``
    (:func:`is_rate_limited`), ``mgit_errors_total`` for a raised error, and one log line
    (INFO; WARNING for 4xx; ERROR for 5xx or an exception).
    """
    if callable(provider_name) or isinstance(provider_name, (classmethod, staticmethod)):
        return monitor_provider_api_call(None, endpoint, method, log_result)(provider_name)

    @_for_descriptors
    def decorate(func: _F) -> _F:
        spec = _Spec(
            "api", _func_name(func), provider_name, _logger_name(func), func, False, log_result
        )
        spec.endpoint = endpoint or spec.name
        spec.method = method.upper() if method else None
        return _wrap(func, spec, _ApiCall)

    return decorate


def monitor_authentication(
    provider_name: str | Callable[..., Any] | None = None, log_result: bool = True
) -> Any:
    """Decorator: count authentication attempts by provider and organization.

    ``provider_name`` defaults to ``self.provider_name``; the organization is the argument
    named ``organization``/``org``/``org_name`` (positional or keyword), else "unknown". A
    raised exception or a returned ``False`` is a failure. Records
    ``mgit_auth_attempts_total`` and ``mgit_auth_success_total``/``mgit_auth_failures_total``
    and logs one line (INFO, or WARNING on failure).
    """
    if callable(provider_name) or isinstance(provider_name, (classmethod, staticmethod)):
        return monitor_authentication(None, log_result)(provider_name)

    @_for_descriptors
    def decorate(func: _F) -> _F:
        spec = _Spec(
            "auth", "authentication", provider_name, _logger_name(func), func, False, log_result
        )
        return _wrap(func, spec, _AuthCall)

    return decorate


class MonitoringContext:
    """``with MonitoringContext("bulk_clone", provider="github"):`` (also ``async with``).

    The block is monitored like a :func:`monitor_mgit_operation` call: correlation scope,
    concurrency gauge, start/end log lines (on the logger of the module that created the
    context), a trace carrying ``metadata``, and operation metrics. ``repository`` is masked.
    Metadata keys may be any names (``name``, ``module`` ... are fine). Exceptions are
    recorded and never suppressed. Entering returns the context; ``correlation_id`` and
    ``trace_id`` are then set (None when monitoring is disabled).
    """

    def __init__(
        self,
        operation_name: str,
        provider: str | None = None,
        repository: Any = None,
        **metadata: Any,
    ) -> None:
        try:
            module = sys._getframe(1).f_globals.get("__name__") or _log.name
        except ValueError:  # pragma: no cover - no caller frame
            module = _log.name
        self._spec = _Spec("op", operation_name, provider, module)
        self._repository = repository
        self._metadata = metadata or None
        self._run: Optional[_Run] = None

    @property
    def correlation_id(self) -> Optional[str]:
        """The correlation id of the block (None outside it or when disabled)."""
        return self._run.correlation_id if self._run is not None else None

    @property
    def trace_id(self) -> Optional[str]:
        """The performance trace id of the block (None outside it or when disabled)."""
        return self._run.trace_id if self._run is not None else None

    def __enter__(self) -> MonitoringContext:
        if self._run is not None:
            raise RuntimeError("MonitoringContext is already active (it is not reentrant)")
        if _enabled is True or is_monitoring_enabled():
            run = _Run(self._spec, (), {}, self._repository, self._metadata)
            self._run = run
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        run, self._run = self._run, None
        if run is not None:
            if exc is None and exc_type is not None:  # pragma: no cover - old-style raise
                exc = exc_type()
            run.finish(exc)

    async def __aenter__(self) -> MonitoringContext:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)
