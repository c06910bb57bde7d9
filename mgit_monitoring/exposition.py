"""Render a registry snapshot: Prometheus text 0.0.4, OpenMetrics 1.0, JSON; negotiate and gzip.

Every renderer is a pure function of a :class:`~mgit_monitoring.samples.Snapshot`, so the
same snapshot always gives the same bytes. :func:`expose` is the whole ``/metrics`` answer
in one call: it snapshots any :class:`MetricsSource` (a Registry, the cross-process
:class:`~mgit_monitoring.shared_state.SharedMetrics`, a MetricsCollector: anything with
``snapshot()``), negotiates the format from ``Accept`` and gzip from ``Accept-Encoding``::

    out = expose(registry, headers.get("Accept"), headers.get("Accept-Encoding"))
    # out.body, out.content_type, out.content_encoding (None or "gzip")
 Label strings come pre-escaped from the registry;
only HELP texts (one per family) are escaped here.

Choices (see the exposition checklist for the rules):

* Families are sorted by name, series keep their creation order, labels keep their declared
  order with ``le`` last; lines are ``name{labels} value`` with single spaces and ``\\n``.
* Integer values are written without a decimal point (``3``), floats with Python's shortest
  round-trip ``repr`` (``0.1``, ``1e-05``), non-finite values as ``+Inf``, ``-Inf``, ``NaN``.
* No timestamps and no ``_created`` samples; OpenMetrics metadata order is TYPE then HELP.

JSON shape (:func:`render_json`, stable; ``format`` is bumped on any incompatible change)::

    {"format": "mgit_monitoring.metrics/1", "timestamp": <snapshot time, Unix seconds>,
     "metrics": [
       {"name": "mgit_operations_total", "family": "mgit_operations", "type": "counter",
        "help": "...", "labels": {"operation": "clone"}, "value": 3, "timestamp": <same>},
       {"name": "mgit_operation_duration_seconds", "family": "...", "type": "histogram", ...,
        "value": <count>, "count": 4, "sum": 2.5, "buckets": {"0.005": 0, ..., "+Inf": 4}}]}

``name`` is the sample name (a counter's ends in ``_total``), gauges have ``"merge"`` too,
and non-finite numbers are the strings ``"NaN"``, ``"+Inf"``, ``"-Inf"`` (JSON has no NaN).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Protocol, Tuple, Union

from mgit_monitoring.samples import MetricFamily, Snapshot, format_bound

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "CONTENT_TYPES",
    "FORMAT_JSON",
    "FORMAT_OPENMETRICS",
    "FORMAT_TEXT",
    "JSON_FORMAT_VERSION",
    "Exposition",
    "MetricsSource",
    "accepts_gzip",
    "choose_format",
    "expose",
    "gzip_body",
    "render",
    "render_json",
    "render_openmetrics",
    "render_text",
    "snapshot_of",
    "snapshot_to_dict",
]

#: Content-Type of the Prometheus text format 0.0.4 (the fallback for any unknown Accept).
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: Content-Type of OpenMetrics 1.0.0 text.
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: Content-Type of :func:`render_json` output.
CONTENT_TYPE_JSON = "application/json"
FORMAT_TEXT = "text"
FORMAT_OPENMETRICS = "openmetrics"
FORMAT_JSON = "json"
#: The Content-Type of each format :func:`render` and :func:`expose` produce.
CONTENT_TYPES: Dict[str, str] = {
    FORMAT_TEXT: CONTENT_TYPE_TEXT,
    FORMAT_OPENMETRICS: CONTENT_TYPE_OPENMETRICS,
    FORMAT_JSON: CONTENT_TYPE_JSON,
}
#: The ``format`` field of the JSON document.
JSON_FORMAT_VERSION = "mgit_monitoring.metrics/1"

_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}


def _fmt(v: Any) -> str:
    """A sample value: ints as ints, floats as shortest repr, +Inf/-Inf/NaN spelled out."""
    t = type(v)
    if t is int:
        return str(v)
    if t is float:
        if v - v == 0:  # finite (inf - inf and nan - nan are nan)
            return repr(v)
        return "NaN" if v != v else ("+Inf" if v > 0 else "-Inf")
    return _fmt(float(v))


def _help_text(help: str) -> str:
    return help.replace("\\", "\\\\").replace("\n", "\\n")


def _help_om(help: str) -> str:
    return help.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _simple(out: List[str], sname: str, fam: MetricFamily) -> None:
    braced = sname + "{"
    plain = sname + " "
    out.extend(
        [
            f"{braced}{s.label_text}}} {_fmt(s.value)}" if s.label_text else plain + _fmt(s.value)
            for s in fam.series
        ]
    )


def _histogram(out: List[str], fam: MetricFamily, with_sum: Union[bool, None]) -> None:
    """Bucket lines, then ``_sum`` and ``_count`` unless ``with_sum`` is False. For
    OpenMetrics (``with_sum`` None) a series whose sum is negative or NaN (a negative
    observation) has neither: there ``_sum`` is a counter, never negative."""
    name = fam.name
    le_parts = [f'le="{format_bound(b)}"}} ' for b in fam.bounds]
    bucket = name + "_bucket{"
    for s in fam.series:
        lt = s.label_text
        hv = s.value
        pre = f"{bucket}{lt}," if lt else bucket
        out.extend([pre + le + str(c) for le, c in zip(le_parts, hv.buckets)])
        if with_sum or (with_sum is None and hv.sum >= 0):  # False for NaN
            tail = f"{{{lt}}} " if lt else " "
            out.append(f"{name}_sum{tail}{_fmt(hv.sum)}")
            out.append(f"{name}_count{tail}{hv.count}")


def render_text(snapshot: Snapshot) -> bytes:
    """Prometheus text format 0.0.4 (UTF-8, every line ends in ``\\n``)."""
    out: List[str] = []
    for fam in snapshot.families:
        ftype = fam.type
        if ftype == "counter":
            sname, ttype = fam.name + "_total", "counter"
        elif ftype == "info":
            sname, ttype = fam.name + "_info", "gauge"
        else:
            sname, ttype = fam.name, _TEXT_TYPES.get(ftype, "untyped")
        out.append(f"# HELP {sname} {_help_text(fam.help)}")
        out.append(f"# TYPE {sname} {ttype}")
        if ftype == "histogram":
            _histogram(out, fam, True)
        else:
            _simple(out, sname, fam)
    if not out:
        return b""
    out.append("")
    return "\n".join(out).encode("utf-8")


def render_openmetrics(snapshot: Snapshot) -> bytes:
    """OpenMetrics 1.0.0 text: family names without ``_total``, TYPE before HELP, ``# EOF``."""
    out: List[str] = []
    for fam in snapshot.families:
        ftype = fam.type
        if ftype == "counter":
            sname = fam.name + "_total"
        elif ftype == "info":
            sname = fam.name + "_info"
        else:
            sname = fam.name
        otype = ftype if ftype in ("counter", "gauge", "histogram", "info") else "unknown"
        out.append(f"# TYPE {fam.name} {otype}")
        out.append(f"# HELP {fam.name} {_help_om(fam.help)}")
        if ftype == "histogram":
            # With a negative bucket bound _sum is not a counter: OpenMetrics forbids it, and
            # _count goes with it (present iff _sum is; the +Inf bucket still carries the count).
            _histogram(out, fam, None if not fam.bounds or fam.bounds[0] >= 0 else False)
        else:
            _simple(out, sname, fam)
    out.append("# EOF\n")
    return "\n".join(out).encode("utf-8")


