"""The console log formatter: one line a person can read per record.

:class:`ConsoleFormatter` is what ``MGIT_MONITORING_LOG_FORMAT=console`` selects (and what
:func:`~mgit_monitoring.logs.setup_structured_logging` uses for a terminal when no format
is set); one line, wrapped here::

    2026-01-01 12:00:00.123 ERROR    [mgit.git] Operation failed: pull (took 0.25s)  \
    operation=pull repository=repo1 success=false correlation_id=4bf92f3577b34da6a3ce929d0e0e4736
    Traceback (most recent call last):
      ...

Time (local, milliseconds), level, logger and message, then the fields as ``key=value``:
the structured logger's fields and ``extra=`` attributes, then the correlation context's
attributes, then the correlation id when the record was made inside a context (or the
process adopted a ``TRACEPARENT``). A string value is written bare unless it is empty or
holds a space, a quote, ``=``, a backslash or a control character; then it is quoted as
a JSON string. Numbers, ``true``/``false``/``null`` and nested values (compact JSON) are
written as in the JSON lines. Credentials are masked exactly as in the JSON lines
(message, fields, context, traceback). A record is one line (a newline inside the
message or a value is escaped), followed by the masked traceback or stack when it has
one. No colours: the line is the same on a terminal, in a pipe and in a file.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Dict, List, Mapping

from mgit_monitoring.context import CURRENT_SCOPE, PROCESS_SCOPE, Scope
from mgit_monitoring.log_encoding import LineEncoder, jsonable, safe_str
from mgit_monitoring.log_formatter import CONTEXT_ATTR, record_fields
from mgit_monitoring.masking import CredentialMasker, default_masker

__all__ = ["ConsoleFormatter"]

_UNSET: Any = object()
_BARE = re.compile(r"[^\s\"'=\\\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\x{ord(char):02x}"


class ConsoleFormatter(logging.Formatter):
    """A ``logging.Formatter`` that renders each record as one human-readable line.

    Args:
        include_correlation: add the correlation context's attributes and id.
        mask_credentials: mask secrets in the message, every field, the context and the
            traceback (on by default).
        masker: a :class:`~mgit_monitoring.masking.CredentialMasker` to use instead of
            the default one.
        utc: write the time in UTC (with ``Z``) instead of local time.

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
        include_correlation: bool = True,
        mask_credentials: bool = True,
        masker: CredentialMasker | None = None,
        utc: bool = False,
    ) -> None:
        super().__init__()
        self.include_correlation = bool(include_correlation)
        self.mask_credentials = bool(mask_credentials)
        self.utc = bool(utc)
        chosen = None
        if self.mask_credentials:
            chosen = masker if masker is not None else default_masker()
        self._enc = LineEncoder(chosen)

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line (plus its traceback); the record is not modified."""
        enc = self._enc
        message = _CONTROL.sub(_escape_control, enc.mask_text(safe_str(record.getMessage())))
        line = (
            f"{self._time(record)} {safe_str(record.levelname):<8} "
            f"[{safe_str(record.name)}] {message}"
        )
        pairs = self._pairs(record)
        if pairs:
            line += "  " + " ".join(pairs)
        tail: List[str] = []
        ei = record.exc_info
        if ei and ei[0] is not None:
            try:
                tail.append(self.formatException(ei))
            except Exception:
                tail.append(f"<traceback unavailable: {safe_str(ei[1])}>")
        elif record.exc_text:
            tail.append(record.exc_text)
        if record.stack_info:
            tail.append(self.formatStack(record.stack_info))
        for text in tail:
            line += "\n" + enc.mask_text(text.rstrip("\n"))
        if _SURROGATES.search(line) is not None:
            # An undecodable file name (surrogateescape) would make the stream fail.
            line = line.encode("utf-8", "backslashreplace").decode("utf-8")
        return line

    def _time(self, record: logging.LogRecord) -> str:
        created = record.created
        if self.utc:
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created))
            return f"{text}.{int(record.msecs) % 1000:03d}Z"
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        return f"{text}.{int(record.msecs) % 1000:03d}"

    def _pairs(self, record: logging.LogRecord) -> List[str]:
        """``key=value`` for the fields, then the context's attributes and id, masked."""
        items: Dict[Any, Any] = record_fields(record)
        if self.include_correlation:
            state = record.__dict__.get(CONTEXT_ATTR, _UNSET)
            if state is _UNSET:  # a plain logging call: the context active now
                state = CURRENT_SCOPE.get()
            scope: Scope | None = state
            if scope is None and PROCESS_SCOPE.adopted:
                scope = PROCESS_SCOPE.get()
            if scope is not None:
                for key, value in scope.attrs.items():
                    items.setdefault(key, value)
                items.setdefault("correlation_id", scope.trace_id)
        if not items:
            return []
        masked = self._enc.mask(items)
        return [f"{self._key(k)}={self._value(v)}" for k, v in masked.items()]

    def _key(self, key: Any) -> str:
        text = self._enc.mask_text(safe_str(key))
        return text if _BARE.fullmatch(text) else self._enc.encode_str(text)

    def _value(self, value: Any) -> str:
        if isinstance(value, str):
            return value if _BARE.fullmatch(value) else self._enc.encode_str(value)
        if value is None or isinstance(value, bool):
            return "null" if value is None else "true" if value else "false"
        if isinstance(value, (int, float)):
            return self._enc.encode(value)
        if isinstance(value, (dict, list, tuple)):
            return self._enc.encode(value)
        return self._value(self._enc.mask(jsonable(value)))
