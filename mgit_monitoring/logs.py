"""Structured JSON logging: the formatter, the structured logger and the one-call setup.

:class:`StructuredFormatter` is a plain ``logging.Formatter`` (usable from ``dictConfig``)
that writes one JSON object per line, with the correlation id and context of
:mod:`mgit_monitoring.context` and credentials masked by :mod:`mgit_monitoring.masking`.
:func:`get_structured_logger` returns the seed's ``logger.info("msg", repo=..., ...)``
wrapper; :func:`setup_structured_logging` installs the handlers (stderr, rotating file).

Default line (profile ``default``; ``ecs`` and ``gcp`` rename for those shippers)::

    {"timestamp":"2026-01-01T12:00:00.123Z","level":"INFO","logger":"mgit.operations",
     "message":"Starting clone operation","module":"sync","function":"run","line":42,
     "correlation_id":"4bf9...4736","span_id":"00f0...02b7",
     "correlation":{"correlation_id":"4bf9...4736","operation":"clone_all"},
     "repository":"repo1","provider":"github"}

A caller field whose name the profile itself uses (``message``, ``module``, ``level`` ...)
is kept under ``"fields"`` rather than overwriting the line's own key.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import enum
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Mapping, Tuple, Union

from mgit_monitoring import context as _context
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.masking import CredentialMasker

__all__ = [
    "LOG_FORMAT_ENV",
    "LOG_LEVEL_ENV",
    "PROFILES",
    "StructuredFormatter",
    "StructuredLogger",
    "get_structured_logger",
    "setup_structured_logging",
]

LOG_LEVEL_ENV = "MGIT_MONITORING_LOG_LEVEL"
"""Environment variable giving the default level of :func:`setup_structured_logging`."""

LOG_FORMAT_ENV = "MGIT_MONITORING_LOG_FORMAT"
"""Environment variable choosing the output profile (``default``, ``ecs``, ``gcp``)."""

PROFILES = ("default", "ecs", "gcp")
"""The output shapes :class:`StructuredFormatter` can write."""

ECS_VERSION = "1.6.0"  # what ecs-logging-python emits; the fields used exist since 1.x

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = 10, 20, 30, 40, 50
_RECORD_FIELDS = "mgit_fields"  # the structured logger's fields, as one record attribute
_RECORD_CONTEXT = "mgit_context"  # the correlation scope captured when the record was made
_UNSET: Any = object()

# Attributes every LogRecord has (plus what formatters add): anything else on a record
# came from ``extra=`` or a filter and is written as a field.
_BASE_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_BASE_ATTR_COUNT = len(_BASE_ATTRS)
_RESERVED = _BASE_ATTRS | {
    "message",
    "asctime",
    "taskName",
    "exc_text",
    "stack_info",
    _RECORD_FIELDS,
    _RECORD_CONTEXT,
}

_OWN_KEYS = {
    "default": frozenset(
        {
            "timestamp",
            "level",
            "logger",
            "message",
            "module",
            "function",
            "line",
            "correlation_id",
            "span_id",
            "correlation",
            "exception",
            "stack_info",
            "fields",
        }
    ),
    "ecs": frozenset(
        {
            "@timestamp",
            "log.level",
            "message",
            "ecs.version",
            "log.logger",
            "log.origin.file.name",
            "log.origin.file.line",
            "log.origin.function",
            "trace.id",
            "span.id",
            "labels",
            "error.type",
            "error.message",
            "error.stack_trace",
            "fields",
        }
    ),
    "gcp": frozenset(
        {
            "time",
            "severity",
            "message",
            "logger",
            "logging.googleapis.com/trace",
            "logging.googleapis.com/spanId",
            "logging.googleapis.com/sourceLocation",
            "correlation_id",
            "correlation",
            "exception",
            "stack_info",
            "fields",
        }
    ),
}

_SURROGATES = re.compile("[\ud800-\udfff]")
_encode_str: Any = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)
_MAX_DEPTH = 32


def _make_encoder(ensure_ascii: bool, default: Any) -> Any:
    """Return ``encode(obj) -> str``: compact, no NaN, ``default`` for unknown types.

    Uses json's C encoder object directly when available (the same call JSONEncoder makes
    internally, stable from 3.8 to 3.13), so it is built once instead of once per line.
    Without a cycle check: a cycle raises RecursionError, which the caller handles.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=ensure_ascii, separators=(",", ":"), allow_nan=False, default=default
    )
    c_make = getattr(json.encoder, "c_make_encoder", None)
    str_name = "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring"
    c_str = getattr(json.encoder, str_name, None)
    if c_make is None or c_str is None:
        return encoder.encode
    iterencode = c_make(None, default, c_str, None, ":", ",", False, False, False)
    join = "".join

    def encode(obj: Any) -> str:
        return join(iterencode(obj, 0))

    return encode


