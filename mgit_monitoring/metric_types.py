"""Counter, Gauge and Histogram: the metrics a :class:`~mgit_monitoring.registry.Registry` creates.

A metric is a family of children, one per label set; an unlabelled metric has exactly one
and takes its recording methods (``c.inc()`` is the child's ``inc``). Design choices, and why:

* Label values are tuples of ``str`` and children are cached in a dict keyed by that tuple,
  so ``labels(*values)`` on an existing child is one dict lookup. Each child pre-renders
  (and escapes) its label text once when created, so exposition does no per-line escaping.
* Counters and histograms record without a lock: each thread adds into its own cell of the
  child, which no other thread writes, and a read sums the cells. Totals are exact and
  threads never contend (a shared lock made 4 busy threads 2-3x slower than one); a version
  number in each histogram cell makes a read see its buckets, ``_sum`` and ``_count`` agree.
  A gauge's ``set`` cannot be split that way: each gauge child has its own small lock.
* Cardinality guard: a metric holds at most ``series_limit`` children
  (:data:`DEFAULT_SERIES_LIMIT` unless the metric or registry says otherwise). Past it a new
  label set gets a shared no-op child (the caller never errors); the metric's
  ``on_series_dropped`` callback is told (the registry counts it in
  ``mgit_monitoring_series_dropped_total{metric}``) and the first drop per metric is logged
  at WARNING on the ``mgit_monitoring.registry`` logger.
* Programmer errors (bad names, wrong label count, negative counter increments, NaN where
  it means nothing) raise :class:`~mgit_monitoring.errors.MetricError` naming the bad value.

Create metrics through a registry (``registry.counter(...)``): a metric built directly is
valid but belongs to no registry, so no snapshot sees it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from itertools import accumulate
from operator import itemgetter
from threading import get_ident
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

from mgit_monitoring.errors import MetricError
from mgit_monitoring.samples import (
    HistogramValue,
    MetricFamily,
    Series,
    label_text,
    label_values,
    validate_buckets,
    validate_help,
    validate_labelnames,
    validate_metric_name,
)

__all__ = [
    "DEFAULT_SERIES_LIMIT",
    "MERGE_MODES",
    "Counter",
    "Gauge",
    "Histogram",
    "Metric",
]

#: Children (label sets) one metric may hold before new ones are dropped.
DEFAULT_SERIES_LIMIT = 10_000

#: How a gauge's values from several processes combine (used by cross-process merging).
MERGE_MODES: Tuple[str, ...] = ("sum", "max", "min", "last")

_INF = float("inf")
_INT64 = 2**63 - 1
# Sample-name suffixes a family of another type would generate (checklist rules 9 and 12).
_RESERVED_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


# --------------------------------------------------------------------------- children


def _as_float(x: Any) -> float | None:
    """A number that plain arithmetic refused (Decimal meeting a float, ...) as a float, else None.

    Only reached after a TypeError, so the hot paths never pay for it; strings stay refused.
    """
    import numbers

    if not isinstance(x, numbers.Number):
        return None
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def _sample(v: Any) -> Any:
    """A value as a snapshot holds it: a float, or an int within SQLite's INTEGER range.

    Ints beyond that range (a gauge ``set(10**400)``, a counter fed huge ints) become floats,
    +-Inf past the float range: a parser reads every exposed value, the store can keep it.
    """
    if type(v) is float or (type(v) is int and -_INT64 <= v <= _INT64):
        return v
    try:
        return float(v)
    except OverflowError:
        return _INF if v > 0 else -_INF


class _CounterChild:
    """One counter series. ``inc`` is the hot path: one comparison and one add, no lock.

    Each thread adds into its own cell (a one-item list in ``_cells``, keyed by thread ident)
    that no other thread ever writes, so increments are exact without a lock and threads
    never contend for one; reading sums the cells. The OS reuses a finished thread's ident
    and the next thread given it carries on in that cell (its count is kept), so there are
    about as many cells as threads that ever ran at the same time.
    """

    __slots__ = ("_all", "_cells", "_lock", "label_text", "labelvalues")

    def __init__(self, labelvalues: Tuple[str, ...], label_text: str) -> None:
        self.labelvalues = labelvalues
        self.label_text = label_text
        # ident -> [value]; a value stays an int while increments are ints.
        self._cells: Dict[int, List[Any]] = {}
        self._all: Tuple[List[Any], ...] = ()  # the cells, for readers: replaced, never changed
        self._lock = threading.Lock()  # adding a cell

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (>= 0; NaN, negatives and non-numbers raise MetricError)."""
        try:
            if amount >= 0:  # False for NaN
                try:
                    self._cells[get_ident()][0] += amount  # only this thread writes this cell
                except KeyError:  # this thread's first increment
                    self._cell()[0] += amount
                return
        except (TypeError, OverflowError):  # a Decimal or a huge int after a float
            f = _as_float(amount)
            if f is not None and f >= 0:
                cell = self._cell()
                cell[0] = float(_sample(cell[0])) + f
                return
        raise MetricError(f"counters only go up: invalid increment {amount!r}")

    def _cell(self) -> List[Any]:
        """The calling thread's cell, created on its first use."""
        ident = get_ident()
        with self._lock:
            cell = self._cells.get(ident)
            if cell is None:
                cell = self._cells[ident] = [0]
                self._all = (*self._all, cell)
        return cell

    def get(self) -> float:
        """The current value."""
        cells = self._all
        if len(cells) == 1:
            total: float = cells[0][0]
            return total
        values = [cell[0] for cell in cells]
        try:
            total = sum(values)
        except (TypeError, OverflowError):  # e.g. a Decimal in one cell, a float in another
            total = sum(float(_sample(v)) for v in values)
        return total

    def _read(self) -> Any:
        v = self.get()
        return v if type(v) is float else _sample(v)


