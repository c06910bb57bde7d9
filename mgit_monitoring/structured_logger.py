"""The structured logger: ``logger.info("message", field=value, ...)`` over ``logging``.

:class:`StructuredLogger` wraps a standard ``logging.Logger``. Each call builds an
ordinary ``LogRecord`` through the logger's own ``makeRecord`` (so a host's record factory
or Logger subclass still applies) and attaches two attributes to it: the fields, as one
dict (:data:`~mgit_monitoring.log_formatter.FIELDS_ATTR`), and the correlation scope
active at the call (:data:`~mgit_monitoring.log_formatter.CONTEXT_ATTR`). Any handler
works; :class:`~mgit_monitoring.log_formatter.StructuredFormatter` writes them as JSON.
A line the background writer writes, when neither the logger class nor the record factory
is replaced, gets a copy of the record first made at its call site (same file, line,
function and level), with its own message, arguments, time, thread and task: the same
attributes, without ``LogRecord.__init__``'s work for every line.

A call below the logger's level returns before any record, caller lookup or field dict
is built: after one ``isEnabledFor`` check, or at once when the level is below the
logger's own (a logger given a level with ``setLevel``, which then is its effective
level whatever its ancestors say).

Like a library's logger, it writes only through handlers the application configured: a
record that finds no handler on its logger or an ancestor (logging never configured) is
dropped, not handed to ``logging.lastResort`` (which would print it bare on stderr). A
decorated mgit function that fails in an application without logging configuration
therefore prints nothing from this package; its exception still reaches the caller.
A logger under ``mgit_monitoring`` also gets the package's ``NullHandler`` (see
:mod:`mgit_monitoring.package_log`).

Where the record is built and written is the
:class:`~mgit_monitoring.log_writer.LogWriter`'s choice: on the calling thread, or (once
the integration turns the background mode on) on one background thread, in call order,
with the record's time, thread and correlation scope those of the call.
"""

from __future__ import annotations

import logging
import operator
import os
import sys
import threading
import time
import traceback
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Tuple, Union

from mgit_monitoring.context import CURRENT_SCOPE, PROCESS_SCOPE
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.log_formatter import CONTEXT_ATTR, FIELDS_ATTR
from mgit_monitoring.log_writer import LogWriter, get_log_writer
from mgit_monitoring.package_log import PACKAGE_LOGGER, install_null_handler

__all__ = ["LEVEL_NAMES", "StructuredLogger", "get_structured_logger", "parse_level"]

LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The level names :func:`parse_level` accepts (any case; also WARN, FATAL, NOTSET)."""

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = 10, 20, 30, 40, 50
_NO_FLOOR = SimpleNamespace(level=0)  # for loggers whose class decides levels its own way
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
# Values a queued line may hold: nothing the caller could change after the call.
_SCALARS = frozenset((str, int, float, bool, type(None)))
_LINES: Dict[Tuple[int, int], Tuple[Any, int]] = {}  # (id(code), offset) -> (code, line)
_LINES_MAX = 4096
_TASK_NAMES = sys.version_info >= (3, 12)  # LogRecord.taskName
_get_ident = threading.get_ident
_current_thread = threading.current_thread
_getpid = os.getpid
_record_factory = logging.getLogRecordFactory
_LogRecord = logging.LogRecord
_new_record = object.__new__
_level_name = logging.getLevelName


def _process_name() -> str | None:
    """The multiprocessing name of this process, when that module is loaded: what a
    LogRecord's ``processName`` is made from."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return None
    try:
        return str(mp.current_process().name)
    except Exception:  # noqa: BLE001 - LogRecord ignores a failure here too
        return None