def _check_profile(profile: str, source: str = "profile") -> str:
    norm = str(profile).strip().lower()
    if norm not in PROFILES:
        msg = f"invalid {source} {profile!r} (expected one of {', '.join(PROFILES)})"
        raise ConfigError(msg)
    return norm


def _safe_str(obj: Any) -> str:
    """str(obj), falling back to repr and then a placeholder: a log call never raises."""
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unrepresentable {type(obj).__name__}>"


def _jsonable(obj: Any) -> Any:
    """Turn a value json cannot encode into a string (or list) that says what it was."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {_safe_str(obj)}"
    if isinstance(obj, enum.Enum):
        return _safe_str(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):  # MappingProxyType, ChainMap ...: keys get masked by name
        try:
            return dict(obj)
        except Exception:
            pass
    if type(obj).__str__ is object.__str__:
        try:
            return repr(obj)
        except Exception:
            return f"<unrepresentable {type(obj).__name__}>"
    return _safe_str(obj)


def _exception_type_name(etype: type) -> str:
    module = getattr(etype, "__module__", "builtins")
    name = getattr(etype, "__qualname__", etype.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


class StructuredFormatter(logging.Formatter):
    """A ``logging.Formatter`` that renders each record as one line of JSON.

    Args:
        profile: ``"default"`` (the seed's shape), ``"ecs"`` or ``"gcp"``.
        include_correlation: add the correlation id, span id and context.
        mask_credentials: mask secrets in the message, its args, every field (nested),
            the exception text and traceback (on by default).
        masker: a :class:`~mgit_monitoring.masking.CredentialMasker` to use instead of
            the default one (for ``strict`` mode or extra sensitive keys).
        timespec: ``"milliseconds"`` (default) or ``"microseconds"``; always UTC with ``Z``.
        gcp_project: the Google Cloud project, for ``logging.googleapis.com/trace``.
        ensure_ascii: write non-ASCII characters as ``\\uXXXX`` escapes, for a stream
            whose encoding is not UTF-8 (``setup_structured_logging`` turns it on for
            those), where they would otherwise become invalid JSON.

    ``fmt``/``datefmt``/``style``/``validate``/``defaults`` are accepted so that
    ``dictConfig`` can construct it with its ``class`` key, and are ignored.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        profile: str = "default",
        include_correlation: bool = True,
        mask_credentials: bool = True,
        masker: CredentialMasker | None = None,
        timespec: str = "milliseconds",
        gcp_project: str | None = None,
        ensure_ascii: bool = False,
    ) -> None:
        super().__init__()
        self.profile = _check_profile(profile)
        if timespec not in ("milliseconds", "microseconds"):
            msg = f"invalid timespec {timespec!r} (expected 'milliseconds' or 'microseconds')"
            raise ConfigError(msg)
        self.timespec = timespec
        self.include_correlation = bool(include_correlation)
        self.mask_credentials = bool(mask_credentials)
        self.gcp_project = gcp_project
        self.ensure_ascii = bool(ensure_ascii)
        self._masker: CredentialMasker | None = None
        if self.mask_credentials:
            self._masker = masker if masker is not None else _default_masker()
        self._own = _OWN_KEYS[self.profile]
        # Encoders built once: json.dumps(**options) builds one per call, and even
        # JSONEncoder.encode() builds a new C encoder per call (~1.5 us).
        self._encode_obj = _make_encoder(False, self._default)
        # Used when the line holds a lone surrogate (an undecodable file name read with
        # surrogateescape): \\udcff escapes keep it valid UTF-8 JSON and round-trippable.
        self._encode_ascii = _make_encoder(True, self._default)
        self._ts_cache: Tuple[int, str] = (-1, "")

    # -- pieces ---------------------------------------------------------------------------

    def _default(self, obj: Any) -> Any:
        value = _jsonable(obj)
        if self._masker is not None:
            value = self._masker.mask(value)
        return value

    def _timestamp(self, record: logging.LogRecord) -> str:
        created = record.created
        secs = int(created)
        cached = self._ts_cache  # one tuple, so threads never see a torn pair
        if cached[0] != secs:
            cached = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
            self._ts_cache = cached
        if self.timespec == "milliseconds":
            return f"{cached[1]}.{int(record.msecs):03d}Z"
        return f"{cached[1]}.{int((created - secs) * 1e6):06d}Z"

    def _state(self, record: logging.LogRecord) -> Any:
        state = record.__dict__.get(_RECORD_CONTEXT, _UNSET)
        if state is _UNSET:
            state = _context.CURRENT_SCOPE.get()
        if state is None:
            state = _context.PROCESS_SCOPE.get()
        return state

    def _context_attrs(self, state: Any) -> Dict[str, Any]:
        """The scope's attributes, masked once per attribute dict and cached with it.

        The cache is keyed by masker (None when unmasked) and shared by every scope that
        holds the same attribute dict (each call of a decorated function, for example).
        """
        entry = state.attrs_cache.get(self._masker)
        if entry is None:
            entry = self._render_attrs(state)
        return entry[0]

    def _render_attrs(self, state: Any) -> Tuple[Dict[str, Any], str | None]:
        """(masked attrs, their JSON members as ',"k":v...' or None if not cacheable)."""
        attrs = dict(state.attrs)
        if self._masker is not None:
            attrs = self._masker.mask(attrs)
        body: str | None = None
        if "correlation_id" not in attrs:  # it would replace the id's value in the object
            encoded = self._encode(attrs)
            body = "," + encoded[1:-1] if len(encoded) > 2 else ""
        entry = (attrs, body)
        state.attrs_cache[self._masker] = entry
        return entry

    def _exception(self, record: logging.LogRecord) -> Tuple[str, str, str] | None:
        """(type, message, traceback) of the record's exception, masked; None without one."""
        ei = record.exc_info
        if ei and ei[0] is not None:
            etype = _exception_type_name(ei[0])
            emsg = _safe_str(ei[1])
            try:
                tb = self.formatException(ei)
            except Exception:
                tb = f"<traceback unavailable: {emsg}>"
        elif record.exc_text:
            etype, emsg, tb = "", "", record.exc_text
        else:
            return None
        if self._masker is not None:
            emsg = self._masker.mask_text(emsg)
            tb = self._masker.mask_text(tb)
        return etype, emsg, tb

    def _stack(self, record: logging.LogRecord) -> str | None:
        if not record.stack_info:
            return None
        text = self.formatStack(record.stack_info)
        return self._masker.mask_text(text) if self._masker is not None else text

    def _fields(self, record: logging.LogRecord) -> Dict[str, Any] | None:
        """The caller's fields: the structured logger's, then ``extra=``/filter attributes."""
        d = record.__dict__
        fields = d.get(_RECORD_FIELDS)
        # Counting is cheaper than a set difference: a record with exactly the standard
        # attributes (plus ours and what formatters cache on it) carries no extra ones.
        expected = _BASE_ATTR_COUNT + (fields is not None) + (_RECORD_CONTEXT in d)
        if "message" in d:
            expected += 1
        if "asctime" in d:
            expected += 1
        if len(d) != expected:
            extra_keys = d.keys() - _RESERVED
            if extra_keys:
                merged = dict(fields) if fields else {}
                for key in d:  # record order, not set order, so lines are stable
                    if key in extra_keys and key not in merged:
                        merged[key] = d[key]
                fields = merged
        if not fields:
            return None
        if self._masker is not None:
            fields = self._masker.mask(fields)
        return fields

    def _add_fields(self, out: Dict[str, Any], fields: Dict[str, Any] | None) -> None:
        if not fields:
            return
        own = self._own
        clashes: Dict[str, Any] | None = None
        for key, value in fields.items():
            if key in own:
                if clashes is None:
                    clashes = {}
                clashes[key] = value
            else:
                out[key] = value
        if clashes is not None:
            out["fields"] = clashes

    # -- rendering ------------------------------------------------------------------------

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one JSON line; the record is never modified."""
        message = record.getMessage()
        if self._masker is not None:
            message = self._masker.mask_text(message)
        if self.profile == "default":
            line = self._format_default(record, message)
        elif self.profile == "ecs":
            line = self._encode(self._render_ecs(record, message))
        else:
            line = self._encode(self._render_gcp(record, message))
        if not line.isascii() and (self.ensure_ascii or _SURROGATES.search(line) is not None):
            # A lone surrogate (an undecodable file name read with surrogateescape) would
            # make the stream's UTF-8 encoder fail; \udcff escapes keep the line valid
            # UTF-8 JSON and the name recoverable. A non-UTF-8 stream would turn "é" into
            # "\xe9" (backslashreplace), which is not JSON.
            line = self._encode_ascii(json.loads(line))
        return line

    def _format_default(self, record: logging.LogRecord, message: str) -> str:
        """The default profile, assembled from cached JSON fragments.

        Same output as ``encode(self._render_default(...))`` at half the cost: the
        timestamp second, the logger name and the correlation part are rendered once and
        reused; only the message, module/function and the caller's fields are encoded
        per line (json's C string encoder; one JSONEncoder for the fields).
        """
        enc = _encode_str
        parts = [
            '{"timestamp":"',
            self._timestamp(record),
            '","level":',
            enc(record.levelname),
            ',"logger":',
            enc(record.name),
            ',"message":',
            enc(message),
            ',"module":',
            enc(record.module),
            ',"function":',
            enc(record.funcName) if isinstance(record.funcName, str) else "null",
            ',"line":',
            str(record.lineno) if isinstance(record.lineno, int) else "null",
        ]
        if self.include_correlation:
            parts.append(self._correlation_fragment(self._state(record)))
        if record.exc_info or record.exc_text:
            exc = self._exception(record)
            if exc is not None:
                parts.append(',"exception":{"type":')
                parts.append(enc(exc[0]))
                parts.append(',"message":')
                parts.append(enc(exc[1]))
                parts.append(',"traceback":')
                parts.append(enc(exc[2]))
                parts.append("}")
        if record.stack_info:
            parts.append(',"stack_info":')
            parts.append(enc(self._stack(record) or ""))
        fields = self._fields(record)
        if fields:
            if not self._own.isdisjoint(fields):
                out: Dict[str, Any] = {}
                self._add_fields(out, fields)
                fields = out
            body = self._encode(fields)
            if len(body) > 2:
                parts.append(",")
                parts.append(body[1:-1])
        parts.append("}")
        return "".join(parts)

    def _correlation_fragment(self, state: Any) -> str:
        """',"correlation_id":...,"span_id":...,"correlation":{...}', cached per scope.

        The attributes' JSON comes from the attribute dict's cache, so a new scope with
        already-seen attributes (a decorated function's next call) costs one f-string.
        """
        cache = state.log_cache
        if cache is not None and cache[0] is self._masker:
            return cache[1]
        entry = state.attrs_cache.get(self._masker)
        if entry is None:
            entry = self._render_attrs(state)
        trace_id = state.trace_id
        body = entry[1]
        if body is not None:
            corr = f'{{"correlation_id":"{trace_id}"{body}}}'
        else:
            obj = {"correlation_id": trace_id}
            obj.update(entry[0])
            corr = self._encode(obj)
        fragment = (
            f',"correlation_id":"{trace_id}","span_id":"{state.span_id}","correlation":{corr}'
        )
        state.log_cache = (self._masker, fragment)
        return fragment

    def _render_default(self, record: logging.LogRecord, message: str) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "timestamp": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        if self.include_correlation:
            state = self._state(record)
            out["correlation_id"] = state.trace_id
            out["span_id"] = state.span_id
            corr = {"correlation_id": state.trace_id}
            corr.update(self._context_attrs(state))
            out["correlation"] = corr
        if record.exc_info or record.exc_text:
            exc = self._exception(record)
            if exc is not None:
                out["exception"] = {"type": exc[0], "message": exc[1], "traceback": exc[2]}
        if record.stack_info:
            out["stack_info"] = self._stack(record)
        self._add_fields(out, self._fields(record))
        return out

    def _render_ecs(self, record: logging.LogRecord, message: str) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "@timestamp": self._timestamp(record),
            "log.level": record.levelname.lower(),
            "message": message,
            "ecs.version": ECS_VERSION,
            "log.logger": record.name,
            "log.origin.file.name": record.filename,
            "log.origin.file.line": record.lineno,
            "log.origin.function": record.funcName,
        }
        if self.include_correlation:
            state = self._state(record)
            out["trace.id"] = state.trace_id
            out["span.id"] = state.span_id
            attrs = self._context_attrs(state)
            if attrs:
                # ECS labels are flat keyword values with "." "*" "\" in keys replaced.
                out["labels"] = {
                    re.sub(r"[.*\\]", "_", str(k)): self._label(v) for k, v in attrs.items()
                }
        exc = self._exception(record) if (record.exc_info or record.exc_text) else None
        if exc is not None:
            out["error.type"] = exc[0]
            out["error.message"] = exc[1]
            out["error.stack_trace"] = exc[2]
        if record.stack_info:
            out["log.origin.stack_trace"] = self._stack(record)
        self._add_fields(out, self._fields(record))
        return out

    def _label(self, value: Any) -> str:
        """An ECS label value: a string, masked (bytes, exceptions and other objects in the
        context are masked as text, like the default profile's encoder fallback does)."""
        if isinstance(value, str):
            return value  # masked with the attributes
        text = _safe_str(_jsonable(value))
        return self._masker.mask_text(text) if self._masker is not None else text

    def _render_gcp(self, record: logging.LogRecord, message: str) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "time": self._timestamp(record),
            "severity": record.levelname,
            "message": message,
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        if self.include_correlation:
            state = self._state(record)
            trace = state.trace_id
            if self.gcp_project:
                trace = f"projects/{self.gcp_project}/traces/{trace}"
            out["logging.googleapis.com/trace"] = trace
            out["logging.googleapis.com/spanId"] = state.span_id
            out["correlation_id"] = state.trace_id
            corr = {"correlation_id": state.trace_id}
            corr.update(self._context_attrs(state))
            out["correlation"] = corr
        exc = self._exception(record) if (record.exc_info or record.exc_text) else None
        if exc is not None:
            out["exception"] = {"type": exc[0], "message": exc[1], "traceback": exc[2]}
        if record.stack_info:
            out["stack_info"] = self._stack(record)
        self._add_fields(out, self._fields(record))
        return out

    def _encode(self, out: Dict[str, Any]) -> str:
        try:
            return self._encode_obj(out)
        except (ValueError, TypeError, RecursionError):
            # NaN/inf, a cycle, a key json rejects: rebuild a plain copy and try again.
            return self._encode_obj(self._sanitise(out, 0, set()))

    def _sanitise(self, obj: Any, depth: int, seen: set) -> Any:
        if obj is None or isinstance(obj, (str, bool)):
            return obj
        if isinstance(obj, int):
            try:
                int.__repr__(obj)
            except ValueError:  # more digits than sys.get_int_max_str_digits() allows
                return f"<int of {obj.bit_length()} bits>"
            return obj
        if isinstance(obj, float):
            return obj if obj == obj and obj not in (float("inf"), float("-inf")) else repr(obj)
        if depth >= _MAX_DEPTH:
            return "<too deep>"
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in seen:
                return "<circular>"
            seen.add(id(obj))
            try:
                if isinstance(obj, dict):
                    return {
                        self._key(k): self._sanitise(v, depth + 1, seen) for k, v in obj.items()
                    }
                return [self._sanitise(v, depth + 1, seen) for v in obj]
            finally:
                seen.discard(id(obj))
        return self._sanitise(self._default(obj), depth + 1, seen)

    def _key(self, key: Any) -> str:
        """A dict key json rejects (a tuple ...) as a string, masked like any text."""
        if isinstance(key, str):
            return key
        text = _safe_str(key)
        return self._masker.mask_text(text) if self._masker is not None else text


_MASKER: CredentialMasker | None = None


def _default_masker() -> CredentialMasker:
    # Shared so that its clean-string cache is shared by every formatter.
    global _MASKER
    if _MASKER is None:
        _MASKER = CredentialMasker()
    return _MASKER


# ---------------------------------------------------------------------------------------
# LogRecord construction
# ---------------------------------------------------------------------------------------

_LogRecord = logging.LogRecord
_STD_MAKE_RECORD = logging.Logger.makeRecord
_NS_CLOCK = sys.version_info >= (3, 13)  # 3.13 derives created/msecs from time_ns()
_TASK_NAME = sys.version_info >= (3, 12)  # 3.12 added LogRecord.taskName
_INT_MSECS = sys.version_info >= (3, 10)  # gh-89047: whole milliseconds since 3.10
_START_TIME: Any = vars(logging)["_startTime"]  # what relativeCreated is measured from
_PATH_NAMES: Dict[str, Tuple[str, str]] = {}
_PID: List[int | None] = [None]


def _forget_pid() -> None:
    _PID[0] = None


def _pid() -> int | None:
    # getpid() is a real system call (~200 ns in a VM); cache it and forget it on fork.
    pid = _PID[0]
    if pid is None:
        if not _PID[1:] and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pid)
            _PID.append(1)  # registered
        pid = _PID[0] = os.getpid()
    return pid


def _new_record(
    name: str,
    level: int,
    pathname: str,
    lineno: int,
    msg: Any,
    args: Any,
    exc_info: Any,
    func: str | None,
    sinfo: str | None,
) -> logging.LogRecord:
    """A standard LogRecord with the attributes LogRecord.__init__ sets, built faster.

    Used only when neither the record factory nor Logger.makeRecord is customised. The
    same values as the constructor of the running Python (3.8-3.13), with the file-name
    split and the pid cached: about a third of the cost of a log call otherwise.
    """
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]
    names = _PATH_NAMES.get(pathname)
    if names is None:
        try:
            filename = os.path.basename(pathname)
            names = (filename, os.path.splitext(filename)[0])
        except (TypeError, ValueError, AttributeError):
            names = (pathname, "Unknown module")
        if len(_PATH_NAMES) < 4096:
            _PATH_NAMES[pathname] = names
    if _NS_CLOCK:
        ct = time.time_ns()
        created = ct / 1e9
        msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ct // 1_000_000_000:
            msecs = 0.0
        relative = (ct - _START_TIME) / 1e6
    else:
        created = time.time()
        if _INT_MSECS:
            msecs = int((created - int(created)) * 1000) + 0.0
        else:
            msecs = (created - int(created)) * 1000
        relative = (created - _START_TIME) * 1000
    record = _LogRecord.__new__(_LogRecord)
    d = record.__dict__
    d["name"] = name
    d["msg"] = msg
    d["args"] = args
    d["levelname"] = logging.getLevelName(level)
    d["levelno"] = level
    d["pathname"] = pathname
    d["filename"], d["module"] = names
    d["exc_info"] = exc_info
    d["exc_text"] = None
    d["stack_info"] = sinfo
    d["lineno"] = lineno
    d["funcName"] = func
    d["created"] = created
    d["msecs"] = msecs
    d["relativeCreated"] = relative
    if logging.logThreads:
        d["thread"] = threading.get_ident()
        d["threadName"] = threading.current_thread().name
    else:
        d["thread"] = d["threadName"] = None
    process_name: str | None = None
    if logging.logMultiprocessing:
        process_name = "MainProcess"
        mp = sys.modules.get("multiprocessing")
        if mp is not None:
            try:
                process_name = mp.current_process().name
            except Exception:
                pass
    d["processName"] = process_name
    d["process"] = _pid() if logging.logProcesses else None
    if _TASK_NAME:
        task_name = None
        if getattr(logging, "logAsyncioTasks", True):
            asyncio = sys.modules.get("asyncio")
            # Ask for the running loop first: current_task() raises without one.
            if asyncio is not None and asyncio._get_running_loop() is not None:
                try:
                    task_name = asyncio.current_task().get_name()
                except Exception:
                    pass
        d["taskName"] = task_name
    return record


# ---------------------------------------------------------------------------------------
# The structured logger
# ---------------------------------------------------------------------------------------


class StructuredLogger:
    """``logger.info("message", field=value, ...)`` over a standard ``logging.Logger``.

    Fields may have any name (``name``, ``module``, ``args``, ``message`` ...): they travel
    as one record attribute, so they never clash with LogRecord's own. ``exc_info``,
    ``stack_info`` and ``stacklevel`` keep their ``logging`` meaning. The record's
    module/function/line are the caller's. It adds no handler and sets no level: output
    goes wherever ``logging`` is configured (see :func:`setup_structured_logging`).
    """

    __slots__ = ("logger", "name")

    # The level methods read Logger._cache (what isEnabledFor() reads, since 3.7) inline:
    # a disabled debug() call then costs about what the stdlib's own does.

    def __init__(self, logger: Union[str, logging.Logger]) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.name = self.logger.name

    def __repr__(self) -> str:
        return f"<StructuredLogger {self.name!r}>"

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging name
        """Whether a record at ``level`` would be processed."""
        return self.logger.isEnabledFor(level)

    def _log(self, level: int, msg: Any, args: Tuple[Any, ...], fields: Dict[str, Any]) -> None:
        # ``fields`` is always a dict this class built (from **kwargs), never the caller's.
        exc_info = fields.pop("exc_info", None) if "exc_info" in fields else None
        stack_info = fields.pop("stack_info", False) if "stack_info" in fields else False
        stacklevel = fields.pop("stacklevel", 1) if "stacklevel" in fields else 1
        # Our own caller lookup: cheaper than Logger.findCaller, and the same on 3.8-3.13
        # (stacklevel handling changed between versions). Frames: 0 here, 1 the public
        # method, 2 its caller.
        try:
            frame: Any = sys._getframe(stacklevel + 1)
        except ValueError:
            frame = None
        if frame is not None:
            code = frame.f_code
            fn, lno, func = code.co_filename, frame.f_lineno, code.co_name
        else:
            fn, lno, func = "(unknown file)", 0, "(unknown function)"
        sinfo = None
        if stack_info and frame is not None:
            sinfo = "Stack (most recent call last):\n" + "".join(
                traceback.format_stack(frame)
            ).rstrip("\n")
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
        lg = self.logger
        if type(lg).makeRecord is _STD_MAKE_RECORD and logging.getLogRecordFactory() is _LogRecord:
            record = _new_record(lg.name, level, fn, lno, msg, args, exc_info, func, sinfo)
        else:  # a custom record factory or Logger subclass: let it do its work
            record = lg.makeRecord(lg.name, level, fn, lno, msg, args, exc_info, func, None, sinfo)
        if fields:
            setattr(record, _RECORD_FIELDS, fields)
        setattr(record, _RECORD_CONTEXT, _context.CURRENT_SCOPE.get())
        lg.handle(record)

    def debug(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at DEBUG with ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_DEBUG]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_DEBUG)
        if enabled and not lg.disabled:
            self._log(_DEBUG, message, args, fields)

    def info(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at INFO with ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_INFO]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_INFO)
        if enabled and not lg.disabled:
            self._log(_INFO, message, args, fields)

    def warning(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at WARNING with ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_WARNING]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_WARNING)
        if enabled and not lg.disabled:
            self._log(_WARNING, message, args, fields)

    def error(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ERROR with ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_ERROR]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_ERROR)
        if enabled and not lg.disabled:
            self._log(_ERROR, message, args, fields)

    def exception(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ERROR with the exception being handled (its traceback) and ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_ERROR]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_ERROR)
        if enabled and not lg.disabled:
            fields.setdefault("exc_info", True)
            self._log(_ERROR, message, args, fields)

    def critical(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at CRITICAL with ``fields``."""
        lg = self.logger
        try:
            enabled = lg._cache[_CRITICAL]  # type: ignore[attr-defined]
        except (KeyError, AttributeError):
            enabled = lg.isEnabledFor(_CRITICAL)
        if enabled and not lg.disabled:
            self._log(_CRITICAL, message, args, fields)

    def log(self, level: int, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ``level`` with ``fields``."""
        if self.logger.isEnabledFor(level):
            self._log(level, message, args, fields)

    def operation_start(self, operation: str, /, **fields: Any) -> None:
        """INFO "Operation started: <operation>" with operation, operation_status, start_time."""
        if self.logger.isEnabledFor(_INFO):
            own = {"operation": operation, "operation_status": "started", "start_time": time.time()}
            fields.update(own)
            self._log(_INFO, "Operation started: %s", (operation,), fields)

    def operation_end(
        self,
        operation: str,
        /,
        success: bool = True,
        duration: float | None = None,
        **fields: Any,
    ) -> None:
        """INFO (ERROR on failure) "Operation completed|failed: <op> (took N.NNs)"."""
        level = logging.INFO if success else logging.ERROR
        if not self.logger.isEnabledFor(level):
            return
        status = "completed" if success else "failed"
        own: Dict[str, Any] = {
            "operation": operation,
            "operation_status": status,
            "success": bool(success),
            "end_time": time.time(),
        }
        msg = "Operation %s: %s"
        args: Tuple[Any, ...] = (status, operation)
        if duration is not None:
            own["duration_seconds"] = duration
            msg, args = "Operation %s: %s (took %.2fs)", (status, operation, duration)
        fields.update(own)
        self._log(level, msg, args, fields)


_LOGGERS: Dict[str, StructuredLogger] = {}


def get_structured_logger(name: str, level: Union[int, str, None] = None) -> StructuredLogger:
    """Return the :class:`StructuredLogger` for ``name`` (one per name).

    ``level``, when given, sets that stdlib logger's level (an explicit, global choice);
    by default the level is left to the logging configuration.
    """
    slog = _LOGGERS.get(name)
    if slog is None:
        slog = _LOGGERS.setdefault(name, StructuredLogger(name))
    if level is not None:
        slog.logger.setLevel(_parse_level(level, "level"))
    return slog


# ---------------------------------------------------------------------------------------
# setup_structured_logging
# ---------------------------------------------------------------------------------------

_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "NOTSET": "NOTSET"}
_HANDLER_MARK = "_mgit_monitoring_handler"
_LEVEL_MARK = "_mgit_monitoring_level"  # the level the last call set on the logger


