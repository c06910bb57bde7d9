"""The shared sqlite store: history that outlives a process, shared by every mgit process on a host.

mgit is a CLI, so each run is a short process; what one run records must be visible to the
next run and to ``mgit-monitoring performance`` or the server. All of them open one sqlite
file under the state directory (:data:`STORE_FILENAME`).

Two layers live here:

* a generic one any component can reuse for its own tables: :class:`Store` opens the file
  lazily (WAL, ``synchronous=NORMAL``, a busy timeout), applies per-component schema
  migrations (:meth:`Store.register_schema`), runs writes in ``BEGIN IMMEDIATE``
  transactions (:meth:`Store.transaction`, :meth:`Store.write`), reads
  (:meth:`Store.read`), deletes old rows (:meth:`Store.register_retention`), and calls
  flush callbacks periodically and at exit (:meth:`Store.add_flush_callback`), each on its
  own interval, all from one flush thread per store;
* the performance traces table (:data:`TRACES_COMPONENT`, :class:`TraceRow`,
  :meth:`Store.insert_traces`, :meth:`Store.query_traces`).

Failure policy: monitoring never fails the application. A corrupt file (not a database,
malformed, truncated, or another program's database) is renamed aside with a timestamp
suffix and a fresh one is started, with one warning; a file whose schema is newer than
this code, or a directory that cannot be written, is left alone and this process falls
back to an in-memory database, with one warning; a write that cannot get the lock within
the busy timeout, or meets a full disk, is dropped with a warning (the first of each kind;
later ones at DEBUG) and counted in :attr:`Store.dropped_writes`. Opening a store whose
schema is current only reads, so it never waits for another process's write lock; at exit
(:meth:`Store.begin_shutdown`) all writes together wait at most ``timeout``. All warnings
go to the logger ``mgit_monitoring.store``.

Readers (``Store(path, reader=True)``: the server, ``metrics``, ``performance``) never create,
migrate or move aside the file. One that cannot write the file or its directory reads it
read-only (a sqlite ``mode=ro`` connection per read; a WAL database with no ``-wal`` file,
whose ``-shm`` cannot be created in a read-only directory, is read with ``immutable=1``,
and the read is repeated when the file changed meanwhile), and says so once at INFO. A
reader finds "no data yet" in a missing file, and :meth:`Store.check_readable` raises for
a file it cannot read (the CLI's exit 2). :attr:`Store.mode` is ``read-write``,
``read-only``, ``memory`` or ``unusable``.

Permissions: a writer creates the state directory ``0750`` and the file ``0640`` (both
further restricted by the umask; sqlite gives ``-wal``/``-shm`` the file's mode), so a
monitoring server running as another user in the writer's group can read what mgit runs
flushed, and nobody else can. An existing directory keeps its mode.

Why these settings (measured in shared/bench/log_metrics_sqlite.py): with WAL, a 5 s busy
timeout and ``BEGIN IMMEDIATE``, 16 processes writing at once lost nothing, and without a
busy timeout 81 % of writes failed; a DEFERRED transaction that upgrades to a write lock
cannot be rescued by the busy handler, hence IMMEDIATE for every write.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Sequence,
    Tuple,
    Union,
)

from mgit_monitoring.errors import StoreError
from mgit_monitoring.fork_hooks import after_fork_in_child, around_fork_in_parent
from mgit_monitoring.store_dir import (
    STORE_MEMORY,
    STORE_READ_ONLY,
    STORE_READ_WRITE,
    STORE_UNUSABLE,
)
from mgit_monitoring.warn_once import WarnOnce

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MEMORY",
    "READ_ONLY",
    "READ_WRITE",
    "STORE_FILENAME",
    "UNUSABLE",
    "TRACES_COMPONENT",
    "TRACES_MIGRATIONS",
    "Migration",
    "Store",
    "TraceRow",
]

STORE_FILENAME = "monitoring.sqlite3"
"""Name of the shared sqlite file inside the state directory."""

DIR_MODE = 0o750
"""Mode of a state directory a writer creates (before the umask): group members may read."""
FILE_MODE = 0o640
"""Mode of a store file a writer creates (before the umask); sqlite copies it to -wal/-shm."""

READ_WRITE = STORE_READ_WRITE
READ_ONLY = STORE_READ_ONLY
MEMORY = STORE_MEMORY
UNUSABLE = STORE_UNUSABLE

logger = logging.getLogger("mgit_monitoring.store")

Migration = Union[str, Sequence[str], Callable[[sqlite3.Connection], None]]
"""One schema step: an SQL statement, a sequence of statements, or a callable(connection)."""

# SQLite primary result codes (sqlite3.h); sqlite_errorcode exists on Python 3.11+ only,
# so messages are matched as well for 3.8-3.10.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_FULL = 13
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_IOERR = 10
_NEARLY_FULL_BYTES = 256 * 1024  # an I/O error with less free than this is a full disk
_CORRUPT_TEXT = ("not a database", "malformed", "file is encrypted")

#: Connections inherited across fork() are never closed in the child: SQLite forbids using
#: them there, and closing them could disturb the parent's WAL state.
_ABANDONED: List[sqlite3.Connection] = []

#: Every Store, for the fork hooks below (registered by the first Store).
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
_fork_held: Dict[int, List[threading.Lock]] = {}


def _before_fork() -> None:
    # SQLite keeps each file's lock state in process memory, which a child inherits: forked
    # while a write transaction is open, the child would see the write lock as taken forever
    # and never write. Wait for open transactions to end (milliseconds: the guard is not
    # held while waiting for another process's lock).
    held = []
    for store in list(_STORES):
        if store._txn_guard.acquire(True, store.timeout):
            held.append(store._txn_guard)
    _fork_held[threading.get_ident()] = held


def _after_fork_in_parent() -> None:
    for guard in _fork_held.pop(threading.get_ident(), []):
        guard.release()


def _after_fork_in_child() -> None:
    # Threads of the parent do not exist here: locks they held would never be released.
    _fork_held.clear()
    for store in list(_STORES):
        store._lock = threading.RLock()
        store._txn_guard = threading.Lock()
        store._flush_lock = threading.Lock()


def _register_fork_hooks() -> None:
    after_fork_in_child(_after_fork_in_child)  # both idempotent: once per process
    around_fork_in_parent(_before_fork, _after_fork_in_parent)


_MAINTENANCE_EVERY_S = 24 * 3600.0
"""Retention cleanup runs at most this often per store file (tracked in the meta table)."""


def _code(exc: BaseException) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


class _NoFileYet(StoreError):
    """A reader's store file does not exist (yet): no data, not an error."""


