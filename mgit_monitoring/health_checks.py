"""The standard health checks of mgit and :func:`register_default_checks`.

Each check is a small configurable callable returning a
:class:`~mgit_monitoring.health.HealthCheckResult`; every path, command, host list and
environment mapping it uses comes in through its constructor, so tests point it at fake
``/proc`` and cgroup trees, a fake ``git`` and loopback servers. All of them bound their own
I/O (timeouts on subprocesses, DNS, connects and HTTP), and the runner in
:mod:`mgit_monitoring.health` bounds them again from outside.

=======================  ========  =====================================================
check                    critical  measures
=======================  ========  =====================================================
system_basics            yes       Python version; state and temp directories writable
git_availability         yes       ``git --version`` runs, parses, meets a minimum
disk_space               yes       free bytes / free percent of the state (work) directory
memory_usage             no        cgroup v2/v1 limit and working set, else /proc/meminfo
network_connectivity     no        TCP connect (IPv6 and IPv4, or via the HTTPS proxy)
provider_endpoints       no        HTTPS reachability of the provider APIs (long ttl)
authentication_status    no        which providers have credentials configured (names only);
                                   optionally whether they work (one request each, off by default)
=======================  ========  =====================================================

Critical ones are the things that stop *this* process from working whatever the rest of the
world does; the network and the providers are shared dependencies (a GitHub outage would
take every pod out of service at once if they counted for readiness), so they can only
degrade the overall status. Memory pressure degrades too: the kernel, not a probe, acts on it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

from mgit_monitoring.config import DEFAULT_NETWORK_HOSTS, DEFAULT_PROVIDER_URLS
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthChecker,
    HealthCheckResult,
)
from mgit_monitoring.masking import mask_credentials

__all__ = [
    "DEFAULT_CREDENTIAL_API_URLS",
    "DEFAULT_CREDENTIAL_ENV",
    "DEFAULT_NETWORK_HOSTS",
    "DEFAULT_PROVIDER_ENDPOINTS",
    "AuthenticationCheck",
    "DiskSpaceCheck",
    "Endpoint",
    "GitCheck",
    "MemoryCheck",
    "NetworkCheck",
    "ProviderEndpointsCheck",
    "SystemBasicsCheck",
    "credential_api_urls",
    "default_mgit_config_path",
    "register_default_checks",
]

GIB = 1024**3


class Endpoint(NamedTuple):
    """A provider API URL to probe: ``kind`` is github, azure_devops, bitbucket or generic."""

    name: str
    url: str
    kind: str = "generic"
    expect_json: bool = True


# The defaults live in mgit_monitoring.config (MGIT_MONITORING_PROVIDER_ENDPOINTS replaces
# them); their names are the provider kinds.
DEFAULT_PROVIDER_ENDPOINTS: Tuple[Endpoint, ...] = tuple(
    Endpoint(name, url, name) for name, url in DEFAULT_PROVIDER_URLS
)
"""Endpoints of the provider check (GitHub Enterprise / Azure DevOps Server: configure yours)."""

DEFAULT_CREDENTIAL_API_URLS: Mapping[str, str] = {
    "github": "https://api.github.com",
    "bitbucket": "https://api.bitbucket.org",
}
"""API base URLs credential validation uses when nothing more specific is configured.

Azure DevOps has none: its check needs the organisation URL (mgit's config, the provider
endpoint configuration or ``AZURE_DEVOPS_ORG_URL``).
"""

DEFAULT_CREDENTIAL_ENV: Mapping[str, Tuple[str, ...]] = {
    "github": ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_PAT", "github_token"),
    "azure_devops": (
        "AZURE_DEVOPS_EXT_PAT",
        "AZURE_DEVOPS_PAT",
        "AZURE_DEVOPS_TOKEN",
        "azure_devops_token",
    ),
    "bitbucket": ("BITBUCKET_APP_PASSWORD", "BITBUCKET_TOKEN", "bitbucket_token"),
}
"""Environment variable *names* carrying each provider's credential (values never read out)."""

_SECRET_KEYS = frozenset(("token", "pat", "app_password", "password", "api_token"))
_USER_KEYS = frozenset(("user", "username", "default_username"))
_AZURE_ORG_ENV = ("AZURE_DEVOPS_ORG_URL", "SYSTEM_COLLECTIONURI")  # mgit's; Azure Pipelines'
_BITBUCKET_USER_ENV = ("BITBUCKET_USERNAME", "BITBUCKET_USER")
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
_T = TypeVar("_T")


def _open(opener: Any, request: Any, timeout: float) -> Tuple[Any, str]:
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


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 1)


_BUSY_LOCK = threading.Lock()


def _parallel(
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


# --------------------------------------------------------------------------- system basics


def _writable(path: str) -> Tuple[bool, str]:
    """Whether ``path`` is a writable directory; a missing one must be creatable."""
    if os.path.isdir(path):
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".mgit-health-") as handle:
                handle.write(b"ok")
                handle.flush()
            return True, "writable"
        except OSError as exc:
            return False, f"not writable: {exc.strerror or exc}"
    if os.path.exists(path):
        return False, "exists but is not a directory"
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
        return True, "missing; will be created"
    return False, "missing and its parent directory is not writable"


class SystemBasicsCheck:
    """Python version at least ``min_python``; the state and temp directories writable."""

    name = "system_basics"

    def __init__(
        self,
        state_dir: str | None = None,
        temp_dir: str | None = None,
        min_python: Tuple[int, int] = (3, 8),
    ) -> None:
        self.state_dir = state_dir
        self.temp_dir = temp_dir
        self.min_python = tuple(min_python)

    def __call__(self) -> HealthCheckResult:
        version = ".".join(str(p) for p in sys.version_info[:3])
        details: Dict[str, Any] = {
            "python_version": version,
            "python_implementation": sys.implementation.name,
        }
        problems = []
        if tuple(sys.version_info[:2]) < self.min_python:
            problems.append(f"Python {version} is older than {'.'.join(map(str, self.min_python))}")
        dirs = [("temp_dir", self.temp_dir or tempfile.gettempdir())]
        if self.state_dir:
            dirs.insert(0, ("state_dir", self.state_dir))
        for label, path in dirs:
            ok, note = _writable(path)
            details[label] = path
            details[f"{label}_writable"] = ok
            if not ok:
                problems.append(f"{label} {path}: {note}")
        if problems:
            return HealthCheckResult(
                self.name, UNHEALTHY, "; ".join(problems), details, component_type="system"
            )
        return HealthCheckResult(
            self.name,
            HEALTHY,
            f"Python {version}; directories writable",
            details,
            component_type="system",
        )