class _Timer:
    """Context manager / decorator observing elapsed seconds into a histogram child."""

    __slots__ = ("_observe", "_start")

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._observe(max(time.perf_counter() - self._start, 0.0))

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``@h.time()``: observe every call of ``func`` (each call gets its own timer)."""
        import functools

        observe = self._observe

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with _Timer(observe):
                return func(*args, **kwargs)

        return timed


class _InProgress:
    """Context manager: +1 on enter, -1 on exit."""

    __slots__ = ("_child",)

    def __init__(self, child: _GaugeChild) -> None:
        self._child = child

    def __enter__(self) -> None:
        self._child.inc()

    def __exit__(self, *exc: Any) -> None:
        self._child.dec()


class _GaugeChild:
    """One gauge series."""

    __slots__ = ("_lock", "_value", "label_text", "labelvalues")

    def __init__(self, labelvalues: Tuple[str, ...], label_text: str) -> None:
        self.labelvalues = labelvalues
        self.label_text = label_text
        self._value: Union[int, float] = 0
        self._lock = threading.Lock()

    def set(self, value: float) -> None:
        """Set the value (ints stay ints, booleans become 1/0; NaN and infinities are allowed)."""
        t = type(value)
        if t is float or t is int:
            v: float = value
        elif t is bool:
            v = int(value)
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise MetricError(f"gauge value must be a number, got {value!r}") from None
        lock = self._lock
        lock.acquire()  # a plain assignment cannot raise: no try/finally needed
        self._value = v
        lock.release()

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (NaN and non-numbers raise MetricError)."""
        try:
            if amount == amount:  # False for NaN
                lock = self._lock
                lock.acquire()
                try:
                    self._value += amount
                finally:
                    lock.release()
                return
        except (TypeError, OverflowError):  # OverflowError: an int past the float range
            f = _as_float(amount)
            if f is not None and f == f:
                with self._lock:
                    self._value = float(_sample(self._value)) + f
                return
        raise MetricError(f"gauge increment must be a number, got {amount!r}")

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount`` (NaN and non-numbers raise MetricError)."""
        try:
            if amount == amount:
                lock = self._lock
                lock.acquire()
                try:
                    self._value -= amount
                finally:
                    lock.release()
                return
        except (TypeError, OverflowError):  # OverflowError: an int past the float range
            f = _as_float(amount)
            if f is not None and f == f:
                with self._lock:
                    self._value = float(_sample(self._value)) - f
                return
        raise MetricError(f"gauge decrement must be a number, got {amount!r}")

    def set_to_current_time(self) -> None:
        """Set the value to the current Unix time in seconds."""
        self.set(time.time())

    def track_inprogress(self) -> _InProgress:
        """``with g.track_inprogress():`` counts the block while it runs."""
        return _InProgress(self)

    def get(self) -> float:
        """The current value."""
        return self._value

    def _read(self) -> Any:
        return _sample(self._value)


class _HistogramChild:
    """One histogram series: per-bucket counts and a sum that a reader always sees agree.

    Like a counter, each thread records into its own cell, keyed by thread ident, that only
    it writes, so ``observe`` takes no lock and threads never contend. A cell is ``[sum,
    started, count per bucket...]``: the writer bumps ``started``, then the sum, then the
    bucket, so a copy of the cell whose ``started`` equals its buckets' total holds no half
    update; a reader copies until it gets one (a snapshot never shows a count without its
    sum). The indexes are small non-negative constants: the cheapest list access there is.
    """

    __slots__ = ("_all", "_cells", "_keys", "_lock", "_width", "label_text", "labelvalues")

    def __init__(
        self, labelvalues: Tuple[str, ...], label_text: str, bounds: Tuple[float, ...]
    ) -> None:
        self.labelvalues = labelvalues
        self.label_text = label_text
        # The finite upper bounds behind two unused places: bisect_left(..., lo=2) gives the
        # bucket's index in a cell directly (len(bounds) + 2 is +Inf).
        self._keys = (0.0, 0.0, *bounds)
        self._width = len(bounds) + 1
        self._cells: Dict[int, List[Any]] = {}
        self._all: Tuple[List[Any], ...] = ()  # the cells, for readers: replaced, never changed
        self._lock = threading.Lock()  # adding a cell

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is >= it (NaN raises MetricError)."""
        try:
            if value == value:  # False for NaN
                i = bisect_left(self._keys, value, 2)
                try:
                    cell = self._cells[get_ident()]  # only this thread writes this cell
                except KeyError:  # this thread's first observation
                    cell = self._cell()
                total = cell[0] + value  # first: if it raises, nothing has changed
                cell[1] += 1  # started: ahead of the buckets until this update is whole
                cell[0] = total
                cell[i] += 1
                return
        except (TypeError, OverflowError):  # OverflowError: an int past the float range
            f = _as_float(value)
            if f is not None and f == f:
                self.observe(f)
                return
        raise MetricError(f"histogram observation must be a number, got {value!r}")

    def _cell(self) -> List[Any]:
        """The calling thread's cell, created on its first use."""
        ident = get_ident()
        with self._lock:
            cell = self._cells.get(ident)
            if cell is None:
                cell = self._cells[ident] = [0.0, 0, *([0] * self._width)]
                self._all = (*self._all, cell)
        return cell

    def time(self) -> _Timer:
        """``with h.time():`` observes the block's duration in seconds."""
        return _Timer(self.observe)

    def get(self) -> HistogramValue:
        """The current buckets (cumulative), sum and count."""
        cells = self._all
        if not cells:
            cum = (0,) * self._width
            return HistogramValue(cum, 0.0, 0)
        if len(cells) == 1:
            totals = _whole(cells[0])
        else:
            totals = [sum(col) for col in zip(*[_whole(cell) for cell in cells])]
        cum = tuple(accumulate(totals[2:]))
        return HistogramValue(cum, float(totals[0]), cum[-1])

    _read = get

    def settle_after_fork(self) -> None:
        """In a forked child, close the updates that threads gone in the fork left half done."""
        for cell in self._all:
            cell[1] = sum(cell[2:])


