"""Correlation ids and context for logs, traces and child processes, built on ``contextvars``.

A correlation id is a W3C trace-id (32 lowercase hex), so it drops straight into
OpenTelemetry, Elasticsearch (``trace.id``) and Cloud Logging. Contexts nest: an inner
:func:`correlation_context` inherits the outer id and merges its attributes; an explicit
``correlation_id=`` wins. Each context also gets its own span id (16 hex), which is what
a child process receives as the parent in ``TRACEPARENT``.

``contextvars`` give every asyncio task its own view, but ``ThreadPoolExecutor.submit``
and ``threading.Thread`` start from an empty context (verified on 3.11-3.13), so a
parallel cloner must use the helpers of :mod:`mgit_monitoring.context_threads`.

Nothing is read at import: ``TRACEPARENT`` is adopted only when :func:`adopt_traceparent`
is called (``setup_structured_logging`` calls it).
"""

from __future__ import annotations

import contextvars
import functools
import os
import random
import re
import threading
from types import MappingProxyType
from typing import (
    Any,
    Callable,
    Dict,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    TypeVar,
    cast,
)

from mgit_monitoring import fork_hooks
from mgit_monitoring.wrapping import function_kind

__all__ = [
    "CURRENT_SCOPE",
    "PROCESS_SCOPE",
    "ProcessScope",
    "Scope",
    "TraceParent",
    "adopt_traceparent",
    "child_env",
    "correlation_context",
    "current_scope",
    "enter_scope",
    "format_traceparent",
    "get_context",
    "get_correlation_id",
    "get_span_id",
    "get_traceparent",
    "git_operation_context",
    "new_span_id",
    "new_trace_id",
    "operation_context",
    "parse_traceparent",
    "provider_context",
    "reset_process_trace",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX16 = re.compile(r"[0-9a-f]{16}\Z")
# W3C trace-context §3.2: version-traceid-parentid-flags, lowercase hex only; later
# versions may append fields after another "-", version 00 may not.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z")
_ZERO32 = "0" * 32
_ZERO16 = "0" * 16


class TraceParent(NamedTuple):
    """A parsed W3C ``traceparent`` value."""

    version: str
    trace_id: str
    parent_id: str
    flags: str


# Ids come from a per-process ``random.Random`` seeded from os.urandom (and re-seeded in a
# forked child, so parent and child never repeat each other's ids). W3C trace-context asks
# for ids that are random and unique, not cryptographically unpredictable; two os.urandom
# calls cost ~1.4 us per scope on the reference VM, getrandbits ~0.1 us. Created on first
# use, never at import.
_rng_lock = threading.Lock()


def _seed(rng: random.Random) -> None:
    rng.seed(int.from_bytes(os.urandom(32), "big"))


def _first_getrandbits(k: int) -> int:
    """Create the process's generator (and its fork hook) on first use; then delegate."""
    global _getrandbits
    with _rng_lock:
        if _getrandbits is _first_getrandbits:
            rng = random.Random()  # nosec B311 # ids, not secrets (see above)
            _seed(rng)
            fork_hooks.after_fork_in_child(lambda: _seed(rng))
            _getrandbits = rng.getrandbits  # C method, atomic under the GIL
    return _getrandbits(k)


_getrandbits: Callable[[int], int] = _first_getrandbits


def new_trace_id() -> str:
    """Return a random W3C trace-id: 32 lowercase hex digits, never all zero."""
    while True:
        value = _getrandbits(128)
        if value:
            return "%032x" % value  # noqa: UP031 - %-format is ~2x faster here


def new_span_id() -> str:
    """Return a random W3C span (parent) id: 16 lowercase hex digits, never all zero."""
    while True:
        value = _getrandbits(64)
        if value:
            return "%016x" % value  # noqa: UP031


def parse_traceparent(value: str | None) -> TraceParent | None:
    """Parse a ``traceparent`` header/env value; None for anything invalid (never raises)."""
    if not isinstance(value, str):
        return None
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO32 or parent_id == _ZERO16:
        return None
    return TraceParent(version, trace_id, parent_id, flags)


def format_traceparent(trace_id: str, span_id: str, flags: str = "01") -> str:
    """Render a version-00 ``traceparent`` value."""
    return f"00-{trace_id}-{span_id}-{flags}"


def _normalise_id(value: Any) -> Tuple[str | None, str | None]:
    """Map an explicit correlation id to ``(trace_id, original)``; never raises.

    32 hex digits (any case) or a UUID is the trace-id itself. Any other non-empty value
    (an upstream ``X-Correlation-ID`` such as ``job-42``) maps to a stable trace-id (the
    first 128 bits of its SHA-256), so the same external id always joins the same trace,
    and is returned as ``original`` to be logged next to it, where grep finds it.
    """
    text = str(value).strip()
    candidate = text.lower().replace("-", "")
    if candidate == _ZERO32 or not text:  # W3C: the all-zero trace-id is invalid
        return None, None
    if _HEX32.match(candidate):
        return candidate, None
    text = text[:_MAX_EXTERNAL_ID]
    import hashlib  # here, not at import: ~3 MB of OpenSSL an idle server never needs

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32], text


