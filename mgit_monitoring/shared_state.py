"""Metrics shared by every process on a host: per-process deltas folded into the sqlite store.

mgit is a CLI: each run is a short process, so metrics kept in one process's memory are lost
when it exits and a server or ``mgit-monitoring metrics`` never sees them. Here each
process keeps recording in its own :class:`~mgit_monitoring.registry.Registry` (the hot
path is untouched) and :class:`SharedMetrics` writes what changed since its last flush to
the shared store (:mod:`mgit_monitoring.store`): every few seconds from the store's flush
thread once :meth:`SharedMetrics.start` ran, at exit, and on demand
(:meth:`SharedMetrics.flush`)::

    store = Store.open(config.state_dir)
    shared = SharedMetrics(store, registry).start()    # periodic + at-exit flushes
    ...
    snapshot = merged_snapshot(store)                   # what /metrics renders, any process
    expose(shared)                                      # this process's view, unflushed included

The merged view (:func:`merged_snapshot`, :meth:`SharedMetrics.snapshot`):

* counters and histograms are summed over every process that ever flushed. Deltas are
  folded into one aggregate row per series at write time (``sm_totals``), so the store
  never holds a row per process and a scrape reads as many rows as there are series,
  however many processes ran before (compaction by construction);
* gauges are kept per live process (``sm_gauges``) and combined by the gauge's declared
  merge mode (``sum``, ``max``, ``min``, or ``last`` = the most recently changed value).
  A process removes its gauges when it stops; one killed with SIGKILL is recognised as
  dead when its pid is gone (or reused: the process start time is compared) on this host,
  or when its heartbeat expires, and its gauges are ignored and later deleted;
* definitions (type, help, label names, buckets, merge mode) are stored too
  (``sm_families``), so a reader that never registered a metric still renders HELP and
  TYPE. The first definition stored wins: a process whose histogram buckets, label names
  or type differ keeps that family out of the store, with one warning per family.

Failure policy (the store's, plus): a flush that cannot commit (lock held past the busy
timeout, full disk) keeps its deltas in memory and the next flush retries them; nothing
here raises into the application. At exit, the last flush and the store's own share one
wait of at most the store's ``timeout`` for a store another process holds locked.
Warnings go to the logger ``mgit_monitoring.shared_state``.

After ``os.fork()`` the child starts a new identity and re-bases on the values it inherited,
so only its own increments are flushed; it must call :meth:`~SharedMetrics.start` again for
periodic flushes. Processes that end with ``os._exit`` (multiprocessing's fork workers) lose
what they recorded since their last flush.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
import weakref
from itertools import accumulate
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Set, Tuple

from mgit_monitoring.fork_hooks import after_fork_in_child
from mgit_monitoring.registry import Registry
from mgit_monitoring.samples import HistogramValue, MetricFamily, Series, Snapshot, label_text
from mgit_monitoring.store import Migration, Store
from mgit_monitoring.warn_once import WarnOnce

__all__ = [
    "SHARED_COMPONENT",
    "SHARED_MIGRATIONS",
    "SharedMetrics",
    "clear_shared_metrics",
    "merged_snapshot",
]

_log = logging.getLogger("mgit_monitoring.shared_state")

SHARED_COMPONENT = "shared_metrics"
"""Component name of the shared-metrics tables in the store's ``schema_versions``."""

