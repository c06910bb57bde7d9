"""Prometheus-style metrics: Counter, Gauge, Histogram, the Registry that holds them, snapshots.

A :class:`Registry` is an ordinary object (no hidden global)::

    reg = Registry()
    c = reg.counter("mgit_x_total", "Help.", ("a", "b"))  # family mgit_x, sample mgit_x_total
    c.labels("1", "2").inc(); c.labels(a="1", b="2").inc(2.5)
    g = reg.gauge("mgit_g", "Help.", merge="sum"); g.set(3)
    h = reg.histogram("mgit_h_seconds", "Help.", ("op",)); h.labels("clone").observe(1.2)
    snap = reg.snapshot()        # an immutable value that exposition.py renders

Design choices, and why:

* Label values are tuples of ``str`` and children are cached in a dict keyed by that tuple, so
  ``labels(*values)`` on an existing child is one dict lookup. Each child pre-renders (and
  escapes) its label text once when created, so exposition does no per-line escaping.
* Every child has its own small lock (exact totals under contention; a histogram's buckets,
  ``_sum`` and ``_count`` always agree). Composite updates that must look atomic to a scrape
  run inside ``with registry.batch():``; :meth:`Registry.snapshot` copies under that same
  lock and renders nothing while holding it.
* Cardinality guard: a metric holds at most ``series_limit`` children
  (:data:`DEFAULT_SERIES_LIMIT` = 10,000 unless the metric or registry says otherwise). Past
  it a new label set gets a shared no-op child (the caller never errors), the drop is
  counted in ``mgit_monitoring_series_dropped_total{metric}`` and logged once per metric at
  WARNING on the ``mgit_monitoring.registry`` logger.
* Programmer errors (bad names, wrong label count, negative counter increments, NaN where
  it means nothing) raise :class:`~mgit_monitoring.errors.MetricError` naming the bad value.
* ``_created`` series are not produced (OpenMetrics makes them a SHOULD; they double the
  series a counter costs in Prometheus), and units are not modelled (no ``# UNIT``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from bisect import bisect_left
from itertools import accumulate
from operator import itemgetter
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Sequence,
    Tuple,
    Union,
)

from mgit_monitoring.errors import DuplicateMetricError, MetricError

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_SERIES_LIMIT",
    "DROPPED_SERIES_METRIC",
    "MERGE_MODES",
    "Collector",
    "Counter",
    "Gauge",
    "Histogram",
    "HistogramValue",
    "MetricFamily",
    "Registry",
    "Sample",
    "Series",
    "Snapshot",
    "escape_label_value",
    "exponential_buckets",
    "label_text",
    "linear_buckets",
    "metric_family",
    "validate_label_name",
    "validate_metric_name",
]

#: Histogram upper bounds (seconds) from a 5 ms API call to a 10-minute clone; ``+Inf`` is implicit.
DEFAULT_BUCKETS: Tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip

#: Children (label sets) one metric may hold before new ones are dropped.
DEFAULT_SERIES_LIMIT = 10_000

#: How a gauge's values from several processes combine (used by cross-process merging).
MERGE_MODES: Tuple[str, ...] = ("sum", "max", "min", "last")

#: The self-metric counting label sets dropped by the cardinality guard.
DROPPED_SERIES_METRIC = "mgit_monitoring_series_dropped_total"

_INF = float("inf")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_LABEL_CHARS = _NAME_START | frozenset("0123456789")
_NAME_CHARS = _LABEL_CHARS | frozenset(":")
# Sample-name suffixes a family of another type would generate (checklist rules 9 and 12).
_RESERVED_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
_TYPES = ("counter", "gauge", "histogram", "unknown", "info")


# --------------------------------------------------------------------------- validation


def validate_metric_name(name: str) -> str:
    """Return ``name`` if it is a valid metric name, else raise MetricError naming it.

    Grammar ``[a-zA-Z_][a-zA-Z0-9_]*``: colons are reserved for recording rules and a
    leading underscore is reserved by OpenMetrics, so neither is accepted here.
    """
    if not isinstance(name, str) or not name:
        raise MetricError(f"invalid metric name {name!r}: must be a non-empty string")
    if not set(name) <= _NAME_CHARS or name[0] not in _NAME_START:
        raise MetricError(f"invalid metric name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
    if ":" in name:
        raise MetricError(f"invalid metric name {name!r}: colons are reserved for recording rules")
    if name[0] == "_":
        raise MetricError(f"invalid metric name {name!r}: a leading underscore is reserved")
    return name


def validate_label_name(name: str, metric_type: str = "") -> str:
    """Return ``name`` if it is a valid label name for ``metric_type``, else raise MetricError."""
    if not isinstance(name, str) or not name:
        raise MetricError(f"invalid label name {name!r}: must be a non-empty string")
    if not set(name) <= _LABEL_CHARS or name[0] not in _NAME_START:
        raise MetricError(f"invalid label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
    if name.startswith("__"):
        raise MetricError(f"invalid label name {name!r}: names starting with '__' are reserved")
    if name == "quantile":
        raise MetricError("invalid label name 'quantile': reserved for summaries")
    if name == "le" and metric_type == "histogram":
        raise MetricError("invalid label name 'le': reserved for histogram buckets")
    return name


def _validate_labelnames(labelnames: Iterable[str], metric_type: str) -> Tuple[str, ...]:
    if isinstance(labelnames, str):
        raise MetricError(
            f"label names must be a sequence of strings, not the string {labelnames!r}"
        )
    names = tuple(labelnames)
    for n in names:
        validate_label_name(n, metric_type)
    if len(set(names)) != len(names):
        raise MetricError(f"duplicate label name in {names!r}")
    return names


def _validate_help(name: str, help: str) -> str:
    if not isinstance(help, str) or not help.strip():
        raise MetricError(f"metric {name!r} needs a non-empty help text, got {help!r}")
    return _utf8_safe(help)


def _utf8_safe(text: str) -> str:
    """Replace lone surrogates so the text can always be encoded (exposition never fails)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def escape_label_value(value: str) -> str:
    """Escape a label value for both text formats: backslash first, then quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """The pre-rendered ``name="value",...`` of a series (values escaped), as exposed."""
    return ",".join([f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values)])


def _label_values(metric: str, names: Tuple[str, ...], values: Sequence[Any]) -> Tuple[str, ...]:
    if len(values) != len(names):
        raise MetricError(
            f"metric {metric!r} expects {len(names)} label values {names!r}, "
            f"got {len(values)}: {tuple(values)!r}"
        )
    return tuple([_utf8_safe(v if type(v) is str else str(v)) for v in values])


def linear_buckets(start: float, width: float, count: int) -> Tuple[float, ...]:
    """``count`` upper bounds ``start, start+width, ...`` (``+Inf`` is added by the histogram)."""
    if count < 1 or width <= 0:
        raise MetricError(
            f"linear_buckets needs count >= 1 and width > 0, got count={count!r} width={width!r}"
        )
    return tuple(start + i * width for i in range(count))


def exponential_buckets(start: float, factor: float, count: int) -> Tuple[float, ...]:
    """``count`` upper bounds ``start, start*factor, ...`` (``+Inf`` is added by the histogram)."""
    if count < 1 or start <= 0 or factor <= 1:
        raise MetricError(
            "exponential_buckets needs count >= 1, start > 0, factor > 1, "
            f"got {start!r}, {factor!r}, {count!r}"
        )
    return tuple(start * factor**i for i in range(count))


def _validate_buckets(name: str, buckets: Iterable[float] | None) -> Tuple[float, ...]:
    """Return the finite upper bounds, sorted check included; ``+Inf`` stays implicit."""
    if buckets is None:
        return DEFAULT_BUCKETS
    try:
        bounds = [float(b) for b in buckets]
    except (TypeError, ValueError):
        raise MetricError(f"histogram {name!r}: buckets must be numbers, got {buckets!r}") from None
    if bounds and bounds[-1] == _INF:
        bounds.pop()
    if not bounds:
        raise MetricError(f"histogram {name!r}: needs at least one finite bucket, got {buckets!r}")
    for b in bounds:
        if b != b or b in (_INF, -_INF):
            raise MetricError(f"histogram {name!r}: bucket bound {b!r} must be finite")
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise MetricError(
            f"histogram {name!r}: buckets must be strictly increasing, got {buckets!r}"
        )
    return tuple(bounds)


# --------------------------------------------------------------------------- snapshot values


class HistogramValue(NamedTuple):
    """One histogram series at snapshot time."""

    buckets: Tuple[int, ...]  # cumulative counts, one per bound of the family, +Inf last
    sum: float
    count: int  # type: ignore[assignment]  # always buckets[-1]


class Series(NamedTuple):
    """One labelled series of a family at snapshot time."""

    labelvalues: Tuple[str, ...]
    value: Any  # int/float for counters and gauges, HistogramValue for histograms
    label_text: str  # pre-escaped 'a="x",b="y"' ('' without labels), ready for exposition


class MetricFamily(NamedTuple):
    """A metric family: what a registry metric or a collector contributes to a snapshot.

    ``name`` is the family name (a counter's without ``_total``); ``type`` is one of
    ``counter``, ``gauge``, ``histogram``, ``info``, ``unknown``. ``bounds`` are a
    histogram's upper bounds including the final ``+Inf``. ``merge`` says how a gauge's
    values from several processes combine (counters and histograms always sum).
    """

    name: str
    type: str
    help: str
    labelnames: Tuple[str, ...]
    series: Tuple[Series, ...]
    bounds: Tuple[float, ...] = ()
    merge: str = "sum"

    def sample_names(self) -> Tuple[str, ...]:
        """The names this family's samples (and family) occupy in an exposition."""
        n = self.name
        if self.type == "counter":
            return (n, n + "_total")
        if self.type == "histogram":
            return (n, n + "_bucket", n + "_sum", n + "_count")
        if self.type == "info":
            return (n, n + "_info")
        return (n,)


class Sample(NamedTuple):
    """One exposition line's worth of data: the flat view used by tests and lookups."""

    name: str
    labels: Dict[str, str]
    value: float


def _format_bound(b: float) -> str:
    """Canonical ``le`` value (checklist rule 35): Go-style ``%g`` with ``.0`` kept."""
    if b == _INF:
        return "+Inf"
    if b == -_INF:
        return "-Inf"
    s = repr(float(b))
    sign = "-" if s[0] == "-" else ""
    s = s[len(sign) :]
    dot = s.find(".")
    if "e" not in s and dot > 6:  # Go switches to an exponent from 1e6 on
        digits = (s[:dot] + s[dot + 1 :]).rstrip("0")
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e+{dot - 1:02d}"
    return sign + s


class Snapshot(NamedTuple):
    """An immutable copy of every family of a registry (plus collectors) at one moment."""

    families: Tuple[MetricFamily, ...]
    timestamp: float

    def family(self, name: str) -> MetricFamily | None:
        """The family called ``name`` (a counter may be named with or without ``_total``)."""
        for f in self.families:
            if f.name == name or (f.type == "counter" and f.name + "_total" == name):
                return f
        return None

    def samples(self) -> Iterator[Sample]:
        """Every sample as an exposition would list it (histograms expanded)."""
        for f in self.families:
            names = f.labelnames
            for s in f.series:
                labels = dict(zip(names, s.labelvalues))
                if f.type == "histogram":
                    hv = s.value
                    for b, c in zip(f.bounds, hv.buckets):
                        yield Sample(f.name + "_bucket", dict(labels, le=_format_bound(b)), c)
                    yield Sample(f.name + "_sum", labels, hv.sum)
                    yield Sample(f.name + "_count", labels, hv.count)
                elif f.type == "counter":
                    yield Sample(f.name + "_total", labels, s.value)
                elif f.type == "info":
                    yield Sample(f.name + "_info", labels, s.value)
                else:
                    yield Sample(f.name, labels, s.value)

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of sample ``name`` with exactly ``labels``, or None (a test helper)."""
        want = dict(labels or {})
        for s in self.samples():
            if s.name == name and s.labels == want:
                return s.value
        return None


def metric_family(
    name: str,
    type: str,
    help: str,
    labelnames: Sequence[str] = (),
    samples: Iterable[Tuple[Sequence[Any], Any]] = (),
    *,
    buckets: Sequence[float] | None = None,
    merge: str = "sum",
) -> MetricFamily:
    """Build a validated :class:`MetricFamily` for a collector's ``collect()``.

    ``samples`` is ``[(labelvalues, value), ...]``; a histogram value is a
    :class:`HistogramValue` whose ``buckets`` align with ``buckets`` plus ``+Inf``.
    A counter's ``name`` may end in ``_total`` and an info's in ``_info`` (stripped for the
    family name).
    Raises MetricError for invalid names, label counts or types.
    """
    if type not in _TYPES:
        raise MetricError(f"metric {name!r}: unknown type {type!r}, expected one of {_TYPES!r}")
    validate_metric_name(name)
    if type == "counter" and name.endswith("_total"):
        name = name[:-6]
        validate_metric_name(name)
    elif type == "info" and name.endswith("_info"):
        name = name[:-5]
        validate_metric_name(name)
    names = _validate_labelnames(labelnames, type)
    help = _validate_help(name, help)
    bounds: Tuple[float, ...] = ()
    if type == "histogram":
        bounds = (*_validate_buckets(name, buckets), _INF)
    series = []
    for values, value in samples:
        lv = _label_values(name, names, tuple(values))
        if type == "histogram" and (
            not isinstance(value, HistogramValue) or len(value.buckets) != len(bounds)
        ):
            # A short bucket tuple would silently lose the +Inf line (rule 49).
            raise MetricError(
                f"histogram {name!r}{lv!r}: value must be a HistogramValue with "
                f"{len(bounds)} cumulative buckets (+Inf last), got {value!r}"
            )
        series.append(Series(lv, value, label_text(names, lv)))
    return MetricFamily(name, type, help, names, tuple(series), bounds, merge)


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


class _CounterChild:
    """One counter series. ``inc`` is the hot path: one comparison and one locked add."""

    __slots__ = ("_lock", "_value", "label_text", "labelvalues")

    def __init__(self, labelvalues: Tuple[str, ...], label_text: str) -> None:
        self.labelvalues = labelvalues
        self.label_text = label_text
        self._value: Union[int, float] = 0  # stays an int while increments are ints
        self._lock = threading.Lock()

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (>= 0; NaN, negatives and non-numbers raise MetricError)."""
        # acquire/release instead of ``with``: ~35% cheaper per call on CPython 3.11.
        try:
            if amount >= 0:  # False for NaN
                lock = self._lock
                lock.acquire()
                try:
                    self._value += amount
                finally:
                    lock.release()
                return
        except TypeError:  # e.g. a Decimal after a float: redo it in floats
            f = _as_float(amount)
            if f is not None and f >= 0:
                with self._lock:
                    self._value = float(self._value) + f
                return
        raise MetricError(f"counters only go up: invalid increment {amount!r}")

    def get(self) -> float:
        """The current value."""
        return self._value

    def _read(self) -> Any:
        v = self._value
        return v if type(v) is int or type(v) is float else float(v)


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
        except TypeError:
            f = _as_float(amount)
            if f is not None and f == f:
                with self._lock:
                    self._value = float(self._value) + f
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
        except TypeError:
            f = _as_float(amount)
            if f is not None and f == f:
                with self._lock:
                    self._value = float(self._value) - f
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
        v = self._value
        return v if type(v) is int or type(v) is float else float(v)


class _HistogramChild:
    """One histogram series: per-bucket counts and a sum under one lock (always consistent)."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum", "label_text", "labelvalues")

    def __init__(
        self, labelvalues: Tuple[str, ...], label_text: str, bounds: Tuple[float, ...]
    ) -> None:
        self.labelvalues = labelvalues
        self.label_text = label_text
        self._bounds = bounds  # finite upper bounds; index len(bounds) is +Inf
        self._counts = [0] * (len(bounds) + 1)
        self._sum: float = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is >= it (NaN raises MetricError)."""
        try:
            if value == value:  # False for NaN
                i = bisect_left(self._bounds, value)
                lock = self._lock
                lock.acquire()
                try:
                    total = self._sum + value  # first: if it raises, nothing has changed
                    self._counts[i] += 1
                    self._sum = total
                finally:
                    lock.release()
                return
        except TypeError:
            f = _as_float(value)
            if f is not None and f == f:
                self.observe(f)
                return
        raise MetricError(f"histogram observation must be a number, got {value!r}")

    def time(self) -> _Timer:
        """``with h.time():`` observes the block's duration in seconds."""
        return _Timer(self.observe)

    def get(self) -> HistogramValue:
        """The current buckets (cumulative), sum and count."""
        with self._lock:
            counts = self._counts[:]
            total = self._sum
        cum = tuple(accumulate(counts))
        return HistogramValue(cum, total, cum[-1])

    _read = get


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


class _Metric:
    """Shared parts of Counter, Gauge and Histogram: label handling and the cardinality guard."""

    _type = ""

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
        _registry: Registry | None = None,
    ) -> None:
        self.name = validate_metric_name(name)
        self.family_name = self._family_name(name)
        self.help = _validate_help(name, help)
        self.labelnames = _validate_labelnames(labelnames, self._type)
        self._kwgetter = itemgetter(*self.labelnames) if len(self.labelnames) > 1 else None
        limit = DEFAULT_SERIES_LIMIT if series_limit is None else series_limit
        if type(limit) is not int or limit < 1:
            raise MetricError(
                f"metric {name!r}: series_limit must be a positive int, got {series_limit!r}"
            )
        self.series_limit = limit
        self.dropped = 0  # label sets refused by the cardinality guard
        self._registry = _registry
        self._children: Dict[Tuple[str, ...], Any] = {}
        self._lock = threading.Lock()  # guards child creation only, never held while recording

    def _family_name(self, name: str) -> str:
        if name.endswith(_RESERVED_SUFFIXES):
            raise MetricError(
                f"invalid {self._type} name {name!r}: "
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
            try:
                if len(names) == 1:
                    return (kw[names[0]],)
                return self._kwgetter(kw)  # type: ignore[misc]
            except KeyError:
                pass
        raise MetricError(
            f"metric {self.name!r} expects label names {names!r}, got {tuple(values) + tuple(kw)!r}"
        )

    def _child_slow(self, raw: Tuple[Any, ...]) -> Any:
        values = _label_values(self.name, self.labelnames, raw)
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
        if dropped:  # outside the metric lock: reporting takes the registry lock
            self._report_drop(values, dropped == 1)
        return child

    def _report_drop(self, values: Tuple[str, ...], first: bool) -> None:
        if self._registry is not None:
            try:
                self._registry._series_dropped(self.name)
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
        key = _label_values(self.name, self.labelnames, values)
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

    def _definition(self) -> Tuple[Any, ...]:
        return (self._type, self.labelnames)

    def _children_list(self) -> List[Any]:
        with self._lock:
            return list(self._children.values())

    def collect(self) -> MetricFamily:
        """This metric's family with every child's current value."""
        series = tuple(
            [Series(ch.labelvalues, ch._read(), ch.label_text) for ch in self._children_list()]
        )
        return MetricFamily(self.family_name, self._type, self.help, self.labelnames, series)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} labels={self.labelnames!r}>"


