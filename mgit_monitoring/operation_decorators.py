"""The monitoring decorators and what each monitored call does.

``monitor_mgit_operation``, ``monitor_git_operation``, ``monitor_provider_api_call``,
``monitor_authentication`` and the :class:`MonitoringContext` block. They are imported
from :mod:`mgit_monitoring.integration` (or the package) in mgit's code; that module also
wires the objects they report to.

The decorators work on sync and async functions, preserve name, docstring and signature,
and look the collector and monitor up at CALL time, so decorating at import and calling
``setup_monitoring_integration()`` later works (the original captured them when it
decorated). Exceptions, BaseException included (KeyboardInterrupt, task cancellation),
propagate unchanged and are recorded as failures by type; ``SystemExit`` with code 0 or
None counts as success. With monitoring disabled (``MGIT_MONITORING_ENABLED=false``) every
decorator is a pass-through. A function decorated while monitoring is disabled is
returned as it is (no wrapper, no cost; enabling monitoring later does not reach it); one
decorated while enabled and disabled later keeps a wrapper that tests one flag per call.
Before any setup the flag is read once from the environment. A failure inside monitoring
(a broken handler, filter or metric) never breaks the decorated call: it is swallowed
with one warning per kind on the ``mgit_monitoring.integration`` logger.

Decorator log lines go to the logger named after the decorated function's module (as
``logging.getLogger(__name__)`` would), so the host's logging configuration applies; their
module/function/line name the call site. An operation writes one INFO line, at its end
(ERROR when it failed); its "Operation started" line is DEBUG.

Methods, classmethods and staticmethods (the decorator above or below ``@classmethod``)
and ``functools.partial`` objects can be decorated. A generator or async generator
function is monitored over its ITERATION: from the first step until it is exhausted,
raises or is closed; closing it early (``break`` out of the loop) is a success, not a
failure. Its body, and the calls it makes, run in the operation's correlation scope and
under its trace; the consumer's own context is untouched between steps.
"""

from __future__ import annotations

import functools
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
    Optional,
    Tuple,
    TypeVar,
    cast,
    overload,
)

from mgit_monitoring.api_responses import describe_response
from mgit_monitoring.collector import get_metrics_collector
from mgit_monitoring.config import enabled_from_env
from mgit_monitoring.context import CURRENT_SCOPE, enter_scope
from mgit_monitoring.performance import get_performance_monitor
from mgit_monitoring.warn_once import WarnOnce
from mgit_monitoring.wrapping import (
    for_descriptors,
    function_kind,
    is_success,
    wrap_generator_function,
)

__all__ = [
    "REPOSITORY_PARAMETERS",
    "UNKNOWN_METHOD",
    "WARNINGS",
    "MonitoringContext",
    "is_monitoring_enabled",
    "mask_repository",
    "monitor_async_mgit_operation",
    "monitor_authentication",
    "monitor_git_operation",
    "monitor_mgit_operation",
    "monitor_provider_api_call",
    "set_monitoring_enabled",
    "warn_skipped",
]

if TYPE_CHECKING:  # loaded on the first log line that is emitted, not at import
    from mgit_monitoring.structured_logger import StructuredLogger

_F = TypeVar("_F", bound=Callable[..., Any])
_mask_credentials: Any = None  # masking.mask_credentials, imported on first use

UNKNOWN_METHOD = "unknown"
"""The ``method`` label of a provider API call when nothing tells the method: the decorator
was given no ``method=`` and the result (or error) carries no request, e.g. a function that
returns None or parsed data."""

LOGGER_NAME = "mgit_monitoring.integration"
"""Where monitoring's own warnings go (a skipped step, a bad setting)."""

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
# scheme://userinfo@ anywhere in the text (a repository, or an error message quoting one).
_URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^/?#\s]*@")
_MAX_ERROR_TEXT = 500
_CONCURRENT = "mgit_concurrent_operations"
_DEBUG, _INFO, _WARNING, _ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
_clock = time.perf_counter
_reset_scope = CURRENT_SCOPE.reset

# -- the enabled flag and monitoring's own warnings ------------------------------------------

_enabled_lock = threading.Lock()
# The one flag every wrapper tests: True/False once known, None before the first setup
# or call (then resolved from the environment on first use).
_enabled: bool | None = None

WARNINGS = WarnOnce(LOGGER_NAME, limit=64)
"""Which monitoring steps already warned (cleared by ``reset_monitoring_integration``)."""