SHARED_MIGRATIONS: Tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS sm_families (
            name       TEXT PRIMARY KEY,
            type       TEXT NOT NULL,   -- counter | gauge | histogram
            help       TEXT NOT NULL,
            labelnames TEXT NOT NULL,   -- JSON array of label names
            bounds     TEXT NOT NULL,   -- JSON array of finite bucket bounds ([] if none)
            merge      TEXT NOT NULL,   -- gauge merge mode
            created    REAL NOT NULL    -- unix epoch seconds
        )""",
        """CREATE TABLE IF NOT EXISTS sm_totals (
            family  TEXT NOT NULL,
            labels  TEXT NOT NULL,      -- JSON array of label values
            value   NOT NULL,           -- counter value, or histogram count
            sum     REAL,               -- histogram sum
            buckets TEXT,               -- histogram: JSON array of per-bucket counts, +Inf last
            updated REAL NOT NULL,
            PRIMARY KEY (family, labels)
        )""",
        """CREATE TABLE IF NOT EXISTS sm_processes (
            process   TEXT PRIMARY KEY, -- host/boot id:pid:start ticks
            pid       INTEGER NOT NULL,
            host      TEXT NOT NULL,    -- hostname/boot id: pids are only checked on the same one
            start     TEXT,             -- /proc start time in clock ticks, when known
            heartbeat REAL NOT NULL,
            expires   REAL NOT NULL     -- heartbeat + ttl: dead after this
        )""",
        """CREATE TABLE IF NOT EXISTS sm_gauges (
            family  TEXT NOT NULL,
            labels  TEXT NOT NULL,
            process TEXT NOT NULL,
            value,                      -- NULL stands for NaN (sqlite stores NaN as NULL)
            updated REAL NOT NULL,      -- when this process last changed the value
            PRIMARY KEY (family, labels, process)
        )""",
        "CREATE INDEX IF NOT EXISTS sm_gauges_process ON sm_gauges(process)",
    ),
)
"""Version 1 of the shared-metrics tables; append steps, never edit released ones."""

_SHARED_TYPES = ("counter", "gauge", "histogram")
_GC_EVERY_S = 60.0  # how often a flushing process deletes dead processes' gauges
_IDLE_TTL_S = 3600.0  # heartbeat validity of a process that has no periodic flusher
_MIN_TTL_S = 2.0
_NAN = float("nan")

# Every SharedMetrics, so a forked child re-bases each of them (see _after_fork); the fork
# hook is registered by the first instance (never at import).
_instances: weakref.WeakSet[SharedMetrics] = weakref.WeakSet()
# Started instances stay alive until stop(), even when the caller keeps no reference
# (``SharedMetrics(store, registry).start()``): the store and the exit hook hold weak ones.
_running: Set[SharedMetrics] = set()
# "stored as X but defined here as Y": once per (family, shown/flushed) and process.
_conflicts = WarnOnce(_log)
_LOCK_WAIT_S = 1.0  # longest wait of a flush for the registry's batch lock

# Stores whose schema this module registered (a scrape must not take the write lock to
# re-register it each time). Weak: a discarded store is not kept alive.
_registered: weakref.WeakKeyDictionary[Store, bool] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()


def _ensure_schema(store: Store) -> None:
    with _registered_lock:
        if store in _registered:
            return
        _registered[store] = True
    store.register_schema(SHARED_COMPONENT, SHARED_MIGRATIONS)


def _key(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- process identity


def _read_stat(proc_root: str, pid: int) -> Tuple[str, str] | None:
    """``(state, start ticks)`` from ``/proc/<pid>/stat``, or None when it cannot be read."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat"), "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    if len(rest) < 20:
        return None
    return rest[0], rest[19]  # field 3 (state) and field 22 (starttime)


def _host_id(proc_root: str, hostname: str | None) -> str:
    try:
        with open(os.path.join(proc_root, "sys", "kernel", "random", "boot_id")) as fh:
            boot = fh.read().strip()[:8]
    except OSError:
        boot = ""
    name = socket.gethostname() if hostname is None else hostname
    return f"{name}/{boot}" if boot else name


def _pid_alive(pid: int, start: str | None, proc_root: str) -> bool:
    """False when ``pid`` is gone, a zombie, or now another process (start time differs)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    stat = _read_stat(proc_root, pid)
    if stat is not None:
        state, ticks = stat
        if state in ("Z", "X", "x"):
            return False
        return not start or ticks == start
    if os.path.isdir(os.path.join(proc_root, "self")):
        return False  # procfs works here and has no such pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


class _Liveness:
    """Decides which stored processes are alive, as seen from this host at ``now``."""

    def __init__(self, host: str, proc_root: str, now: float) -> None:
        self.host = host
        self.proc_root = proc_root
        self.now = now

    def alive(self, pid: int, host: str, start: str | None, expires: float) -> bool:
        if expires is None or expires < self.now:
            return False
        if host != self.host:
            return True  # another machine or container: only the heartbeat tells
        return _pid_alive(int(pid), start, self.proc_root)


# --------------------------------------------------------------------------- reading the store

_READ_ALL = """
SELECT 'f', name, type, help, labelnames, bounds, merge FROM sm_families
UNION ALL SELECT 't', family, labels, value, sum, buckets, NULL FROM sm_totals
UNION ALL SELECT 'g', family, labels, process, value, updated, NULL FROM sm_gauges
UNION ALL SELECT 'p', process, pid, host, start, expires, NULL FROM sm_processes
"""
# One statement, so sqlite reads all four tables from one consistent snapshot (a flush
# committing meanwhile is either wholly in or wholly out).


class _Def:
    """A stored family definition."""

    __slots__ = ("bounds", "help", "labelnames", "merge", "name", "type")

    def __init__(
        self,
        name: str,
        type: str,
        help: str,
        labelnames: Tuple[str, ...],
        bounds: Tuple[float, ...],
        merge: str,
    ) -> None:
        self.name = name
        self.type = type
        self.help = help
        self.labelnames = labelnames
        self.bounds = bounds  # finite bounds, without +Inf
        self.merge = merge

    @classmethod
    def of(cls, fam: MetricFamily) -> _Def:
        bounds = tuple(fam.bounds[:-1]) if fam.type == "histogram" else ()
        return cls(fam.name, fam.type, fam.help, tuple(fam.labelnames), bounds, fam.merge)

    def compatible(self, other: _Def) -> bool:
        return (self.type, self.labelnames, self.bounds) == (
            other.type,
            other.labelnames,
            other.bounds,
        )

    def describe(self) -> str:
        extra = f" buckets {list(self.bounds)!r}" if self.type == "histogram" else ""
        return f"{self.type} with labels {list(self.labelnames)!r}{extra}"


class _State:
    """The store's contents, as read by one statement."""

    def __init__(self) -> None:
        self.defs: Dict[str, _Def] = {}
        self.totals: Dict[str, Dict[Tuple[str, ...], Any]] = {}
        # family -> labels -> [(process, value, updated)]
        self.gauges: Dict[str, Dict[Tuple[str, ...], List[Tuple[str, float, float]]]] = {}
        self.processes: Dict[str, Tuple[int, str, str | None, float]] = {}