# --------------------------------------------------------------------------- git

_GIT_VERSION = re.compile(r"git version (\d+)\.(\d+)(?:\.(\d+))?")


def _version_tuple(value: Union[str, Sequence[int]], label: str) -> Tuple[int, ...]:
    if isinstance(value, str):
        if not re.match(r"^\d+(\.\d+){0,2}$", value.strip()):
            raise ConfigError(f"{label}={value!r}: expected a version such as 2.20 or 2.20.1")
        return tuple(int(p) for p in value.strip().split("."))
    return tuple(int(p) for p in value)


def _older(have: Tuple[int, ...], need: Tuple[int, ...]) -> bool:
    """``have < need`` with missing parts read as 0 (``2.45`` from ``2.45.windows.1`` is 2.45.0)."""
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) < need + (0,) * (width - len(need))


def _run_command(argv: Sequence[str], timeout: float) -> Tuple[int, str, str]:
    """Run ``argv`` and return (returncode, stdout, stderr); on timeout kill its whole group."""
    posix = os.name == "posix"
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=posix,  # own process group, so a timeout kills grandchildren too
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except OSError:
            pass
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class GitCheck:
    """``git --version`` within ``timeout`` s; ``min_version`` (e.g. "2.20") optional.

    ``git`` is a name looked up on ``search_path`` (a PATH string; None: the process PATH)
    or a path to the executable.
    """

    name = "git_availability"

    def __init__(
        self,
        git: str = "git",
        search_path: str | None = None,
        timeout: float = 5.0,
        min_version: Union[str, Sequence[int], None] = None,
    ) -> None:
        self.git = git
        self.search_path = search_path
        self.timeout = timeout
        self.min_version = (
            None if min_version is None else _version_tuple(min_version, "min_version")
        )

    def __call__(self) -> HealthCheckResult:
        details: Dict[str, Any] = {}
        if self.min_version:
            details["min_version"] = ".".join(map(str, self.min_version))
        if os.sep in self.git or (os.altsep and os.altsep in self.git):
            exe = self.git if os.access(self.git, os.X_OK) else None
        else:
            exe = shutil.which(self.git, path=self.search_path)
        if not exe:
            return HealthCheckResult(
                self.name,
                UNHEALTHY,
                f"Git command not found ({self.git!r} is not on PATH)",
                details,
            )
        details["git_path"] = exe
        start = time.perf_counter()
        try:
            code, out, err = _run_command([exe, "--version"], self.timeout)
        except subprocess.TimeoutExpired:
            return HealthCheckResult(
                self.name, UNHEALTHY, f"Git command timed out after {self.timeout:g} s", details
            )
        except OSError as exc:
            return HealthCheckResult(
                self.name, UNHEALTHY, f"Git command could not run: {exc.strerror or exc}", details
            )
        details["response_ms"] = _ms(start)
        if code != 0:
            # Mask before shortening: a cut through a token would hide it from the masker.
            details.update(returncode=code, stderr=mask_credentials(err.strip())[:300])
            return HealthCheckResult(
                self.name, UNHEALTHY, f"Git command failed (exit code {code})", details
            )
        lines = out.strip().splitlines()
        # The version line, even when a wrapper printed something before it.
        first = next((x for x in lines if _GIT_VERSION.search(x)), lines[0] if lines else "")
        details["git_version"] = first[:200]
        match = _GIT_VERSION.search(first)
        if not match:
            return HealthCheckResult(
                self.name, DEGRADED, f"could not parse the git version from {first[:80]!r}", details
            )
        parsed = tuple(int(p) for p in match.groups() if p is not None)
        version = ".".join(map(str, parsed))
        extra: Dict[str, Any] = {"observed_value": version, "measurement": "version"}
        if self.min_version and _older(parsed, self.min_version):
            need = details["min_version"]
            return HealthCheckResult(
                self.name,
                UNHEALTHY,
                f"git {version} is older than the required {need}",
                details,
                **extra,
            )
        return HealthCheckResult(self.name, HEALTHY, f"git {version} available", details, **extra)


# --------------------------------------------------------------------------- network


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


def _bypass(host: str, no_proxy: str | None) -> bool:
    if not no_proxy:
        return False
    return bool(urllib.request.proxy_bypass_environment(host, {"no": no_proxy}))  # type: ignore[attr-defined]


class NetworkCheck:
    """TCP reachability of ``hosts`` (``host:port`` strings or tuples), all probed concurrently.

    DNS is bounded by ``dns_timeout`` (getaddrinfo has none of its own, so it runs on a
    thread) and each connect by ``connect_timeout``; the first IPv6 and the first IPv4
    address are tried in the resolver's order. With ``proxy`` (the HTTPS proxy URL) the
    check connects to the proxy and asks it to ``CONNECT`` to each host not matched by
    ``no_proxy``. ``resolver`` replaces ``socket.getaddrinfo`` in tests.
    """

    name = "network_connectivity"

    def __init__(
        self,
        hosts: Sequence[Union[str, Tuple[str, int]]] = DEFAULT_NETWORK_HOSTS,
        connect_timeout: float = 3.0,
        dns_timeout: float = 2.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        resolver: Callable[..., Any] = socket.getaddrinfo,
    ) -> None:
        self.hosts = [_split_host(h) for h in hosts]
        self.connect_timeout = connect_timeout
        self.dns_timeout = dns_timeout
        self.proxy = _parse_proxy(proxy)
        self.no_proxy = no_proxy
        self.resolver = resolver
        # (host, port) -> (done, box) of the lookup in flight: a resolver that hangs keeps
        # one thread per host, not one more per run.
        self._lookups: Dict[Tuple[str, int], Tuple[threading.Event, List[Any]]] = {}
        self._lookups_lock = threading.Lock()

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
        via = self.proxy if self.proxy and not _bypass(host, self.no_proxy) else None
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
                                report, status="unreachable", error=verdict, connect_ms=_ms(start)
                            )
                return dict(report, status="reachable", connect_ms=_ms(start))
            except socket.timeout:
                last_error = f"connect timed out after {self.connect_timeout:g} s"
            except OSError as exc:
                last_error = exc.strerror or str(exc)
        return dict(report, status="unreachable", error=last_error[:200])

    def __call__(self) -> HealthCheckResult:
        if not self.hosts:
            return HealthCheckResult(self.name, UNKNOWN, "no hosts configured", {})
        tasks = [lambda h=h, p=p: self._probe(h, p) for h, p in self.hosts]
        found = _parallel(tasks, self.worst_case_seconds + 0.5)
        hosts: Dict[str, Any] = {}
        for (host, port), report in zip(self.hosts, found):
            hosts[f"{host}:{port}"] = report or {"status": "timeout", "error": "no answer in time"}
        up = sum(1 for r in hosts.values() if r["status"] == "reachable")
        total = len(hosts)
        status = HEALTHY if up == total else DEGRADED if up else UNHEALTHY
        message = f"Network connectivity: {up}/{total} hosts reachable"
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


