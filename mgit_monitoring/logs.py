"""Logging set up in one call: handlers for stderr and a rotating file, JSON or console lines.

:func:`setup_structured_logging` installs handlers (stderr, and optionally a private
rotating file) on a logger, idempotently, with :class:`StructuredFormatter` (JSON) or
:class:`ConsoleFormatter` (readable lines; the default on a terminal). The pieces live in
their own modules and are re-exported here, so ``from mgit_monitoring.logs import X``
works for all of them:

* :mod:`mgit_monitoring.log_formatter`: :class:`StructuredFormatter`, the JSON line and
  its ``default``/``ecs``/``gcp`` profiles;
* :mod:`mgit_monitoring.log_console`: :class:`ConsoleFormatter`, the readable line;
* :mod:`mgit_monitoring.structured_logger`: :class:`StructuredLogger` and
  :func:`get_structured_logger`, the seed's ``logger.info("msg", repo=...)``;
* :mod:`mgit_monitoring.log_encoding`: the masked JSON encoding both use;
* :mod:`mgit_monitoring.log_file`: the private rotating file (loaded only for a file).
"""

from __future__ import annotations

import codecs
import logging
import os
import sys
from typing import Any, List, Mapping, Union

from mgit_monitoring import context
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_console import ConsoleFormatter
from mgit_monitoring.log_formatter import PROFILES, StructuredFormatter, check_profile
from mgit_monitoring.structured_logger import (
    StructuredLogger,
    get_structured_logger,
    parse_level,
)
from mgit_monitoring.warn_once import WarnOnce

__all__ = [
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "ConsoleFormatter",
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
"""Environment variable choosing the format: ``console`` or a JSON profile (``json`` is
``default``; ``ecs``, ``gcp``). Unset: console on a terminal, JSON otherwise."""

LOG_FORMATS = ("console", "json") + PROFILES
"""The formats :func:`setup_structured_logging` accepts (``json`` means ``default``)."""

_ENV_WARNINGS = WarnOnce("mgit_monitoring.logs", limit=16)
_HANDLER_MARK = "_mgit_monitoring_handler"
_LEVEL_MARK = "_mgit_monitoring_level"  # the level the last call set on the logger


def _is_utf8(stream: Any) -> bool:
    """Whether ``stream`` encodes text as UTF-8 (a stream without an encoding counts)."""
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return True
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


def _is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a stream without ``isatty`` is not)."""
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001 - a closed or exotic stream
        return False


def _format_name(value: Any, source: str) -> str:
    """A format from :data:`LOG_FORMATS`, normalised (``json`` -> ``default``)."""
    norm = str(value).strip().lower()
    if norm == "json":
        return "default"
    if norm == "console":
        return norm
    try:
        return check_profile(norm, source)
    except ConfigError:
        msg = f"invalid {source} {value!r} (expected one of {', '.join(LOG_FORMATS)})"
        raise ConfigError(msg) from None


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
    strict: bool = True,
) -> List[logging.Handler]:
    """Send log lines to stderr (and optionally a rotating file); return the handlers.

    Idempotent: the handlers a previous call installed are replaced, never duplicated,
    and the host application's own handlers are left alone. ``log_level`` (default
    ``$MGIT_MONITORING_LOG_LEVEL`` or INFO) applies to the file and, unless
    ``console_level`` says otherwise, to stderr; the logger's level is lowered to the
    more verbose of the two (a more verbose level the host set is kept).

    ``profile`` (default ``$MGIT_MONITORING_LOG_FORMAT``) is the format, one of
    :data:`LOG_FORMATS`: ``console`` (one readable line per record, see
    :class:`~mgit_monitoring.log_console.ConsoleFormatter`), or JSON lines: ``json`` (the
    same as ``default``), ``ecs`` or ``gcp``. A format given applies to every handler.
    When none is given, the console handler writes ``console`` if its stream is a
    terminal and JSON otherwise; the log file is always JSON.

    The log file's parent directories are created and the file is mode 0600, rotated at
    ``max_bytes`` keeping ``backup_count`` old files. A valid ``$TRACEPARENT`` is
    adopted as the process trace.

    ``strict`` (the default; the CLI and the server): a bad ``MGIT_MONITORING_LOG_LEVEL``
    or ``MGIT_MONITORING_LOG_FORMAT`` raises ConfigError. ``strict=False`` (inside an
    application): such a variable is one warning naming it, and its default is used.
    Arguments are always checked strictly.

    Raises:
        ConfigError: an invalid level or format, or a log file that cannot be written.
    """
    env = os.environ if environ is None else environ
    bad_env: List[str] = []

    def from_env(var: str, parse: Any, default: Any) -> Any:
        raw = env.get(var)
        if not raw:
            return default
        try:
            return parse(raw, var)
        except ConfigError as exc:
            if strict:
                raise
            bad_env.append(f"{exc}; using the default")
            return default

    if log_level is None:
        file_level = from_env(LOG_LEVEL_ENV, parse_level, logging.INFO)
    else:
        file_level = parse_level(log_level, "log_level")
    con_level = file_level if console_level is None else parse_level(console_level, "console_level")
    if profile is None:
        chosen: str | None = from_env(LOG_FORMAT_ENV, _format_name, None)
    else:
        chosen = _format_name(profile, "profile")
    gcp_project = env.get("GOOGLE_CLOUD_PROJECT") if chosen == "gcp" else None
    target = (
        logger
        if isinstance(logger, logging.Logger)
        else (logging.getLogger(logger) if logger else logging.getLogger())
    )

    def make_formatter(fmt: str, ensure_ascii: bool = False) -> logging.Formatter:
        if fmt == "console":
            return ConsoleFormatter(
                include_correlation=include_correlation, mask_credentials=mask_credentials
            )
        return StructuredFormatter(
            ensure_ascii=ensure_ascii,
            profile=fmt,
            include_correlation=include_correlation,
            mask_credentials=mask_credentials,
            gcp_project=gcp_project,
        )

    handlers: List[logging.Handler] = []
    if log_file is not None:
        # Here, not at import: logging.handlers costs ~1.6 MB a process without a file
        # never needs.
        from mgit_monitoring.log_file import PrivateRotatingFileHandler

        path = os.path.abspath(os.fspath(log_file))
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            file_handler = PrivateRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            msg = f"cannot write log file {path!r}: {exc.strerror or exc}"
            raise ConfigError(msg) from None
        file_handler.setLevel(file_level)
        file_handler.setFormatter(make_formatter(chosen or "default"))
        handlers.append(file_handler)
    if console:
        out = sys.stderr if stream is None else stream
        console_handler = logging.StreamHandler(out)
        console_handler.setLevel(con_level)
        fmt = chosen or ("console" if _is_terminal(out) else "default")
        console_handler.setFormatter(make_formatter(fmt, not _is_utf8(out)))
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
        context.adopt_traceparent(env)
    for warning in bad_env:  # after the handlers are in place, so that it is seen
        _ENV_WARNINGS.warn(warning, "%s", warning)
    return handlers