def _read_state(store: Store, strict: bool = False) -> _State:
    _ensure_schema(store)
    state = _State()
    for row in store.read(_READ_ALL, strict=strict):
        kind = row[0]
        try:
            if kind == "t":
                fam, labels, value, hsum, buckets = row[1:6]
                key = tuple(json.loads(labels))
                if buckets is None:
                    state.totals.setdefault(fam, {})[key] = value
                else:
                    counts = json.loads(buckets)
                    state.totals.setdefault(fam, {})[key] = (counts, float(hsum or 0.0))
            elif kind == "g":
                fam, labels, process, value, updated = row[1:6]
                v = _NAN if value is None else value
                rows = state.gauges.setdefault(fam, {})
                rows.setdefault(tuple(json.loads(labels)), []).append((process, v, float(updated)))
            elif kind == "f":
                name, ftype, help, labelnames, bounds, merge = row[1:7]
                state.defs[name] = _Def(
                    name,
                    ftype,
                    help,
                    tuple(json.loads(labelnames)),
                    tuple(float(b) for b in json.loads(bounds)),
                    merge,
                )
            else:
                process, pid, host, start, expires = row[1:6]
                state.processes[process] = (int(pid), host, start, float(expires))
        except (TypeError, ValueError) as exc:  # a row we cannot read: skip it, keep the rest
            _log.debug("shared metrics: unreadable %s row %r: %s", kind, row, exc)
    return state


def _hist_value(counts: Sequence[int], total: float) -> HistogramValue:
    cum = tuple(accumulate(counts))
    return HistogramValue(cum, total, cum[-1] if cum else 0)


def _noncumulative(hv: HistogramValue) -> List[int]:
    b = hv.buckets
    return [b[0], *[b[i] - b[i - 1] for i in range(1, len(b))]] if b else []


def _combine(mode: str, entries: List[Tuple[str, float, float]]) -> float:
    values = [v for _p, v, _u in entries]
    if mode == "max":
        return max(values, key=_nan_low)
    if mode == "min":
        return min(values, key=_nan_high)
    if mode == "last":
        return max(entries, key=lambda e: e[2])[1]
    total: float = 0
    for v in values:
        total += v
    return total


def _nan_low(v: float) -> float:
    return -math.inf if v != v else v


def _nan_high(v: float) -> float:
    return math.inf if v != v else v


class _Local:
    """What a process adds to the stored view: its counters (current, or only the unflushed
    part when ``baseline`` is given) and its gauges as one more live process."""

    def __init__(
        self,
        families: Iterable[MetricFamily],
        baseline: Mapping[Tuple[str, Tuple[str, ...]], Any] | None,
        process: str | None,
        values: bool = True,
    ) -> None:
        self.families = list(families)
        self.baseline = baseline
        self.process = process
        self.values = values  # False: the families only define metrics (HELP/TYPE)


def _delta(ftype: str, current: Any, base: Any) -> Any:
    """Counter/histogram change since ``base`` (None: all of it); a reset counts from zero."""
    if ftype == "histogram":
        counts = _noncumulative(current)
        if base is None:
            return counts, current.sum
        bcounts, bsum = base
        diff = [c - b for c, b in zip(counts, bcounts)]
        if len(bcounts) != len(counts) or any(d < 0 for d in diff):
            return counts, current.sum
        return diff, current.sum - bsum
    if base is None or current < base:
        return current
    return current - base