# --------------------------------------------------------------------------- disk


class DiskSpaceCheck:
    """Free space where mgit writes: unhealthy below ``min_free_bytes`` or ``fail_free_percent``.

    Degraded below ``warn_free_percent``. A path that does not exist yet is measured at its
    nearest existing parent. ``usage`` replaces ``shutil.disk_usage`` in tests.
    """

    name = "disk_space"

    def __init__(
        self,
        path: str = ".",
        min_free_bytes: int = GIB,
        warn_free_percent: float = 20.0,
        fail_free_percent: float = 10.0,
        usage: Callable[[str], Any] = shutil.disk_usage,
    ) -> None:
        if fail_free_percent > warn_free_percent:
            raise ConfigError(
                f"fail_free_percent={fail_free_percent!r} must be <= "
                f"warn_free_percent={warn_free_percent!r}"
            )
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.warn_free_percent = warn_free_percent
        self.fail_free_percent = fail_free_percent
        self.usage = usage

    def __call__(self) -> HealthCheckResult:
        path = os.path.abspath(self.path)
        while not os.path.exists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        total, used, free = tuple(self.usage(path))[:3]
        free_pct = 100.0 * free / total if total else 0.0
        used_pct = round(100.0 - free_pct, 2)
        details = {
            "path": path,
            "total_bytes": total,
            "used_bytes": used,
            "free_bytes": free,
            "free_percent": round(free_pct, 2),
            "usage_percent": used_pct,
            "total_gb": round(total / GIB, 2),
            "used_gb": round(used / GIB, 2),
            "free_gb": round(free / GIB, 2),
        }
        summary = f"{free / GIB:.1f} GiB free ({used_pct:.1f}% used) at {path}"
        if free < self.min_free_bytes or free_pct < self.fail_free_percent:
            status, message = UNHEALTHY, f"Critical: only {summary}"
        elif free_pct < self.warn_free_percent:
            status, message = DEGRADED, f"Warning: {summary}"
        else:
            status, message = HEALTHY, f"Disk space healthy: {summary}"
        return HealthCheckResult(
            self.name,
            status,
            message,
            details,
            observed_value=used_pct,
            observed_unit="%",
            measurement="utilization",
            component_type="system",
        )


# --------------------------------------------------------------------------- memory

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge page-aligned number


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _stat_value(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return _int(parts[1]) or 0
    return 0


class MemoryCheck:
    """Memory used against the limit that actually applies to this process.

    Inside a container that is the cgroup's limit (v2 ``memory.max``/``memory.current``, v1
    ``memory.limit_in_bytes``/``memory.usage_in_bytes``), with page cache that can be
    reclaimed (``inactive_file``) subtracted - the working set the OOM killer and kubelet
    evictions look at. /proc/meminfo shows the whole node, so it is only the fallback (no
    cgroup limit); with neither, the result is ``unknown`` with the reason.
    """

    name = "memory_usage"

    def __init__(
        self,
        proc_root: str = "/proc",
        cgroup_root: str = "/sys/fs/cgroup",
        warn_percent: float = 85.0,
        fail_percent: float = 95.0,
    ) -> None:
        self.proc_root = proc_root
        self.cgroup_root = cgroup_root
        self.warn_percent = warn_percent
        self.fail_percent = fail_percent

    def _cgroup_dirs(self, controller_path: str, base: str) -> List[str]:
        """The process's cgroup directory and its ancestors, deepest first."""
        rel = controller_path.strip("/")
        dirs = []
        while True:
            dirs.append(os.path.join(base, rel) if rel else base)
            if not rel:
                return dirs
            rel = os.path.dirname(rel)

    def _cgroup(self) -> Tuple[str, int, int] | None:
        membership = _read(os.path.join(self.proc_root, "self", "cgroup")) or ""
        v1_path = v2_path = None
        for line in membership.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            if parts[0] == "0" and parts[1] == "":
                v2_path = parts[2]
            elif "memory" in parts[1].split(","):
                v1_path = parts[2]
        if v2_path is not None:
            for directory in self._cgroup_dirs(v2_path, self.cgroup_root):
                limit = _int(_read(os.path.join(directory, "memory.max")))
                usage = _int(_read(os.path.join(directory, "memory.current")))
                if limit is not None and usage is not None:
                    stat_text = _read(os.path.join(directory, "memory.stat"))
                    return (
                        "cgroup v2",
                        limit,
                        max(0, usage - _stat_value(stat_text, "inactive_file")),
                    )
        if v1_path is not None:
            base = os.path.join(self.cgroup_root, "memory")
            for directory in self._cgroup_dirs(v1_path, base):
                limit = _int(_read(os.path.join(directory, "memory.limit_in_bytes")))
                usage = _int(_read(os.path.join(directory, "memory.usage_in_bytes")))
                if limit is not None and usage is not None and limit < _UNLIMITED:
                    stat_text = _read(os.path.join(directory, "memory.stat"))
                    inactive = _stat_value(stat_text, "total_inactive_file")
                    return "cgroup v1", limit, max(0, usage - inactive)
        return None

    def _meminfo(self) -> Tuple[int, int] | None:
        text = _read(os.path.join(self.proc_root, "meminfo"))
        if not text:
            return None
        values = {}
        for line in text.splitlines():
            parts = line.replace(":", " ").split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[parts[0]] = int(parts[1]) * 1024
        total = values.get("MemTotal")
        available = values.get("MemAvailable")
        if available is None and total is not None:  # kernels before 3.14
            available = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
        if not total or available is None:
            return None
        return total, total - available

    def __call__(self) -> HealthCheckResult:
        found = self._cgroup()
        if found is not None:
            source, limit, used = found
        else:
            node = self._meminfo()
            if node is None:
                reason = (
                    f"no cgroup memory limit under {self.cgroup_root} "
                    f"and no readable {os.path.join(self.proc_root, 'meminfo')}"
                )
                return HealthCheckResult(
                    self.name, UNKNOWN, f"memory usage unavailable: {reason}", {}
                )
            source, (limit, used) = "/proc/meminfo", node
        pct = round(100.0 * used / limit, 2) if limit else 0.0
        details = {
            "source": source,
            "limit_bytes": limit,
            "used_bytes": used,
            "available_bytes": max(0, limit - used),
            "usage_percent": pct,
            "total_gb": round(limit / GIB, 2),
            "used_gb": round(used / GIB, 2),
            "available_gb": round(max(0, limit - used) / GIB, 2),
        }
        summary = f"{pct:.1f}% of {limit / GIB:.2f} GiB used ({source})"
        if pct > self.fail_percent:
            status, message = UNHEALTHY, f"Critical memory usage: {summary}"
        elif pct > self.warn_percent:
            status, message = DEGRADED, f"High memory usage: {summary}"
        else:
            status, message = HEALTHY, f"Memory usage normal: {summary}"
        return HealthCheckResult(
            self.name,
            status,
            message,
            details,
            observed_value=pct,
            observed_unit="%",
            measurement="utilization",
            component_type="system",
        )


# --------------------------------------------------------------------------- provider endpoints


def _endpoint(value: Union[Endpoint, str, Tuple[str, str]]) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, str):
        host = urllib.parse.urlsplit(value).hostname or value
        return Endpoint(host, value, _kind_of(value))
    name, url = value[0], value[1]
    return Endpoint(name, url, _KIND_ALIASES.get(name.lower()) or _kind_of(url))