class _UseReadOnly(StoreError):
    """A reader that cannot write: read through :meth:`Store._read_only_rows`."""


def _uid() -> str:
    getuid = getattr(os, "getuid", None)
    return str(getuid()) if getuid is not None else "?"


def _stat_store(path: str) -> Tuple[int, int, int, int]:
    """(dev, inode, size, mtime ns) of the store file; _NoFileYet when there is none."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise StoreError(f"{directory} is not a directory") from None
        raise _NoFileYet(path) from None
    except OSError as exc:  # e.g. a directory this uid may not search
        reason = exc.strerror or str(exc)
        raise StoreError(f"{reason} for uid {_uid()}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _missing_table(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


def _uri_path(path: str) -> str:
    """``path`` escaped for a sqlite ``file:`` URI (``%``, ``?`` and ``#`` are special)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _describe_unreadable(path: str, exc: BaseException | None) -> str:
    if not os.access(path, os.R_OK):
        return f"permission denied for uid {_uid()}"
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unreadable"


def _create_file(path: str) -> None:
    """Create an empty store file with :data:`FILE_MODE` (sqlite would use 0644)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # sqlite reports the real problem when it opens the path
    os.close(fd)


class _ForeignFile(Exception):
    """The file is a database, but not one this package wrote (no usable schema_versions)."""


def _is_corrupt(exc: BaseException) -> bool:
    if isinstance(exc, _ForeignFile):
        return True
    if _code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(t in text for t in _CORRUPT_TEXT)


def _is_transient(exc: BaseException, path: str | None = None) -> bool:
    """A lock held too long or a full disk: worth trying again later, unlike EROFS or EACCES."""
    return isinstance(exc, sqlite3.Error) and _drop_reason(exc, path) != "store error"


def _no_space(path: str | None) -> bool:
    """True when the filesystem of ``path``'s directory has (almost) no space left."""
    if path is None or not hasattr(os, "statvfs"):
        return False
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES


def _drop_reason(exc: BaseException, path: str | None = None) -> str:
    code = _code(exc)
    text = str(exc).lower()
    if code == _SQLITE_FULL or "disk is full" in text or "disk full" in text:
        return "disk full"
    # A full disk met while sqlite grows its -shm or -wal file is reported as an I/O error
    # (SQLITE_IOERR_SHMSIZE, _WRITE...); the filesystem says what it really is.
    if (code == _SQLITE_IOERR or "disk i/o error" in text) and _no_space(path):
        return "disk full"
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in text or "busy" in text:
        return "store locked past the busy timeout"
    return "store error"


class TraceRow(NamedTuple):
    """One completed performance trace as stored."""

    operation: str
    start_time: float
    """Wall-clock start, seconds since the epoch (UTC)."""
    duration: float
    """Seconds, from a monotonic clock."""
    success: bool
    error_type: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    parent_id: str | None = None
    pid: int = 0
    metadata: Dict[str, Any] | None = None


TRACES_COMPONENT = "performance"
"""Component name of the traces schema in the ``schema_versions`` table."""

TRACES_MIGRATIONS: Tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS perf_traces (
            id             INTEGER PRIMARY KEY,
            operation      TEXT    NOT NULL,
            start_time     REAL    NOT NULL,  -- unix epoch seconds (UTC)
            duration       REAL    NOT NULL,  -- seconds
            success        INTEGER NOT NULL,  -- 1 success, 0 failure
            error_type     TEXT,
            correlation_id TEXT,
            trace_id       TEXT,
            parent_id      TEXT,
            pid            INTEGER NOT NULL,
            metadata       TEXT               -- JSON object or NULL
        )""",
        "CREATE INDEX IF NOT EXISTS perf_traces_op_time ON perf_traces(operation, start_time)",
        "CREATE INDEX IF NOT EXISTS perf_traces_time ON perf_traces(start_time)",
    ),
)
"""Version 1 of the traces table; append steps, never edit released ones."""

# The trace statements are whole literals (no SQL is assembled from values; every value
# is a bound parameter).
_INSERT_TRACE = (
    "INSERT INTO perf_traces (operation, start_time, duration, success, error_type, "
    "correlation_id, trace_id, parent_id, pid, metadata) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_SELECT_TRACES = (
    "SELECT operation, start_time, duration, success, error_type, correlation_id, trace_id, "
    "parent_id, pid, metadata FROM perf_traces WHERE start_time >= ?"
)
# What statistics need; the other fields read as NULL or 0.
_SELECT_LIGHT_TRACES = (
    "SELECT operation, start_time, duration, success, error_type, NULL, NULL, NULL, 0, NULL "
    "FROM perf_traces WHERE start_time >= ?"
)


def _json_metadata(metadata: Dict[str, Any] | None) -> str | None:
    if not metadata:
        return None
    try:
        return json.dumps(metadata, default=repr, sort_keys=True, ensure_ascii=True)
    except (TypeError, ValueError):  # e.g. a non-string key; keep the trace, lose the extras
        return None


class Store:
    """One sqlite database shared by every process that points at the same file.

    ``path`` None (or ``":memory:"``) gives a private in-memory database with the same
    behaviour, which is also what a store falls back to when its directory is unwritable.
    Nothing touches the disk until the first read or write.

    ``timeout`` is the busy timeout: how long a write waits for another process's lock
    before it is dropped. ``clock`` gives wall-clock seconds (injectable for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 5.0,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        reader: bool = False,
    ) -> None:
        if path is not None and os.fspath(path) == ":memory:":
            path = None
        self.path: str | None = os.fspath(path) if path is not None else None
        """The requested file (None for an in-memory store)."""
        self.timeout = float(timeout)
        self.flush_interval = float(flush_interval)
        self.dropped_writes = 0
        """Writes lost to a lock held past the timeout, a full disk or another error."""
        self._clock = clock
        self._lock = threading.RLock()
        self._txn_guard = threading.Lock()  # held while a write transaction is open
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._memory = self.path is None
        self._file_id: Tuple[int, int] | None = None
        self._schemas: Dict[str, Tuple[Migration, ...]] = {}
        self._retention: Dict[Tuple[str, str], float] = {}
        self._warnings = WarnOnce(logger)  # one WARNING per (what, reason), then DEBUG
        self._closed = False
        self._flush_lock = threading.Lock()  # the callbacks and the flush thread's state
        self._callbacks: List[_FlushCallback] = []
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._stop = threading.Event()
        self._wake = threading.Event()  # set to make the flush thread re-plan its sleep
        self._next_maintenance = 0.0  # monotonic time of the thread's next retention check
        self._atexit_registered = False
        self._deadline: float | None = None  # clock() value after which writes do not wait
        self.reader = bool(reader)
        """Only reads: never creates, migrates or moves aside the file (see the module doc)."""
        self._readonly = False  # a reader that cannot write: one connection per read
        self._problem: str | None = None  # why a reader cannot read the file (None: it can)
        _STORES.add(self)
        _register_fork_hooks()

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], **kwargs: Any) -> Store:
        """A store for ``<state_dir>/monitoring.sqlite3`` (created on first use)."""
        return cls(os.path.join(os.fspath(state_dir), STORE_FILENAME), **kwargs)

    def __repr__(self) -> str:
        where = "memory" if self._memory else self.path
        return f"<Store {where}>"

    @property
    def mode(self) -> str:
        """How this process uses the store: ``read-write``, ``read-only``, ``memory`` (no
        file, or a writer's fallback) or ``unusable`` (a reader that cannot read the file;
        :attr:`problem` says why). Opens the store if it is not open yet."""
        if self._memory:
            return MEMORY
        if not self.reader:
            return READ_WRITE if self.persistent else MEMORY
        try:
            self.check_readable()
        except StoreError:
            return UNUSABLE
        if self._readonly:
            return READ_ONLY
        if self._conn is not None:
            return READ_WRITE
        # No file yet: what this process will be able to do once a writer creates it.
        directory = os.path.dirname(os.path.abspath(self.path or "."))
        return READ_WRITE if os.access(directory, os.W_OK | os.X_OK) else READ_ONLY

    @property
    def problem(self) -> str | None:
        """Why a reader cannot read the file (None when it can, or has no file yet)."""
        return self._problem

    def check_readable(self) -> None:
        """Raise :class:`StoreError` (one line: path and reason) when this store cannot be
        read; a reader's missing file is not an error (no data yet). Never logs."""
        if self._memory:
            return
        with self._lock:
            try:
                if not self._readonly:
                    try:
                        self._connection()
                        return
                    except _UseReadOnly:
                        pass
                self._read_only_rows("SELECT 1")
            except _NoFileYet:
                return
            except StoreError as exc:
                if self.reader and self._problem is None:
                    self._problem = str(exc)
                raise

    @property
    def persistent(self) -> bool:
        """True when data goes to a file other processes can read (False after a fallback)."""
        with self._lock:
            if not self._readonly:
                with contextlib.suppress(StoreError):
                    self._connection()
            return not self._memory

    # -- connection management ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The open connection, (re)opened lazily, after fork and after a move-aside."""
        if self._closed:
            raise StoreError(f"store {self.path or ':memory:'} is closed")
        pid = os.getpid()
        if self._conn is not None and self._pid == pid:
            return self._conn
        if self._conn is not None:  # inherited across fork: never use or close it here
            _ABANDONED.append(self._conn)
            self._conn = None
        self._pid = pid
        if not self._memory and self.reader:
            return self._reader_connection()
        if not self._memory:
            try:
                self._conn = self._open_file()
                return self._conn
            except Exception as exc:  # noqa: BLE001 - classified below, never propagated raw
                if _is_corrupt(exc):
                    self._move_aside(str(exc))
                    try:
                        self._conn = self._open_file()
                        return self._conn
                    except Exception as again:  # noqa: BLE001
                        exc = again
                if _is_transient(exc, self.path):
                    # Locked by another writer or a full disk: this operation is lost, the
                    # next one tries the file again.
                    msg = f"store {self.path}: {exc}"
                    raise StoreError(msg) from exc
                self._fall_back_to_memory(exc)
        self._conn = self._open_memory()
        return self._conn

    def _reader_connection(self) -> sqlite3.Connection:
        """A reader's read-write connection; raises _NoFileYet, _UseReadOnly or StoreError."""
        if self.path is None:  # only a file store gets here
            raise RuntimeError("an in-memory store has no file")
        if self._readonly:
            raise _UseReadOnly()
        try:
            _stat_store(self.path)
        except _NoFileYet:
            raise
        except StoreError as exc:  # a file this uid cannot even see
            raise self._unusable(str(exc)) from None
        directory = os.path.dirname(os.path.abspath(self.path))
        files = [self.path] + [
            self.path + s for s in ("-wal", "-shm") if os.path.exists(self.path + s)
        ]
        if not (
            os.access(directory, os.W_OK | os.X_OK) and all(os.access(f, os.W_OK) for f in files)
        ):
            self._become_read_only(f"this process (uid {_uid()}) cannot write {directory}")
            raise _UseReadOnly()
        try:
            self._conn = self._open_file()
            self._problem = None
            return self._conn
        except Exception as exc:  # noqa: BLE001 - classified here
            if _is_transient(exc, self.path):
                raise StoreError(f"store {self.path}: {exc}") from exc
            if _is_corrupt(exc) or isinstance(exc, StoreError):
                raise self._unusable(str(exc)) from exc
            # EROFS and friends: a file the checks above could not tell was read-only.
            self._become_read_only(f"{type(exc).__name__}: {exc}")
            raise _UseReadOnly() from None

    def _unusable(self, reason: str) -> StoreError:
        self._problem = reason
        return StoreError(f"cannot read the monitoring store {self.path}: {reason}")

    def _become_read_only(self, why: str) -> None:
        self._readonly = True
        logger.info(
            "monitoring store %s opened read-only (%s): showing what other processes "
            "flushed, writing nothing",
            self.path,
            why,
        )

    def _read_only_rows(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        """One query on a fresh read-only connection (no lasting locks, no stale -shm).

        Without a ``-wal`` file every commit is in the main file; when sqlite cannot create
        the ``-shm`` there (a read-only directory) the file is read with ``immutable=1``,
        and the read is repeated when the file or its WAL changed meanwhile (a writer
        started): an immutable connection takes no locks, so it must not trust a read
        that overlapped a checkpoint.
        """
        if self.path is None:  # only a file store gets here
            raise RuntimeError("an in-memory store has no file")
        path = os.path.abspath(self.path)
        last: BaseException | None = None
        for _attempt in range(4):
            try:
                before = _stat_store(path)
            except _NoFileYet:
                return []
            except StoreError as exc:
                raise self._unusable(str(exc)) from None
            try:
                return self._query_uri(path, "mode=ro", sql, params)
            except sqlite3.Error as exc:
                last = exc
                if _missing_table(exc):
                    return []  # a component no writer created yet: no data of that kind
                if _is_corrupt(exc) or os.path.exists(path + "-wal"):
                    if not os.path.exists(path + "-wal"):
                        break
                    continue  # a writer is starting: its -shm may not exist yet
            try:
                rows = self._query_uri(path, "mode=ro&immutable=1", sql, params)
            except sqlite3.Error as exc:
                if _missing_table(exc):
                    return []
                last = exc
                continue
            try:
                after = _stat_store(path)
            except StoreError:  # gone or hidden meanwhile: read again
                after = None
            if after == before and not os.path.exists(path + "-wal"):
                self._problem = None
                return rows
        reason = _describe_unreadable(path, last)
        raise self._unusable(reason)

    def _query_uri(
        self, path: str, flags: str, sql: str, params: Sequence[Any]
    ) -> List[Tuple[Any, ...]]:
        conn = sqlite3.connect(
            f"file:{_uri_path(path)}?{flags}",
            uri=True,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            versions = self._stored_versions(conn, foreign_check=True)
            for component, migrations in self._schemas.items():
                if versions is not None:
                    self._check_not_newer(component, versions.get(component, 0), len(migrations))
            return list(conn.execute(sql, tuple(params)))
        except (_ForeignFile, StoreError) as exc:
            raise sqlite3.DatabaseError(str(exc)) from exc
        finally:
            conn.close()

    def _open_file(self) -> sqlite3.Connection:
        if self.path is None:  # only a file store gets here
            raise RuntimeError("an in-memory store has no file")
        directory = os.path.dirname(os.path.abspath(self.path))
        if not self.reader:
            os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
            _create_file(self.path)
        # isolation_level=None: no implicit DEFERRED BEGIN; writes issue BEGIN IMMEDIATE.
        conn = sqlite3.connect(
            self.path, timeout=self._wait_budget(), isolation_level=None, check_same_thread=False
        )
        try:
            # Read first: a corrupt or foreign file is found before anything is changed in it.
            versions = self._stored_versions(conn, foreign_check=True)
            if self.reader:  # never changes the file: a missing table reads as no data
                if versions is not None:
                    for component, migrations in self._schemas.items():
                        known = versions.get(component, 0)
                        self._check_not_newer(component, known, len(migrations))
                st = os.stat(self.path)
                self._file_id = (st.st_dev, st.st_ino)
                return conn
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode and str(mode[0]).lower() != "wal":
                logger.debug("store %s: journal_mode is %s, not wal", self.path, mode[0])
            conn.execute("PRAGMA synchronous=NORMAL")
            self._apply_schemas(conn, versions)
            st = os.stat(self.path)
            self._file_id = (st.st_dev, st.st_ino)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_memory(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._apply_schemas(conn)
        return conn

    def _switch_to_memory(self, exc: BaseException) -> None:
        """Leave the file as it is and keep this process's data in memory from now on."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if not self._memory:
            self._fall_back_to_memory(exc)

    def _fall_back_to_memory(self, exc: BaseException) -> None:
        self._memory = True
        logger.warning(
            "monitoring store %s is not usable (%s: %s); keeping history in memory only "
            "for this process",
            self.path,
            type(exc).__name__,
            exc,
        )

    def _move_aside(self, reason: str) -> str | None:
        """Rename a corrupt file (and its -wal/-shm) to ``<name>.corrupt-<UTC stamp>``."""
        if self.path is None:  # only a file store gets here
            raise RuntimeError("an in-memory store has no file")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = f"{self.path}.corrupt-{stamp}-{os.getpid()}"
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            return None  # another process moved it already
        except OSError as exc:
            logger.debug("store %s: could not move aside: %s", self.path, exc)
            return None
        for suffix in ("-wal", "-shm"):
            # A stale WAL next to a fresh file would be replayed into it: move it too.
            with contextlib.suppress(OSError):
                os.replace(self.path + suffix, target + suffix)
        logger.warning(
            "monitoring store %s was corrupt (%s); moved it to %s and started a new one",
            self.path,
            reason,
            target,
        )
        return target

    def _recover_from_corruption(self, exc: BaseException) -> None:
        """Called when a statement on an open connection reports corruption."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if self._memory or self.path is None:
            return
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._file_id
        except OSError:
            same = False
        if same:  # another process may already have replaced it: then only reopen
            self._move_aside(str(exc))

    # -- schemas -------------------------------------------------------------------------

    def register_schema(self, component: str, migrations: Sequence[Migration]) -> None:
        """Declare ``component``'s tables as an ordered list of migrations (version = index+1).

        Pending steps are applied in one ``BEGIN IMMEDIATE`` transaction (so concurrent
        processes do not apply them twice) now if the store is open, and again whenever it
        is reopened (after a move-aside or a fallback to memory); a store that is already up
        to date is only read, so opening never waits for another process's write lock.
        A file whose schema is newer than these migrations (written by a newer version) is
        left untouched and this process falls back to memory, with one warning. Never
        raises for I/O problems: those follow the store's failure policy.
        """
        with self._lock:
            self._schemas[component] = tuple(migrations)
            if self.reader:
                return  # readers never change the file; a missing table reads as no data
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._apply_one(self._conn, component, self._schemas[component], None)
                except StoreError as exc:  # a newer schema: do not write into it
                    self._switch_to_memory(exc)
                except sqlite3.Error as exc:
                    self._handle_error(exc, f"schema {component}")

    def schema_version(self, component: str) -> int:
        """The version of ``component`` recorded in this store (0 when unknown)."""
        rows = self.read("SELECT version FROM schema_versions WHERE component = ?", (component,))
        return int(rows[0][0]) if rows else 0

    def _stored_versions(
        self, conn: sqlite3.Connection, foreign_check: bool = False
    ) -> Dict[str, int] | None:
        """``{component: version}`` read without a write lock; None when the base tables
        are missing. With ``foreign_check``, a database holding other tables but no readable
        ``schema_versions`` raises _ForeignFile (it is moved aside like a corrupt one)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_versions" not in tables:
            if foreign_check and tables:
                names = ", ".join(sorted(tables)[:5])
                raise _ForeignFile(f"not a monitoring store: it holds the tables {names}")
            return None
        try:
            rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
            versions = {str(c): int(v) for c, v in rows}
        except (sqlite3.OperationalError, TypeError, ValueError) as exc:
            if foreign_check and (
                "no such column" in str(exc) or not isinstance(exc, sqlite3.Error)
            ):
                raise _ForeignFile(f"not a monitoring store: schema_versions: {exc}") from exc
            raise
        return versions if "meta" in tables else None

    def _apply_schemas(
        self, conn: sqlite3.Connection, versions: Dict[str, int] | None = None
    ) -> None:
        if versions is None:
            self._limit_wait(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_versions "
                    "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        for component, migrations in self._schemas.items():
            known = None if versions is None else versions.get(component, 0)
            self._apply_one(conn, component, migrations, known)

    def _apply_one(
        self,
        conn: sqlite3.Connection,
        component: str,
        migrations: Sequence[Migration],
        known: int | None,
    ) -> None:
        if known is None:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            known = int(row[0]) if row else 0
        self._check_not_newer(component, known, len(migrations))
        if known == len(migrations):
            return  # up to date: no write lock needed
        self._limit_wait(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the lock: another process may have migrated meanwhile.
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            self._check_not_newer(component, current, len(migrations))
            for step in migrations[current:]:
                if callable(step):
                    step(conn)
                elif isinstance(step, str):
                    conn.execute(step)
                else:
                    for statement in step:
                        conn.execute(statement)
            if current < len(migrations):
                conn.execute(
                    "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                    (component, len(migrations)),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_not_newer(self, component: str, stored: int, ours: int) -> None:
        if stored > ours:
            # Written by a newer version: its tables may have changed in ways this code
            # does not know, so this process must not write into them.
            msg = (
                f"its {component} schema is v{stored}, newer than this version of "
                f"mgit_monitoring knows (v{ours}); the file is left untouched"
            )
            raise StoreError(msg)

    # -- bounded waits at shutdown ---------------------------------------------------------

    def begin_shutdown(self, budget: float | None = None) -> None:
        """From now on, all waits for another process's lock share one budget.

        ``budget`` seconds (default: ``timeout``) in total, counted from the first call,
        instead of up to ``timeout`` for each write: the last flushes at interpreter exit
        (shared metrics, traces, retention) delay exit by at most that much when another
        process holds the store locked. Called by :meth:`close` and by the exit hooks;
        later calls keep the first deadline.
        """
        if self._deadline is None:
            seconds = self.timeout if budget is None else max(0.0, float(budget))
            self._deadline = self._clock() + min(seconds, self.timeout)

    def _wait_budget(self) -> float:
        if self._deadline is None:
            return self.timeout
        return min(self.timeout, max(0.0, self._deadline - self._clock()))

    def _limit_wait(self, conn: sqlite3.Connection) -> None:
        """Shrink the connection's busy timeout to what is left of the shutdown budget."""
        if self._deadline is not None:
            conn.execute(f"PRAGMA busy_timeout = {int(self._wait_budget() * 1000)}")

    # -- transactions, reads, writes -----------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), holding the store's lock.

        Raises :class:`StoreError` (chained to the sqlite error) when the store cannot be
        used; callers that must never fail use :meth:`write` instead.
        """
        with self._lock:
            conn = self._connection()
            try:
                self._limit_wait(conn)
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                msg = f"store {self.path or ':memory:'}: {exc}"
                raise StoreError(msg) from exc
            with self._txn_guard:
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        msg = f"store {self.path or ':memory:'}: {exc}"
                        raise StoreError(msg) from exc
                    raise

    def write(self, fn: Callable[[sqlite3.Connection], Any], what: str = "write") -> bool:
        """Run ``fn(connection)`` in a write transaction; True on commit, never raises.

        A corrupt file is moved aside and the write retried once on a fresh file; a lock
        held past the timeout or a full disk drops the write (see the module docstring).
        """
        for attempt in (1, 2):
            try:
                with self.transaction() as conn:
                    fn(conn)
                return True
            except (_NoFileYet, _UseReadOnly):
                self.dropped_writes += 1  # a reader that cannot write: nothing to warn about
                logger.debug("store %s: %s dropped (read-only for this process)", self.path, what)
                return False
            except StoreError as exc:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                with self._lock:
                    if _is_corrupt(cause) and attempt == 1 and not self.reader:
                        self._recover_from_corruption(cause)
                        continue
                    self._handle_error(cause, what)
                return False
            except Exception as exc:  # noqa: BLE001 - a bug in fn must not reach the app
                self._handle_error(exc, what)
                return False
        return False  # pragma: no cover - loop always returns

    def read(
        self, sql: str, params: Sequence[Any] = (), *, strict: bool = False
    ) -> List[Tuple[Any, ...]]:
        """Rows of a query, or ``[]`` (with the store's warning policy) when it fails.

        ``strict=True`` raises :class:`StoreError` instead (and logs nothing: the caller
        reports it). A reader's missing file or missing table is no data, not a failure.
        """
        rows = self._read(sql, params, strict)
        return [] if rows is None else rows

    def _read(
        self, sql: str, params: Sequence[Any], strict: bool = False
    ) -> List[Tuple[Any, ...]] | None:
        for attempt in (1, 2):
            with self._lock:
                try:
                    if self._readonly and not self._memory:
                        return self._read_only_rows(sql, params)
                    try:
                        return list(self._connection().execute(sql, tuple(params)))
                    except _UseReadOnly:
                        return self._read_only_rows(sql, params)
                except _NoFileYet:
                    return []
                except StoreError as exc:
                    if strict:
                        raise
                    self._handle_error(exc.__cause__ or exc, "read")
                    return None
                except sqlite3.Error as exc:
                    if self.reader and _missing_table(exc):
                        return []
                    if _is_corrupt(exc) and attempt == 1 and not self.reader:
                        self._recover_from_corruption(exc)
                        continue
                    if strict:
                        raise StoreError(f"store {self.path or ':memory:'}: {exc}") from exc
                    self._handle_error(exc, "read")
                    return None
        return None  # pragma: no cover

    def _handle_error(self, exc: BaseException, what: str) -> None:
        if what != "read":
            self.dropped_writes += 1
        reason = _drop_reason(exc, self.path)
        # One warning per cause: a locked store or a full disk costs the shared metrics,
        # the traces and the retention at once, and that is one problem for the user.
        self._warnings.warn(
            reason,
            "monitoring store %s: %s lost (%s: %s); later losses for this reason are "
            "logged at DEBUG",
            self.path or ":memory:",
            what,
            reason,
            exc,
        )

    # -- retention -----------------------------------------------------------------------

    def register_retention(self, table: str, time_column: str, max_age_seconds: float) -> None:
        """Let :meth:`cleanup` delete rows whose ``time_column`` (epoch s) is older than that."""
        for name in (table, time_column):
            if not name.replace("_", "").isalnum():
                raise StoreError(f"not a plain SQL identifier: {name!r}")
        with self._lock:
            self._retention[(table, time_column)] = float(max_age_seconds)

    def cleanup(self) -> int:
        """Delete rows past their retention now; returns how many were deleted (never raises)."""
        now = self._clock()
        deleted = [0]

        def run(conn: sqlite3.Connection) -> None:
            # A table is created on its component's first write; until then it has no rows.
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for (table, column), age in list(self._retention.items()):
                if table not in tables:
                    continue
                # Identifiers checked by register_retention; the cut-off is a bound parameter.
                # (%-formatting: bandit warns about a nosec on an f-string, PyCQA/bandit#1204.)
                sql = "DELETE FROM %s WHERE %s < ?" % (table, column)  # noqa: UP031  # nosec B608
                cursor = conn.execute(sql, (now - age,))
                deleted[0] += max(cursor.rowcount, 0)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_cleanup', ?)", (repr(now),)
            )

        if self.write(run, "cleanup") and deleted[0]:
            with self._lock, contextlib.suppress(sqlite3.Error, StoreError):
                # Give the space back and keep the WAL small (measured 9-17 ms).
                conn = self._connection()
                self._limit_wait(conn)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted[0]

    def maybe_cleanup(self) -> int:
        """Run :meth:`cleanup` when the last one (by any process) is older than a day."""
        if not self._retention:
            return 0
        rows = self.read("SELECT value FROM meta WHERE key = 'last_cleanup'")
        try:
            last = float(rows[0][0]) if rows else 0.0
        except (TypeError, ValueError):
            last = 0.0
        if self._clock() - last < _MAINTENANCE_EVERY_S:
            return 0
        return self.cleanup()

    # -- flushing --------------------------------------------------------------------------

    def add_flush_callback(
        self, callback: Callable[[], Any], interval: float | None = None
    ) -> None:
        """Call ``callback()`` every ``interval`` seconds (default: ``flush_interval``), on
        every :meth:`flush` and at interpreter exit.

        Every callback of a store runs on the store's one daemon thread, created with the
        atexit hook on the first registration (never at import); a callback registered twice
        runs twice (:meth:`remove_flush_callback` first to change an interval). Callbacks
        are held weakly when they are bound methods, so a discarded monitor does not stay
        alive because of its store.
        """
        seconds = self.flush_interval if interval is None else float(interval)
        if not seconds > 0:
            raise ValueError(f"flush interval must be > 0 seconds, got {interval!r}")
        ref: Callable[[], Any]
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            ref = weakref.WeakMethod(callback)
        else:
            ref = lambda: callback  # noqa: E731
        with self._flush_lock:
            self._callbacks.append(_FlushCallback(ref, seconds))
            if not self._atexit_registered:
                atexit.register(_atexit_flush, weakref.ref(self))
                self._atexit_registered = True
            self._ensure_flusher()
            self._wake.set()  # a shorter interval takes effect now, not after the old sleep

    def remove_flush_callback(self, callback: Callable[[], Any]) -> None:
        """Stop calling ``callback``, however often it was added (no error if never)."""
        with self._flush_lock:
            # == : a bound method equals another of the same function on the same object
            self._callbacks = [e for e in self._callbacks if e.ref() not in (None, callback)]

    def _ensure_flusher(self) -> None:
        if self._flusher is not None and self._flusher_pid == os.getpid():
            return
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._next_maintenance = time.monotonic() + self.flush_interval
        thread = threading.Thread(
            target=_flush_loop,
            args=(weakref.ref(self), self._stop, self._wake),
            name="mgit-monitoring-store-flush",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:
            # Python 3.12 refuses new threads in atexit hooks; flush() and close() still
            # run the callbacks synchronously, so exit-time writes are not lost.
            return
        self._flusher, self._flusher_pid = thread, os.getpid()

    def flush(self) -> None:
        """Run every flush callback now, then retention maintenance when it is due."""
        with self._flush_lock:
            callbacks = [e.ref for e in self._callbacks]
            if self._flusher is not None and self._flusher_pid != os.getpid():
                self._ensure_flusher()  # threads do not survive fork
        self._run(callbacks)
        self._maintain()

    def _flush_due(self) -> float:
        """The flush thread's turn: run the callbacks that are due, and retention maintenance
        every ``flush_interval``; returns the seconds until the next one is due."""
        now = time.monotonic()
        with self._flush_lock:
            due = [e for e in self._callbacks if e.due <= now]
            for e in due:
                e.due = now + e.interval
            maintain = self._next_maintenance <= now
            if maintain:
                self._next_maintenance = now + self.flush_interval
        self._run([e.ref for e in due])
        if maintain:
            self._maintain()
        with self._flush_lock:
            self._callbacks = [e for e in self._callbacks if e.ref() is not None]
            next_due = min([e.due for e in self._callbacks] + [self._next_maintenance])
        return max(next_due - time.monotonic(), 0.0)

    @staticmethod
    def _run(refs: List[Callable[[], Any]]) -> None:
        for ref in refs:
            fn = ref()
            if fn is None:
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - one broken callback must not stop the others
                logger.debug("store flush callback %r failed", fn, exc_info=True)

    def _maintain(self) -> None:
        # Opportunistic retention, off the hot path; a random skip spreads the work when
        # many processes exit at once (a coin toss, not security).
        if self._retention and not self.reader and random.random() < 0.5:  # nosec B311
            self.maybe_cleanup()

    def close(self) -> None:
        """Flush, stop the flush thread and close the connection. Safe to call twice."""
        if self._closed:
            return
        self.begin_shutdown()
        self.flush()
        self._stop.set()
        self._wake.set()
        thread = self._flusher
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            # It may be finishing a write, itself bounded by the busy timeout.
            thread.join(self._wait_budget() + 1.0)
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    # -- the traces table ----------------------------------------------------------------

    def ensure_traces_schema(self) -> None:
        """Register the performance traces table (idempotent; retention is the caller's choice)."""
        if TRACES_COMPONENT not in self._schemas:
            self.register_schema(TRACES_COMPONENT, TRACES_MIGRATIONS)

    def insert_traces(self, rows: Iterable[TraceRow]) -> bool:
        """Append completed traces in one transaction; True when committed, never raises."""
        self.ensure_traces_schema()
        values = [
            (
                r.operation,
                float(r.start_time),
                float(r.duration),
                1 if r.success else 0,
                r.error_type,
                r.correlation_id,
                r.trace_id,
                r.parent_id,
                int(r.pid),
                _json_metadata(r.metadata),
            )
            for r in rows
        ]
        if not values:
            return True
        return self.write(lambda conn: conn.executemany(_INSERT_TRACE, values), "trace batch")

    def query_traces(
        self,
        since: float,
        operation: str | None = None,
        until: float | None = None,
        *,
        strict: bool = False,
        light: bool = False,
    ) -> List[TraceRow]:
        """Traces started at or after ``since`` (epoch seconds), optionally of one operation.

        ``light=True`` reads only what statistics need (operation, start_time, duration,
        success, error_type; the other fields are None or 0), about twice as fast.
        ``strict=True`` raises StoreError instead of returning ``[]`` when the read fails.
        """
        self.ensure_traces_schema()
        sql = _SELECT_LIGHT_TRACES if light else _SELECT_TRACES
        params: List[Any] = [since]
        if operation is not None:
            sql += " AND operation = ?"
            params.append(operation)
        if until is not None:
            sql += " AND start_time < ?"
            params.append(until)
        rows = self._read(sql, params)
        if rows is None:
            if strict:
                raise StoreError(f"store {self.path or ':memory:'}: could not read traces")
            rows = []
        out: List[TraceRow] = []
        append = out.append
        for row in rows:
            meta = None
            if row[9]:
                try:
                    meta = json.loads(row[9])
                except ValueError:
                    meta = None
            append(tuple.__new__(TraceRow, (*row[:3], bool(row[3]), *row[4:9], meta)))
        return out


class _FlushCallback:
    """A flush callback (a weak reference when it is a bound method) and its schedule."""

    __slots__ = ("due", "interval", "ref")

    def __init__(self, ref: Callable[[], Any], interval: float) -> None:
        self.ref = ref
        self.interval = interval
        self.due = time.monotonic() + interval  # monotonic: immune to clock steps


def _flush_loop(
    store_ref: Callable[[], Store | None], stop: threading.Event, wake: threading.Event
) -> None:
    while not stop.is_set():
        store = store_ref()
        if store is None or store._closed:
            return
        wake.clear()  # before the turn: a registration during it wakes the next wait
        try:
            delay = store._flush_due()
        except Exception:  # noqa: BLE001 - the flush thread must never die noisily
            logger.debug("periodic store flush failed", exc_info=True)
            delay = store.flush_interval
        del store  # do not keep the store alive while sleeping
        wake.wait(delay)


def _atexit_flush(store_ref: Callable[[], Store | None]) -> None:
    store = store_ref()
    if store is not None and not store._closed:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - never a traceback at interpreter exit
            logger.debug("store flush at exit failed", exc_info=True)