def _json_number(v: Any) -> Any:
    if type(v) is int:
        return v
    f = float(v)
    if f - f == 0:
        return f
    return _fmt(f)


def snapshot_to_dict(snapshot: Snapshot) -> Dict[str, Any]:
    """The JSON document (see the module docstring) as Python objects."""
    ts = snapshot.timestamp
    metrics: List[Dict[str, Any]] = []
    for fam in snapshot.families:
        ftype = fam.type
        if ftype == "counter":
            sname = fam.name + "_total"
        elif ftype == "info":
            sname = fam.name + "_info"
        else:
            sname = fam.name
        les = [format_bound(b) for b in fam.bounds]
        for s in fam.series:
            entry: Dict[str, Any] = {
                "name": sname,
                "family": fam.name,
                "type": ftype,
                "help": fam.help,
                "labels": dict(zip(fam.labelnames, s.labelvalues)),
            }
            if ftype == "histogram":
                hv = s.value
                entry["value"] = _json_number(hv.count)
                entry["count"] = _json_number(hv.count)
                entry["sum"] = _json_number(hv.sum)
                entry["buckets"] = {le: _json_number(c) for le, c in zip(les, hv.buckets)}
            else:
                entry["value"] = _json_number(s.value)
            if ftype == "gauge":
                entry["merge"] = fam.merge
            entry["timestamp"] = ts
            metrics.append(entry)
    return {"format": JSON_FORMAT_VERSION, "timestamp": ts, "metrics": metrics}


def render_json(snapshot: Snapshot, indent: Union[int, None] = None) -> str:
    """The snapshot as a JSON string (strict JSON: no NaN/Infinity literals)."""
    import json  # only for JSON output: keeps importing the text renderers cheap

    return json.dumps(
        snapshot_to_dict(snapshot), indent=indent, ensure_ascii=False, allow_nan=False
    )


def render(snapshot: Snapshot, fmt: str = FORMAT_TEXT) -> bytes:
    """Render ``snapshot`` as ``"text"``, ``"openmetrics"`` or ``"json"`` bytes."""
    if fmt == FORMAT_TEXT:
        return render_text(snapshot)
    if fmt == FORMAT_OPENMETRICS:
        return render_openmetrics(snapshot)
    if fmt == FORMAT_JSON:
        return render_json(snapshot).encode("utf-8")
    raise ValueError(f"unknown exposition format {fmt!r}: expected 'text', 'openmetrics' or 'json'")