_MAX_EXTERNAL_ID = 128
"""Longest external correlation id kept (longer ones are truncated before hashing)."""


class Scope:
    """One correlation scope: what :data:`CURRENT_SCOPE` holds while a context is active.

    Immutable once made (entering a context sets a new Scope, copy-on-write), so a log
    record may keep the one it was made in and be formatted later, even in another process
    (it pickles). Attributes:

    * ``trace_id`` (32 hex), ``span_id`` (16 hex) and ``flags`` (2 hex): the W3C ids;
    * ``attrs``: the merged attributes (operation, organization, provider ...), never
      mutated, and possibly shared by several scopes (see ``attrs_cache``);
    * ``attrs_cache``: renderings of ``attrs`` by the log formatter, keyed by its own
      choice (the masker); shared by every scope that holds the same ``attrs`` dict (a
      decorator's per-call scopes, an inner scope that changed nothing), so they are
      rendered once, not once per scope;
    * ``log_cache``: the formatter's rendering of this scope, ids included (a pair of the
      formatter's key and the text), or None.

    Only the log formatter writes the two caches; they are not part of a pickle.
    """

    __slots__ = ("attrs", "attrs_cache", "flags", "log_cache", "span_id", "trace_id")

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        flags: str,
        attrs: Dict[str, Any],
        attrs_cache: Optional[Dict[Any, Any]] = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.attrs = attrs
        self.attrs_cache: Dict[Any, Any] = {} if attrs_cache is None else attrs_cache
        self.log_cache: Any = None

    def __reduce__(self) -> Tuple[Any, ...]:
        # A record carrying its scope is pickled by SocketHandler (protocol 1, which cannot
        # pickle __slots__) and multiprocessing queues: the ids and attributes travel, the
        # formatter caches (they hold maskers) are rebuilt on the other side.
        return (Scope, (self.trace_id, self.span_id, self.flags, self.attrs))

    @property
    def view(self) -> Mapping[str, Any]:
        """A read-only view of the attributes."""
        return MappingProxyType(self.attrs)


CURRENT_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "mgit_monitoring_correlation", default=None
)
"""The active :class:`Scope`, or None outside every context (then :data:`PROCESS_SCOPE`
applies). Set only by :func:`correlation_context` and :func:`enter_scope`; read it with
``CURRENT_SCOPE.get()`` (or :func:`current_scope`), reset it with the token they return."""


class ProcessScope:
    """The scope that applies outside every context: the process's own trace.

    Adopted from ``TRACEPARENT`` by :func:`adopt_traceparent`, otherwise minted on first
    use (:meth:`get`); :func:`reset_process_trace` forgets it. ``state`` is the Scope (or
    None before first use), ``adopted`` says whether it came from ``TRACEPARENT`` (then
    new top-level contexts join its trace), ``lock`` guards changes to both.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: Scope | None = None
        self.adopted = False

    def get(self) -> Scope:
        """The process scope, minted on first use."""
        state = self.state
        if state is None:
            with self.lock:
                if self.state is None:
                    self.state = Scope(new_trace_id(), new_span_id(), "01", {})
                state = self.state
        return state


PROCESS_SCOPE = ProcessScope()
"""The process's :class:`ProcessScope` (one per process)."""


def adopt_traceparent(environ: Mapping[str, str] | None = None) -> bool:
    """Adopt a valid ``TRACEPARENT`` from ``environ`` (default ``os.environ``) as the process trace.

    Afterwards, log lines outside any context and new top-level contexts carry its
    trace-id, so this process's logs nest under the caller's trace (a CI job, a parent
    mgit). An invalid or missing value is ignored. Returns whether one was adopted.
    """
    env = os.environ if environ is None else environ
    parsed = parse_traceparent(env.get("TRACEPARENT"))
    if parsed is None:
        return False
    with PROCESS_SCOPE.lock:
        # The caller's span is our parent; this process gets a span of its own.
        PROCESS_SCOPE.state = Scope(parsed.trace_id, new_span_id(), parsed.flags, {})
        PROCESS_SCOPE.adopted = True
    return True


