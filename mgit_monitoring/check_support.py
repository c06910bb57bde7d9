"""What the standard health checks share: provider endpoints, parallel probes, HTTP fetching.

The check modules (:mod:`~mgit_monitoring.host_checks`, :mod:`~mgit_monitoring.git_check`,
:mod:`~mgit_monitoring.network_checks`, :mod:`~mgit_monitoring.credential_check`) build on
these; nothing here knows a check or a result.

- :class:`Endpoint`, :func:`as_endpoint` and :func:`provider_kind`: a provider API URL and
  which API (github, azure_devops, bitbucket, generic) it is; :func:`provider_probes`: the
  hosts and API endpoints to probe for the providers a site uses.
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
import urllib.parse
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    List,
    NamedTuple,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

if TYPE_CHECKING:  # urllib.request loads http.client, email and ssl (~7 MB): at first use
    import urllib.request

__all__ = [
    "GIB",
    "Endpoint",
    "as_endpoint",
    "elapsed_ms",
    "is_json",
    "open_url",
    "provider_kind",
    "provider_probes",
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


# Where each kind's hosted service lives, for an entry that names no URL of its own.
_CLOUD = {
    "github": ("https://github.com", "https://api.github.com/rate_limit"),
    "azure_devops": (
        "https://dev.azure.com",
        "https://status.dev.azure.com/_apis/status/health?api-version=7.1-preview.1",
    ),
    "bitbucket": ("https://bitbucket.org", "https://api.bitbucket.org/2.0/user"),
}


def _api_url(kind: str, url: str) -> Tuple[str, bool]:
    """(the anonymous API URL to probe for a provider at ``url``, whether it answers JSON)."""
    parts = urllib.parse.urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    root = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    path = parts.path.rstrip("/")
    if kind == "github":
        if host in ("github.com", "www.github.com", "api.github.com"):
            return _CLOUD["github"][1], True
        # GitHub Enterprise Server: /meta answers anonymously (401 in private mode); its
        # /rate_limit is a 404 while rate limiting is off, which is the default there.
        return root + "/api/v3/meta", True
    if kind == "azure_devops":
        org = path.split("/_apis", 1)[0]
        if host == "dev.azure.com":
            org = "/" + org.strip("/").split("/", 1)[0] if org.strip("/") else ""
            if not org:
                return _CLOUD["azure_devops"][1], True
        # An organisation, or an Azure DevOps Server collection (https://host/tfs/Coll).
        return root + org + "/_apis/connectionData", True
    if kind == "bitbucket":
        if host in ("bitbucket.org", "www.bitbucket.org", "api.bitbucket.org"):
            return _CLOUD["bitbucket"][1], True
        # Bitbucket Server / Data Center, possibly under a context path.
        for marker in ("/projects/", "/scm/", "/rest/", "/users/"):
            if marker in path + "/":
                path = path[: (path + "/").index(marker)]
                break
        return root + path + "/rest/api/1.0/application-properties", True
    return url.strip(), False


def provider_probes(
    providers: Sequence[Tuple[str, str, str]],
) -> Tuple[List[str], List[Endpoint]]:
    """``(hosts, endpoints)`` to probe for ``providers``, ``(name, kind, url)`` triples.

    Hosts are ``host:port`` of each provider's URL (the hosted service's for an entry of a
    known kind without a URL); endpoints are an anonymous API URL per provider: GitHub's
    ``/rate_limit``, GitHub Enterprise's ``/api/v3/meta``, an Azure DevOps organisation's
    or Server collection's ``_apis/connectionData`` (the public status API for a bare
    dev.azure.com), Bitbucket Cloud's ``/2.0/user`` or Bitbucket Server's
    ``/rest/api/1.0/application-properties``; another kind's URL itself, HTML allowed.
    Duplicates are dropped; an entry with neither URL nor known kind gives nothing.
    """
    hosts: List[str] = []
    endpoints: List[Endpoint] = []
    seen: Set[str] = set()
    for name, kind, url in providers:
        if not url.lower().startswith(("http://", "https://")):
            if kind not in _CLOUD:
                continue
            url = _CLOUD[kind][0]
        parts = urllib.parse.urlsplit(url.strip())
        if not parts.hostname:
            continue
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if f"{host}:{port}" not in hosts:
            hosts.append(f"{host}:{port}")
        api, expect_json = _api_url(kind, url)
        if api not in seen:
            seen.add(api)
            endpoints.append(
                Endpoint(name, api, kind if kind in _CLOUD else "generic", expect_json)
            )
    return hosts, endpoints


def open_url(opener: Any, request: Any, timeout: float) -> Tuple[Any, str]:
    """``(response, "")``, an HTTP error status being a response too, or ``(None, reason)``."""
    from urllib.error import HTTPError, URLError

    try:
        return opener.open(request, timeout=timeout), ""
    except HTTPError as exc:
        return exc, ""
    except (URLError, OSError, ValueError) as exc:
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
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

    return bool(proxy_bypass_environment(host, {"no": no_proxy}))


def url_opener(
    url: str, proxy: str | None, no_proxy: str | None, follow_redirects: bool = True
) -> urllib.request.OpenerDirector:
    """An opener using exactly ``proxy`` (never the environment's), for ``url``'s host."""
    from urllib.request import HTTPRedirectHandler, ProxyHandler, build_opener

    class _NoRedirect(HTTPRedirectHandler):
        """Hand 3xx answers back as HTTPError: a redirect is a verdict (a sign-in page)."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    host = urllib.parse.urlsplit(url).hostname or ""
    proxies = {} if not proxy or proxy_bypassed(host, no_proxy) else {"http": proxy, "https": proxy}
    handlers: List[Any] = [ProxyHandler(proxies)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return build_opener(*handlers)


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