def warn_skipped(where: str, exc: BaseException | str) -> None:
    """One WARNING per (site, exception type), DEBUG after; never raises, bounded memory."""
    kind = type(exc).__name__ if isinstance(exc, BaseException) else str(exc)
    try:
        if isinstance(exc, BaseException):
            WARNINGS.warn((where, kind), "monitoring step skipped (%s): %s: %s", where, kind, exc)
        else:
            WARNINGS.warn((where, kind), "%s: %s", where, exc)
    except Exception:  # noqa: BLE001  # nosec B110 # logging itself may be what is broken
        pass


def set_monitoring_enabled(flag: bool | None) -> None:
    """Switch every decorator on or off (``setup_monitoring_integration`` does); None forgets
    the flag, which is then read from the environment again on the next decorated call."""
    global _enabled
    with _enabled_lock:
        _enabled = None if flag is None else bool(flag)


def _resolve_enabled() -> bool:
    """The enabled flag; before any setup it comes from the environment, read once."""
    global _enabled
    with _enabled_lock:
        if _enabled is None:
            try:
                # That variable alone, leniently: a bad value is one warning and "off".
                _enabled = enabled_from_env(strict=False)
            except Exception as exc:  # noqa: BLE001 - a broken environment must not break mgit
                warn_skipped("configuration", exc)
                _enabled = False
        return _enabled


def is_monitoring_enabled() -> bool:
    """Whether the decorators record anything (``MonitoringConfig.enabled``)."""
    flag = _enabled
    return flag if flag is not None else _resolve_enabled()


# -- what the decorators take from a call ---------------------------------------------------


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
    mask = _mask_credentials
    if mask is None:
        mask = _load_masking()
    return cast(str, mask(text))


def _load_masking() -> Any:
    global _mask_credentials
    from mgit_monitoring.masking import mask_credentials  # its patterns compile on import

    _mask_credentials = mask_credentials
    return mask_credentials


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = f"<unprintable {type(exc).__name__}>"
    return mask_repository(text[:_MAX_ERROR_TEXT]) if text else ""