def _whole(cell: List[Any]) -> List[Any]:
    """A copy of a histogram cell with no update half applied (see :class:`_HistogramChild`)."""
    for attempt in range(10_000):
        copy = cell[:]  # one step under the GIL
        if copy[1] == sum(copy[2:]):
            return copy
        # Its thread was switched out mid-update (Python < 3.10 switches between any two
        # bytecodes): let it run. sleep(0) may take the GIL straight back, so then sleep.
        time.sleep(0 if attempt < 8 else 0.0001)
    return copy  # not whole for over a second: a thread stopped mid-update for good


class _NoopChild:
    """What a dropped label set gets: every recording method accepts and discards."""

    __slots__ = ()
    labelvalues: Tuple[str, ...] = ()
    label_text = ""

    def inc(self, amount: float = 1) -> None:
        """Discard."""

    def dec(self, amount: float = 1) -> None:
        """Discard."""

    def set(self, value: float) -> None:
        """Discard."""

    def observe(self, value: float) -> None:
        """Discard."""

    def set_to_current_time(self) -> None:
        """Discard."""

    def time(self) -> _Timer:
        """A timer whose observation is discarded."""
        return _Timer(self.observe)

    def track_inprogress(self) -> _InProgress:
        """A tracker whose updates are discarded."""
        return _InProgress(self)  # type: ignore[arg-type]

    def get(self) -> float:
        """Always 0."""
        return 0


