"""The live dashboard served at ``/``, and the ``/history`` JSON that seeds its charts.

The page is one self-contained file next to this module (``page.html``: inline CSS and
JavaScript, no external resource). It polls ``metrics/json`` and ``health/detailed`` with
relative URLs, so it works behind a path prefix and under WSGI, and draws its charts as
inline SVG. Everything here is a pure function of its inputs, so an HTTP layer (the
server, the WSGI app) only maps two routes to two calls:

* :func:`page_response` -> ``(body, headers)`` for ``GET /``: the page with a strict
  Content-Security-Policy whose ``script-src``/``style-src`` carry the SHA-256 hashes of
  the inline blocks (no ``unsafe-inline``), ``nosniff``, ``no-referrer`` and ``no-cache``;
* :func:`history_response` -> ``(body, headers)`` for ``GET /history``: per-minute counts
  of the operations traced in the shared store over the last hour (:func:`history_document`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from typing import Any, Dict, List, Sequence, Tuple

__all__ = [
    "HISTORY_FORMAT",
    "PAGE_CONTENT_TYPE",
    "PAGE_RESOURCE",
    "content_security_policy",
    "history_document",
    "history_response",
    "inline_blocks",
    "page_headers",
    "page_html",
    "page_response",
]

PAGE_RESOURCE = "page.html"
"""File name of the page inside this package."""
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
HISTORY_FORMAT = "mgit_monitoring.history/1"
"""``format`` of the /history document; bumped on any incompatible change."""

_JSON = "application/json"
_BLOCK = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)
_lock = threading.Lock()
_cached: Dict[str, Tuple[bytes, Tuple[Tuple[str, str], ...]]] = {}


def _read_resource() -> bytes:
    """The bytes of page.html: package resources first (zips, vendored copies), then the file."""
    package = __package__
    if package:
        try:
            from importlib import resources

            files = getattr(resources, "files", None)  # Python 3.9+
            if files is not None:
                data: bytes = files(package).joinpath(PAGE_RESOURCE).read_bytes()
                return data
        except (ImportError, OSError, TypeError, ValueError, AttributeError):
            pass
        try:  # Python 3.8, also from a zip
            import pkgutil

            found = pkgutil.get_data(package, PAGE_RESOURCE)
            if found is not None:
                return found
        except (ImportError, OSError, ValueError):
            pass
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), PAGE_RESOURCE), "rb") as f:
        return f.read()


def page_html() -> bytes:
    """The dashboard page as served (read once per process, then cached)."""
    return page_response()[0]


def inline_blocks(html: bytes) -> List[Tuple[str, bytes]]:
    """``(tag, text)`` of every inline ``<script>`` and ``<style>`` block, in page order.

    Only attribute-less tags count: the page has no other kind, and a hash covers exactly
    the bytes between the tags.
    """
    return [(m.group(1).decode("ascii"), m.group(2)) for m in _BLOCK.finditer(html)]


def _hash_source(text: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode("ascii") + "'"


def content_security_policy(html: bytes) -> str:
    """The page's CSP: nothing by default; its own inline blocks by hash; same-origin fetch."""
    scripts: List[str] = []
    styles: List[str] = []
    for tag, text in inline_blocks(html):
        target = scripts if tag == "script" else styles
        source = _hash_source(text)
        if source not in target:
            target.append(source)
    return "; ".join(
        (
            "default-src 'none'",
            "script-src " + (" ".join(scripts) or "'none'"),
            "style-src " + (" ".join(styles) or "'none'"),
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def page_headers(html: bytes) -> List[Tuple[str, str]]:
    """Every header of the page response, Content-Type and Content-Length included."""
    return [
        ("Content-Type", PAGE_CONTENT_TYPE),
        ("Content-Length", str(len(html))),
        ("Content-Security-Policy", content_security_policy(html)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-cache"),
    ]


def page_response() -> Tuple[bytes, List[Tuple[str, str]]]:
    """``(body, headers)`` for ``GET /``; the same for every call (computed once)."""
    entry = _cached.get("page")
    if entry is None:
        with _lock:
            entry = _cached.get("page")
            if entry is None:
                html = _read_resource()
                entry = (html, tuple(page_headers(html)))
                _cached["page"] = entry
    return entry[0], list(entry[1])


def _traces_of(source: Any) -> Any:
    """The object whose ``query_traces`` reads the history: the source or its ``store``."""
    if source is None:
        return None
    if callable(getattr(source, "query_traces", None)):
        return source
    store = getattr(source, "store", None)
    if store is not None and callable(getattr(store, "query_traces", None)):
        return store
    return None


def history_document(
    source: Any,
    *,
    now: float | None = None,
    window_seconds: float = 3600.0,
    step_seconds: float = 60.0,
) -> Dict[str, Any]:
    """Per-minute operation counts over the last hour, from the traces in ``source``.

    ``source`` is a :class:`~mgit_monitoring.store.Store` (or anything with
    ``query_traces(since, light=True)`` returning rows with ``start_time`` and ``success``,
    or an object whose ``store`` attribute is one), or None. Only whole steps are reported
    (the running minute is the page's own). Shape::

        {"format": "mgit_monitoring.history/1", "timestamp": <now>, "window_seconds": 3600,
         "step_seconds": 60,
         "series": [{"name": "operations", "unit": "per_minute", "points": [[t, n], ...]},
                    {"name": "failures", "unit": "per_minute", "points": [[t, n], ...]},
                    {"name": "success_rate", "unit": "ratio", "points": [[t, r], ...]}]}

    ``t`` is the start of a step (Unix seconds); ``operations`` and ``failures`` have a
    point for every step of the window, ``success_rate`` only for steps with operations.
    ``series`` is empty without a source, when reading fails, or when no operation was
    traced in the window. Read-only apart from the store creating its table on first use.
    """
    now = time.time() if now is None else float(now)
    step = float(step_seconds)
    end = (now // step) * step  # start of the running step: excluded
    count = max(0, int(window_seconds // step))
    start = end - count * step
    doc: Dict[str, Any] = {
        "format": HISTORY_FORMAT,
        "timestamp": now,
        "window_seconds": count * step,
        "step_seconds": step,
        "series": [],
    }
    store = _traces_of(source)
    if store is None or count == 0:
        return doc
    try:
        rows: Sequence[Any] = store.query_traces(start, until=end, light=True)
    except Exception:  # a history is a nicety: the page starts with its own
        return doc
    totals = [0] * count
    failures = [0] * count
    for row in rows:
        index = int((float(row.start_time) - start) // step)
        if 0 <= index < count:
            totals[index] += 1
            if not row.success:
                failures[index] += 1
    if not any(totals):
        return doc
    times = [_number(start + i * step) for i in range(count)]
    doc["series"] = [
        {
            "name": "operations",
            "unit": "per_minute",
            "points": [list(p) for p in zip(times, totals)],
        },
        {
            "name": "failures",
            "unit": "per_minute",
            "points": [list(p) for p in zip(times, failures)],
        },
        {
            "name": "success_rate",
            "unit": "ratio",
            "points": [[t, round((n - f) / n, 6)] for t, n, f in zip(times, totals, failures) if n],
        },
    ]
    return doc


def _number(value: float) -> Any:
    return int(value) if value == int(value) else value


def history_response(
    source: Any, *, now: float | None = None
) -> Tuple[bytes, List[Tuple[str, str]]]:
    """``(body, headers)`` for ``GET /history``: :func:`history_document` as JSON."""
    body = (json.dumps(history_document(source, now=now), separators=(",", ":")) + "\n").encode()
    return body, [
        ("Content-Type", _JSON),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]
