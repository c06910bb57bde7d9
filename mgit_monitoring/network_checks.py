"""The checks of the network: TCP reachability of hosts, HTTPS reachability of provider APIs.

=======================  ========  =====================================================
check                    critical  measures
=======================  ========  =====================================================
network_connectivity     no        TCP connect (IPv6 and IPv4, or via the HTTPS proxy)
provider_endpoints       no        HTTPS reachability of the provider APIs (long ttl)
=======================  ========  =====================================================

Neither counts for readiness: the network and the providers are shared dependencies, and a
GitHub outage would take every pod out of service at once. Both bound their own I/O (DNS,
connects, HTTP) and use exactly the proxy they are given, never the environment's.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Set, Tuple, Union

from mgit_monitoring.check_support import (
    Endpoint,
    as_endpoint,
    elapsed_ms,
    is_json,
    open_url,
    proxy_bypassed,
    run_parallel,
    safe_url,
    url_opener,
)
from mgit_monitoring.config import DEFAULT_NETWORK_HOSTS, DEFAULT_PROVIDER_URLS
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health_report import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    HealthCheckResult,
)
from mgit_monitoring.masking import mask_credentials

__all__ = [
    "DEFAULT_NETWORK_HOSTS",
    "DEFAULT_PROVIDER_ENDPOINTS",
    "NetworkCheck",
    "ProviderEndpointsCheck",
]

# The defaults live in mgit_monitoring.config (MGIT_MONITORING_PROVIDER_ENDPOINTS replaces
# them); their names are the provider kinds.
DEFAULT_PROVIDER_ENDPOINTS: Tuple[Endpoint, ...] = tuple(
    Endpoint(name, url, name) for name, url in DEFAULT_PROVIDER_URLS
)
"""Endpoints of the provider check (GitHub Enterprise / Azure DevOps Server: configure yours)."""


# --------------------------------------------------------------------------- network

_Hosts = Sequence[Union[str, Tuple[str, int]]]
_Endpoints = Sequence[Union[Endpoint, str, Tuple[str, str]]]


def _split_host(value: Union[str, Tuple[str, int]], default_port: int = 443) -> Tuple[str, int]:
    if isinstance(value, tuple):
        return str(value[0]), int(value[1])
    text = value.strip()
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "", port
    match = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text) or re.match(r"^([^:]+)(?::(\d+))?$", text)
    if match is None:
        if text.count(":") > 1:  # a bare IPv6 address
            return text, default_port
        raise ConfigError(f"host {value!r}: expected host, host:port or [ipv6]:port")
    return match.group(1), int(match.group(2) or default_port)


class _Proxy(NamedTuple):
    host: str
    port: int
    auth: str | None  # "user:password" for Proxy-Authorization; never reported


def _parse_proxy(proxy: str | None) -> _Proxy | None:
    if not proxy:
        return None
    text = proxy if "://" in proxy else "http://" + proxy
    parts = urllib.parse.urlsplit(text)
    if not parts.hostname:
        raise ConfigError(f"proxy {mask_credentials(proxy)!r}: expected http://host:port")
    auth = None
    if parts.username is not None:
        auth = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
    return _Proxy(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), auth)


class NetworkCheck:
    """TCP reachability of ``hosts`` (``host:port`` strings or tuples), all probed concurrently.

    DNS is bounded by ``dns_timeout`` (getaddrinfo has none of its own, so it runs on a
    thread) and each connect by ``connect_timeout``; the first IPv6 and the first IPv4
    address are tried in the resolver's order. With ``proxy`` (the HTTPS proxy URL) the
    check connects to the proxy and asks it to ``CONNECT`` to each host not matched by
    ``no_proxy``. ``resolver`` replaces ``socket.getaddrinfo`` in tests. ``hosts`` may be a
    callable returning the hosts, asked on every run (the default set follows mgit's config
    this way); with no host to check the result is healthy with ``nothing_message`` and
    nothing is resolved or connected.
    """

    name = "network_connectivity"

    def __init__(
        self,
        hosts: Union[_Hosts, Callable[[], _Hosts]] = DEFAULT_NETWORK_HOSTS,
        connect_timeout: float = 3.0,
        dns_timeout: float = 2.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        resolver: Callable[..., Any] = socket.getaddrinfo,
        nothing_message: str = "no hosts configured; nothing to check",
    ) -> None:
        self._hosts_source = hosts if callable(hosts) else None
        self._hosts = [] if callable(hosts) else [_split_host(h) for h in hosts]
        self.nothing_message = nothing_message
        self.connect_timeout = connect_timeout
        self.dns_timeout = dns_timeout
        self.proxy = _parse_proxy(proxy)
        self.no_proxy = no_proxy
        self.resolver = resolver
        # (host, port) -> (done, box) of the lookup in flight: a resolver that hangs keeps
        # one thread per host, not one more per run.
        self._lookups: Dict[Tuple[str, int], Tuple[threading.Event, List[Tuple[str, Any]]]] = {}
        self._lookups_lock = threading.Lock()

    @property
    def hosts(self) -> List[Tuple[str, int]]:
        """The ``(host, port)`` pairs probed now (a source is asked again on every run)."""
        if self._hosts_source is None:
            return list(self._hosts)
        found: List[Tuple[str, int]] = []
        for value in self._hosts_source():
            try:
                pair = _split_host(value)
            except ConfigError:
                continue
            if pair not in found:
                found.append(pair)
        return found

    @property
    def worst_case_seconds(self) -> float:
        """How long one run can take: DNS plus two connects (and a CONNECT reply)."""
        return self.dns_timeout + 3 * self.connect_timeout

    def _resolve(self, host: str, port: int) -> Tuple[str, Any]:
        key = (host, port)
        with self._lookups_lock:
            pending = self._lookups.get(key)
            start = pending is None
            if pending is None:
                pending = self._lookups[key] = (threading.Event(), [])
        done, box = pending

        def lookup() -> None:
            try:
                box.append(("ok", self.resolver(host, port, 0, socket.SOCK_STREAM)))
            except Exception as exc:  # gaierror, UnicodeError (bad IDNA), a broken resolver
                box.append(("error", exc))
            finally:
                with self._lookups_lock:
                    self._lookups.pop(key, None)
                done.set()

        if start:
            threading.Thread(target=lookup, name="mgit-health-dns", daemon=True).start()
        if not done.wait(self.dns_timeout):
            return "timeout", None
        return box[0]

    def _probe(self, host: str, port: int) -> Dict[str, Any]:
        start = time.perf_counter()
        via = self.proxy if self.proxy and not proxy_bypassed(host, self.no_proxy) else None
        target = (via.host, via.port) if via else (host, port)
        report: Dict[str, Any] = {}
        if via:
            report["via_proxy"] = f"{via.host}:{via.port}"
        outcome, infos = self._resolve(*target)
        if outcome == "timeout":
            return dict(
                report, status="dns_timeout", error=f"no DNS answer in {self.dns_timeout:g} s"
            )
        if outcome == "error":
            return dict(report, status="dns_failed", error=str(infos)[:200])
        tried = set()
        last_error = "no address"
        for family, kind, proto, _canon, sockaddr in infos:
            if family in tried or family not in (socket.AF_INET, socket.AF_INET6):
                continue
            tried.add(family)
            report["address_family"] = "IPv6" if family == socket.AF_INET6 else "IPv4"
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(self.connect_timeout)
                    sock.connect(sockaddr)
                    if via:
                        verdict = _proxy_connect(sock, host, port, via.auth, self.connect_timeout)
                        if verdict:
                            return dict(
                                report,
                                status="unreachable",
                                error=verdict,
                                connect_ms=elapsed_ms(start),
                            )
                return dict(report, status="reachable", connect_ms=elapsed_ms(start))
            except socket.timeout:
                last_error = f"connect timed out after {self.connect_timeout:g} s"
            except OSError as exc:
                last_error = exc.strerror or str(exc)
        return dict(report, status="unreachable", error=last_error[:200])

    def __call__(self) -> HealthCheckResult:
        targets = self.hosts
        if not targets:
            return HealthCheckResult(
                self.name, HEALTHY, self.nothing_message, {"hosts": {}, "reachable": 0, "total": 0}
            )
        tasks = [lambda h=h, p=p: self._probe(h, p) for h, p in targets]
        found = run_parallel(tasks, self.worst_case_seconds + 0.5)
        hosts: Dict[str, Any] = {}
        for (host, port), report in zip(targets, found):
            hosts[f"{host}:{port}"] = report or {"status": "timeout", "error": "no answer in time"}
        up = sum(1 for r in hosts.values() if r["status"] == "reachable")
        total = len(hosts)
        status = HEALTHY if up == total else DEGRADED if up else UNHEALTHY
        message = f"Network connectivity: {up}/{total} hosts reachable"
        down = [name for name, r in hosts.items() if r["status"] != "reachable"]
        if down:  # the reader of the message learns which, not only how many
            shown = ", ".join(down[:3]) + (f" and {len(down) - 3} more" if len(down) > 3 else "")
            message += f"; unreachable: {shown}"
        return HealthCheckResult(
            self.name,
            status,
            message,
            {"hosts": hosts, "reachable": up, "total": total},
            observed_value=round(100.0 * up / total, 1),
            observed_unit="%",
            measurement="reachability",
        )


def _proxy_connect(
    sock: socket.socket, host: str, port: int, auth: str | None, timeout: float
) -> str | None:
    """Ask an HTTP proxy to tunnel to ``host:port`` within ``timeout`` s; None on success."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(auth.encode()).decode())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reply = b""
    # One budget for the whole status line: a proxy dribbling a byte at a time must not
    # hold the probe thread for 4096 socket timeouts.
    end = time.monotonic() + timeout
    while b"\r\n" not in reply and len(reply) < 4096:
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("proxy reply timed out")
        sock.settimeout(left)
        chunk = sock.recv(1024)
        if not chunk:
            break
        reply += chunk
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    match = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", status_line)
    if match and match.group(1) == "200":
        return None
    if match and match.group(1) == "407":
        return "proxy requires authentication (HTTP 407)"
    return f"proxy refused the tunnel: {status_line[:80]!r}"


