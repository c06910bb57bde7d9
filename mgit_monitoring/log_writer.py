"""Structured log lines handed to logging's handlers by one background thread.

Building a ``LogRecord``, formatting it and writing it cost more than everything else a
monitored operation does. With the writer in the background (``MGIT_MONITORING_LOG_
BACKGROUND``, on by default once :func:`~mgit_monitoring.integration.
setup_monitoring_integration` applies it), a
:class:`~mgit_monitoring.structured_logger.StructuredLogger` call only captures what the
line needs from the calling thread (the time, the thread, the caller's file and line, the
correlation scope, the fields) and queues it; one daemon thread builds the record and
hands it to the handlers, while the operation goes on (for mgit: while it waits for git or
a provider). This is what the logging HOWTO's ``QueueHandler``/``QueueListener`` does for
handlers that block, moved one step earlier so that the record itself is built off the
calling thread too.

What stays true:

- **Order.** One queue and one lock: every line a structured logger wrote reaches the
  handlers in the order it was written, from any thread. A line whose values could change
  after the call (a list, a dict, an exception with its traceback) is not queued: the
  calling thread writes what is queued, then that line, under the same lock. Lines the host
  writes with plain ``logging`` are not queued, so they may reach a shared file a moment
  before a structured line written earlier; each line's ``timestamp`` is the time of the
  call, not of the write.
- **Nothing is lost.** The queue is bounded (``max_pending``); when it is full, the
  calling thread wakes the writer and waits for it to write the queue (back-pressure, not
  dropping: a tight loop of logged calls goes at the writer's pace). If the writer has not
  made room within ``full_wait`` seconds (a handler stuck on a dead peer), the calling
  thread writes what is queued and its own line, once the handler the writer is in
  returns. A thread that is itself writing (a handler that logs) never waits: it writes.
  :meth:`LogWriter.flush` writes everything queued before it returns; it runs at
  interpreter exit (before ``logging.shutdown`` closes the handlers; lines logged after it,
  by exit hooks registered earlier, are written on the calling thread), when the background
  mode is switched off, and is public as :func:`flush_logs` (tests that capture log
  output call it, as loguru users call ``complete()``).
- **Fork.** The forking thread writes the queue just before ``os.fork()``, so neither side
  leaving with ``os._exit`` (a multiprocessing child, a daemonizing parent) loses a line
  (unless a handler holds the writer for over 2 s: then the fork goes ahead and the parent
  writes the queue later). The child writes on the calling thread from then on.

- **Errors at once.** A line at ERROR or above is not queued either: the calling thread
  writes what is queued, then it (as ``logging.handlers.MemoryHandler`` flushes at ERROR),
  so a failure's line is out before its exception propagates, and never interleaved with
  the traceback the interpreter prints for it.
- **Waking the thread.** Waking a sleeping thread is a system call (on a virtual machine
  about 10 us, more than queueing the line), so callers do not pay it per line. The first
  line after a quiet spell wakes the thread; while lines keep coming, the thread wakes
  every ``linger`` seconds (default 0.05) on its own and writes what arrived, so a line
  reaches the handlers within about ``linger`` of its call. A queue half full, a
  :meth:`LogWriter.wait_written` and a switch-off wake it at once. After ``idle_timeout``
  (default 1 s) with nothing to write, it sleeps until the next line.

Limits: what runs inside the handlers (a record factory set with
``logging.setLogRecordFactory``, filters, formatters) runs on the writer thread, so one
that reads the caller's thread-local or ``contextvars`` state sees the writer's; the
correlation scope is captured at the call and travels with the line.
"""

from __future__ import annotations

import atexit
import collections
import threading
from typing import Any, Callable, Deque, Optional, Tuple

from mgit_monitoring.fork_hooks import after_fork_in_child, around_fork_in_parent
from mgit_monitoring.warn_once import WarnOnce

__all__ = ["LogWriter", "flush_logs", "get_log_writer"]

