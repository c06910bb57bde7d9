"""The JSON log formatter: one ``LogRecord`` in, one line of JSON out.

:class:`StructuredFormatter` is a plain ``logging.Formatter`` (usable from ``dictConfig``)
that writes one JSON object per line, with the correlation id and context of
:mod:`mgit_monitoring.context` and credentials masked by :mod:`mgit_monitoring.masking`.

Default line (profile ``default``; ``ecs`` and ``gcp`` rename for those shippers)::

    {"timestamp":"2026-01-01T12:00:00.123Z","level":"INFO","logger":"mgit.operations",
     "message":"Starting clone operation","module":"sync","function":"run","line":42,
     "correlation_id":"4bf9...4736","span_id":"00f0...02b7",
     "correlation":{"correlation_id":"4bf9...4736","operation":"clone_all"},
     "repository":"repo1","provider":"github"}

The caller's fields are the record's :data:`FIELDS_ATTR` dict (what
:class:`~mgit_monitoring.structured_logger.StructuredLogger` attaches) followed by any
attribute ``extra=`` or a filter added. A field whose name the profile itself uses
(``message``, ``module``, ``level`` ...) is kept under ``"fields"`` rather than
overwriting the line's own key.

A line is assembled from JSON fragments rather than built as a dict and encoded: the
timestamp's second, the names, clean messages and field keys, and each correlation
scope are rendered once and reused (see :mod:`mgit_monitoring.log_encoding`).
"""

from __future__ import annotations

import json
import logging
import operator
import re
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from mgit_monitoring.context import PROCESS_SCOPE, Scope, current_scope
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_encoding import LineEncoder, exception_type_name, jsonable, safe_str
from mgit_monitoring.masking import CredentialMasker, default_masker

__all__ = [
    "CONTEXT_ATTR",
    "ECS_VERSION",
    "FIELDS_ATTR",
    "PROFILES",
    "StructuredFormatter",
    "check_profile",
    "record_fields",
]

PROFILES = ("default", "ecs", "gcp")
"""The output shapes :class:`StructuredFormatter` can write."""

ECS_VERSION = "1.6.0"
"""The ``ecs.version`` written (what ecs-logging-python emits; the fields exist since 1.x)."""

FIELDS_ATTR = "mgit_fields"
"""The record attribute holding the structured logger's fields (one dict, so a field may
have any name, ``args`` or ``module`` included, without clashing with LogRecord's own)."""

CONTEXT_ATTR = "mgit_context"
"""The record attribute holding the :class:`~mgit_monitoring.context.Scope` active when
the record was made (None: no context), so a record formatted later keeps it."""

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
    FIELDS_ATTR,
    CONTEXT_ATTR,
}

# The keys each profile writes itself: a caller field of such a name goes under "fields".
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
            "log.origin.stack_trace",
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
_TIME_KEYS = {"default": "timestamp", "ecs": "@timestamp", "gcp": "time"}
_MILLIS = tuple(f'{ms:03d}Z"' for ms in range(1000))
_EXCEPTION_TEMPLATES = {
    "default": ',"exception":{"type":%s,"message":%s,"traceback":%s}',
    "ecs": ',"error.type":%s,"error.message":%s,"error.stack_trace":%s',
    "gcp": ',"exception":{"type":%s,"message":%s,"traceback":%s}',
}
_SITES_MAX = 2048
_ECS_LABEL_KEY = re.compile(r"[.*\\]")
_UNSET: Any = object()

# What identifies a call site's rendering in each profile, as one C call: (logger, level,
# where, function, line), "where" being what the profile writes (module, file name or path).
_SITE_KEYS = {
    "default": operator.attrgetter("name", "levelname", "module", "funcName", "lineno"),
    "ecs": operator.attrgetter("name", "levelname", "filename", "funcName", "lineno"),
    "gcp": operator.attrgetter("name", "levelname", "pathname", "funcName", "lineno"),
}


def record_fields(record: logging.LogRecord) -> Dict[str, Any]:
    """The caller's fields on ``record``: the structured logger's (:data:`FIELDS_ATTR`),
    then the attributes ``extra=`` or a filter put on it, in record order (a new dict)."""
    d = record.__dict__
    fields = d.get(FIELDS_ATTR)
    merged = dict(fields) if fields else {}
    extra_keys = d.keys() - _RESERVED
    if extra_keys:
        for key in d:
            if key in extra_keys and key not in merged:
                merged[key] = d[key]
    return merged


def check_profile(profile: str, source: str = "profile") -> str:
    """``profile`` normalised (``" ECS"`` -> ``"ecs"``); ConfigError naming ``source``
    for an unknown one."""
    norm = str(profile).strip().lower()
    if norm not in PROFILES:
        msg = f"invalid {source} {profile!r} (expected one of {', '.join(PROFILES)})"
        raise ConfigError(msg)
    return norm