def _build(
    state: _State,
    local: _Local | None,
    liveness: _Liveness,
    timestamp: float,
    warnings: WarnOnce,
) -> Snapshot:
    live = {
        p: liveness.alive(pid, host, start, expires)
        for p, (pid, host, start, expires) in state.processes.items()
    }
    if local is not None and local.process is not None:
        live[local.process] = False  # its own stored gauges are replaced by its live values
    totals = {f: dict(rows) for f, rows in state.totals.items()}
    gauges: Dict[str, Dict[Tuple[str, ...], List[Tuple[str, float, float]]]] = {}
    for fname, grows in state.gauges.items():
        for key, entries in grows.items():
            alive = [e for e in entries if live.get(e[0], False)]
            if alive:
                gauges.setdefault(fname, {})[key] = alive
    defs = dict(state.defs)
    extra: List[MetricFamily] = []
    if local is not None:
        for fam in local.families:
            stored = defs.get(fam.name)
            if fam.type not in _SHARED_TYPES:
                if local.values:
                    extra.append(fam)
                continue
            mine = _Def.of(fam)
            if stored is None:
                defs[fam.name] = stored = mine
            elif not stored.compatible(mine):
                _warn_conflict(warnings, "shown", stored, mine)
                continue
            if local.values:
                _add_local(fam, local, totals, gauges, timestamp)
    families: List[MetricFamily] = []
    taken: Set[str] = set()
    for name in sorted(defs):
        d = defs[name]
        series: List[Series] = []
        if d.type == "gauge":
            for key, entries in gauges.get(name, {}).items():
                series.append(Series(key, _combine(d.merge, entries), ""))
        elif d.type == "histogram":
            width = len(d.bounds) + 1
            for key, (counts, hsum) in totals.get(name, {}).items():
                if len(counts) == width:
                    series.append(Series(key, _hist_value(counts, hsum), ""))
        else:
            for key, value in totals.get(name, {}).items():
                series.append(Series(key, value, ""))
        series = [
            Series(s.labelvalues, s.value, label_text(d.labelnames, s.labelvalues))
            for s in sorted(series, key=lambda s: s.labelvalues)
            if len(s.labelvalues) == len(d.labelnames)
        ]
        fam = MetricFamily(
            name,
            d.type,
            d.help,
            d.labelnames,
            tuple(series),
            (*d.bounds, math.inf) if d.type == "histogram" else (),
            d.merge if d.type == "gauge" else "sum",
        )
        families.append(fam)
        taken.update(fam.sample_names())
    for fam in extra:  # collectors of the local registry (process_*, python_info)
        names = fam.sample_names()
        if not taken.intersection(names):
            families.append(fam)
            taken.update(names)
    families.sort(key=lambda f: f.name)
    return Snapshot(tuple(families), timestamp)


def _add_local(
    fam: MetricFamily,
    local: _Local,
    totals: Dict[str, Dict[Tuple[str, ...], Any]],
    gauges: Dict[str, Dict[Tuple[str, ...], List[Tuple[str, float, float]]]],
    now: float,
) -> None:
    name = fam.name
    if fam.type == "gauge":
        grows = gauges.setdefault(name, {})
        for s in fam.series:
            grows.setdefault(s.labelvalues, []).append(("", s.value, now))
        return
    rows = totals.setdefault(name, {})
    for s in fam.series:
        base = None if local.baseline is None else local.baseline.get((name, s.labelvalues))
        change = _delta(fam.type, s.value, base)
        old = rows.get(s.labelvalues)
        if fam.type == "histogram":
            counts, hsum = change
            if old is None:
                rows[s.labelvalues] = (list(counts), hsum)
            elif len(old[0]) == len(counts):
                rows[s.labelvalues] = ([a + b for a, b in zip(old[0], counts)], old[1] + hsum)
        else:
            rows[s.labelvalues] = change if old is None else old + change