_NOOP = _NoopChild()


# --------------------------------------------------------------------------- metrics


class Metric:
    """The base of Counter, Gauge and Histogram: label handling and the cardinality guard.

    ``on_series_dropped(name)`` is called (outside any lock) for each label set refused by
    the cardinality guard; a MetricError it raises is ignored.
    """

    type = ""
    """``counter``, ``gauge`` or ``histogram``."""

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
        on_series_dropped: Callable[[str], None] | None = None,
    ) -> None:
        self.name = validate_metric_name(name)
        self.family_name = self._family_name(name)
        self.help = validate_help(name, help)
        self.labelnames = validate_labelnames(labelnames, self.type)
        # Two or more label names: one C call maps the keywords to the label tuple.
        self._kwgetter: Callable[[Dict[str, Any]], Tuple[Any, ...]] | None = (
            itemgetter(*self.labelnames) if len(self.labelnames) > 1 else None
        )
        limit = DEFAULT_SERIES_LIMIT if series_limit is None else series_limit
        if type(limit) is not int or limit < 1:
            raise MetricError(
                f"metric {name!r}: series_limit must be a positive int, got {series_limit!r}"
            )
        self.series_limit = limit
        self.dropped = 0  # label sets refused by the cardinality guard
        self._on_series_dropped = on_series_dropped
        self._children: Dict[Tuple[str, ...], Any] = {}
        self._lock = threading.Lock()  # guards child creation only, never held while recording

    def _family_name(self, name: str) -> str:
        if name.endswith(_RESERVED_SUFFIXES):
            raise MetricError(
                f"invalid {self.type} name {name!r}: "
                f"the suffix is reserved ({', '.join(_RESERVED_SUFFIXES)})"
            )
        return name

    def _bind_default(self, *methods: str) -> None:
        """Unlabelled metric: create its only child and make its methods the metric's own."""
        child = self._new_child(())
        self._children[()] = child
        vars(self).update({m: getattr(child, m) for m in methods})  # one call per inc, not two

    def _new_child(self, values: Tuple[str, ...]) -> Any:
        raise NotImplementedError

    def labels(self, *values: Any, **kwvalues: Any) -> Any:
        """The child for these label values (positional, or all by keyword); created on first use.

        Non-str values are converted with ``str()``. Raises MetricError for a wrong count or
        unknown keyword. Past the series limit, returns a shared no-op child.
        """
        if kwvalues:
            values = self._from_keywords(values, kwvalues)
        try:
            return self._children[values]
        except (KeyError, TypeError):  # TypeError: an unhashable value, str() it below
            return self._child_slow(values)

    def _from_keywords(self, values: Tuple[Any, ...], kw: Dict[str, Any]) -> Tuple[Any, ...]:
        names = self.labelnames
        if not values and len(kw) == len(names):
            getter = self._kwgetter
            try:
                if getter is None:  # one label name (kw is never empty here)
                    return (kw[names[0]],)
                return getter(kw)
            except KeyError:
                pass
        raise MetricError(
            f"metric {self.name!r} expects label names {names!r}, got {tuple(values) + tuple(kw)!r}"
        )

    def _child_slow(self, raw: Tuple[Any, ...]) -> Any:
        values = label_values(self.name, self.labelnames, raw)
        dropped = 0
        with self._lock:
            child = self._children.get(values)
            if child is None:
                if len(self._children) >= self.series_limit:
                    self.dropped += 1
                    dropped = self.dropped
                    child = _NOOP
                else:
                    child = self._new_child(values)
                    self._children[values] = child
        if dropped:  # outside the metric lock: the registry's report takes its own lock
            self._report_drop(values, dropped == 1)
        return child

    def _report_drop(self, values: Tuple[str, ...], first: bool) -> None:
        if self._on_series_dropped is not None:
            try:
                self._on_series_dropped(self.name)
            except MetricError:  # e.g. the self-metric's name taken by the caller: still drop
                pass
        if first:
            import logging  # only when it happens: keeps the import of this module cheap

            logging.getLogger("mgit_monitoring.registry").warning(
                "metric %s reached its series limit of %d; "
                "new label sets (first dropped: %r) are discarded",
                self.name,
                self.series_limit,
                values,
            )

    def remove(self, *values: Any) -> None:
        """Forget the child with these label values (no error if absent)."""
        key = label_values(self.name, self.labelnames, values)
        with self._lock:
            self._children.pop(key, None)

    def clear(self) -> None:
        """Forget every child (an unlabelled metric keeps its one series, reset to zero)."""
        with self._lock:
            self._children.clear()
            if not self.labelnames:
                self._rebind()

    def _rebind(self) -> None:
        raise NotImplementedError

    def definition(self) -> Tuple[Any, ...]:
        """What an identical re-registration must match: type, label names (and buckets)."""
        return (self.type, self.labelnames)

    def renew_locks(self) -> None:
        """New locks for the metric and its children: in a forked child, the parent's may be
        held by threads that do not exist there (the registry's fork hook calls this)."""
        self._lock = threading.Lock()
        for child in list(self._children.values()):
            if getattr(child, "_lock", None) is not None:
                child._lock = threading.Lock()

    def _children_list(self) -> List[Any]:
        with self._lock:
            return list(self._children.values())

    def collect(self) -> MetricFamily:
        """This metric's family with every child's current value."""
        series = tuple(
            [Series(ch.labelvalues, ch._read(), ch.label_text) for ch in self._children_list()]
        )
        return MetricFamily(self.family_name, self.type, self.help, self.labelnames, series)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} labels={self.labelnames!r}>"