class StructuredFormatter(logging.Formatter):
    """A ``logging.Formatter`` that renders each record as one line of JSON.

    Args:
        profile: ``"default"`` (the seed's shape), ``"ecs"`` or ``"gcp"``.
        include_correlation: add the correlation id, span id and context.
        mask_credentials: mask secrets in the message, its args, every field (nested),
            the context, the exception text and traceback (on by default).
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
        self.profile = check_profile(profile)
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
            self._masker = masker if masker is not None else default_masker()
        self._json = LineEncoder(self._masker, _OWN_KEYS[self.profile])
        self._texts = self._json.texts
        # What a scope's rendering depends on: formatters with equal keys (the console and
        # file handlers of one setup) share it instead of taking turns replacing it.
        self._scope_key = (self._masker, self.profile, gcp_project)
        self._millis = timespec == "milliseconds"
        self._second: Tuple[int, str] = (-1, "")  # (second, '{"timestamp":"...:SS.')
        self._sites: Dict[Tuple[Any, ...], Tuple[str, str]] = {}  # call site -> _site()
        self._exc_template = _EXCEPTION_TEMPLATES[self.profile]
        self._stack_key = (
            ',"log.origin.stack_trace":' if self.profile == "ecs" else ',"stack_info":'
        )
        self._site_key = _SITE_KEYS[self.profile]

    # -- rendering ------------------------------------------------------------------------

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one JSON line; the record is never modified."""
        # The hot path, kept in one function (a method call costs as much as a few dict
        # lookups) and assembled by one f-string from fragments rendered before.
        message = record.getMessage()
        message = self._texts.get(message) or self._json.text(message)
        key = self._site_key(record)
        try:
            site = self._sites[key]
        except (KeyError, TypeError):  # a new call site (or an unhashable value on the record)
            site = self._site(key)
        second = self._second
        if second[0] == int(record.created) and self._millis:
            stamp = second[1] + _MILLIS[int(record.msecs) % 1000]
        else:
            stamp = self._timestamp(record)
        d = record.__dict__
        corr = ""
        if self.include_correlation:
            # The scope the record was made in; for a plain logging call, the one active
            # now; outside any context, the process's.
            state = d.get(CONTEXT_ATTR, _UNSET)
            if state is _UNSET:
                state = current_scope()
            elif state is None:
                state = PROCESS_SCOPE.get()
            cache = state.log_cache
            if cache is not None and (cache[0] is self._scope_key or cache[0] == self._scope_key):
                corr = cache[1]
            else:
                corr = self._scope_fragment(state)
        extra = ""
        if record.exc_info or record.exc_text:
            extra = self._exception_fragment(record)
        if record.stack_info:
            extra += self._stack_key + self._json.encode_str(
                self._json.mask_text(self.formatStack(record.stack_info))
            )
        fields = d.get(FIELDS_ATTR)
        # Counting is cheaper than a set difference: a record with exactly the standard
        # attributes (plus ours and what formatters cache on it) carries no extra ones.
        if len(d) != _BASE_ATTR_COUNT + (fields is not None) + (CONTEXT_ATTR in d) + (
            "message" in d
        ) + ("asctime" in d):
            fields = self._with_extra(d, fields)
        members = self._json.members(fields) if fields else ""
        line = f"{stamp}{site[0]}{message}{site[1]}{corr}{extra}{members}}}"
        if not line.isascii() and (self.ensure_ascii or _SURROGATES.search(line) is not None):
            # A lone surrogate (an undecodable file name read with surrogateescape) would
            # make the stream's UTF-8 encoder fail; \udcff escapes keep the line valid
            # UTF-8 JSON and the name recoverable. A non-UTF-8 stream would turn "é" into
            # "\xe9" (backslashreplace), which is not JSON.
            line = self._json.encode_ascii(json.loads(line))
        return line

    @staticmethod
    def _with_extra(d: Dict[str, Any], fields: Optional[Dict[str, Any]]) -> Any:
        """The structured logger's fields, then the attributes ``extra=`` or a filter put
        on the record, in record order (so lines are stable)."""
        extra_keys = d.keys() - _RESERVED
        if not extra_keys:
            return fields
        merged = dict(fields) if fields else {}
        for key in d:
            if key in extra_keys and key not in merged:
                merged[key] = d[key]
        return merged

    def _timestamp(self, record: logging.LogRecord) -> str:
        """'{"timestamp":"<RFC 3339 UTC>"' (the profile's key), milli- or microseconds and
        ``Z``; the part up to the second is rendered once a second."""
        created = record.created
        secs = int(created)
        second = self._second  # one tuple, so threads never see a torn pair
        if second[0] != secs:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
            second = (secs, f'{{"{_TIME_KEYS[self.profile]}":"{text}.')
            self._second = second
        if self._millis:
            return second[1] + _MILLIS[int(record.msecs) % 1000]
        return f'{second[1]}{int((created - secs) * 1e6):06d}Z"'

    def _site(self, key: Tuple[Any, ...]) -> Tuple[str, str]:
        """The line's parts before and after the message for one call site, ``key`` being
        (logger, level, where, function, line), rendered once and remembered."""
        name = self._json.name
        logger, level, where, func, lineno = key
        line = repr(lineno) if type(lineno) is int else "null"
        if self.profile == "ecs":
            site = (
                f',"log.level":{name(safe_str(level).lower())},"message":',
                f',"ecs.version":"{ECS_VERSION}","log.logger":{name(logger)},'
                f'"log.origin.file.name":{name(where)},"log.origin.file.line":{line},'
                f'"log.origin.function":{name(func)}',
            )
        elif self.profile == "gcp":
            site = (
                f',"severity":{name(level)},"message":',
                f',"logger":{name(logger)},"logging.googleapis.com/sourceLocation":'
                f'{{"file":{name(where)},"line":{name(safe_str(lineno))},'
                f'"function":{name(func)}}}',
            )
        else:
            site = (
                f',"level":{name(level)},"logger":{name(logger)},"message":',
                f',"module":{name(where)},"function":{name(func)},"line":{line}',
            )
        try:
            if len(self._sites) >= _SITES_MAX:
                self._sites.clear()
            self._sites[key] = site
        except TypeError:  # an unhashable value someone put on the record
            pass
        return site

    def _exception_fragment(self, record: logging.LogRecord) -> str:
        """The exception's members (type, message, traceback), masked; "" without one."""
        ei = record.exc_info
        if ei and ei[0] is not None:
            etype = exception_type_name(ei[0])
            emsg = safe_str(ei[1])
            try:
                tb = self.formatException(ei)
            except Exception:
                tb = f"<traceback unavailable: {emsg}>"
        elif record.exc_text:
            etype, emsg, tb = "", "", record.exc_text
        else:
            return ""
        enc = self._json.encode_str
        mask = self._json.mask_text
        return self._exc_template % (enc(etype), enc(mask(emsg)), enc(mask(tb)))

    # -- the correlation scope ------------------------------------------------------------

    def _scope_fragment(self, state: Scope) -> str:
        """The scope's members (ids and context), rendered and remembered on the scope for
        this formatter's configuration (see :class:`~mgit_monitoring.context.Scope`)."""
        fragment = self._render_scope(state)
        state.log_cache = (self._scope_key, fragment)
        return fragment

    def _render_scope(self, state: Scope) -> str:
        enc = self._json.encode_str
        trace_id, span_id = enc(state.trace_id), enc(state.span_id)
        if self.profile == "ecs":
            fragment = f',"trace.id":{trace_id},"span.id":{span_id}'
            attrs = self._context_attrs(state)[0]
            if attrs:
                # ECS labels are flat keyword values with "." "*" "\" in keys replaced.
                labels = {
                    _ECS_LABEL_KEY.sub("_", safe_str(k)): self._label(v) for k, v in attrs.items()
                }
                fragment += ',"labels":' + self._json.encode(labels)
            return fragment
        correlation = self._correlation_object(state)
        if self.profile == "gcp":
            trace = state.trace_id
            if self.gcp_project:
                trace = f"projects/{self.gcp_project}/traces/{trace}"
            return (
                f',"logging.googleapis.com/trace":{enc(trace)},'
                f'"logging.googleapis.com/spanId":{span_id},'
                f'"correlation_id":{trace_id},"correlation":{correlation}'
            )
        return f',"correlation_id":{trace_id},"span_id":{span_id},"correlation":{correlation}'

    def _correlation_object(self, state: Scope) -> str:
        """``{"correlation_id":...,<attributes>}`` as JSON."""
        attrs, members = self._context_attrs(state)
        if members is not None:
            return '{"correlation_id":' + self._json.encode_str(state.trace_id) + members + "}"
        obj: Dict[Any, Any] = {"correlation_id": state.trace_id}
        obj.update(attrs)
        return self._json.encode(obj)

    def _context_attrs(self, state: Scope) -> Tuple[Dict[Any, Any], Optional[str]]:
        """(the scope's attributes masked, their JSON members ``',"k":v...'`` or None when
        they name a ``correlation_id`` of their own), cached with the attribute dict.

        The cache is keyed by masker (None when unmasked) and shared by every scope that
        holds the same attribute dict (each call of a decorated function, for example).
        """
        entry = state.attrs_cache.get(self._masker)
        if entry is None:
            attrs = self._json.mask(dict(state.attrs))
            members: Optional[str] = None
            if "correlation_id" not in attrs:  # it would replace the id's value
                encoded = self._json.encode(attrs)
                members = "," + encoded[1:-1] if len(encoded) > 2 else ""
            entry = (attrs, members)
            state.attrs_cache[self._masker] = entry
        return entry

    def _label(self, value: Any) -> str:
        """An ECS label value: a string, masked (bytes, exceptions and other objects in the
        context are masked as text, like the default profile's encoder fallback does)."""
        if isinstance(value, str):
            return value  # masked with the attributes
        return self._json.mask_text(safe_str(jsonable(value)))