def reset_process_trace() -> None:
    """Forget the adopted or minted process trace (tests; a worker starting a new run)."""
    with PROCESS_SCOPE.lock:
        PROCESS_SCOPE.state = None
        PROCESS_SCOPE.adopted = False


def current_scope() -> Scope:
    """Return the active :class:`Scope`, or the process scope when no context is active."""
    state = CURRENT_SCOPE.get()
    return state if state is not None else PROCESS_SCOPE.get()


def get_correlation_id() -> str:
    """Return the active correlation id (32 lowercase hex); one is minted when none is active."""
    return current_scope().trace_id


def get_span_id() -> str:
    """Return the span id of the active context (16 lowercase hex)."""
    return current_scope().span_id


def get_context() -> Mapping[str, Any]:
    """Return the active attributes (operation, organization, provider, ...), read-only."""
    state = CURRENT_SCOPE.get()
    return MappingProxyType(state.attrs if state is not None else {})


def get_traceparent() -> str:
    """Return the ``traceparent`` value a child of the active context should receive."""
    state = current_scope()
    return format_traceparent(state.trace_id, state.span_id, state.flags)


_MISSING: Any = object()
_EXTERNAL = "external_correlation_id"


def _unchanged(outer: Dict[str, Any], changes: Dict[str, Any]) -> bool:
    """Whether merging ``changes`` into ``outer`` would give an equal dict."""
    for key, value in changes.items():
        have = outer.get(key, _MISSING)
        if have is not value and not (type(value) is str and have == value):
            return False
    return True


def _new_state(operation: Optional[str], correlation_id: Any, attrs: Dict[str, Any]) -> Scope:
    """The scope :func:`correlation_context` enters, computed when it is entered."""
    outer = CURRENT_SCOPE.get()
    explicit, original = (None, None) if correlation_id is None else _normalise_id(correlation_id)
    if explicit is not None:
        trace_id, flags = explicit, "01"
    elif outer is not None:
        trace_id, flags = outer.trace_id, outer.flags
    elif PROCESS_SCOPE.adopted:
        proc = PROCESS_SCOPE.get()
        trace_id, flags = proc.trace_id, proc.flags
    else:
        trace_id, flags = new_trace_id(), "01"
    changes: Dict[str, Any] = {} if operation is None else {"operation": operation}
    for key, value in attrs.items():
        if value is not None:
            changes[key] = value
    if original is not None:
        changes[_EXTERNAL] = original
    if outer is not None:
        inherited = outer.attrs
        if explicit is not None and original is None and _EXTERNAL in inherited:
            # A new trace-id given as such: the outer scope's foreign id no longer names it.
            inherited = {k: v for k, v in inherited.items() if k != _EXTERNAL}
        elif _unchanged(inherited, changes):  # nothing new: share the outer dict and cache
            return Scope(trace_id, new_span_id(), flags, inherited, outer.attrs_cache)
        merged = dict(inherited)
        merged.update(changes)
        changes = merged
    return Scope(trace_id, new_span_id(), flags, changes)


class _ScopeManager:
    """What :func:`correlation_context` returns: ``with`` it (or decorate a function)."""

    __slots__ = ("_args", "_token")

    def __init__(self, operation: Any, correlation_id: Any, attrs: Dict[str, Any]) -> None:
        self._args = (operation, correlation_id, attrs)
        self._token: Any = None

    def __call__(self, func: _F) -> _F:
        """Decorate ``func``: each call (each run of a coroutine) gets a scope of its own."""
        scope_args = self._args
        if function_kind(func) == "coroutine":
            # Entered when the coroutine runs, not when it is created (which is when the
            # call returns, before the body even starts).
            @functools.wraps(func)
            async def run_in_scope(*args: Any, **kwargs: Any) -> Any:
                with _ScopeManager(*scope_args):
                    return await func(*args, **kwargs)

            return cast(_F, run_in_scope)

        @functools.wraps(func)
        def call_in_scope(*args: Any, **kwargs: Any) -> Any:
            with _ScopeManager(*scope_args):
                return func(*args, **kwargs)

        return cast(_F, call_in_scope)

    def __enter__(self) -> str:
        if self._token is not None:
            raise RuntimeError("this correlation_context is already active (not reentrant)")
        state = _new_state(*self._args)
        self._token = CURRENT_SCOPE.set(state)
        return state.trace_id

    def __exit__(self, *exc: Any) -> None:
        token, self._token = self._token, None
        CURRENT_SCOPE.reset(token)


