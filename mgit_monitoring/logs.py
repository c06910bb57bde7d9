"""Structured JSON logging, set up in one call: handlers for stderr and a rotating file.

:func:`setup_structured_logging` installs :class:`StructuredFormatter` handlers (stderr,
and optionally a private rotating file) on a logger, idempotently. The pieces live in
their own modules and are re-exported here, so ``from mgit_monitoring.logs import X``
works for all of them:

* :mod:`mgit_monitoring.log_formatter`: :class:`StructuredFormatter`, the JSON line and
  its ``default``/``ecs``/``gcp`` profiles;
* :mod:`mgit_monitoring.structured_logger`: :class:`StructuredLogger` and
  :func:`get_structured_logger`, the seed's ``logger.info("msg", repo=...)``;
* :mod:`mgit_monitoring.log_encoding`: the masked JSON encoding both use.
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
        file_level = parse_level(raw, LOG_LEVEL_ENV) if raw else logging.INFO
    else:
        file_level = parse_level(log_level, "log_level")
    con_level = file_level if console_level is None else parse_level(console_level, "console_level")
    if profile is None:
        raw_profile = env.get(LOG_FORMAT_ENV)
        chosen = check_profile(raw_profile, LOG_FORMAT_ENV) if raw_profile else "default"
    else:
        chosen = check_profile(profile)
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
        context.adopt_traceparent(env)
    return handlers
