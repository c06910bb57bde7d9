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
authentication_status    no        which providers have credentials configured (names only)
=======================  ========  =====================================================

Critical ones are the things that stop *this* process from working whatever the rest of the
world does; the network and the providers are shared dependencies (a GitHub outage would
take every pod out of service at once if they counted for readiness), so they can only
degrade the overall status. Memory pressure degrades too: the kernel, not a probe, acts on it.
"""

from __future__ import annotations

import base64
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
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Sequence, Tuple, TypeVar, Union

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
    "default_mgit_config_path",
    "register_default_checks",
]

GIB = 1024**3

DEFAULT_NETWORK_HOSTS: Tuple[str, ...] = (
    "github.com:443",
    "dev.azure.com:443",
    "bitbucket.org:443",
)
"""Hosts the network check connects to unless configured (air-gapped sites replace them)."""


class Endpoint(NamedTuple):
    """A provider API URL to probe: ``kind`` is github, azure_devops, bitbucket or generic."""

    name: str
    url: str
    kind: str = "generic"
    expect_json: bool = True


DEFAULT_PROVIDER_ENDPOINTS: Tuple[Endpoint, ...] = (
    # /rate_limit does not count against GitHub's (anonymous) rate limit.
    Endpoint("github", "https://api.github.com/rate_limit", "github"),
    # The public status API needs no organisation and no credentials.
    Endpoint(
        "azure_devops",
        "https://status.dev.azure.com/_apis/status/health?api-version=7.1-preview.1",
        "azure_devops",
    ),
    # Anonymous: answers 401 with JSON, which proves the API is up without spending quota.
    Endpoint("bitbucket", "https://api.bitbucket.org/2.0/user", "bitbucket"),
)
"""Endpoints of the provider check (GitHub Enterprise / Azure DevOps Server: configure yours)."""

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
_T = TypeVar("_T")


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 1)


def _parallel(tasks: Sequence[Callable[[], _T]], timeout: float) -> List[Union[_T, None]]:
    """Run ``tasks`` on daemon threads; results in order, None for any not done in ``timeout``.

    Daemon threads rather than a pool: a task stuck in DNS cannot be cancelled, and an
    executor's worker would block interpreter exit. The runner's single-flight bounds how
    many can exist.
    """
    results: List[Union[_T, None]] = [None] * len(tasks)
    done = threading.Semaphore(0)

    def run(index: int, task: Callable[[], _T]) -> None:
        try:
            results[index] = task()
        finally:
            done.release()

    for index, task in enumerate(tasks):
        threading.Thread(target=run, args=(index, task), daemon=True).start()
    end = time.monotonic() + timeout
    for _ in tasks:
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
            details.update(returncode=code, stderr=mask_credentials(err.strip()[:300]))
            return HealthCheckResult(
                self.name, UNHEALTHY, f"Git command failed (exit code {code})", details
            )
        first = out.strip().splitlines()[0] if out.strip() else ""
        details["git_version"] = first[:200]
        match = _GIT_VERSION.search(first)
        if not match:
            return HealthCheckResult(
                self.name, DEGRADED, f"could not parse the git version from {first[:80]!r}", details
            )
        parsed = tuple(int(p) for p in match.groups() if p is not None)
        version = ".".join(map(str, parsed))
        extra: Dict[str, Any] = {"observed_value": version, "measurement": "version"}
        if self.min_version and parsed < self.min_version:
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

    @property
    def worst_case_seconds(self) -> float:
        """How long one run can take: DNS plus two connects (and a CONNECT reply)."""
        return self.dns_timeout + 3 * self.connect_timeout

    def _resolve(self, host: str, port: int) -> Tuple[str, Any]:
        box: List[Any] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                box.append(("ok", self.resolver(host, port, 0, socket.SOCK_STREAM)))
            except (OSError, UnicodeError) as exc:
                box.append(("error", exc))
            finally:
                done.set()

        threading.Thread(target=lookup, daemon=True).start()
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
                        verdict = _proxy_connect(sock, host, port, via.auth)
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


def _proxy_connect(sock: socket.socket, host: str, port: int, auth: str | None) -> str | None:
    """Ask an HTTP proxy to tunnel to ``host:port``; None on success, else why not."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(auth.encode()).decode())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reply = b""
    while b"\r\n" not in reply and len(reply) < 4096:
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
    return Endpoint(value[0], value[1], _kind_of(value[1]))