def correlation_context(
    operation: str | None = None, correlation_id: str | None = None, **attrs: Any
) -> Any:
    """Run a block under a correlation scope; ``with`` it gives its correlation id.

    Nested scopes inherit the outer id and merge attributes (inner values win); an
    explicit ``correlation_id`` wins: 32 hex or a UUID is used as it is, any other string
    maps to a stable trace-id and is kept as the ``external_correlation_id`` attribute;
    attributes given as None are left as the outer scope has them. A top-level scope gets
    a fresh id, unless a ``TRACEPARENT`` was adopted, whose trace it then joins. The scope
    is computed when the block is entered; the object also works as a decorator of a
    function or coroutine function (each call, or each run of the coroutine, gets a scope).
    """
    return _ScopeManager(operation, correlation_id, attrs)


def enter_scope(
    attrs: Dict[str, Any], attrs_cache: Optional[Dict[Any, Any]] = None
) -> Tuple[Any, Scope]:
    """Enter a scope adding ``attrs`` to the active one; return ``(token, scope)``.

    The same scope as ``with correlation_context(**attrs)`` would enter, for a caller
    that enters one per call (the monitoring decorators) and cannot afford a context
    manager: no dict is built when the outer scope adds no attributes of its own. The
    caller leaves it with ``CURRENT_SCOPE.reset(token)``, in the same context.

    ``attrs`` must hold no None values and must never be mutated afterwards: scopes may
    share it, and ``attrs_cache`` (a dict the caller keeps with ``attrs``, initially
    empty) as their :attr:`Scope.attrs_cache`, so the log formatter renders ``attrs``
    once for all of them.
    """
    outer = CURRENT_SCOPE.get()
    bits = _getrandbits(64)  # new_span_id() inlined (a zero value takes the slow path)
    span_id = "%016x" % bits if bits else new_span_id()  # noqa: UP031
    if outer is None:
        if PROCESS_SCOPE.adopted:
            proc = PROCESS_SCOPE.get()
            trace_id, flags = proc.trace_id, proc.flags
        else:
            bits = _getrandbits(128)
            trace_id, flags = "%032x" % bits if bits else new_trace_id(), "01"  # noqa: UP031
        state = Scope(trace_id, span_id, flags, attrs, attrs_cache)
    else:
        outer_attrs = outer.attrs
        if not outer_attrs:
            pass
        elif _unchanged(outer_attrs, attrs):
            attrs, attrs_cache = outer_attrs, outer.attrs_cache
        else:
            attrs = {**outer_attrs, **attrs}
            attrs_cache = None
        state = Scope(outer.trace_id, span_id, outer.flags, attrs, attrs_cache)
    return CURRENT_SCOPE.set(state), state


def operation_context(operation: str, **attrs: Any) -> Any:
    """Shorthand for ``correlation_context(operation=operation, **attrs)``."""
    return correlation_context(operation=operation, **attrs)


def provider_context(provider: str, organization: str | None = None, **attrs: Any) -> Any:
    """A nested scope with ``provider`` and (when given) ``organization`` attributes."""
    return correlation_context(provider=provider, organization=organization, **attrs)


def git_operation_context(operation: str, repository: str | None = None, **attrs: Any) -> Any:
    """A nested scope with ``git_operation`` and (when given) ``repository`` attributes."""
    return correlation_context(git_operation=operation, repository=repository, **attrs)


def child_env(
    environ: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> Dict[str, str]:
    """Return a copy of ``environ`` (default ``os.environ``) for a child process such as git.

    Adds ``TRACEPARENT`` (the active trace and span) and ``GIT_TRACE2_PARENT_SID`` (so
    git's own trace2 events nest under this trace id), then ``extra``. The parent's
    environment is never modified.
    """
    env = dict(os.environ if environ is None else environ)
    state = current_scope()
    env["TRACEPARENT"] = format_traceparent(state.trace_id, state.span_id, state.flags)
    env["GIT_TRACE2_PARENT_SID"] = state.trace_id
    if extra:
        env.update(extra)
    return env