class _ArgPicker:
    """Takes one argument out of a call by parameter name (the signature is read once)."""

    __slots__ = ("default", "found", "index", "keyword")

    def __init__(self, func: Callable[..., Any], names: Tuple[str, ...]) -> None:
        self.keyword: Optional[str] = None
        self.index: Optional[int] = None
        self.default: Any = None
        self.found = False
        import inspect  # the first call of a Git-decorated function only

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
        "stdlogger",
        "tags",
        "trace_meta",
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
        self.stdlogger: Optional[logging.Logger] = None
        # Computed once: the per-call path only copies these when a repository is added.
        self.git = kind == "git"
        # One name per operation: the metric label, the error label, the trace and the log
        # lines all say ``name`` ("pull", not "git_pull" in some of them); a Git operation
        # is told apart by its metric family (mgit_git_*) and its ``git_operation`` field.
        self.op_name = name
        fields: Dict[str, Any] = {}
        if provider is not None:
            fields["provider"] = provider
        if self.git:
            fields["git_operation"] = name
        self.fields: Mapping[str, Any] = fields
        self.tags: Optional[Dict[str, str]] = {"provider": provider} if provider else None
        # A trace's metadata, as the monitor would build it from the tags alone.
        self.trace_meta = {"tags": self.tags} if self.tags else None
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
            from mgit_monitoring.structured_logger import get_structured_logger

            slogger = self.slogger = get_structured_logger(self.logger_name)
        return slogger

    def enabled_for(self, level: int) -> bool:
        """Whether a line at ``level`` would be emitted: asked of the standard logger, so a
        process whose lines are all filtered never loads the structured logger."""
        std = self.stdlogger
        if std is None:
            std = self.stdlogger = logging.getLogger(self.logger_name)
        return std.isEnabledFor(level)

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
    return name if isinstance(name, str) and name else LOGGER_NAME


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
        "trace",
        "trace_id",
    )

    def __init__(
        self,
        spec: _Spec,
        args: Tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] = {},  # noqa: B006 - never mutated
        repository: Any = None,
        metadata: Optional[Dict[str, Any]] = None,
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
        trace_meta = spec.trace_meta  # the trace's metadata: its tags, likewise shared
        self.collector: Any = None
        self.monitor: Any = None
        self.trace: Any = None
        self.gauge = self.token = self.repository = None
        span = None
        try:
            self.collector = collector = get_metrics_collector()
            if git:
                try:
                    value = spec.pick(REPOSITORY_PARAMETERS, args, kwargs)
                    repository = value if value is not None else _guess_repository(args)
                except Exception as exc:  # noqa: BLE001
                    warn_skipped("repository argument", exc)
                    repository = None
            if git or repository is not None:
                self.repository = repo = mask_repository(repository)
                fields = {**fields, "repository": repo}
                tags = {**(tags or {}), "repository": repo}
                trace_meta = {"tags": tags}
                if git:
                    attrs: Dict[str, Any] = {"git_operation": spec.name, "repository": repo}
                else:
                    attrs = {**spec.scope, "repository": repo}
                self.token, state = enter_scope(attrs)
            else:
                self.token, state = enter_scope(spec.scope, spec.scope_cache)
            self.correlation_id = state.trace_id
            span = state.span_id
            if not git and collector.enabled:
                gauge = collector.registry.get(_CONCURRENT)
                if gauge is not None:
                    gauge.inc()
                    self.gauge = gauge
        except Exception as exc:  # noqa: BLE001 - monitoring never breaks the call
            warn_skipped("metrics", exc)
        if metadata:
            fields = {**metadata, **fields}
            trace_meta = {**metadata, "tags": tags} if tags else metadata
        self.fields = fields
        if spec.log:
            try:
                # The start line is DEBUG: one INFO line per operation, its end (which
                # carries the duration and the outcome). Once the structured logger is
                # loaded it checks the level itself; until then the standard logger is
                # asked, so that a process whose lines are all filtered never loads it.
                slogger = spec.slogger
                if slogger is not None or spec.enabled_for(_DEBUG):
                    (slogger or spec.logger()).log_operation(
                        _DEBUG, spec.op_name, "started", None, fields, _STACKLEVEL
                    )
            except Exception as exc:  # noqa: BLE001
                warn_skipped("logging", exc)
        if spec.track:
            try:
                # Its metadata is never mutated: the trace keeps it without a copy (and
                # the tags in it, where the monitor would copy tags given apart). Its id is
                # the scope's span id, so the operation's log lines (span_id) and its trace
                # name it alike (a new id only if another trace had it).
                monitor = get_performance_monitor()
                trace = monitor.begin_trace(spec.op_name, None, trace_meta, span)
                if trace is not None:
                    self.trace, self.monitor = trace, monitor
                    self.trace_id = trace.operation_id
            except Exception as exc:  # noqa: BLE001
                warn_skipped("trace", exc)
        self.t0 = _clock()

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        duration = _clock() - self.t0
        spec = self.spec
        if exc is None:
            success, error_type = True, None
        else:
            success = is_success(exc)
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
            warn_skipped("metrics", err)
        if self.trace is not None:
            try:
                # The type name, not the exception: its message may hold a credential.
                self.monitor.finish_trace(self.trace, success, error_type)
            except Exception as err:  # noqa: BLE001
                warn_skipped("trace", err)
        if spec.log:
            try:
                level = _INFO if success else _ERROR
                slogger = spec.slogger
                # A failure's fields (its masked message) are built only for a line that
                # is written; a success's line checks its level in log_operation.
                if (slogger is not None and error_type is None) or spec.enabled_for(level):
                    slogger = slogger or spec.logger()
                    fields = self.fields
                    if error_type is not None:
                        fields = {
                            **fields,
                            "error_type": error_type,
                            "error": _error_text(cast(BaseException, exc)),
                        }
                    slogger.log_operation(
                        level,
                        spec.op_name,
                        "completed" if success else "failed",
                        duration,
                        fields,
                        _STACKLEVEL,
                    )
            except Exception as err:  # noqa: BLE001
                warn_skipped("logging", err)
        # Always undone, whatever failed above: a stuck gauge or scope would lie forever.
        gauge, token = self.gauge, self.token
        if gauge is not None:
            self.gauge = None
            try:
                gauge.dec()
            except Exception as err:  # noqa: BLE001
                warn_skipped("metrics", err)
        if token is not None:
            self.token = None
            try:
                _reset_scope(token)
            except Exception as err:  # noqa: BLE001
                warn_skipped("correlation context", err)


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
                warn_skipped("api provider", exc)
                provider = "unknown"
        self.provider = provider
        self.t0 = _clock()

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        duration = _clock() - self.t0
        spec, provider = self.spec, self.provider
        status, method, limited = describe_response(result if exc is None else exc, spec.method)
        # Nothing said which method (no method= given, and the result or error carries no
        # request): "unknown", the package's one spelling of it, as for the status code.
        method = method.upper() if method else UNKNOWN_METHOD
        if status is not None:
            code = str(status)
        else:  # no HTTP status seen: say so instead of inventing 200 or 500
            code = "unknown" if exc is None else "error"
        error_type = None if is_success(exc) else type(exc).__name__
        endpoint = cast(str, spec.endpoint)
        try:
            collector = get_metrics_collector()
            collector.record_api_call(method, provider, code, duration, endpoint)
            if limited and status != 429:  # record_api_call already counts 429
                collector.record_rate_limit_hit(provider)
            if error_type is not None:
                # Named as the API metrics name the call: by its endpoint.
                collector.record_error(error_type, endpoint, provider)
        except Exception as err:  # noqa: BLE001
            warn_skipped("metrics", err)
        if not spec.log:
            return
        if error_type is not None or (status is not None and status >= 500):
            level = _ERROR
        elif status is not None and status >= 400:
            level = _WARNING
        else:
            level = _INFO
        try:
            if not spec.enabled_for(level):
                return
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
            log = {_ERROR: logger.error, _WARNING: logger.warning, _INFO: logger.info}[level]
            log("API %s %s -> %s (%.3fs)", method, endpoint, code, duration, **fields)
        except Exception as err:  # noqa: BLE001
            warn_skipped("logging", err)


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
            warn_skipped("auth arguments", exc)

    def finish(self, exc: BaseException | None, result: Any = None) -> None:
        spec, provider, org = self.spec, self.provider, self.organization
        # A function that reports failure by returning False failed too.
        success = is_success(exc) and result is not False
        error_type = None if is_success(exc) else type(exc).__name__
        try:
            collector = get_metrics_collector()
            collector.record_authentication(provider, org, success)
            if error_type is not None:
                collector.record_error(error_type, spec.name, provider)
        except Exception as err:  # noqa: BLE001
            warn_skipped("metrics", err)
        if not spec.log:
            return
        try:
            if not spec.enabled_for(_INFO if success else _WARNING):
                return
            fields: Dict[str, Any] = {
                "operation": spec.name,
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
            warn_skipped("logging", err)


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
    kind = function_kind(func)
    if kind in ("generator", "async_generator"):
        begin = functools.partial(call, spec)
        return cast(_F, wrap_generator_function(func, begin, is_monitoring_enabled))
    if kind == "coroutine":

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


@overload
def monitor_mgit_operation(operation_name: _F, /) -> _F: ...
@overload
def monitor_mgit_operation(
    operation_name: str | None = None,
    provider: str | None = None,
    track_performance: bool = True,
    log_result: bool = True,
) -> Callable[[_F], _F]: ...


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
    ``mgit_concurrent_operations`` gauge up and back down, "Operation started" (DEBUG) and
    "Operation completed|failed" log lines (``log_result``), a performance trace
    (``track_performance``), ``mgit_operations_total``, ``..._success_total`` or
    ``..._failure_total``, ``mgit_operation_duration_seconds`` and, on failure,
    ``mgit_errors_total{error_type}``.
    """
    if callable(operation_name) or isinstance(operation_name, (classmethod, staticmethod)):
        return monitor_mgit_operation(None, provider, track_performance, log_result)(operation_name)

    @for_descriptors
    def decorate(func: _F) -> _F:
        name = operation_name or _func_name(func)
        spec = _Spec("op", name, provider, _logger_name(func), func, track_performance, log_result)
        return _wrap(func, spec, _Run)

    return decorate


monitor_async_mgit_operation = monitor_mgit_operation
"""The original's async decorator name; :func:`monitor_mgit_operation` handles both."""


@overload
def monitor_git_operation(operation_type: _F, /) -> _F: ...
@overload
def monitor_git_operation(
    operation_type: str | None = None,
    track_performance: bool = True,
    log_result: bool = True,
) -> Callable[[_F], _F]: ...


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
    (``git_operation``, ``repository``), the trace (tag ``repository``) and
    ``mgit_git_operations_total{operation,status}``/``mgit_git_operation_duration_seconds``.

    The operation has ONE name everywhere: ``operation_type`` ("pull") is the metric label,
    the ``operation`` of ``mgit_errors_total``, the trace's name and the ``operation`` of
    the log lines (which also carry ``git_operation``).
    """
    if callable(operation_type) or isinstance(operation_type, (classmethod, staticmethod)):
        return monitor_git_operation(None, track_performance, log_result)(operation_type)

    @for_descriptors
    def decorate(func: _F) -> _F:
        name = operation_type or _func_name(func)
        if operation_type is None and name.startswith("git_"):
            name = name[4:]
        spec = _Spec("git", name, None, _logger_name(func), func, track_performance, log_result)
        return _wrap(func, spec, _Run)

    return decorate


@overload
def monitor_provider_api_call(provider_name: _F, /) -> _F: ...
@overload
def monitor_provider_api_call(
    provider_name: str | None = None,
    endpoint: str | None = None,
    method: str | None = None,
    log_result: bool = True,
) -> Callable[[_F], _F]: ...


def monitor_provider_api_call(
    provider_name: str | Callable[..., Any] | None = None,
    endpoint: str | None = None,
    method: str | None = None,
    log_result: bool = True,
) -> Any:
    """Decorator: time a provider API call and record its real outcome.

    ``provider_name`` defaults to ``self.provider_name`` (the first argument's), then a
    ``provider`` keyword argument; ``endpoint`` to the function name; ``method`` to the
    request method the result or the raised error carries (``response.request.method``, as
    requests and httpx set it, or a ``.method``), else ``unknown`` (:data:`UNKNOWN_METHOD`):
    a function that returns None or parsed data says nothing about the request, so pass
    ``method="GET"`` to label it. The status code is the one the result
    or the raised error carries (:func:`~mgit_monitoring.api_responses.extract_status_code`);
    without one it is recorded as ``unknown`` (returned) or ``error`` (raised), never
    invented. Records ``mgit_api_requests_total``, ``mgit_api_request_duration_seconds``,
    ``mgit_api_errors_total`` (status >= 400), ``mgit_api_rate_limit_hits_total``
    (:func:`~mgit_monitoring.api_responses.is_rate_limited`), ``mgit_errors_total`` for a
    raised error (``operation`` is the endpoint, the name the API metrics use), and one log
    line (INFO; WARNING for 4xx; ERROR for 5xx or an exception).
    """
    if callable(provider_name) or isinstance(provider_name, (classmethod, staticmethod)):
        return monitor_provider_api_call(None, endpoint, method, log_result)(provider_name)

    @for_descriptors
    def decorate(func: _F) -> _F:
        spec = _Spec(
            "api", _func_name(func), provider_name, _logger_name(func), func, False, log_result
        )
        spec.endpoint = endpoint or spec.name
        spec.method = method.upper() if method else None
        return _wrap(func, spec, _ApiCall)

    return decorate


@overload
def monitor_authentication(provider_name: _F, /) -> _F: ...
@overload
def monitor_authentication(
    provider_name: str | None = None, log_result: bool = True
) -> Callable[[_F], _F]: ...


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

    @for_descriptors
    def decorate(func: _F) -> _F:
        spec = _Spec(
            "auth", "authentication", provider_name, _logger_name(func), func, False, log_result
        )
        return _wrap(func, spec, _AuthCall)

    return decorate


class MonitoringContext:
    """``with MonitoringContext("bulk_clone", provider="github"):`` (also ``async with``).

    The block is monitored like a :func:`monitor_mgit_operation` call: correlation scope,
    concurrency gauge, start (DEBUG) and end log lines carrying ``metadata`` (on the logger
    of the module that created the context), a trace carrying it, and operation metrics.
    ``repository`` is masked. Metadata keys may be any names (``name``, ``module`` ... are
    fine). Exceptions are recorded and never suppressed. Entering returns the context;
    ``correlation_id`` and ``trace_id`` are then set (None when monitoring is disabled).
    """

    def __init__(
        self,
        operation_name: str,
        provider: str | None = None,
        repository: Any = None,
        **metadata: Any,
    ) -> None:
        try:
            module = sys._getframe(1).f_globals.get("__name__") or LOGGER_NAME
        except ValueError:  # pragma: no cover - no caller frame
            module = LOGGER_NAME
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

    # The async forms repeat the sync bodies rather than call them: the log lines name the
    # frame _STACKLEVEL frames up, which must be the code that entered the block.
    async def __aenter__(self) -> MonitoringContext:
        if self._run is not None:
            raise RuntimeError("MonitoringContext is already active (it is not reentrant)")
        if _enabled is True or is_monitoring_enabled():
            self._run = _Run(self._spec, (), {}, self._repository, self._metadata)
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        run, self._run = self._run, None
        if run is not None:
            if exc is None and exc_type is not None:  # pragma: no cover - old-style raise
                exc = exc_type()
            run.finish(exc)