class Counter(Metric):
    """A monotonically increasing value; the family name drops a trailing ``_total``."""

    type = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
        on_series_dropped: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            name, help, labelnames, series_limit=series_limit, on_series_dropped=on_series_dropped
        )
        if not self.labelnames:
            self._rebind()

    def _rebind(self) -> None:
        self._bind_default("inc", "get")

    def _family_name(self, name: str) -> str:
        family = name[:-6] if name.endswith("_total") else name
        if not family or family.endswith("_total"):
            raise MetricError(
                f"invalid counter name {name!r}: needs a name before a single '_total'"
            )
        validate_metric_name(family)
        return family

    @property
    def sample_name(self) -> str:
        """The name of this counter's samples (always ends in ``_total``)."""
        return self.family_name + "_total"

    def _new_child(self, values: Tuple[str, ...]) -> _CounterChild:
        return _CounterChild(values, label_text(self.labelnames, values))

    def inc(self, amount: float = 1) -> None:
        """Increment an unlabelled counter (a labelled one raises MetricError: use ``labels()``)."""
        raise MetricError(
            f"counter {self.name!r} has labels {self.labelnames!r}: call .labels(...).inc()"
        )

    def get(self) -> float:
        """The value of an unlabelled counter."""
        raise MetricError(
            f"counter {self.name!r} has labels {self.labelnames!r}: call .labels(...).get()"
        )


