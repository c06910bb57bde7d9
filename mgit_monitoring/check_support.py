"""What the standard health checks share: provider endpoints, parallel probes, HTTP fetching.

The check modules (:mod:`~mgit_monitoring.host_checks`, :mod:`~mgit_monitoring.git_check`,
:mod:`~mgit_monitoring.network_checks`, :mod:`~mgit_monitoring.credential_check`) build on
these; nothing here knows a check or a result.

- :class:`Endpoint`, :func:`as_endpoint` and :func:`provider_kind`: a provider API URL and
  which API (github, azure_devops, bitbucket, generic) it is.
- :func:`run_parallel`: tasks on daemon threads within one time budget, at most one thread
  per key still running from an earlier call.
- :func:`url_opener`, :func:`open_url`, :func:`proxy_bypassed`: urllib with exactly the
  configured proxy (never the environment's), bounded, an HTTP error status being an answer.
- :func:`is_json`, :func:`safe_url`, :func:`elapsed_ms`, :data:`GIB`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, List, NamedTuple, Sequence, Set, Tuple, TypeVar, Union

__all__ = [
    "GIB",
    "Endpoint",
    "as_endpoint",
    "elapsed_ms",
    "is_json",
    "open_url",
    "provider_kind",
    "proxy_bypassed",
    "run_parallel",
    "safe_url",
    "url_opener",
]

GIB = 1024**3
"""Bytes in a gibibyte."""


class Endpoint(NamedTuple):
    """A provider API URL to probe: ``kind`` is github, azure_devops, bitbucket or generic."""

    name: str
    url: str
    kind: str = "generic"
    expect_json: bool = True


# Provider names that say which API an endpoint is, whatever its URL (GitHub Enterprise...).
_KIND_ALIASES = {
    "github": "github",
    "gh": "github",
    "ghe": "github",
    "github_enterprise": "github",
    "azure_devops": "azure_devops",
    "azuredevops": "azure_devops",
    "azure": "azure_devops",
    "ado": "azure_devops",
    "bitbucket": "bitbucket",
    "bb": "bitbucket",
}


def as_endpoint(value: Union[Endpoint, str, Tuple[str, str]]) -> Endpoint:
    """An :class:`Endpoint` from one, from a URL (named by its host) or from ``(name, url)``.

    The kind comes from a provider name (``ghe``, ``ado``, ``bb``...) when the name is one,
    else from the URL (:func:`provider_kind`).
    """
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, str):
        host = urllib.parse.urlsplit(value).hostname or value
        return Endpoint(host, value, provider_kind(value))
    name, url = value[0], value[1]
    return Endpoint(name, url, _KIND_ALIASES.get(name.lower()) or provider_kind(url))


def provider_kind(url: str) -> str:
    """github, azure_devops, bitbucket or generic: which provider ``url`` (or a name) points to."""
    low = url.lower()
    if "github" in low:
        return "github"
    if "dev.azure.com" in low or "visualstudio.com" in low:
        return "azure_devops"
    if "bitbucket" in low:
        return "bitbucket"
    return "generic"


def open_url(opener: Any, request: Any, timeout: float) -> Tuple[Any, str]:
    """``(response, "")``, an HTTP error status being a response too, or ``(None, reason)``."""
    try:
        return opener.open(request, timeout=timeout), ""
    except urllib.error.HTTPError as exc:
        return exc, ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout) or isinstance(exc, socket.timeout):
            return None, f"timed out after {timeout:g} s"
        return None, str(reason)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` reading), one decimal."""
    return round((time.perf_counter() - start) * 1000.0, 1)


_T = TypeVar("_T")
_BUSY_LOCK = threading.Lock()


def run_parallel(
    tasks: Sequence[Callable[[], _T]],
    timeout: float,
    keys: Sequence[Any] = (),
    busy: Set[Any] | None = None,
) -> List[Union[_T, None]]:
    """Run ``tasks`` on daemon threads; results in order, None for any not done in ``timeout``.

    Daemon threads rather than a pool: a task stuck in DNS cannot be cancelled, and an
    executor's worker would block interpreter exit. With ``busy`` (a set owned by the
    check) a task whose key (from ``keys``) is still running from an earlier call is not
    started again and reads None: a hung task keeps its one thread, however often the
    check runs.
    """
    results: List[Union[_T, None]] = [None] * len(tasks)
    done = threading.Semaphore(0)

    def run(index: int, task: Callable[[], _T]) -> None:
        try:
            results[index] = task()
        finally:
            if busy is not None:
                with _BUSY_LOCK:
                    busy.discard(keys[index])
            done.release()

    started = 0
    for index, task in enumerate(tasks):
        if busy is not None:
            with _BUSY_LOCK:
                if keys[index] in busy:
                    continue
                busy.add(keys[index])
        threading.Thread(target=run, args=(index, task), daemon=True).start()
        started += 1
    end = time.monotonic() + timeout
    for _ in range(started):
        if not done.acquire(timeout=max(0.0, end - time.monotonic())):
            break
    return list(results)


def proxy_bypassed(host: str, no_proxy: str | None) -> bool:
    """Whether ``host`` matches ``no_proxy`` (a NO_PROXY value) and so goes direct."""
    if not no_proxy:
        return False
    return bool(urllib.request.proxy_bypass_environment(host, {"no": no_proxy}))  # type: ignore[attr-defined]


def url_opener(
    url: str, proxy: str | None, no_proxy: str | None, follow_redirects: bool = True
) -> urllib.request.OpenerDirector:
    """An opener using exactly ``proxy`` (never the environment's), for ``url``'s host."""
    host = urllib.parse.urlsplit(url).hostname or ""
    proxies = {} if not proxy or proxy_bypassed(host, no_proxy) else {"http": proxy, "https": proxy}
    handlers: List[Any] = [urllib.request.ProxyHandler(proxies)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back as HTTPError: a redirect is a verdict (a sign-in page)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def is_json(content_type: str, body: bytes) -> bool:
    """Whether an answer is JSON: a JSON content type and a body that parses."""
    if "json" not in content_type.lower():
        return False
    try:
        json.loads(body.decode("utf-8") or "null")
    except ValueError:
        return False
    return True


def safe_url(url: str) -> str:
    """The URL without userinfo or query string (they can carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