class Counter(_Metric):
    """A monotonically increasing value; the family name drops a trailing ``_total``."""

    _type = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
        _registry: Registry | None = None,
    ) -> None:
        super().__init__(name, help, labelnames, series_limit=series_limit, _registry=_registry)
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


class Gauge(_Metric):
    """A value that goes up and down; ``merge`` says how processes combine it."""

    _type = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        merge: str = "last",
        series_limit: int | None = None,
        _registry: Registry | None = None,
    ) -> None:
        super().__init__(name, help, labelnames, series_limit=series_limit, _registry=_registry)
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

    def _definition(self) -> Tuple[Any, ...]:
        return (self._type, self.labelnames)

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


class Histogram(_Metric):
    """Observations in cumulative buckets (``+Inf`` implied), with ``_sum`` and ``_count``."""

    _type = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        series_limit: int | None = None,
        _registry: Registry | None = None,
    ) -> None:
        super().__init__(name, help, labelnames, series_limit=series_limit, _registry=_registry)
        self.buckets = _validate_buckets(name, buckets)
        self._bounds_inf = (*self.buckets, _INF)
        if not self.labelnames:
            self._rebind()

    def _rebind(self) -> None:
        self._bind_default("observe", "time", "get")

    def _new_child(self, values: Tuple[str, ...]) -> _HistogramChild:
        return _HistogramChild(values, label_text(self.labelnames, values), self.buckets)

    def _definition(self) -> Tuple[Any, ...]:
        return (self._type, self.labelnames, self.buckets)

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