class Gauge(Metric):
    """A value that goes up and down; ``merge`` says how processes combine it."""

    type = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        merge: str = "last",
        series_limit: int | None = None,
        on_series_dropped: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            name, help, labelnames, series_limit=series_limit, on_series_dropped=on_series_dropped
        )
        if merge not in MERGE_MODES:
            raise MetricError(
                f"gauge {name!r}: merge must be one of {MERGE_MODES!r}, got {merge!r}"
            )
        self.merge = merge
        if not self.labelnames:
            self._rebind()

    def _rebind(self) -> None:
        self._bind_default("set", "inc", "dec", "set_to_current_time", "track_inprogress", "get")

    def _new_child(self, values: Tuple[str, ...]) -> _GaugeChild:
        return _GaugeChild(values, label_text(self.labelnames, values))

    def definition(self) -> Tuple[Any, ...]:
        """Type and label names (a gauge's merge mode may differ between registrations)."""
        return (self.type, self.labelnames)

    def collect(self) -> MetricFamily:
        """This gauge's family, carrying its merge mode."""
        return super().collect()._replace(merge=self.merge)

    def _labelled(self, what: str) -> MetricError:
        return MetricError(
            f"gauge {self.name!r} has labels {self.labelnames!r}: call .labels(...).{what}()"
        )

    def set(self, value: float) -> None:
        """Set an unlabelled gauge."""
        raise self._labelled("set")

    def inc(self, amount: float = 1) -> None:
        """Increment an unlabelled gauge."""
        raise self._labelled("inc")

    def dec(self, amount: float = 1) -> None:
        """Decrement an unlabelled gauge."""
        raise self._labelled("dec")

    def set_to_current_time(self) -> None:
        """Set an unlabelled gauge to the current Unix time."""
        raise self._labelled("set_to_current_time")

    def track_inprogress(self) -> _InProgress:
        """Track in-progress work on an unlabelled gauge."""
        raise self._labelled("track_inprogress")

    def get(self) -> float:
        """The value of an unlabelled gauge."""
        raise self._labelled("get")


class Histogram(Metric):
    """Observations in cumulative buckets (``+Inf`` implied), with ``_sum`` and ``_count``."""

    type = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        series_limit: int | None = None,
        on_series_dropped: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            name, help, labelnames, series_limit=series_limit, on_series_dropped=on_series_dropped
        )
        self.buckets = validate_buckets(name, buckets)
        self._bounds_inf = (*self.buckets, _INF)
        if not self.labelnames:
            self._rebind()

    def _rebind(self) -> None:
        self._bind_default("observe", "time", "get")

    def _new_child(self, values: Tuple[str, ...]) -> _HistogramChild:
        return _HistogramChild(values, label_text(self.labelnames, values), self.buckets)

    def renew_locks(self) -> None:
        """New locks, and close the updates that threads gone in a fork left half done."""
        super().renew_locks()
        for child in self._children_list():
            if isinstance(child, _HistogramChild):
                child.settle_after_fork()

    def definition(self) -> Tuple[Any, ...]:
        """Type, label names and bucket bounds."""
        return (self.type, self.labelnames, self.buckets)

    def collect(self) -> MetricFamily:
        """This histogram's family, with its bounds (``+Inf`` last)."""
        return super().collect()._replace(bounds=self._bounds_inf)

    def _labelled(self, what: str) -> MetricError:
        return MetricError(
            f"histogram {self.name!r} has labels {self.labelnames!r}: call .labels(...).{what}()"
        )

    def observe(self, value: float) -> None:
        """Observe on an unlabelled histogram."""
        raise self._labelled("observe")

    def time(self) -> _Timer:
        """Time a block on an unlabelled histogram."""
        raise self._labelled("time")

    def get(self) -> HistogramValue:
        """The buckets, sum and count of an unlabelled histogram."""
        raise self._labelled("get")
