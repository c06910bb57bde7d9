"""Deliver metrics to engines beyond this machine: node_exporter's textfile collector and
the Prometheus Pushgateway.

* :func:`write_textfile` writes an exposition atomically (a temporary file in the same
  directory, fsync, ``os.replace``, mode 0644) so node_exporter's
  ``--collector.textfile.directory`` never reads a half-written file. The temporary name
  starts with a dot and does not end in ``.prom``, so the collector ignores it. The
  writing process's own ``process_*`` series are left out: node_exporter serves its own
  under the same names, and a duplicate makes it log a gathering error on every scrape
  and serve the exited writer's values instead of its own.
* :func:`push_to_gateway` sends text format 0.0.4 to
  ``<gateway>/metrics/job/<job>{/<label>/<value>}``.
  ``method="PUT"`` replaces every metric of that group (the right choice for a batch job
  pushing its whole result); ``method="POST"`` replaces only the metric names it pushes and
  keeps the group's others. :func:`delete_from_gateway` removes a group. Label values with
  ``/`` (or empty ones) are sent base64-encoded, as the Pushgateway documents.
  Basic auth (``auth=(user, password)``) or a bearer ``token``; ``timeout`` bounds the
  connection and each read. Failures raise :class:`~mgit_monitoring.errors.PushError` with a
  one-line message that never contains the credentials.
* :func:`try_push_to_gateway` is the "never fail the mgit operation" form: it returns
  False and logs one WARNING (logger ``mgit_monitoring.push``) instead of raising.

Proxies are not used (connections go straight to the gateway); no environment is read.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import socket
import ssl
import tempfile
from typing import Any, List, Mapping, Tuple, Union
from urllib.parse import quote, urlsplit

from mgit_monitoring.errors import ConfigError, PushError
from mgit_monitoring.exposition import (
    MetricsSource,
    render_json,
    render_openmetrics,
    render_text,
    snapshot_of,
)
from mgit_monitoring.samples import Snapshot, validate_label_name

__all__ = [
    "CONTENT_TYPE_PUSH",
    "TEXTFILE_FORMATS",
    "delete_from_gateway",
    "push_to_gateway",
    "pushadd_to_gateway",
    "try_push_to_gateway",
    "write_textfile",
]

_log = logging.getLogger("mgit_monitoring.push")

CONTENT_TYPE_PUSH = "text/plain; version=0.0.4; charset=utf-8"
"""Content-Type of a push body (the Pushgateway parses text format 0.0.4)."""

TEXTFILE_FORMATS: Tuple[str, ...] = ("prometheus", "text", "openmetrics", "json")
"""Formats :func:`write_textfile` accepts ("prometheus" and "text" are text 0.0.4)."""

_METHODS = ("PUT", "POST")
_PROCESS_PREFIX = "process_"  # the standard process collector's names, node_exporter's too


def _snapshot_of(source: Union[MetricsSource, Snapshot]) -> Snapshot:
    """:func:`~mgit_monitoring.exposition.snapshot_of`, with ConfigError for a bad source."""
    try:
        return snapshot_of(source)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _render(snapshot: Snapshot, fmt: str) -> bytes:
    if fmt in ("prometheus", "text"):
        return render_text(snapshot)
    if fmt == "openmetrics":
        return render_openmetrics(snapshot)
    if fmt == "json":
        return (render_json(snapshot, indent=2) + "\n").encode("utf-8")
    msg = f"format={fmt!r}: expected one of {', '.join(TEXTFILE_FORMATS)}"
    raise ConfigError(msg)


# --------------------------------------------------------------------------- textfile


def write_textfile(
    path: Union[str, os.PathLike[str]],
    source: Union[MetricsSource, Snapshot],
    format: str = "prometheus",
) -> int:
    """Write ``source`` (Snapshot, Registry, SharedMetrics) to ``path`` atomically.

    Returns the number of bytes written. Raises ConfigError for a bad ``format`` or source
    and PushError (one line, naming the path) when the file cannot be written; the
    previous file, if any, is then left untouched. ``process_*`` families are not written
    (see the module docstring).
    """
    snapshot = _snapshot_of(source)
    families = tuple(f for f in snapshot.families if not f.name.startswith(_PROCESS_PREFIX))
    body = _render(snapshot._replace(families=families), format)
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        with open(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not publish an empty file after a crash
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; node_exporter may run as another user
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PushError(f"cannot write metrics to {target}: {reason}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return len(body)


# --------------------------------------------------------------------------- Pushgateway


def _escape(name: str, value: str) -> str:
    """One ``/<name>/<value>`` path segment pair.

    Base64 for an empty value, one with '/', and the dot segments '.' and '..' (sent as
    they are, the gateway's router cleans them out of the path and answers 301).
    """
    if value == "":
        return f"/{name}@base64/="
    if "/" in value or value in (".", ".."):
        encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
        return f"/{name}@base64/{encoded}"
    return f"/{name}/{quote(value, safe='')}"


def _target(
    gateway: str, job: str, grouping_key: Mapping[str, Any] | None
) -> Tuple[str, str, int, str, Tuple[str, str] | None, str]:
    """``(scheme, host, port, path, userinfo, shown url)`` for a push, or ConfigError."""
    if not isinstance(gateway, str) or not gateway.strip():
        raise ConfigError(f"gateway={gateway!r}: expected a URL such as http://pushgateway:9091")
    url = gateway.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        raise ConfigError(f"gateway={shown!r}: expected an http:// or https:// URL with a host")
    if not isinstance(job, str) or not job:
        raise ConfigError(f"job={job!r}: expected a non-empty string")
    path = parts.path.rstrip("/") + "/metrics" + _escape("job", job)
    for key, value in (grouping_key or {}).items():
        try:
            validate_label_name(key)
        except ValueError as exc:
            raise ConfigError(f"grouping_key: {exc}") from None
        if key == "job":
            raise ConfigError("grouping_key: 'job' is given by the job argument")
        path += _escape(key, str(value))
    userinfo = None
    if parts.username is not None:
        userinfo = (parts.username, parts.password or "")
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"{parts.scheme}://{netloc}{path}"
    return parts.scheme, host, port, path, userinfo, shown


def _check_header_safe(
    auth: Tuple[str, str] | None, token: str | None, headers: Mapping[str, str] | None
) -> None:
    """ConfigError for a line break or NUL in a credential or header, never showing it.

    http.client would refuse it with a ValueError quoting the whole header, secret
    included (a token read from a file often ends with a newline).
    """
    fields: List[Tuple[str, Any]] = [("token", token)]
    if auth is not None:
        fields += [("auth user", auth[0]), ("auth password", auth[1])]
    for key, header in (headers or {}).items():
        fields += [("header name", key), (f"header {str(key)[:40]!r}", header)]
    for what, value in fields:
        if value is not None and any(c in str(value) for c in "\r\n\0"):
            raise ConfigError(f"{what} contains a line break or NUL character (value not shown)")


def _request(
    method: str,
    gateway: str,
    job: str,
    grouping_key: Mapping[str, Any] | None,
    body: bytes | None,
    *,
    auth: Tuple[str, str] | None,
    token: str | None,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
    headers: Mapping[str, str] | None,
) -> int:
    scheme, host, port, path, userinfo, shown = _target(gateway, job, grouping_key)
    if auth is not None and token is not None:
        raise ConfigError("give either auth=(user, password) or token=..., not both")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout={timeout!r}: expected a number of seconds > 0")
    _check_header_safe(auth, token, headers)
    hdrs = {"User-Agent": "mgit-monitoring"}
    if body is not None:
        hdrs["Content-Type"] = CONTENT_TYPE_PUSH
    credentials = auth if auth is not None else userinfo
    if credentials is not None:
        raw = f"{credentials[0]}:{credentials[1]}".encode()
        hdrs["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    elif token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")
        status = response.status
    except socket.timeout:
        msg = f"cannot {method} metrics to {shown}: timed out after {timeout} s"
        raise PushError(msg) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise PushError(f"cannot {method} metrics to {shown}: {reason}") from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        detail = " ".join(text.split())[:200]
        msg = f"{method} {shown} answered HTTP {status}" + (f": {detail}" if detail else "")
        raise PushError(msg)
    return status


def push_to_gateway(
    gateway: str,
    job: str,
    source: Union[MetricsSource, Snapshot],
    grouping_key: Mapping[str, Any] | None = None,
    *,
    method: str = "PUT",
    auth: Tuple[str, str] | None = None,
    token: str | None = None,
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Push ``source`` (Snapshot, Registry, SharedMetrics) to a Pushgateway; returns the status.

    ``method="PUT"`` replaces the whole group ``job`` + ``grouping_key``; ``"POST"``
    replaces only the metric names pushed. Raises ConfigError for bad arguments and
    PushError when the gateway cannot be reached or refuses the push.
    """
    verb = str(method).upper()
    if verb not in _METHODS:
        raise ConfigError(f"method={method!r}: expected PUT or POST")
    body = render_text(_snapshot_of(source))
    return _request(
        verb,
        gateway,
        job,
        grouping_key,
        body,
        auth=auth,
        token=token,
        timeout=timeout,
        ssl_context=ssl_context,
        headers=headers,
    )


def pushadd_to_gateway(
    gateway: str,
    job: str,
    source: Union[MetricsSource, Snapshot],
    grouping_key: Mapping[str, Any] | None = None,
    **options: Any,
) -> int:
    """:func:`push_to_gateway` with ``method="POST"`` (keep the group's other metrics)."""
    return push_to_gateway(gateway, job, source, grouping_key, method="POST", **options)


def delete_from_gateway(
    gateway: str,
    job: str,
    grouping_key: Mapping[str, Any] | None = None,
    *,
    auth: Tuple[str, str] | None = None,
    token: str | None = None,
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Delete the group ``job`` + ``grouping_key`` from a Pushgateway; returns the status."""
    return _request(
        "DELETE",
        gateway,
        job,
        grouping_key,
        None,
        auth=auth,
        token=token,
        timeout=timeout,
        ssl_context=ssl_context,
        headers=headers,
    )


def try_push_to_gateway(
    gateway: str,
    job: str,
    source: Union[MetricsSource, Snapshot],
    grouping_key: Mapping[str, Any] | None = None,
    **options: Any,
) -> bool:
    """:func:`push_to_gateway` that never raises: False and one WARNING when it fails.

    For the end of an mgit command: the operation's own result must not depend on whether
    monitoring could push.
    """
    try:
        push_to_gateway(gateway, job, source, grouping_key, **options)
    except Exception as exc:  # noqa: BLE001 - monitoring never fails the operation
        _log.warning("metrics push failed: %s", exc)
        return False
    return True