def merged_snapshot(
    store: Store,
    local_registry: Registry | None = None,
    *,
    local_values: bool = True,
    clock: Callable[[], float] = time.time,
    proc_root: str = "/proc",
    hostname: str | None = None,
    strict: bool = False,
) -> Snapshot:
    """The merged view of every process that flushed to ``store``, as a Snapshot.

    With ``local_registry`` (whose values are NOT flushed to the store by a
    :class:`SharedMetrics` in this process; use :meth:`SharedMetrics.snapshot` for that),
    its counters and histograms are added, its gauges take part as one more live process,
    and its collectors' families (``process_*``...) are appended when their names are free.
    With ``local_values=False`` the local registry only defines metrics: families nobody
    flushed yet still get HELP and TYPE, but its values, gauges and collectors are left out
    (what a ``metrics`` command or a textfile export wants: a fresh CLI process's gauges,
    such as a health of -1, must not take part in the merge).
    Never raises for store problems: an unreadable store contributes nothing (with the
    store's one warning), unless ``strict``, where it raises
    :class:`~mgit_monitoring.errors.StoreError` (what a ``metrics`` command wants: data it
    cannot read is an error, not an empty answer). A store read read-only (another user's,
    a read-only copy) is read like any other.
    """
    now = clock()
    state = _read_state(store, strict)
    local = None
    if local_registry is not None:
        if local_values:
            families = list(local_registry.snapshot().families)
        else:  # registered metrics only: collectors' families are values, not definitions
            families = [m.collect() for m in local_registry.metrics()]
        local = _Local(families, None, None, local_values)
    liveness = _Liveness(_host_id(proc_root, hostname), proc_root, now)
    return _build(state, local, liveness, now, _conflicts)


def _warn_conflict(warnings: WarnOnce, what: str, stored: _Def, mine: _Def) -> None:
    """A family defined here differently from the store: WARNING once (``what``: the values
    are not "shown" or not "flushed"), then DEBUG."""
    warnings.warn(
        (mine.name, what),
        "metric %s is stored as %s but defined here as %s; the stored definition wins and "
        "this process's values are not %s",
        mine.name,
        stored.describe(),
        mine.describe(),
        what,
    )


def clear_shared_metrics(store: Store, families: Sequence[str] | None = None) -> bool:
    """Delete stored totals, gauges and definitions (of ``families`` only, if given).

    For an operator who changed a histogram's buckets or wants to start counting from
    zero. Returns True when committed; never raises.
    """
    _ensure_schema(store)
    names = None if families is None else list(families)

    def run(conn: sqlite3.Connection) -> None:
        if names is None:
            for table in ("sm_totals", "sm_gauges", "sm_families"):
                conn.execute(f"DELETE FROM {table}")  # nosec B608 # one of three fixed names
        else:
            for name in names:
                conn.execute("DELETE FROM sm_totals WHERE family = ?", (name,))
                conn.execute("DELETE FROM sm_gauges WHERE family = ?", (name,))
                conn.execute("DELETE FROM sm_families WHERE name = ?", (name,))
        # Live writers believe their definitions and gauges are stored: without their
        # process row they rewrite both on their next flush (else what they count from now
        # on would have no definition and stay invisible).
        conn.execute("DELETE FROM sm_processes")

    return store.write(run, "shared metrics clear")


# --------------------------------------------------------------------------- the writer


class _Pending:
    """What one flush transaction did; applied to the writer only after COMMIT."""

    def __init__(self) -> None:
        self.baseline: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
        self.gauges: Dict[Tuple[str, Tuple[str, ...]], float] = {}
        self.checked: Set[str] = set()
        self.rejected: Dict[str, Tuple[_Def, _Def]] = {}
        self.reset_checked = False
        self.gc_done = False