def _kind_of(url: str) -> str:
    low = url.lower()
    if "github" in low:
        return "github"
    if "dev.azure.com" in low or "visualstudio.com" in low:
        return "azure_devops"
    if "bitbucket" in low:
        return "bitbucket"
    return "generic"


def _opener(
    url: str, proxy: str | None, no_proxy: str | None, follow_redirects: bool = True
) -> urllib.request.OpenerDirector:
    """An opener using exactly ``proxy`` (never the environment's), for ``url``'s host."""
    host = urllib.parse.urlsplit(url).hostname or ""
    proxies = {} if not proxy or _bypass(host, no_proxy) else {"http": proxy, "https": proxy}
    handlers: List[Any] = [urllib.request.ProxyHandler(proxies)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back as HTTPError: a redirect is a verdict (a sign-in page)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _is_json(content_type: str, body: bytes) -> bool:
    if "json" not in content_type.lower():
        return False
    try:
        json.loads(body.decode("utf-8") or "null")
    except ValueError:
        return False
    return True


def _safe_url(url: str) -> str:
    """The URL without userinfo or query string (they can carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class ProviderEndpointsCheck:
    """HTTP(S) reachability of the provider APIs, concurrently, each within ``timeout`` s.

    An answer counts as *reachable* when the server speaks its API: any 2xx with JSON (when
    ``expect_json``), or 401/403 (the probe is anonymous). HTTP 203, or HTML where JSON was
    expected, is a failure - that is how Azure DevOps answers bad credentials (a sign-in
    page), and how captive portals look. 429 or GitHub's rate-limit 403 degrade. Register
    it with a long ttl (the default set uses 300 s), so probes never spend API quota.
    ``proxy``/``no_proxy`` are used explicitly; the environment is not consulted here.
    """

    name = "provider_endpoints"

    def __init__(
        self,
        endpoints: Sequence[Union[Endpoint, str, Tuple[str, str]]] = DEFAULT_PROVIDER_ENDPOINTS,
        timeout: float = 5.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        user_agent: str = "mgit-monitoring-health",
    ) -> None:
        self.endpoints = [_endpoint(e) for e in endpoints]
        self.timeout = timeout
        self.proxy = proxy
        self.no_proxy = no_proxy
        self.user_agent = user_agent
        self._busy: Set[str] = set()  # endpoint URLs whose fetch is still running

    def _fetch(self, endpoint: Endpoint) -> Dict[str, Any]:
        opener = _opener(endpoint.url, self.proxy, self.no_proxy)
        request = urllib.request.Request(
            endpoint.url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        report: Dict[str, Any] = {"url": _safe_url(endpoint.url)}
        start = time.perf_counter()
        response, reason = _open(opener, request, self.timeout)
        if response is None:
            report.update(
                status="unreachable",
                error=mask_credentials(reason)[:200],
                response_ms=_ms(start),
            )
            return report
        try:
            code = response.getcode() or 0
            headers = response.headers
            body = response.read(65536) if code < 400 else b""
        except OSError as exc:
            report.update(status="unreachable", error=str(exc)[:200], response_ms=_ms(start))
            return report
        finally:
            response.close()
        report.update(http_status=code, response_ms=_ms(start))
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
        if not self.endpoints:
            return HealthCheckResult(self.name, UNKNOWN, "no provider endpoints configured", {})
        tasks = [lambda e=e: self._fetch(e) for e in self.endpoints]
        # urlopen's DNS lookup has no timeout: keep at most one fetch per endpoint alive.
        keys = [e.url for e in self.endpoints]
        found = _parallel(tasks, self.timeout * 2 + 1.0, keys, self._busy)
        providers: Dict[str, Any] = {}
        for endpoint, report in zip(self.endpoints, found):
            providers[endpoint.name] = report or {
                "url": _safe_url(endpoint.url),
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
        if endpoint.expect_json and not _is_json(content_type, body):
            what = content_type.split(";")[0].strip() or "no content type"
            return {
                "status": "unreachable",
                "error": f"HTTP {code} with {what}, expected JSON (a sign-in page?)",
            }
        return {"status": "reachable"}
    return {"status": "unreachable", "error": f"HTTP {code}"}


# --------------------------------------------------------------------------- authentication


def default_mgit_config_path(environ: Mapping[str, str]) -> str:
    """mgit's config file: ``$MGIT_CONFIG_PATH`` or ``~/.config/mgit/config.yaml``."""
    explicit = environ.get("MGIT_CONFIG_PATH")
    if explicit:
        return explicit
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".config", "mgit", "config.yaml")