class ProviderEndpointsCheck:
    """HTTP(S) reachability of the provider APIs, concurrently, each within ``timeout`` s.

    An answer counts as *reachable* when the server speaks its API: any 2xx with JSON (when
    ``expect_json``), or 401/403 (the probe is anonymous). HTTP 203, or HTML where JSON was
    expected, is a failure - that is how Azure DevOps answers bad credentials (a sign-in
    page), and how captive portals look. 429 or GitHub's rate-limit 403 degrade. Register
    it with a long ttl (the default set uses 300 s), so probes never spend API quota.
    ``proxy``/``no_proxy`` are used explicitly; the environment is not consulted here.
    ``fetch`` (endpoint -> report with a ``status``) replaces the HTTP fetch of one endpoint
    in tests. ``endpoints`` may be a callable asked on every run; with none to probe the
    result is healthy with ``nothing_message`` and nothing is fetched.
    """

    name = "provider_endpoints"

    def __init__(
        self,
        endpoints: Union[_Endpoints, Callable[[], _Endpoints]] = DEFAULT_PROVIDER_ENDPOINTS,
        timeout: float = 5.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        user_agent: str = "mgit-monitoring-health",
        fetch: Callable[[Endpoint], Dict[str, Any]] | None = None,
        nothing_message: str = "no provider endpoints configured; nothing to check",
    ) -> None:
        self._source = endpoints if callable(endpoints) else None
        self._endpoints = [] if callable(endpoints) else [as_endpoint(e) for e in endpoints]
        self.nothing_message = nothing_message
        self.timeout = timeout
        self.proxy = proxy
        self.no_proxy = no_proxy
        self.user_agent = user_agent
        self.fetch: Callable[[Endpoint], Dict[str, Any]] = fetch or self._fetch
        self._busy: Set[str] = set()  # endpoint URLs whose fetch is still running

    @property
    def endpoints(self) -> List[Endpoint]:
        """The endpoints probed now (a source is asked again on every run)."""
        if self._source is None:
            return list(self._endpoints)
        return [as_endpoint(e) for e in self._source()]

    def _fetch(self, endpoint: Endpoint) -> Dict[str, Any]:
        from urllib.request import Request  # with http.client and ssl: at the first probe

        opener = url_opener(endpoint.url, self.proxy, self.no_proxy)
        request = Request(
            endpoint.url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        report: Dict[str, Any] = {"url": safe_url(endpoint.url)}
        start = time.perf_counter()
        response, reason = open_url(opener, request, self.timeout)
        if response is None:
            report.update(
                status="unreachable",
                error=mask_credentials(reason)[:200],
                response_ms=elapsed_ms(start),
            )
            return report
        try:
            code = response.getcode() or 0
            headers = response.headers
            body = response.read(65536) if code < 400 else b""
        except OSError as exc:
            report.update(status="unreachable", error=str(exc)[:200], response_ms=elapsed_ms(start))
            return report
        finally:
            response.close()
        report.update(http_status=code, response_ms=elapsed_ms(start))
        remaining = headers.get("X-RateLimit-Remaining") if headers else None
        if remaining is not None and remaining.isdigit():
            report["rate_limit_remaining"] = int(remaining)
        report.update(
            _classify(
                endpoint, code, headers.get("Content-Type", "") if headers else "", body, remaining
            )
        )
        return report

    def __call__(self) -> HealthCheckResult:
        targets = self.endpoints
        if not targets:
            return HealthCheckResult(
                self.name,
                HEALTHY,
                self.nothing_message,
                {"providers": {}, "reachable": 0, "total": 0},
            )
        tasks = [lambda e=e: self.fetch(e) for e in targets]
        # urlopen's DNS lookup has no timeout: keep at most one fetch per endpoint alive.
        keys = [e.url for e in targets]
        found = run_parallel(tasks, self.timeout * 2 + 1.0, keys, self._busy)
        providers: Dict[str, Any] = {}
        for endpoint, report in zip(targets, found):
            providers[endpoint.name] = report or {
                "url": safe_url(endpoint.url),
                "status": "unreachable",
                "error": "no answer in time",
            }
        states = [r["status"] for r in providers.values()]
        ok = sum(1 for s in states if s in ("reachable", "rate_limited"))
        total = len(states)
        if ok == total and "rate_limited" not in states:
            status = HEALTHY
        else:
            status = DEGRADED if ok else UNHEALTHY
        times = [
            r["response_ms"]
            for r in providers.values()
            if "response_ms" in r and r["status"] == "reachable"
        ]
        message = f"Provider endpoints: {ok}/{total} reachable"
        problems = [
            f"{n}: {r.get('error') or r['status']}"
            for n, r in providers.items()
            if r["status"] != "reachable"
        ]
        if problems:
            message += " (" + "; ".join(problems) + ")"
        return HealthCheckResult(
            self.name,
            status,
            message,
            {"providers": providers, "reachable": ok, "total": total},
            observed_value=max(times) if times else None,
            observed_unit="ms",
            measurement="responseTime",
        )


def _classify(
    endpoint: Endpoint, code: int, content_type: str, body: bytes, remaining: str | None
) -> Dict[str, Any]:
    if code == 203:
        return {
            "status": "unreachable",
            "error": "HTTP 203 Non-Authoritative Information "
            "(an Azure DevOps sign-in page: credentials rejected)",
        }
    if code == 429 or (code == 403 and remaining == "0"):
        return {"status": "rate_limited", "error": f"rate limited (HTTP {code})"}
    if code in (401, 403):
        return {
            "status": "reachable",
            "note": f"HTTP {code}: authentication required (anonymous probe)",
        }
    if 200 <= code < 400:
        if endpoint.expect_json and not is_json(content_type, body):
            what = content_type.split(";")[0].strip() or "no content type"
            return {
                "status": "unreachable",
                "error": f"HTTP {code} with {what}, expected JSON (a sign-in page?)",
            }
        return {"status": "reachable"}
    return {"status": "unreachable", "error": f"HTTP {code}"}