class SharedMetrics:
    """Flushes one process's ``registry`` to ``store`` and shows the merged view.

    ``process_id`` identifies this process in the store (default
    ``"<hostname>/<boot id>:<pid>:<start ticks>"``). ``heartbeat_ttl`` is how long after a
    flush this process still counts as alive to readers; the default is 3 flush intervals
    plus the store's busy timeout once :meth:`start` runs, one hour before. ``clock``,
    ``proc_root`` and ``hostname`` are injectable for tests.

    It is a metrics source (:class:`~mgit_monitoring.exposition.MetricsSource`):
    :meth:`snapshot` is the merged view, so ``expose(shared)`` or a server given it as
    ``registry`` serves every process's metrics. Metrics are recorded on :attr:`registry`;
    :meth:`counter`, :meth:`gauge` and :meth:`histogram` create them there too (a server
    given this object instruments itself with them).
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        process_id: str | None = None,
        heartbeat_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        proc_root: str = "/proc",
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self._clock = clock
        self._proc_root = proc_root
        self._hostname = hostname
        self._given_id = process_id
        self._given_ttl = heartbeat_ttl
        self._lock = threading.RLock()
        self._baseline: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
        self._gauges: Dict[Tuple[str, Tuple[str, ...]], float] = {}
        self._checked: Set[str] = set()
        self._rejected: Dict[str, _Def] = {}
        self._warnings = WarnOnce(_log)  # definition conflicts: once per family and kind
        self._interval: float | None = None
        self._stopped = False
        self._hooks_registered = False
        self._last_gc = -math.inf
        self._forked_locked = False  # forked while another thread held the registry lock
        self.flushes = 0
        """Flushes committed so far."""
        self.failed_flushes = 0
        """Flushes that could not commit (their deltas were kept for the next one)."""
        self._new_identity()
        # Every instance, started or not: a child forked after recording must re-base at
        # once, or it would flush what the parent recorded (or lose its own increments).
        _instances.add(self)
        after_fork_in_child(_after_fork)

    def _new_identity(self) -> None:
        self.pid = os.getpid()
        self.host = _host_id(self._proc_root, self._hostname)
        stat = _read_stat(self._proc_root, self.pid)
        self._start_ticks = stat[1] if stat is not None else None
        if self._given_id is not None and self.pid == getattr(self, "_first_pid", self.pid):
            self.process_id = self._given_id
        else:
            start = self._start_ticks or repr(time.time())
            self.process_id = f"{self.host}:{self.pid}:{start}"
        self._first_pid = getattr(self, "_first_pid", self.pid)

    def __repr__(self) -> str:
        return f"<SharedMetrics {self.process_id} {self.store!r}>"

    # -- creating metrics on the registry ------------------------------------------------

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def ttl(self) -> float:
        """Seconds after a flush during which readers consider this process alive."""
        if self._given_ttl is not None:
            return float(self._given_ttl)
        if self._interval is None:
            return _IDLE_TTL_S
        return max(3 * self._interval + self.store.timeout, _MIN_TTL_S)

    def start(self, interval: float | None = None) -> SharedMetrics:
        """Flush every ``interval`` seconds (default: the store's ``flush_interval``), and once
        more at interpreter exit. Idempotent (a new ``interval`` replaces the old); returns self.

        The periodic flushes run on the store's flush thread (one per store, whatever
        else flushes to it); in a forked child, call start() again to resume them.
        """
        seconds = self.store.flush_interval if interval is None else float(interval)
        if not seconds > 0:
            raise ValueError(f"flush interval must be > 0 seconds, got {interval!r}")
        with self._lock:
            self._interval = seconds
            self._stopped = False
            _running.add(self)
            # The store's exit hook (registered by its first callback) closes it; ours is
            # registered after it, so it runs first (atexit is LIFO) and still can write.
            self.store.remove_flush_callback(self._flush_from_store)  # a new interval
            self.store.add_flush_callback(self._flush_from_store, seconds)
            if not self._hooks_registered:
                self._hooks_registered = True
                atexit.register(_final_flush, weakref.ref(self))
        return self

    def stop(self) -> bool:
        """End the periodic flushes and flush a last time, removing this process's gauges.

        Counters flushed later (if the registry is still used) are still summed; gauges are
        not written again until :meth:`start`. Returns whether the last flush committed.
        """
        self.store.remove_flush_callback(self._flush_from_store)
        with self._lock:  # waits for a flush the store's thread may be running
            self._stopped = True
            _running.discard(self)
            return self._flush(final=True)

    def _flush_from_store(self) -> None:
        # Called by the store: its flush thread, Store.flush() and Store.close(). After stop()
        # there is nothing left to write: our exit hook runs before the store closes.
        if not self._stopped:
            self.flush()

    # -- flushing ------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write what changed since the last flush; True when committed. Never raises.

        On failure the changes stay pending and the next flush writes them.
        """
        try:
            with self._lock:
                return self._flush(final=self._stopped)
        except Exception:  # noqa: BLE001 - metrics never raise into the application
            _log.debug("shared metrics flush failed", exc_info=True)
            return False

    def _collect(self, wait: float = _LOCK_WAIT_S) -> List[MetricFamily] | None:
        """Every metric's family under the registry's batch lock (composite updates such as
        record_operation are all in or all out); None when the lock is not free in ``wait``.

        The lock is held for microseconds, except in a forked child when a thread of the
        parent held it at fork time: that thread does not exist there, so the lock is never
        released; a flush then fails instead of hanging the child.
        """
        reg = self.registry
        lock = reg.batch()
        if not hasattr(lock, "acquire"):
            with lock:
                return [m.collect() for m in reg.metrics()]
        if not (lock.acquire(True, wait) if wait > 0 else lock.acquire(False)):
            return None
        try:
            return [m.collect() for m in reg.metrics()]
        finally:
            lock.release()

    def _flush(self, final: bool) -> bool:
        if self.pid != os.getpid():  # forked without the hook (e.g. no register_at_fork)
            self._rebase()
        collected = None if self._forked_locked else self._collect()
        if collected is None:
            _log.debug("shared metrics flush skipped: the registry's batch lock is not free")
            self.failed_flushes += 1
            return False
        families = [f for f in collected if f.type in _SHARED_TYPES]
        now = self._clock()
        pending_box: List[_Pending] = []

        def run(conn: sqlite3.Connection) -> None:
            pending_box[:] = [self._write(conn, families, now, final)]

        _ensure_schema(self.store)
        ok = self.store.write(run, "shared metrics flush")
        if not ok or not pending_box:
            self.failed_flushes += 1
            return False
        pending = pending_box[0]
        self.flushes += 1
        if pending.reset_checked:
            self._checked.clear()
            self._gauges.clear()
        self._checked |= pending.checked
        for name in pending.checked.difference(pending.rejected):
            self._rejected.pop(name, None)
        for name, (stored, mine) in pending.rejected.items():
            self._rejected[name] = stored
            _warn_conflict(self._warnings, "flushed", stored, mine)
        self._baseline.update(pending.baseline)
        if final:
            self._gauges.clear()
        else:
            self._gauges.update(pending.gauges)
            for key in [k for k in self._gauges if k not in pending.gauges]:
                del self._gauges[key]
        if pending.gc_done:
            self._last_gc = now
        return True

    def _write(
        self, conn: sqlite3.Connection, families: List[MetricFamily], now: float, final: bool
    ) -> _Pending:
        """The body of one flush transaction (may run twice if the store retries it)."""
        p = _Pending()
        pid_row = conn.execute(
            "SELECT 1 FROM sm_processes WHERE process = ?", (self.process_id,)
        ).fetchone()
        checked = self._checked
        known_gauges = self._gauges
        if pid_row is None and (self._checked or self._gauges):
            # A new file (moved aside, cleared) or we were taken for dead: rewrite it all.
            p.reset_checked = True
            checked, known_gauges = set(), {}
        if final:
            conn.execute("DELETE FROM sm_gauges WHERE process = ?", (self.process_id,))
            conn.execute("DELETE FROM sm_processes WHERE process = ?", (self.process_id,))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO sm_processes (process, pid, host, start, heartbeat, "
                "expires) VALUES (?, ?, ?, ?, ?, ?)",
                (self.process_id, self.pid, self.host, self._start_ticks, now, now + self.ttl),
            )
        for fam in families:
            mine = _Def.of(fam)
            if fam.name in self._rejected and fam.name in checked:
                continue
            if fam.name not in checked:
                conn.execute(
                    "INSERT OR IGNORE INTO sm_families (name, type, help, labelnames, bounds, "
                    "merge, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        fam.name,
                        fam.type,
                        fam.help,
                        json.dumps(list(mine.labelnames)),
                        json.dumps(list(mine.bounds)),
                        fam.merge,
                        now,
                    ),
                )
                row = conn.execute(
                    "SELECT type, labelnames, bounds FROM sm_families WHERE name = ?", (fam.name,)
                ).fetchone()
                stored = _Def(
                    fam.name,
                    row[0],
                    "",
                    tuple(json.loads(row[1])),
                    tuple(float(b) for b in json.loads(row[2])),
                    "",
                )
                p.checked.add(fam.name)
                if not stored.compatible(mine):
                    p.rejected[fam.name] = (stored, mine)
                    continue
            if fam.type == "gauge":
                if not final:
                    self._write_gauges(conn, fam, now, known_gauges, p)
            else:
                self._write_totals(conn, fam, now, p)
        if not final:
            # Series this process no longer has (removed children): drop their rows.
            for fname, key in [k for k in known_gauges if k not in p.gauges]:
                conn.execute(
                    "DELETE FROM sm_gauges WHERE family = ? AND labels = ? AND process = ?",
                    (fname, _key(key), self.process_id),
                )
        if final or now - self._last_gc >= _GC_EVERY_S:
            self._collect_garbage(conn, now)
            p.gc_done = True
        return p

    def _write_totals(
        self, conn: sqlite3.Connection, fam: MetricFamily, now: float, p: _Pending
    ) -> None:
        hist = fam.type == "histogram"
        for s in fam.series:
            skey = (fam.name, s.labelvalues)
            base = self._baseline.get(skey)
            change = _delta(fam.type, s.value, base)
            if hist:
                p.baseline[skey] = (_noncumulative(s.value), s.value.sum)
                counts, hsum = change
                if base is not None and not any(counts) and not hsum:
                    continue
                key = _key(s.labelvalues)
                row = conn.execute(
                    "SELECT buckets, sum FROM sm_totals WHERE family = ? AND labels = ?",
                    (fam.name, key),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO sm_totals (family, labels, value, sum, buckets, updated) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (fam.name, key, sum(counts), hsum, json.dumps(counts), now),
                    )
                    continue
                old = json.loads(row[0]) if row[0] else []
                if len(old) != len(counts):  # cannot happen with a compatible definition
                    old = [0] * len(counts)
                new = [a + b for a, b in zip(old, counts)]
                conn.execute(
                    "UPDATE sm_totals SET value = ?, sum = ?, buckets = ?, updated = ? "
                    "WHERE family = ? AND labels = ?",
                    (sum(new), float(row[1] or 0.0) + hsum, json.dumps(new), now, fam.name, key),
                )
            else:
                p.baseline[skey] = s.value
                if base is not None and not change:
                    continue
                key = _key(s.labelvalues)
                cur = conn.execute(
                    "UPDATE sm_totals SET value = value + ?, updated = ? "
                    "WHERE family = ? AND labels = ?",
                    (change, now, fam.name, key),
                )
                if cur.rowcount == 0:
                    conn.execute(
                        "INSERT INTO sm_totals (family, labels, value, updated) "
                        "VALUES (?, ?, ?, ?)",
                        (fam.name, key, change, now),
                    )

    def _write_gauges(
        self,
        conn: sqlite3.Connection,
        fam: MetricFamily,
        now: float,
        known: Mapping[Tuple[str, Tuple[str, ...]], float],
        p: _Pending,
    ) -> None:
        for s in fam.series:
            skey = (fam.name, s.labelvalues)
            value = s.value
            p.gauges[skey] = value
            old = known.get(skey)
            if old is not None and (old == value or (old != old and value != value)):
                continue
            stored = None if value != value else value  # sqlite would store NaN as NULL anyway
            conn.execute(
                "INSERT OR REPLACE INTO sm_gauges (family, labels, process, value, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (fam.name, _key(s.labelvalues), self.process_id, stored, now),
            )

    def _collect_garbage(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete dead processes and their gauges (few rows: only live or recently killed)."""
        liveness = _Liveness(self.host, self._proc_root, now)
        dead = [
            (process,)
            for process, pid, host, start, expires in conn.execute(
                "SELECT process, pid, host, start, expires FROM sm_processes WHERE process != ?",
                (self.process_id,),
            ).fetchall()
            if not liveness.alive(pid, host, start, expires)
        ]
        if dead:
            conn.executemany("DELETE FROM sm_gauges WHERE process = ?", dead)
            conn.executemany("DELETE FROM sm_processes WHERE process = ?", dead)
        # Gauges whose process row is gone (deleted by a clear, or written by older code).
        conn.execute(
            "DELETE FROM sm_gauges WHERE process NOT IN (SELECT process FROM sm_processes)"
        )

    def _rebase(self) -> None:
        """In a forked child: a new identity, and the inherited values count as flushed."""
        self._lock = threading.RLock()
        self._new_identity()
        self._gauges = {}
        self._checked = set()
        families = self._collect(wait=0)  # never block inside os.fork()
        if families is None:
            # Held by a thread of the parent: the registry is unusable in this child, and
            # flushing without a base would count the parent's values twice.
            self._forked_locked = True
            return
        for fam in families:
            for s in fam.series:
                if fam.type == "histogram":
                    self._baseline[(fam.name, s.labelvalues)] = (
                        _noncumulative(s.value),
                        s.value.sum,
                    )
                elif fam.type == "counter":
                    self._baseline[(fam.name, s.labelvalues)] = s.value

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The merged view including this process's not yet flushed changes and its gauges.

        Never raises for store problems (an unreadable store shows this process only).
        """
        with self._lock:
            now = self._clock()
            state = _read_state(self.store)
            local = _Local(self.registry.snapshot().families, self._baseline, self.process_id)
            liveness = _Liveness(self.host, self._proc_root, now)
            return _build(state, local, liveness, now, self._warnings)


def _final_flush(ref: Callable[[], SharedMetrics | None]) -> None:
    shared = ref()
    if shared is not None and shared._interval is not None and not shared._stopped:
        try:
            # Exit waits at most the store's timeout in total for a locked store (this
            # flush, then the store's own at-exit flush), not that much per write.
            shared.store.begin_shutdown()
            shared.stop()
        except Exception:  # noqa: BLE001 - never a traceback at interpreter exit
            _log.debug("shared metrics flush at exit failed", exc_info=True)


def _after_fork() -> None:
    for shared in list(_instances):
        try:
            shared._rebase()
        except Exception:  # noqa: BLE001 - never break os.fork()
            _log.debug("shared metrics re-base after fork failed", exc_info=True)