def _parse_level(value: Union[int, str], source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str):
        name = value.strip().upper()
        name = _LEVEL_ALIASES.get(name, name)
        if name in _LEVEL_NAMES or name == "NOTSET":
            return int(getattr(logging, name))
        if name.isdigit():
            return int(name)
    msg = f"invalid {source} {value!r} (expected one of {', '.join(_LEVEL_NAMES)})"
    raise ConfigError(msg)


def _is_utf8(stream: Any) -> bool:
    """Whether ``stream`` encodes text as UTF-8 (a stream without an encoding counts)."""
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return True
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files (including new ones after rollover) are mode 0600."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.chmod(self.baseFilename, 0o600)  # an existing file may have been wider
        except OSError:
            pass
        # backslashreplace: an undecodable surrogate never turns into "--- Logging error ---".
        return open(fd, "a", encoding="utf-8", errors="backslashreplace")


def setup_structured_logging(
    log_file: Union[str, os.PathLike[str]] | None = None,
    log_level: Union[int, str, None] = None,
    console_level: Union[int, str, None] = None,
    include_correlation: bool = True,
    mask_credentials: bool = True,
    *,
    profile: str | None = None,
    logger: Union[str, logging.Logger, None] = None,
    console: bool = True,
    stream: Any = None,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    environ: Mapping[str, str] | None = None,
    adopt_traceparent: bool = True,
) -> List[logging.Handler]:
    """Send JSON log lines to stderr (and optionally a rotating file); return the handlers.

    Idempotent: the handlers a previous call installed are replaced, never duplicated,
    and the host application's own handlers are left alone. ``log_level`` (default
    ``$MGIT_MONITORING_LOG_LEVEL`` or INFO) applies to the file and, unless
    ``console_level`` says otherwise, to stderr; the logger's level is lowered to the
    more verbose of the two (a more verbose level the host set is kept). ``profile``
    defaults to ``$MGIT_MONITORING_LOG_FORMAT`` or ``default``. The log file's parent
    directories are created and the file is mode 0600, rotated at ``max_bytes`` keeping
    ``backup_count`` old files. A valid ``$TRACEPARENT`` is adopted as the process trace.

    Raises:
        ConfigError: an invalid level or profile, or a log file that cannot be written.
    """
    env = os.environ if environ is None else environ
    if log_level is None:
        raw = env.get(LOG_LEVEL_ENV)
        file_level = _parse_level(raw, LOG_LEVEL_ENV) if raw else logging.INFO
    else:
        file_level = _parse_level(log_level, "log_level")
    con_level = (
        file_level if console_level is None else _parse_level(console_level, "console_level")
    )
    if profile is None:
        raw_profile = env.get(LOG_FORMAT_ENV)
        chosen = _check_profile(raw_profile, LOG_FORMAT_ENV) if raw_profile else "default"
    else:
        chosen = _check_profile(profile)
    gcp_project = env.get("GOOGLE_CLOUD_PROJECT") if chosen == "gcp" else None
    target = (
        logger
        if isinstance(logger, logging.Logger)
        else (logging.getLogger(logger) if logger else logging.getLogger())
    )

    def make_formatter(ensure_ascii: bool = False) -> StructuredFormatter:
        return StructuredFormatter(
            ensure_ascii=ensure_ascii,
            profile=chosen,
            include_correlation=include_correlation,
            mask_credentials=mask_credentials,
            gcp_project=gcp_project,
        )

    handlers: List[logging.Handler] = []
    if log_file is not None:
        path = os.path.abspath(os.fspath(log_file))
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            file_handler = _PrivateRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            msg = f"cannot write log file {path!r}: {exc.strerror or exc}"
            raise ConfigError(msg) from None
        file_handler.setLevel(file_level)
        file_handler.setFormatter(make_formatter())
        handlers.append(file_handler)
    if console:
        out = sys.stderr if stream is None else stream
        console_handler = logging.StreamHandler(out)
        console_handler.setLevel(con_level)
        console_handler.setFormatter(make_formatter(not _is_utf8(out)))
        handlers.append(console_handler)

    for old in list(target.handlers):
        if getattr(old, _HANDLER_MARK, False):
            target.removeHandler(old)
            old.close()
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        target.addHandler(handler)
    levels = [h.level for h in handlers]
    if levels:
        # Lower the logger's level to what our handlers need, but never raise a level the
        # host chose (root at DEBUG for its own handlers stays DEBUG); a level we set
        # ourselves may go either way on the next call.
        wanted = min(levels)
        current = target.level
        if (
            current == logging.NOTSET
            or wanted < current
            or current == getattr(target, _LEVEL_MARK, None)
        ):
            target.setLevel(wanted)
            setattr(target, _LEVEL_MARK, wanted)
    if adopt_traceparent:
        _context.adopt_traceparent(env)
    return handlers