Emit = Callable[[Any], None]
_get_ident = threading.get_ident
_FORK_FLUSH_TIMEOUT = 2.0  # seconds os.fork() waits for a writer busy in a handler
Line = Tuple[Any, ...]
"""A queued line: a tuple whose first item is the callable that writes it, given the
whole tuple (one allocation per line, nothing else for the garbage collector to walk)."""


class LogWriter:
    """A FIFO of pending log lines and the daemon thread that writes them.

    Args:
        max_pending: the most lines queued at once; past it, the calling thread waits for
            the thread to make room. Half of it wakes the thread at once.
        linger: while lines keep coming, how often (seconds) the thread wakes on its own
            to write them, instead of being woken by each line's caller.
        idle_timeout: how long (seconds) the thread goes on waking every ``linger`` with
            nothing to write before it sleeps until a caller wakes it (it also bounds that
            sleep, in case a wake-up is missed).
        full_wait: how long (seconds) a caller waits for room in a full queue before it
            writes the queue itself.

    :attr:`background` is False until :meth:`set_background` turns it on: until then the
    structured loggers write on the calling thread and no thread is started.
    """

    def __init__(
        self,
        *,
        max_pending: int = 1_000,
        linger: float = 0.05,
        idle_timeout: float = 1.0,
        full_wait: float = 1.0,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, not {max_pending!r}")
        if not 0 < linger <= idle_timeout <= threading.TIMEOUT_MAX:
            raise ValueError(
                f"expected 0 < linger <= idle_timeout <= {threading.TIMEOUT_MAX}, not linger "
                f"{linger!r} and idle_timeout {idle_timeout!r}"
            )
        if not 0 <= full_wait <= threading.TIMEOUT_MAX:
            raise ValueError(
                f"expected 0 <= full_wait <= {threading.TIMEOUT_MAX}, not {full_wait!r}"
            )
        self.max_pending = int(max_pending)
        self.full_wait = float(full_wait)
        self.linger = float(linger)
        self.idle_timeout = float(idle_timeout)
        # The queue length before an append that makes it half full: that append wakes.
        self._half_minus_one = max(0, self.max_pending // 2 - 1)
        self.background = False
        self._pending: Deque[Line] = collections.deque()
        self._lock = threading.RLock()  # one writer at a time: the thread, flush, overflow
        self._holder: Optional[int] = None  # the thread holding _lock, outside the thread
        # Held while the thread sleeps; released (by any thread) to wake it: cheaper on the
        # calling thread than an Event, which takes a Condition's lock to notify.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._idle = True  # the thread sleeps until a caller wakes it (else it lingers)
        self._writing = False  # the thread is handing lines to the handlers
        self._thread: Optional[threading.Thread] = None
        self._thread_id: Optional[int] = None
        self._closing = False  # the interpreter is exiting: write on the calling thread
        self._hooks_installed = False
        self._written = threading.Condition(threading.Lock())  # for wait_written()
        self._waiters = 0
        self._room_waiters = 0  # of them, callers waiting for room in a full queue
        self._warnings = WarnOnce("mgit_monitoring.log_writer")

    def __repr__(self) -> str:
        mode = "background" if self.background else "calling thread"
        return f"<LogWriter {mode}, {len(self._pending)} pending>"

    @property
    def pending(self) -> int:
        """How many lines are queued and not yet written."""
        return len(self._pending)

    def set_background(self, flag: bool) -> None:
        """Write on the background thread (True) or on the calling thread (False).

        Switching on installs the exit and fork hooks (once); switching off writes what is
        queued and stops the thread.
        """
        if flag:
            self._install_hooks()
            self.background = True
            return
        self.background = False
        self.flush()
        self._stop_thread()
        self.flush()  # a line another thread queued while the thread was stopping

    def _stop_thread(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = self._thread_id = None  # the thread leaves its loop when it sees this
        self._signal()
        if thread is not threading.current_thread():
            thread.join(timeout=5.0)  # a handler stuck longer finishes on its own

    def submit(self, line: Line) -> None:
        """Have ``line[0](line)`` called on the writer thread, after every line queued before.

        Called on the calling thread only in background mode (the caller checks
        :attr:`background`). The line is written here instead, after what is queued, when
        the queue is full, when the interpreter is exiting, when no thread can run, and
        when the writer thread itself logs (a handler that logs: as on the calling thread,
        a handler that logs for every record it writes recurses instead of spinning).
        """
        pending = self._pending
        queued = len(pending)
        if (
            self._closing
            or (self._thread is None and not self._start())
            or _get_ident() == self._thread_id
            or (queued >= self.max_pending and not self._wait_for_room())
        ):
            self.write_now(line[0], line)
            return
        pending.append(line)
        if self._idle:  # asleep: wake it (once; then it lingers, waking on its own)
            self._idle = False
            self._signal()
        elif queued == self._half_minus_one:
            self._signal()

    def _wait_for_room(self) -> bool:
        """The queue is full: wake the thread and wait until it has room; False (the caller
        writes) if it has none within ``full_wait``, if the thread stopped, or if this
        thread holds the lock the thread needs (it is writing: a handler that logs)."""
        thread = self._thread
        if thread is None or self._holder == _get_ident():
            return False
        with self._written:
            self._waiters += 1
            self._room_waiters += 1
            try:
                self._signal()
                self._written.wait_for(
                    lambda: (
                        len(self._pending) < self.max_pending
                        or self._thread is not thread
                        or not thread.is_alive()
                        or self._closing
                    ),
                    self.full_wait,
                )
            finally:
                self._waiters -= 1
                self._room_waiters -= 1
        # At exit the queue has had its last flush: the caller writes its line itself.
        return (
            self._thread is thread
            and thread.is_alive()
            and not self._closing
            and len(self._pending) < self.max_pending
        )

    def _signal(self) -> None:
        """Wake the thread (a no-op when a wake-up is already pending)."""
        try:
            self._wake.release()
        except RuntimeError:  # already released: the thread will wake anyway
            pass

    def write_now(self, emit: Emit, entry: Any) -> None:
        """Call ``emit(entry)`` on this thread, after writing every queued line."""
        with self._lock:
            outer, self._holder = self._holder, _get_ident()
            try:
                self._drain()
                emit(entry)
            finally:
                self._holder = outer

    def flush(self) -> None:
        """Write every line queued so far, on this thread; return when they are written."""
        if self._pending or self._thread is not None:
            with self._lock:
                outer, self._holder = self._holder, _get_ident()
                try:
                    self._drain()
                finally:
                    self._holder = outer

    def _drain(self) -> None:
        # Called with the lock held. A handler that logs through a structured logger queues
        # its line; the loop writes it too.
        pending = self._pending
        while pending:
            try:
                line = pending.popleft()
            except IndexError:  # another thread took the last one
                return
            if self._room_waiters:  # callers facing a full queue: there is room now
                with self._written:
                    self._written.notify_all()
            try:
                line[0](line)
            except Exception as exc:  # noqa: BLE001 - one bad line must not stop the rest
                self._warnings.warn(
                    type(exc).__name__,
                    "a log line could not be written (%s: %s)",
                    type(exc).__name__,
                    exc,
                )

    def _install_hooks(self) -> None:
        with self._lock:
            if self._hooks_installed:
                return
            self._hooks_installed = True
            # Registered after logging's own exit hook, so it runs before it (atexit is last
            # in, first out) while the handlers are open; lines logged later (by exit hooks
            # registered earlier) are written on the calling thread.
            atexit.register(self._at_exit)
            # The forking thread writes the queue first, so that neither a child that leaves
            # with os._exit nor a parent that does (daemonizing) takes lines with it.
            around_fork_in_parent(self._before_fork, _nothing)
            after_fork_in_child(self._after_fork)

    def _before_fork(self) -> None:
        # Bounded: a handler stuck in the writer thread (a dead syslog peer) must not stop
        # os.fork(); then the parent writes the queue later and the child starts empty.
        if self._lock.acquire(timeout=_FORK_FLUSH_TIMEOUT):
            outer, self._holder = self._holder, _get_ident()
            try:
                self._drain()
            finally:
                self._holder = outer
                self._lock.release()

    def _at_exit(self) -> None:
        self._closing = True
        self.flush()

    def _start(self) -> bool:
        """Start the writer thread; False (write on the calling thread) if it cannot run."""
        with self._lock:
            if self._thread is not None:
                return True
            if self._closing or not self.background:
                return False
            thread = threading.Thread(target=self._run, name="mgit-monitoring-log-writer")
            thread.daemon = True
            self._thread = thread
            try:
                thread.start()
            except RuntimeError:  # at interpreter exit (3.12+), or out of threads
                self._thread = None
                return False
            return True

    def wait_written(self, timeout: Optional[float] = None) -> bool:
        """Wait until the writer thread has written every line queued so far (without
        writing them on this thread, as :meth:`flush` does); False on timeout.

        Without a running thread, or called by the writer thread itself (a handler), the
        same as :meth:`flush`.
        """
        thread = self._thread
        me = _get_ident()
        if thread is None or me in (self._thread_id, self._holder) or not thread.is_alive():
            self.flush()
            return True
        with self._written:
            self._waiters += 1
            try:
                self._signal()  # now, not at its next linger wake-up
                return self._written.wait_for(
                    lambda: not (self._pending or self._writing) or self._thread is not thread,
                    timeout,
                )
            finally:
                self._waiters -= 1

    def _run(self) -> None:
        me = threading.current_thread()
        self._thread_id = _get_ident()
        quiet = 0.0  # seconds lingering with nothing to write
        while self._thread is me:
            wait = self.idle_timeout if self._idle else self.linger
            self._wake.acquire(timeout=wait)
            if self._pending:
                quiet = 0.0
                try:
                    with self._lock:
                        self._writing = True
                        try:
                            self._drain()
                        finally:
                            self._writing = False
                except BaseException as exc:  # noqa: BLE001 - SystemExit from a handler:
                    # the line is lost (warned), the thread is not
                    self._warnings.warn(
                        type(exc).__name__, "a log line could not be written (%r)", exc
                    )
            elif not self._idle:
                quiet += wait
                if quiet >= self.idle_timeout:  # nothing for a while: sleep until woken
                    self._idle = True
                    if self._pending:  # queued before _idle was set: no one woke us
                        self._idle = False
            if self._waiters:
                with self._written:
                    self._written.notify_all()
        if self._waiters:
            with self._written:
                self._written.notify_all()

    def _after_fork(self) -> None:
        # The forking thread wrote the queue before the fork (what was queued since belongs
        # to the parent). The child writes on the calling thread: a child often leaves with
        # os._exit (multiprocessing), which runs no exit hook, so nothing may wait in a queue.
        self._pending = collections.deque()
        self._lock = threading.RLock()
        self._wake = threading.Lock()
        self._wake.acquire()
        self._idle = True
        self._writing = False
        self._thread = self._thread_id = None
        self._written = threading.Condition(threading.Lock())
        self._waiters = self._room_waiters = 0
        self._holder = None
        self.background = False


def _nothing() -> None:
    pass


_default: Optional[LogWriter] = None
_default_lock = threading.Lock()


def get_log_writer() -> LogWriter:
    """The process's writer, shared by every structured logger that was given none."""
    global _default
    writer = _default
    if writer is None:
        with _default_lock:
            if _default is None:
                _default = LogWriter()
            writer = _default
    return writer


def flush_logs() -> None:
    """Write every structured log line queued so far; return when they are written.

    A no-op unless the background writer is on. Call it before reading log output that a
    monitored operation just produced (a test capturing records, a step that ships the
    log file).
    """
    writer = _default
    if writer is not None:
        writer.flush()