def _kind_of(url: str) -> str:
    low = url.lower()
    if "github" in low:
        return "github"
    if "dev.azure.com" in low or "visualstudio.com" in low:
        return "azure_devops"
    if "bitbucket" in low:
        return "bitbucket"
    return "generic"


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

    def _fetch(self, endpoint: Endpoint) -> Dict[str, Any]:
        host = urllib.parse.urlsplit(endpoint.url).hostname or ""
        proxies = (
            {}
            if not self.proxy or _bypass(host, self.no_proxy)
            else {"http": self.proxy, "https": self.proxy}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        request = urllib.request.Request(
            endpoint.url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        report: Dict[str, Any] = {"url": _safe_url(endpoint.url)}
        start = time.perf_counter()
        try:
            response = opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            response = exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, socket.timeout) or isinstance(exc, socket.timeout):
                reason = f"timed out after {self.timeout:g} s"
            report.update(
                status="unreachable",
                error=mask_credentials(str(reason))[:200],
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
        found = _parallel(tasks, self.timeout * 2 + 1.0)
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
        if endpoint.expect_json:
            is_json = "json" in content_type.lower()
            if is_json:
                try:
                    json.loads(body.decode("utf-8") or "null")
                except ValueError:
                    is_json = False
            if not is_json:
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


def _read_mgit_providers(path: str) -> List[Dict[str, Any]]:
    """Provider entries of mgit's config.yaml: name, type hints and whether a secret is set.

    A minimal reader for the block-style mapping mgit writes (``providers: {name: {url,
    user, token}}``); secret values are tested for emptiness and dropped on the spot.
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
            current = {"name": key, "keys": set(), "hints": [], "credential": False}
            providers.append(current)
        elif current is not None and indent > child_indent:
            value = _scalar(value)
            current["keys"].add(key.lower())
            if key.lower() in _SECRET_KEYS:
                current["credential"] = current["credential"] or bool(value)
            elif key.lower() in ("url", "org_url", "default_org_url", "workspace"):
                current["hints"].append(value)
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


class AuthenticationCheck:
    """Which providers have credentials configured: environment variables and mgit's config.

    Only variable *names*, provider *names* and booleans are reported, never a value. The
    config file's permissions are checked too (a token readable by other users degrades).
    Healthy when at least one provider has a credential, degraded when none does.
    Credentials are not validated against the providers (that would spend quota and turn
    a probe into an authentication attempt); the provider check covers reachability.
    """

    name = "authentication_status"

    def __init__(
        self,
        environ: Mapping[str, str],
        config_path: str | None = None,
        env_vars: Mapping[str, Sequence[str]] = DEFAULT_CREDENTIAL_ENV,
    ) -> None:
        self.environ = environ
        self.config_path = config_path
        self.env_vars = env_vars

    def __call__(self) -> HealthCheckResult:
        sources: Dict[str, List[str]] = {p: [] for p in self.env_vars}
        for provider, names in self.env_vars.items():
            for var in names:
                if self.environ.get(var, "").strip():
                    sources[provider].append(f"env:{var}")
        details: Dict[str, Any] = {}
        problems = []
        path = self.config_path
        if path:
            details["config_file"] = path
            details["config_file_exists"] = os.path.isfile(path)
            if details["config_file_exists"]:
                try:
                    entries = _read_mgit_providers(path)
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                except OSError as exc:
                    problems.append(f"cannot read {path}: {exc.strerror or exc}")
                    entries, mode = [], 0
                for entry in entries:
                    kind = _provider_type(entry)
                    sources.setdefault(kind, [])
                    if entry["credential"]:
                        sources[kind].append(f"config:{entry['name']}")
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
        extra: Dict[str, Any] = {"observed_value": len(configured), "measurement": "credentials"}
        if problems:
            return HealthCheckResult(self.name, DEGRADED, "; ".join(problems), details, **extra)
        if not configured:
            return HealthCheckResult(
                self.name, DEGRADED, "No provider credentials configured", details, **extra
            )
        return HealthCheckResult(
            self.name,
            HEALTHY,
            f"Credentials configured for: {', '.join(configured)}",
            details,
            **extra,
        )


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
    network_hosts: Sequence[Union[str, Tuple[str, int]]] = DEFAULT_NETWORK_HOSTS,
    providers: bool = True,
    provider_endpoints: Sequence[
        Union[Endpoint, str, Tuple[str, str]]
    ] = DEFAULT_PROVIDER_ENDPOINTS,
    proxy: str | None = None,
    no_proxy: str | None = None,
    auth: bool = True,
    mgit_config_path: str | None = None,
    proc_root: str = "/proc",
    cgroup_root: str = "/sys/fs/cgroup",
) -> None:
    """Register the standard checks on ``checker`` (see the table in the module docstring).

    ``config`` (a MonitoringConfig) supplies state_dir, disk_path and the disk and memory
    thresholds; explicit arguments win. ``environ`` is the environment to inspect for the
    HTTPS proxy (HTTPS_PROXY/https_proxy/ALL_PROXY, NO_PROXY), mgit's config path and
    credential variable names; None means an empty environment. ``network=False`` /
    ``providers=False`` / ``auth=False`` leave those checks out (air-gapped sites can
    instead point ``network_hosts`` and ``provider_endpoints`` at their own servers).
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
    if network:
        net = NetworkCheck(
            network_hosts, connect_timeout=min(3.0, timeout), proxy=proxy, no_proxy=no_proxy
        )
        checker.register_check(
            "network_connectivity", net, timeout=net.worst_case_seconds + 1.0, ttl=ttl
        )
    if providers:
        prov = ProviderEndpointsCheck(
            provider_endpoints, timeout=timeout, proxy=proxy, no_proxy=no_proxy
        )
        checker.register_check(
            "provider_endpoints", prov, timeout=2 * timeout + 2.0, ttl=max(ttl, 300.0)
        )
    if auth:
        path = mgit_config_path or default_mgit_config_path(env)
        checker.register_check(
            "authentication_status", AuthenticationCheck(env, path), ttl=max(ttl, 300.0)
        )