def parse_level(value: Union[int, str], source: str = "level") -> int:
    """A logging level from a name (``"debug"``, ``"WARN"``), a digit string or an int >= 0.

    Raises:
        ConfigError: naming ``source`` and the value, for anything else.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str):
        name = value.strip().upper()
        name = _LEVEL_ALIASES.get(name, name)
        if name in LEVEL_NAMES or name == "NOTSET":
            return int(getattr(logging, name))
        if name.isdigit():
            return int(name)
    msg = f"invalid {source} {value!r} (expected one of {', '.join(LEVEL_NAMES)})"
    raise ConfigError(msg)


class StructuredLogger:
    """``logger.info("message", field=value, ...)`` over a standard ``logging.Logger``.

    Args:
        logger: the ``logging.Logger`` (or its name) the records go to.
        clock: what ``operation_start``/``operation_end`` read for their ``start_time`` and
            ``end_time`` fields (default ``time.time``); the record's own time is the
            record factory's.
        writer: the :class:`~mgit_monitoring.log_writer.LogWriter` that decides where
            records are built and written (default: the process's, which writes on the
            calling thread until the integration turns its background mode on).

    Fields may have any name (``name``, ``module``, ``args``, ``message`` ...): they travel
    as one record attribute, so they never clash with LogRecord's own. ``exc_info``,
    ``stack_info`` and ``stacklevel`` keep their ``logging`` meaning. The record's
    module/function/line are the caller's. It adds no handler and sets no level: output
    goes wherever ``logging`` is configured (see
    :func:`~mgit_monitoring.logs.setup_structured_logging`), and nowhere when it is not
    (no ``logging.lastResort`` output).
    """

    __slots__ = (
        "_clock",
        "_direct",
        "_floor",
        "_logger",
        "_queued",
        "_plain_records",
        "_queued_operation",
        "_sites",
        "_writer",
        "name",
    )

    def __init__(
        self,
        logger: Union[str, logging.Logger],
        *,
        clock: Callable[[], float] = time.time,
        writer: LogWriter | None = None,
    ) -> None:
        lg = logging.getLogger(logger) if isinstance(logger, str) else logger
        if lg.name == PACKAGE_LOGGER or lg.name.startswith(PACKAGE_LOGGER + "."):
            install_null_handler()
        self._logger = lg
        self.name = lg.name
        self._clock = clock
        self._writer = get_log_writer() if writer is None else writer
        self._queued = self._emit_queued  # bound once: one object less per queued line
        self._queued_operation = self._emit_operation
        # Decided once, for a logger class that works as logging.Logger does:
        # - _floor: where the level methods read the logger's own level; below it a call
        #   is off whatever isEnabledFor would say (NOTSET, 0, lets every call through);
        # - _direct: a record goes straight to the handlers (callHandlers() as logging
        #   does it, minus lastResort) when the logger has no filters and is not disabled
        #   (what handle() would do after checking those).
        cls = type(lg)
        std = logging.Logger
        self._floor = (
            lg
            if cls.isEnabledFor is std.isEnabledFor
            and cls.getEffectiveLevel is std.getEffectiveLevel
            else _NO_FLOOR
        )
        # - _plain_records: its records are logging's own (makeRecord not overridden), so a
        #   captured line's record may be copied from one made earlier at the same site.
        self._plain_records = cls.makeRecord is std.makeRecord
        self._sites: Dict[Tuple[Any, ...], Tuple[Tuple[Any, ...], Dict[str, Any]]] = {}
        self._direct = (
            cls.handle is std.handle
            and cls.filter is std.filter
            and cls.callHandlers is std.callHandlers
        )

    if TYPE_CHECKING:

        @property
        def logger(self) -> logging.Logger:
            """The ``logging.Logger`` records go to (read-only)."""

    else:  # the same, read without a Python call
        logger = property(
            operator.attrgetter("_logger"), doc="The ``logging.Logger`` records go to (read-only)."
        )

    def __repr__(self) -> str:
        return f"<StructuredLogger {self.name!r}>"

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging name
        """Whether a record at ``level`` would be processed."""
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, msg: Any, args: Tuple[Any, ...], fields: Dict[str, Any]) -> None:
        # ``fields`` is always a dict this class built (from **kwargs), never the caller's.
        exc_info = fields.pop("exc_info", None) or None if "exc_info" in fields else None
        stack_info = fields.pop("stack_info", False) if "stack_info" in fields else False
        stacklevel = fields.pop("stacklevel", 1) if "stacklevel" in fields else 1
        # Our own caller lookup: cheaper than Logger.findCaller, and the same on 3.8-3.13
        # (stacklevel handling changed between versions). Frames: 0 here, 1 the public
        # method, 2 its caller.
        try:
            frame: Any = sys._getframe(stacklevel + 1)
        except ValueError:
            frame = None
        fn, lno, func = _site(frame)
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
        writer = self._writer
        if not writer.background:
            self._handle(self._record(level, fn, lno, msg, args, exc_info, func, sinfo, fields))
            return
        # Queued only when nothing in the line can change after this call returns, and below
        # ERROR: an error line is out before the call returns (see log_writer).
        queue = level < _ERROR and exc_info is None and sinfo is None and type(msg) is str
        if queue:
            for value in args:
                if type(value) not in _SCALARS:
                    queue = False
                    break
            else:
                for value in fields.values():
                    if type(value) not in _SCALARS:
                        queue = False
                        break
        if not queue:
            # Built now (its time is the call's), written after what is queued.
            record = self._record(level, fn, lno, msg, args, exc_info, func, sinfo, fields)
            writer.write_now(self._handle, record)
            return
        task = _task_name() if _TASK_NAMES else None
        scope = CURRENT_SCOPE.get()
        writer.submit(
            (
                self._queued,
                level,
                fn,
                lno,
                msg,
                args,
                func,
                fields,
                time.time_ns(),
                _get_ident(),
                _current_thread().name,
                task,
                PROCESS_SCOPE.get() if scope is None else scope,
            )
        )

    def _record(
        self,
        level: int,
        fn: str,
        lno: int,
        msg: Any,
        args: Tuple[Any, ...],
        exc_info: Any,
        func: str,
        sinfo: str | None,
        fields: Dict[str, Any],
    ) -> logging.LogRecord:
        """The record of a call, made now on the calling thread."""
        lg = self._logger
        record = lg.makeRecord(lg.name, level, fn, lno, msg, args, exc_info, func, None, sinfo)
        attrs = record.__dict__
        attrs[CONTEXT_ATTR] = CURRENT_SCOPE.get()
        if fields:
            attrs[FIELDS_ATTR] = fields
        return record

    def _emit_queued(self, line: Tuple[Any, ...]) -> None:
        """Write a queued line (on the writer thread): the record gets the caller's time,
        thread, task and correlation scope, captured at the call."""
        self._emit_captured(*line[1:])

    def _emit_operation(self, line: Tuple[Any, ...]) -> None:
        """Write a line queued by :meth:`log_operation`: its message and fields are built
        here, on the writer thread."""
        _, level, fn, lno, func, operation, status, duration, clock, base = line[:10]
        msg, args, fields = _operation_line(operation, status, duration, clock, base)
        self._emit_captured(level, fn, lno, msg, args, func, fields, *line[10:])

    def _emit_captured(
        self,
        level: int,
        fn: str,
        lno: int,
        msg: Any,
        args: Tuple[Any, ...],
        func: str,
        fields: Dict[str, Any],
        ns: int,
        ident: int,
        thread_name: str,
        task: str | None,
        scope: Any,
    ) -> None:
        """Write a captured line (its values all scalars): the record is made here with
        the time, thread, task and scope of the call."""
        lg = self._logger
        created = ns / 1e9
        if self._plain_records and _record_factory() is _LogRecord:
            # What makeRecord would build, copied from a record made earlier at this call
            # site, without LogRecord.__init__'s work per line (about a fifth of a line's).
            # Its file name, module and function are the site's; the level name, process
            # and process name are checked against the ones it was made with, and a new
            # one is made when any differs (addLevelName, a fork, a renamed process).
            key = (level, fn, lno, func)
            state = (
                _getpid(),
                _level_name(level),
                _process_name(),
                logging.logThreads,
                logging.logProcesses,
                logging.logMultiprocessing,
            )
            entry = self._sites.get(key)
            if entry is None or entry[0] != state:
                entry = self._site_record(key, state)
            attrs = entry[1]
            record = _new_record(_LogRecord)
            record.__dict__.update(attrs)
            attrs = record.__dict__
            attrs["msg"] = msg
            attrs["args"] = args
            attrs["relativeCreated"] += (created - attrs["created"]) * 1000
        else:  # a host's record factory or makeRecord: theirs, for every line
            record = lg.makeRecord(lg.name, level, fn, lno, msg, args, None, func, None, None)
            attrs = record.__dict__
            attrs["relativeCreated"] -= (record.created - created) * 1000
        msecs = (ns % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ns // 1_000_000_000:
            msecs = 0.0  # created rounded up into the next second
        attrs["created"] = created
        attrs["msecs"] = msecs
        if logging.logThreads:
            attrs["thread"] = ident
            attrs["threadName"] = thread_name
        if _TASK_NAMES:  # the call's task (None outside one), not the writing thread's
            attrs["taskName"] = task
        attrs[CONTEXT_ATTR] = scope
        if fields:
            attrs[FIELDS_ATTR] = fields
        self._handle(record)

    def _site_record(
        self, key: Tuple[Any, ...], state: Tuple[Any, ...]
    ) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        """The attributes of a record made at call site ``key`` (level, file, line,
        function), remembered with the process state they depend on."""
        lg = self._logger
        level, fn, lno, func = key
        record = lg.makeRecord(lg.name, level, fn, lno, "", (), None, func, None, None)
        entry = (state, dict(record.__dict__))
        sites = self._sites
        if len(sites) >= _LINES_MAX:
            sites.clear()
        sites[key] = entry
        return entry

    def _handle(self, record: logging.LogRecord) -> None:
        """Hand ``record`` to the handlers, as ``Logger.handle`` would."""
        lg = self._logger
        if self._direct and not lg.filters and not lg.disabled:
            # Logger.callHandlers without its lastResort fallback (with no handler on the
            # way, logging is not configured and a library prints nothing): walk up the
            # hierarchy while propagate, handing the record to each handler at its level.
            level = record.levelno
            c: Any = lg
            while c is not None:
                for handler in c.handlers:
                    if level >= handler.level:
                        handler.handle(record)
                c = c.parent if c.propagate else None
        elif lg.hasHandlers():
            lg.handle(record)

    def debug(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at DEBUG with ``fields``."""
        if self._floor.level <= _DEBUG and self._logger.isEnabledFor(_DEBUG):
            self._log(_DEBUG, message, args, fields)

    def info(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at INFO with ``fields``."""
        if self._floor.level <= _INFO and self._logger.isEnabledFor(_INFO):
            self._log(_INFO, message, args, fields)

    def warning(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at WARNING with ``fields``."""
        if self._floor.level <= _WARNING and self._logger.isEnabledFor(_WARNING):
            self._log(_WARNING, message, args, fields)

    def error(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ERROR with ``fields``."""
        if self._floor.level <= _ERROR and self._logger.isEnabledFor(_ERROR):
            self._log(_ERROR, message, args, fields)

    def exception(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ERROR with the exception being handled (its traceback) and ``fields``."""
        if self._floor.level <= _ERROR and self._logger.isEnabledFor(_ERROR):
            fields.setdefault("exc_info", True)
            self._log(_ERROR, message, args, fields)

    def critical(self, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at CRITICAL with ``fields``."""
        if self._floor.level <= _CRITICAL and self._logger.isEnabledFor(_CRITICAL):
            self._log(_CRITICAL, message, args, fields)

    def log(self, level: int, message: Any, /, *args: Any, **fields: Any) -> None:
        """Log at ``level`` with ``fields``."""
        if level >= self._floor.level and self._logger.isEnabledFor(level):
            self._log(level, message, args, fields)

    def operation_start(self, operation: str, /, **fields: Any) -> None:
        """INFO "Operation started: <operation>" with operation, operation_status, start_time."""
        if self._floor.level <= _INFO and self._logger.isEnabledFor(_INFO):
            clock = self._clock()
            msg, args, line_fields = _operation_line(operation, "started", None, clock, fields)
            self._log(_INFO, msg, args, line_fields)

    def operation_end(
        self,
        operation: str,
        /,
        success: bool = True,
        duration: float | None = None,
        **fields: Any,
    ) -> None:
        """INFO (ERROR on failure) "Operation completed|failed: <op> (took N.NNs)"."""
        level = _INFO if success else _ERROR
        if level < self._floor.level or not self._logger.isEnabledFor(level):
            return
        status = "completed" if success else "failed"
        msg, args, line_fields = _operation_line(operation, status, duration, self._clock(), fields)
        self._log(level, msg, args, line_fields)

    def log_operation(
        self,
        level: int,
        operation: str,
        status: str,
        duration: float | None,
        fields: Mapping[str, Any],
        stacklevel: int = 1,
    ) -> None:
        """One "Operation <status>: <operation>" line at ``level``, for a caller that writes
        one or two per call (the monitoring decorators).

        The line is :meth:`operation_start`'s when ``status`` is ``"started"`` and
        :meth:`operation_end`'s otherwise (``"completed"`` is a success, anything else a
        failure). ``fields`` comes first in the line; it is not copied, so it must not
        change afterwards. Every key in it is a field (``exc_info``, ``stack_info`` and
        ``stacklevel`` included: the call site is ``stacklevel``, the argument). In
        background mode, a line below ERROR whose fields are all plain values
        (str, int, float, bool, None) is captured as its caller, time, thread and scope
        only, and its message and fields are built on the writer thread.
        """
        if level < self._floor.level or not self._logger.isEnabledFor(level):
            return
        clock = self._clock()
        try:
            frame: Any = sys._getframe(stacklevel)
        except ValueError:
            frame = None
        fn, lno, func = _site(frame)
        writer = self._writer
        queue = writer.background and level < _ERROR
        if queue:
            for value in fields.values():
                if type(value) not in _SCALARS:
                    queue = False
                    break
        if not queue:
            # Every field is a field here (``exc_info``, ``stacklevel`` ... included), in
            # both modes: the record is built directly, not through _log's options.
            msg, args, line_fields = _operation_line(operation, status, duration, clock, fields)
            record = self._record(level, fn, lno, msg, args, None, func, None, line_fields)
            if writer.background:
                writer.write_now(self._handle, record)
            else:
                self._handle(record)
            return
        scope = CURRENT_SCOPE.get()
        writer.submit(
            (
                self._queued_operation,
                level,
                fn,
                lno,
                func,
                operation,
                status,
                duration,
                clock,
                fields,
                time.time_ns(),
                _get_ident(),
                _current_thread().name,
                _task_name() if _TASK_NAMES else None,
                PROCESS_SCOPE.get() if scope is None else scope,
            )
        )


def _operation_line(
    operation: str,
    status: str,
    duration: float | None,
    clock: float,
    fields: Mapping[str, Any],
) -> Tuple[str, Tuple[Any, ...], Dict[str, Any]]:
    """The message, its arguments and the fields of an "Operation <status>" line: the
    caller's ``fields`` first, then the operation's own."""
    line = {**fields, "operation": operation, "operation_status": status}
    if status == "started":
        line["start_time"] = clock
        return "Operation started: %s", (operation,), line
    line["success"] = status == "completed"
    line["end_time"] = clock
    if duration is None:
        return "Operation %s: %s", (status, operation), line
    line["duration_seconds"] = duration
    return "Operation %s: %s (took %.2fs)", (status, operation, duration), line


def _site(frame: Any) -> Tuple[str, int, str]:
    """The file, line and function of ``frame`` (a caller's), or logging's placeholders."""
    if frame is None:
        return "(unknown file)", 0, "(unknown function)"
    code = frame.f_code
    # The line of a call site never changes: f_lineno walks the code's line table on every
    # read (the bulk of a queued line's cost for a long caller), so it is remembered by
    # (code, instruction offset). Keyed by the code's id (hashing a code object hashes its
    # constants), the entry holding the code so that the id cannot be reused while it is
    # remembered.
    site = (id(code), frame.f_lasti)
    known = _LINES.get(site)
    if known is None:
        lno = frame.f_lineno
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[site] = (code, lno)
    else:
        lno = known[1]
    return code.co_filename, lno, code.co_name


def _task_name() -> str | None:
    """The running asyncio task's name, as LogRecord reads it (3.12+), else None."""
    if not getattr(logging, "logAsyncioTasks", False):
        return None
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return str(asyncio.current_task().get_name())
    except Exception:  # noqa: BLE001 - no running loop: no task
        return None


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
        slog.logger.setLevel(parse_level(level, "level"))
    return slog
