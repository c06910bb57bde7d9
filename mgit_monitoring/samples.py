"""The values a registry snapshot is made of, and the rules for names, labels and buckets.

A :class:`Snapshot` is an immutable tuple of :class:`MetricFamily` values (each with its
:class:`Series`; a histogram series holds a :class:`HistogramValue`), taken by
:meth:`~mgit_monitoring.registry.Registry.snapshot` or by the cross-process merge, and
rendered by :mod:`mgit_monitoring.exposition`. A collector builds its families with
:func:`metric_family`, which applies the same validation as the registry:

* metric names match ``[a-zA-Z_][a-zA-Z0-9_]*`` without colons (recording rules) or a
  leading underscore (reserved by OpenMetrics); label names have no ``__`` prefix, never
  ``quantile``, and never ``le`` on a histogram;
* label values are ``str`` (others converted with ``str()``), made encodable (lone
  surrogates replaced) and pre-escaped once into each series' ``label_text``;
* histogram bounds are finite and strictly increasing; ``+Inf`` is always implied and
  rendered with :func:`format_bound` (Go's ``%g`` with ``.0`` kept, as Prometheus does).

Programmer errors raise :class:`~mgit_monitoring.errors.MetricError` naming the bad value.
Nothing here holds state or takes a lock.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Mapping, NamedTuple, Sequence, Tuple

from mgit_monitoring.errors import MetricError

__all__ = [
    "DEFAULT_BUCKETS",
    "HistogramValue",
    "MetricFamily",
    "Sample",
    "Series",
    "Snapshot",
    "escape_label_value",
    "exponential_buckets",
    "format_bound",
    "label_text",
    "label_values",
    "linear_buckets",
    "metric_family",
    "validate_buckets",
    "validate_help",
    "validate_label_name",
    "validate_labelnames",
    "validate_metric_name",
]

#: Histogram upper bounds (seconds) from a 5 ms API call to a 10-minute clone; ``+Inf`` is implicit.
DEFAULT_BUCKETS: Tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip

_INF = float("inf")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_LABEL_CHARS = _NAME_START | frozenset("0123456789")
_NAME_CHARS = _LABEL_CHARS | frozenset(":")
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


def validate_labelnames(labelnames: Iterable[str], metric_type: str) -> Tuple[str, ...]:
    """The label names as a tuple, each valid for ``metric_type`` and none twice."""
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


def validate_help(name: str, help: str) -> str:
    """A non-empty help text for metric ``name``, made encodable."""
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


def label_values(metric: str, names: Tuple[str, ...], values: Sequence[Any]) -> Tuple[str, ...]:
    """One ``str`` per label name of ``metric`` (``str()`` of other types, made encodable)."""
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


def validate_buckets(name: str, buckets: Iterable[float] | None) -> Tuple[float, ...]:
    """The finite, strictly increasing upper bounds of histogram ``name`` (None: the
    defaults); a trailing ``+Inf`` is dropped, as it is always implied."""
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


def format_bound(b: float) -> str:
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
                        yield Sample(f.name + "_bucket", dict(labels, le=format_bound(b)), c)
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
    names = validate_labelnames(labelnames, type)
    help = validate_help(name, help)
    bounds: Tuple[float, ...] = ()
    if type == "histogram":
        bounds = (*validate_buckets(name, buckets), _INF)
    series = []
    for values, value in samples:
        lv = label_values(name, names, tuple(values))
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