# --------------------------------------------------------------------------- registry


class Collector:
    """Protocol of objects given to :meth:`Registry.register_collector` (duck-typed)."""

    def collect(self) -> Iterable[MetricFamily]:  # pragma: no cover - protocol only
        """Return the families to expose, computed at scrape time."""
        raise NotImplementedError


# Every live registry, so a forked child can replace locks held by threads that do not
# exist in it (a child forked while another thread was inside inc() or batch() would
# otherwise deadlock on its first update). The hook is registered by the first Registry.
_registries: weakref.WeakSet = weakref.WeakSet()
_fork_hook = [False]


def _renew_locks_after_fork() -> None:
    for registry in list(_registries):
        registry._lock = threading.RLock()
        for metric in set(registry._metrics.values()):
            metric._lock = threading.Lock()
            for child in list(metric._children.values()):
                if getattr(child, "_lock", None) is not None:
                    child._lock = threading.Lock()


def _track(registry: Registry) -> None:
    _registries.add(registry)
    if not _fork_hook[0] and hasattr(os, "register_at_fork"):
        _fork_hook[0] = True
        os.register_at_fork(after_in_child=_renew_locks_after_fork)


class Registry:
    """Holds metrics and collectors; snapshots them for exposition.

    ``series_limit`` is the default per-metric cardinality limit of metrics created here.
    """

    def __init__(self, *, series_limit: int = DEFAULT_SERIES_LIMIT) -> None:
        if type(series_limit) is not int or series_limit < 1:
            raise MetricError(f"series_limit must be a positive int, got {series_limit!r}")
        self.series_limit = series_limit
        self._metrics: Dict[str, _Metric] = {}  # registered name and family name -> metric
        self._owners: Dict[str, str] = {}  # every sample/family name -> owning family name
        self._collectors: List[Any] = []
        # The batch lock: held by composite updates and by the snapshot copy. Re-entrant so a
        # batch may create metrics or nest another batch.
        self._lock = threading.RLock()
        _track(self)

    # -- creation
    def counter(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        series_limit: int | None = None,
    ) -> Counter:
        """Create (or return the identical existing) counter; may raise DuplicateMetricError."""
        return self._register(Counter, name, help, labelnames, series_limit, {})  # type: ignore[return-value]

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        merge: str = "last",
        series_limit: int | None = None,
    ) -> Gauge:
        """Create (or return the identical existing) gauge; ``merge`` in :data:`MERGE_MODES`."""
        return self._register(Gauge, name, help, labelnames, series_limit, {"merge": merge})  # type: ignore[return-value]

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        series_limit: int | None = None,
    ) -> Histogram:
        """Create (or return the identical existing) histogram; ``buckets=None``: defaults."""
        return self._register(  # type: ignore[return-value]
            Histogram, name, help, labelnames, series_limit, {"buckets": buckets}
        )

    def _register(
        self,
        cls: Any,
        name: str,
        help: str,
        labelnames: Sequence[str],
        series_limit: int | None,
        extra: Dict[str, Any],
    ) -> _Metric:
        limit = self.series_limit if series_limit is None else series_limit
        metric = cls(name, help, labelnames, series_limit=limit, _registry=self, **extra)
        family = metric.family_name
        with self._lock:
            existing = self._metrics.get(name) or self._metrics.get(family)
            if existing is not None and existing.family_name == family:
                if existing._definition() == metric._definition() or (
                    cls is Histogram
                    and extra.get("buckets") is None
                    and existing._definition()[:2] == metric._definition()[:2]
                ):
                    return existing
                raise DuplicateMetricError(
                    f"metric {name!r} is already registered as {existing._type} with labels "
                    f"{existing.labelnames!r}; cannot re-register as {metric._type} "
                    f"with {metric.labelnames!r}"
                )
            taken = self._clash(MetricFamily(family, metric._type, "", (), ()).sample_names())
            if taken:
                raise DuplicateMetricError(
                    f"metric {name!r} clashes with the name {taken!r} already registered"
                )
            for n in MetricFamily(family, metric._type, "", (), ()).sample_names():
                self._owners[n] = family
            self._metrics[family] = metric
            self._metrics[name] = metric
            if cls is Counter:  # get("x_total") works however the counter was named
                self._metrics[metric.sample_name] = metric
        return metric

    def _clash(self, names: Iterable[str]) -> str | None:
        for n in names:
            if n in self._owners:
                return n
        return None

    def get(self, name: str) -> Any | None:
        """The metric called ``name`` (a counter under both ``x`` and ``x_total``), or None."""
        return self._metrics.get(name)

    def unregister(self, name: str) -> None:
        """Remove a metric (by registered or family name); no error if absent."""
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                return
            for key in [k for k, m in self._metrics.items() if m is metric]:
                del self._metrics[key]
            for key in [k for k, f in self._owners.items() if f == metric.family_name]:
                del self._owners[key]

    def metrics(self) -> List[Any]:
        """Every registered metric, in registration order."""
        with self._lock:
            seen: Dict[int, Any] = {}
            for m in self._metrics.values():
                seen.setdefault(id(m), m)
            return list(seen.values())

    def register_collector(self, collector: Any) -> None:
        """Add an object whose ``collect()`` returns families computed at scrape time."""
        if not callable(getattr(collector, "collect", None)):
            raise MetricError(f"collector {collector!r} has no collect() method")
        with self._lock:
            if collector not in self._collectors:
                self._collectors.append(collector)

    def unregister_collector(self, collector: Any) -> None:
        """Remove a collector added by :meth:`register_collector` (no error if absent)."""
        with self._lock:
            if collector in self._collectors:
                self._collectors.remove(collector)

    # -- consistency
    def batch(self) -> Any:
        """``with registry.batch():`` makes several updates appear atomically to snapshots."""
        return self._lock

    def _series_dropped(self, metric_name: str) -> None:
        if metric_name == DROPPED_SERIES_METRIC:
            return
        c = self._metrics.get(DROPPED_SERIES_METRIC)  # one dict lookup per drop, not a register
        if c is None:
            c = self.counter(
                DROPPED_SERIES_METRIC,
                "Label sets discarded because a metric reached its series limit.",
                ("metric",),
                series_limit=1_000_000,
            )
        c.labels(metric_name).inc()

    # -- reading
    def snapshot(self) -> Snapshot:
        """Copy every metric (under the batch lock), then run collectors (outside it).

        Families are sorted by name. Raises DuplicateMetricError if a collector returns a
        family whose names another family already uses; a collector's own exception
        propagates (a partial exposition must not be served).
        """
        with self._lock:
            families = [m.collect() for m in self.metrics()]
            collectors = list(self._collectors)
            ts = time.time()
        owners = dict(self._owners)
        for collector in collectors:
            for fam in collector.collect():
                for n in fam.sample_names():
                    if n in owners:
                        raise DuplicateMetricError(
                            f"collector {type(collector).__name__} returned family {fam.name!r}, "
                            f"whose name {n!r} is already used by {owners[n]!r}"
                        )
                for n in fam.sample_names():
                    owners[n] = fam.name
                families.append(fam)
        families.sort(key=lambda f: f.name)
        return Snapshot(tuple(families), ts)

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The current value of one sample (e.g. ``"x_total"``, ``"h_count"``), or None."""
        return self.snapshot().get_sample_value(name, labels)