def _scalar(text: str) -> str:
    text = text.split(" #", 1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return "" if text in ("~", "null", "''", '""') else text


class _Credential:
    """One credential to validate. Its repr hides the secret, should it ever be logged."""

    __slots__ = ("source", "secret", "user", "url")

    def __init__(self, source: str, secret: str, user: str = "", url: str = "") -> None:
        self.source = source  # "env:NAME" or "config:entry": safe to report
        self.secret = secret
        self.user = user
        self.url = url  # the entry's own URL (config file), "" otherwise

    def __repr__(self) -> str:
        return f"_Credential(source={self.source!r}, secret=<hidden>)"


def _read_mgit_providers(path: str, keep_secrets: bool = False) -> List[Dict[str, Any]]:
    """Provider entries of mgit's config.yaml: name, type hints and whether a secret is set.

    A minimal reader for the block-style mapping mgit writes (``providers: {name: {url,
    user, token}}``). Secret values are tested for emptiness and dropped on the spot, unless
    ``keep_secrets`` (credential validation), when the first one is kept in the entry's
    ``_credential`` (a :class:`_Credential`, whose repr hides it).
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    providers: List[Dict[str, Any]] = []
    in_section = False
    child_indent = None
    current: Dict[str, Any] | None = None
    for raw in lines:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        key, _, value = raw.strip().partition(":")
        key = _scalar(key)
        if indent == 0:
            in_section = key == "providers"
            child_indent, current = None, None
            continue
        if not in_section:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent:
            current = {"name": key, "keys": set(), "hints": [], "credential": False, "user": ""}
            providers.append(current)
        elif current is not None and indent > child_indent:
            value = _scalar(value)
            low = key.lower()
            current["keys"].add(low)
            if low in _SECRET_KEYS:
                current["credential"] = current["credential"] or bool(value)
                if keep_secrets and value and "_secret" not in current:
                    current["_secret"] = value
            elif low in ("url", "org_url", "default_org_url", "workspace"):
                current["hints"].append(value)
            elif low in _USER_KEYS and value and not current["user"]:
                current["user"] = value
    for entry in providers:
        secret = entry.pop("_secret", "")
        if secret:
            urls = [h for h in entry["hints"] if h.lower().startswith(("http://", "https://"))]
            entry["_credential"] = _Credential(
                f"config:{entry['name']}", secret, entry["user"], urls[0] if urls else ""
            )
    return providers


def _provider_type(entry: Mapping[str, Any]) -> str:
    for hint in entry["hints"]:
        kind = _kind_of(hint)
        if kind != "generic":
            return kind
    keys = entry["keys"]
    if ("org_url" in keys or "default_org_url" in keys) and "pat" in keys:
        return "azure_devops"
    if "app_password" in keys:
        return "bitbucket"
    if "token" in keys:
        return "github"
    kind = _kind_of(entry["name"])
    if kind == "generic" and any(w in entry["name"].lower() for w in ("ado", "azure", "devops")):
        kind = "azure_devops"
    return kind if kind != "generic" else "other"


def _base_url(url: str, suffixes: Sequence[str] = ()) -> str:
    """``url`` without userinfo, query, trailing slash and the first matching ``suffixes``."""
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.rstrip("/")
    for suffix in suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def credential_api_urls(
    endpoints: Sequence[Union[Endpoint, str, Tuple[str, str]]],
) -> Dict[str, str]:
    """The credential-validation base URLs implied by provider endpoint configuration.

    GitHub: the endpoint URL without a trailing ``/rate_limit`` (so
    ``https://ghe.example/api/v3/rate_limit`` gives ``https://ghe.example/api/v3``).
    Bitbucket: without a trailing ``/2.0/user`` or ``/2.0``. Azure DevOps: the URL up to
    ``/_apis`` (an organisation or collection URL), except the public status API, which
    names no organisation. The first endpoint of each kind wins; other kinds are ignored.
    """
    urls: Dict[str, str] = {}
    for value in endpoints:
        endpoint = _endpoint(value)
        parts = urllib.parse.urlsplit(endpoint.url)
        if endpoint.kind == "github":
            urls.setdefault("github", _base_url(endpoint.url, ("/rate_limit",)))
        elif endpoint.kind == "bitbucket":
            urls.setdefault("bitbucket", _base_url(endpoint.url, ("/2.0/user", "/2.0")))
        elif endpoint.kind == "azure_devops" and parts.hostname != "status.dev.azure.com":
            urls.setdefault("azure_devops", _azure_org_url(endpoint.url))
    return urls


def _azure_org_url(url: str) -> str:
    """The organisation (collection) URL in an Azure DevOps URL: up to ``/_apis``; on
    dev.azure.com only the first path segment (``https://dev.azure.com/org/project``)."""
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.split("/_apis", 1)[0]
    if parts.hostname == "dev.azure.com":
        path = "/" + path.strip("/").split("/", 1)[0]
    return _base_url(urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", "")))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


_VALIDATED = ("github", "azure_devops", "bitbucket")  # the providers validation knows
VALID = "valid"
INVALID = "invalid"
UNREACHABLE = "unreachable"
NOT_CONFIGURED = "not_configured"
SKIPPED = "skipped"


def _auth_verdict(
    kind: str, code: int, content_type: str, body: bytes, headers: Any
) -> Tuple[str, str]:
    """(state, why) for one validation answer; see :class:`AuthenticationCheck`."""
    is_json = _is_json(content_type, body)
    what = content_type.split(";")[0].strip() or "no content type"
    if kind == "azure_devops":
        # Azure DevOps answers a bad or expired PAT with 203 (or a redirect) and a sign-in page.
        if code == 203 or (200 <= code < 300 and not is_json):
            return INVALID, f"HTTP {code} with {what}: a sign-in page, the PAT was not accepted"
        if 300 <= code < 400:
            return INVALID, f"HTTP {code}: redirected to sign in, the PAT was not accepted"
    remaining = headers.get("X-RateLimit-Remaining") if headers is not None else None
    if code == 429 or (code == 403 and remaining == "0"):
        return UNREACHABLE, f"rate limited (HTTP {code}), no verdict"
    if code == 401:
        return INVALID, "HTTP 401: credential rejected"
    if code == 403:
        if kind == "bitbucket":  # authenticated, but without the account:read scope
            return VALID, "HTTP 403: accepted, but lacks the account scope"
        return INVALID, "HTTP 403: credential refused"
    if 200 <= code < 300:
        if is_json:
            return VALID, ""
        return UNREACHABLE, f"HTTP {code} with {what}, expected JSON (a proxy or portal?)"
    if 300 <= code < 400:
        return UNREACHABLE, f"HTTP {code}: redirect not followed (wrong base URL?)"
    return UNREACHABLE, f"HTTP {code}"


class AuthenticationCheck:
    """Which providers have credentials configured and, optionally, whether they work.

    Credentials come from environment variables (``env_vars``: provider -> variable names)
    and mgit's config file (``config_path``). Only variable *names*, provider and entry
    *names*, states and HTTP statuses are reported, never a value. The config file's
    permissions are checked too (a token readable by other users degrades).

    Without ``validate`` (the default) nothing is sent anywhere: healthy when at least one
    provider has a credential, degraded when none does.

    With ``validate=True`` each provider that has a credential gets one cheap authenticated
    request, concurrently, each within ``timeout`` s, redirects not followed, through
    ``proxy`` unless ``no_proxy`` matches:

    - GitHub: ``GET {github}/rate_limit`` with ``Authorization: Bearer`` (costs no quota);
    - Azure DevOps: ``GET {org}/_apis/connectionData`` with basic auth ``:PAT``; HTTP 203,
      a redirect or HTML is a sign-in page, i.e. *invalid*; JSON 200 is valid;
    - Bitbucket: ``GET {bitbucket}/2.0/user`` with basic auth ``user:app-password``
      (user from mgit's config or BITBUCKET_USERNAME), or ``Bearer`` without a user;
      403 means accepted but lacking the account scope, which counts as valid.

    Base URLs: ``api_urls`` (provider -> base, by default :data:`DEFAULT_CREDENTIAL_API_URLS`;
    :func:`register_default_checks` derives them from the provider endpoints); a GitHub
    entry in mgit's config with a non-github.com URL uses ``https://host/api/v3``; the Azure
    organisation is the entry's own URL, else ``api_urls["azure_devops"]``, else
    AZURE_DEVOPS_ORG_URL / SYSTEM_COLLECTIONURI (none: *skipped*). One credential per
    provider is checked: environment variables first (in ``env_vars`` order), then config
    entries. A credential is never sent over plain http except to a loopback address.

    Per provider ``details["validation"]`` says ``valid``, ``invalid``, ``unreachable`` (no
    verdict: network error, timeout, rate limit, 5xx, unexpected answer), ``not_configured``
    or ``skipped`` (cannot be validated: no Azure organisation URL, plain http, or a provider
    kind validation does not know), with the reason. Status rule over the GitHub, Azure
    DevOps and Bitbucket providers that have a credential: all valid -> healthy; none valid
    and at least one invalid -> unhealthy (no provider is usable); anything else -> degraded
    (an unreachable provider is the network's or the provider check's failure, not a
    credential's; a skipped one is a configuration gap). No credential at all, or an
    unreadable or too-open config file, degrades as without validation. The check is not
    critical, so it never makes the pod unready; register it with a long ttl (the default
    set uses 300 s).
    """

    name = "authentication_status"

    def __init__(
        self,
        environ: Mapping[str, str],
        config_path: str | None = None,
        env_vars: Mapping[str, Sequence[str]] = DEFAULT_CREDENTIAL_ENV,
        validate: bool = False,
        api_urls: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        user_agent: str = "mgit-monitoring-health",
    ) -> None:
        self.environ = environ
        self.config_path = config_path
        self.env_vars = env_vars
        self.validate = validate
        self.api_urls: Dict[str, str] = dict(DEFAULT_CREDENTIAL_API_URLS)
        self.api_urls.update(api_urls or {})
        self.timeout = timeout
        self.proxy = proxy
        self.no_proxy = no_proxy
        self.user_agent = user_agent
        self._busy: Set[str] = set()  # providers whose validation request is still running

    def __call__(self) -> HealthCheckResult:
        sources: Dict[str, List[str]] = {p: [] for p in self.env_vars}
        candidates: Dict[str, List[_Credential]] = {p: [] for p in self.env_vars}
        for provider, names in self.env_vars.items():
            for var in names:
                if self.environ.get(var, "").strip():
                    sources[provider].append(f"env:{var}")
                    if self.validate:  # values are read only to validate them
                        candidates[provider].append(
                            _Credential(f"env:{var}", self.environ[var].strip())
                        )
        details: Dict[str, Any] = {}
        problems = []
        path = self.config_path
        if path:
            details["config_file"] = path
            details["config_file_exists"] = os.path.isfile(path)
            if details["config_file_exists"]:
                try:
                    entries = _read_mgit_providers(path, keep_secrets=self.validate)
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                except OSError as exc:
                    problems.append(f"cannot read {path}: {exc.strerror or exc}")
                    entries, mode = [], 0
                for entry in entries:
                    kind = _provider_type(entry)
                    sources.setdefault(kind, [])
                    if entry["credential"]:
                        sources[kind].append(f"config:{entry['name']}")
                    if "_credential" in entry:
                        candidates.setdefault(kind, []).append(entry["_credential"])
                if os.name == "posix" and mode & 0o077 and any(e["credential"] for e in entries):
                    problems.append(
                        f"{path} holds credentials and is readable by others "
                        f"(mode {mode:o}; use chmod 600)"
                    )
        configured = sorted(p for p, found in sources.items() if found)
        details["providers_configured"] = configured
        details["provider_details"] = {
            p: ("credentials_configured" if s else "none") for p, s in sources.items()
        }
        details["credential_sources"] = {p: s for p, s in sources.items() if s}
        details["validation_enabled"] = self.validate
        extra: Dict[str, Any] = {"observed_value": len(configured), "measurement": "credentials"}
        verdicts: Dict[str, Dict[str, Any]] = {}
        if self.validate:
            verdicts = self._validate_all(sources, candidates)
            details["validation"] = verdicts
        if not configured:
            status, message = DEGRADED, "No provider credentials configured"
        elif not self.validate:
            status, message = HEALTHY, f"Credentials configured for: {', '.join(configured)}"
        else:
            status, message = self._verdict(configured, verdicts)
        if problems:
            # A config file problem degrades; it does not hide a worse validation verdict.
            status = UNHEALTHY if status == UNHEALTHY else DEGRADED
            message = "; ".join(problems + [message])
        return HealthCheckResult(self.name, status, message, details, **extra)

    @staticmethod
    def _verdict(
        configured: Sequence[str], verdicts: Mapping[str, Mapping[str, Any]]
    ) -> Tuple[str, str]:
        checked = [p for p in configured if p in _VALIDATED]
        states = [verdicts[p]["status"] for p in checked]
        notes = []
        for provider in checked:
            report = verdicts[provider]
            why = report.get("error") or report.get("note")
            notes.append(f"{provider} {report['status']}" + (f" ({why})" if why else ""))
        message = "Credentials: " + (", ".join(notes) or "none of a kind that can be validated")
        if all(s == VALID for s in states):
            return HEALTHY, message
        if VALID not in states and INVALID in states:
            return UNHEALTHY, message
        return DEGRADED, message

    def _validate_all(
        self, sources: Mapping[str, List[str]], candidates: Mapping[str, List[_Credential]]
    ) -> Dict[str, Dict[str, Any]]:
        chosen = {p: self._choose(p, c) for p, c in candidates.items() if c and p in _VALIDATED}
        order = list(chosen)
        tasks = [lambda p=p: self._validate_one(p, chosen[p]) for p in order]
        found = _parallel(tasks, self.timeout + 1.0, order, self._busy)
        verdicts: Dict[str, Dict[str, Any]] = {}
        for provider in sources:
            if provider not in chosen:
                if sources[provider]:  # a kind validation does not know (mgit's "other")
                    verdicts[provider] = {"status": SKIPPED, "note": "no validation method"}
                else:
                    verdicts[provider] = {"status": NOT_CONFIGURED}
        for provider, report in zip(order, found):
            verdicts[provider] = report or {
                "status": UNREACHABLE,
                "source": chosen[provider].source,
                "error": f"no answer in {self.timeout + 1.0:g} s",
            }
        return verdicts

    def _azure_org(self, credential: _Credential) -> str:
        if credential.url:
            return credential.url
        if self.api_urls.get("azure_devops"):
            return self.api_urls["azure_devops"]
        return next((self.environ[v] for v in _AZURE_ORG_ENV if self.environ.get(v)), "")

    def _choose(self, provider: str, found: List[_Credential]) -> _Credential:
        if provider == "azure_devops":  # prefer one whose organisation is known
            return next((c for c in found if self._azure_org(c)), found[0])
        return found[0]

    def _request(self, provider: str, credential: _Credential) -> Tuple[str, str] | str:
        """(url, Authorization header value), or why this credential cannot be checked."""
        secret = credential.secret
        if provider == "github":
            base = self.api_urls.get("github", "")
            own = urllib.parse.urlsplit(credential.url)
            host = (own.hostname or "").lower()
            if host and host not in ("github.com", "www.github.com", "api.github.com"):
                base = _base_url(f"{own.scheme}://{own.netloc}/api/v3")  # GitHub Enterprise
            return base.rstrip("/") + "/rate_limit", "Bearer " + secret
        if provider == "azure_devops":
            org = self._azure_org(credential)
            if not org:
                return "no organization URL (set AZURE_DEVOPS_ORG_URL or url: in mgit's config)"
            return _azure_org_url(org) + "/_apis/connectionData", _basic("", secret)
        if provider == "bitbucket":
            user = credential.user
            if not user and credential.source.startswith("env:"):
                user = next(
                    (self.environ[v] for v in _BITBUCKET_USER_ENV if self.environ.get(v)), ""
                )
            header = _basic(user, secret) if user else "Bearer " + secret
            return self.api_urls.get("bitbucket", "").rstrip("/") + "/2.0/user", header
        return "no validation method for this provider"  # pragma: no cover - see _VALIDATED

    def _validate_one(self, provider: str, credential: _Credential) -> Dict[str, Any]:
        report: Dict[str, Any] = {"source": credential.source}
        planned = self._request(provider, credential)
        if isinstance(planned, str):
            return dict(report, status=SKIPPED, note=planned)
        url, authorization = planned
        parts = urllib.parse.urlsplit(url)
        report["url"] = _safe_url(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return dict(report, status=SKIPPED, note=f"bad base URL {_safe_url(url)!r}")
        if parts.scheme != "https" and not _loopback(parts.hostname):
            return dict(
                report, status=SKIPPED, note="refusing to send a credential over plain http"
            )
        request = urllib.request.Request(
            url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        # Unredirected: the header is never replayed to wherever a redirect points.
        request.add_unredirected_header("Authorization", authorization)
        opener = _opener(url, self.proxy, self.no_proxy, follow_redirects=False)
        start = time.perf_counter()
        response, reason = _open(opener, request, self.timeout)
        if response is None:
            error = _scrub(reason, credential.secret, authorization)
            return dict(report, status=UNREACHABLE, error=error, response_ms=_ms(start))
        try:
            code = response.getcode() or 0
            headers = response.headers
            body = response.read(65536) if code < 300 else b""
        except OSError as exc:
            error = _scrub(str(exc), credential.secret, authorization)
            return dict(report, status=UNREACHABLE, error=error, response_ms=_ms(start))
        finally:
            response.close()
        report.update(http_status=code, response_ms=_ms(start))
        content_type = headers.get("Content-Type", "") if headers is not None else ""
        state, why = _auth_verdict(provider, code, content_type, body, headers)
        report["status"] = state
        if why:
            report["note" if state == VALID else "error"] = why
        if provider == "github" and headers is not None and state == VALID:
            remaining = headers.get("X-RateLimit-Remaining")
            if remaining is not None and remaining.isdigit():
                report["rate_limit_remaining"] = int(remaining)
            expires = headers.get("GitHub-Authentication-Token-Expiration")
            if expires:
                report["expires"] = expires[:64]
        return report


def _scrub(text: str, *secrets: str) -> str:
    """An error text for the details: masked, the secrets removed, one short line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return mask_credentials(" ".join(text.split()))[:200]


# --------------------------------------------------------------------------- defaults


def register_default_checks(
    checker: HealthChecker,
    *,
    config: Any = None,
    environ: Mapping[str, str] | None = None,
    state_dir: str | None = None,
    disk_path: str | None = None,
    git: str = "git",
    git_search_path: str | None = None,
    min_git_version: Union[str, Sequence[int], None] = None,
    network: bool = True,
    network_hosts: Sequence[Union[str, Tuple[str, int]]] | None = None,
    providers: bool = True,
    provider_endpoints: Sequence[Union[Endpoint, str, Tuple[str, str]]] | None = None,
    proxy: str | None = None,
    no_proxy: str | None = None,
    auth: bool = True,
    validate_credentials: bool | None = None,
    credential_urls: Mapping[str, str] | None = None,
    mgit_config_path: str | None = None,
    proc_root: str = "/proc",
    cgroup_root: str = "/sys/fs/cgroup",
) -> None:
    """Register the standard checks on ``checker`` (see the table in the module docstring).

    ``config`` (a MonitoringConfig) supplies state_dir, disk_path, the disk and memory
    thresholds, ``network_hosts``, ``provider_endpoints``, ``min_git_version`` and
    ``validate_credentials``; explicit arguments (not None) win. ``environ`` is the
    environment to inspect for the HTTPS proxy (HTTPS_PROXY/https_proxy/ALL_PROXY,
    NO_PROXY), mgit's config path and credentials; None means an empty environment.

    Leaving checks out: ``network=False`` / ``providers=False`` / ``auth=False``, or an empty
    host / endpoint list (``MGIT_MONITORING_NETWORK_HOSTS=none``). Air-gapped sites point
    ``network_hosts`` and ``provider_endpoints`` at their own servers instead; the credential
    validation base URLs follow the provider endpoints (:func:`credential_api_urls`) unless
    ``credential_urls`` (provider -> base URL) is given.
    """
    env: Mapping[str, str] = environ if environ is not None else {}
    state = state_dir or getattr(config, "state_dir", None)
    if proxy is None:
        proxy = next(
            (
                env[k]
                for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                if env.get(k)
            ),
            None,
        )
    if no_proxy is None:
        no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or None
    ttl = float(getattr(config, "health_interval_seconds", checker.default_ttl))
    timeout = float(getattr(config, "health_timeout_seconds", checker.default_timeout))
    if min_git_version is None:
        min_git_version = getattr(config, "min_git_version", None)
    if network_hosts is None:
        network_hosts = getattr(config, "network_hosts", DEFAULT_NETWORK_HOSTS)
    if provider_endpoints is None:
        provider_endpoints = getattr(config, "provider_endpoints", DEFAULT_PROVIDER_ENDPOINTS)
    endpoints = [_endpoint(e) for e in provider_endpoints]
    if validate_credentials is None:
        validate_credentials = bool(getattr(config, "validate_credentials", False))

    checker.register_check(
        "system_basics", SystemBasicsCheck(state_dir=state), critical=True, ttl=ttl
    )
    checker.register_check(
        "git_availability",
        GitCheck(git, git_search_path, timeout=timeout, min_version=min_git_version),
        critical=True,
        timeout=timeout + 1.0,
        ttl=max(ttl, 60.0),
    )
    disk = DiskSpaceCheck(
        disk_path or getattr(config, "disk_path", None) or state or ".",
        min_free_bytes=getattr(config, "disk_min_free_bytes", GIB),
        warn_free_percent=getattr(config, "disk_warn_free_percent", 20.0),
        fail_free_percent=getattr(config, "disk_fail_free_percent", 10.0),
    )
    checker.register_check("disk_space", disk, critical=True, ttl=ttl)
    memory = MemoryCheck(
        proc_root,
        cgroup_root,
        warn_percent=getattr(config, "memory_warn_percent", 85.0),
        fail_percent=getattr(config, "memory_fail_percent", 95.0),
    )
    checker.register_check("memory_usage", memory, ttl=ttl)
    if network and network_hosts:
        net = NetworkCheck(
            network_hosts, connect_timeout=min(3.0, timeout), proxy=proxy, no_proxy=no_proxy
        )
        checker.register_check(
            "network_connectivity", net, timeout=net.worst_case_seconds + 1.0, ttl=ttl
        )
    if providers and endpoints:
        prov = ProviderEndpointsCheck(endpoints, timeout=timeout, proxy=proxy, no_proxy=no_proxy)
        checker.register_check(
            "provider_endpoints", prov, timeout=2 * timeout + 2.0, ttl=max(ttl, 300.0)
        )
    if auth:
        path = mgit_config_path or default_mgit_config_path(env)
        check = AuthenticationCheck(
            env,
            path,
            validate=validate_credentials,
            api_urls=credential_api_urls(endpoints) if credential_urls is None else credential_urls,
            timeout=timeout,
            proxy=proxy,
            no_proxy=no_proxy,
        )
        checker.register_check(
            "authentication_status",
            check,
            timeout=timeout + 2.0 if validate_credentials else None,
            ttl=max(ttl, 300.0),
        )