def _parse_accept(header: str) -> List[Tuple[str, Dict[str, str], float]]:
    """Split an Accept-style header into (media type, params, q); a malformed q counts as 0."""
    items = []
    for part in header.split(","):
        fields = part.split(";")
        media = fields[0].strip().lower()
        if not media:
            continue
        params: Dict[str, str] = {}
        q = 1.0
        for field in fields[1:]:
            key, _, value = field.partition("=")
            key = key.strip().lower()
            value = value.strip().strip('"')
            if key == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
                if q != q:
                    q = 0.0
            else:
                params[key] = value
        items.append((media, params, q))
    return items


def choose_format(accept: Union[str, None]) -> Tuple[str, str]:
    """Pick ``(format, content_type)`` for an Accept header the way Prometheus negotiates.

    OpenMetrics 1.0.0 is served iff an ``application/openmetrics-text`` entry with
    ``version=1.0.0`` (or no version) has q > 0 and at least the q of ``text/plain``
    (or ``text/*``, ``*/*``). Anything else, including a missing or unknown header, gets
    text 0.0.4 (never a 406).
    """
    if not accept:
        return FORMAT_TEXT, CONTENT_TYPE_TEXT
    om_q = 0.0
    text_q = 0.0
    for media, params, q in _parse_accept(accept):
        if media == "application/openmetrics-text":
            if params.get("version", "1.0.0") in ("1.0.0", ""):
                om_q = max(om_q, q)
        elif media in ("text/plain", "text/*", "*/*"):
            text_q = max(text_q, q)
    if om_q > 0 and om_q >= text_q:
        return FORMAT_OPENMETRICS, CONTENT_TYPE_OPENMETRICS
    return FORMAT_TEXT, CONTENT_TYPE_TEXT


def accepts_gzip(accept_encoding: Union[str, None]) -> bool:
    """True when Accept-Encoding allows gzip (``gzip`` or ``*`` with q > 0; explicit q=0 wins)."""
    if not accept_encoding:
        return False
    gzip_q = None
    star_q = None
    for media, _params, q in _parse_accept(accept_encoding):
        if media in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif media == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return bool(star_q)


def gzip_body(body: bytes, accept_encoding: Union[str, None]) -> Tuple[bytes, Union[str, None]]:
    """``(body, content_encoding)``: gzip at level 1 (fast) when the client accepts it."""
    if not accepts_gzip(accept_encoding):
        return body, None
    import gzip  # only when a client asks for it

    return gzip.compress(body, compresslevel=1, mtime=0), "gzip"


class MetricsSource(Protocol):
    """What :func:`expose` and the server render: anything whose ``snapshot()`` returns a
    :class:`~mgit_monitoring.samples.Snapshot` taken now (a Registry, a SharedMetrics, a
    MetricsCollector)."""

    def snapshot(self) -> Snapshot:  # pragma: no cover - protocol only
        """An immutable snapshot of every family, taken at the call."""
        ...


def snapshot_of(source: Union[MetricsSource, Snapshot]) -> Snapshot:
    """``source`` itself when it is a Snapshot, else ``source.snapshot()``.

    Raises TypeError naming the type when ``source`` has no ``snapshot()`` method.
    """
    if isinstance(source, Snapshot):
        return source
    snap: Union[Callable[[], Snapshot], None] = getattr(source, "snapshot", None)
    if not callable(snap):
        raise TypeError(
            f"cannot expose {type(source).__name__!r}: expected a Snapshot or an object "
            "with a snapshot() method (Registry, SharedMetrics, MetricsCollector)"
        )
    return snap()


class Exposition(NamedTuple):
    """A ready HTTP response body with its headers' values."""

    body: bytes
    content_type: str
    content_encoding: Union[str, None]


def expose(
    source: Union[MetricsSource, Snapshot],
    accept: Union[str, None] = None,
    accept_encoding: Union[str, None] = None,
    *,
    fmt: Union[str, None] = None,
) -> Exposition:
    """Snapshot ``source`` (or use the given snapshot), negotiate the format and encoding.

    The format comes from ``accept`` (:func:`choose_format`) unless ``fmt`` names one
    (``"text"``, ``"openmetrics"`` or ``"json"``, e.g. for a ``/metrics/json`` route); the
    body is gzipped when ``accept_encoding`` allows it (:func:`accepts_gzip`). A source
    whose ``snapshot()`` raises (a failing collector) propagates the exception: a partial
    exposition must not be served. Raises TypeError for a source without ``snapshot()``
    and ValueError for an unknown ``fmt``.
    """
    if fmt is None:
        fmt, content_type = choose_format(accept)
    else:
        content_type = CONTENT_TYPES.get(fmt, "")
        if not content_type:
            raise ValueError(
                f"unknown exposition format {fmt!r}: expected 'text', 'openmetrics' or 'json'"
            )
    body, encoding = gzip_body(render(snapshot_of(source), fmt), accept_encoding)
    return Exposition(body, content_type, encoding)
