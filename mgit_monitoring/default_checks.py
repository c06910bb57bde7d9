"""The standard set of checks, and the process-wide default :class:`HealthChecker`.

This module sits above the runner (:mod:`mgit_monitoring.health`) and above every check
module: it is the one place that knows which checks make up mgit's default set, how the
configuration reaches them, and which checker the rest of the package (server, CLI,
integration) gets from :func:`get_health_checker`. The runner knows no check; the checks
know no default.

=======================  ========  =====================================================
check                    critical  measures
=======================  ========  =====================================================
system_basics            yes       Python version; state and temp directories usable
                                   (an unusable directory only degrades)
git_availability         yes       ``git --version`` runs, parses, meets a minimum
disk_space               yes       free bytes / free percent where the store lives
memory_usage             no        cgroup v2/v1 limit and working set, else /proc/meminfo
network_connectivity     no        TCP connect (IPv6 and IPv4, or via the HTTPS proxy)
provider_endpoints       no        HTTPS reachability of the provider APIs (long ttl)
                                   (both probe what mgit's config names, nothing else)
authentication_status    no        which providers have credentials configured (names only);
                                   optionally whether they work (one request each, off by default)
=======================  ========  =====================================================

Critical ones are the things that stop *this* process from working whatever the rest of the
world does; the network and the providers are shared dependencies (a GitHub outage would
take every pod out of service at once if they counted for readiness), so they can only
degrade the overall status. Memory pressure degrades too: the kernel, not a probe, acts on it.
So readiness says whether this process can serve: a state dir it cannot write (a read-only
container, a reader on a store it can only read) degrades with the path in the message, and
an offline site whose mgit config names only its own servers probes only those.

The default checker (:func:`get_health_checker`) registers its ``mgit_health_*`` metrics on
:func:`mgit_monitoring.registry.get_default_registry`, the registry the default metrics
collector exports, so a check registered on it shows up in ``get_metrics_collector()``'s
output once it has run.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from mgit_monitoring.check_support import GIB, Endpoint, as_endpoint, provider_probes
from mgit_monitoring.config import DEFAULT_NETWORK_HOSTS, DEFAULT_PROVIDER_URLS, MonitoringConfig
from mgit_monitoring.credential_check import (
    AuthenticationCheck,
    configured_providers,
    credential_api_urls,
    default_mgit_config_path,
)
from mgit_monitoring.git_check import GitCheck
from mgit_monitoring.health import HealthChecker
from mgit_monitoring.host_checks import (
    MEMORY,
    READ_WRITE,
    DiskSpaceCheck,
    MemoryCheck,
    SystemBasicsCheck,
)
from mgit_monitoring.network_checks import NetworkCheck, ProviderEndpointsCheck
from mgit_monitoring.registry import get_default_registry

__all__ = [
    "MgitConfigTargets",
    "create_default_health_checker",
    "get_health_checker",
    "health_check_endpoint",
    "liveness_probe",
    "readiness_probe",
    "register_default_checks",
    "reset_health_checker",
    "set_health_checker",
]


class MgitConfigTargets:
    """The hosts and provider endpoints mgit's own config names, re-read when the file changes.

    ``path`` is mgit's config file (:func:`default_mgit_config_path`); the file is read
    again only when its modification time, size or inode change, so a check refreshing
    every 30 s costs one ``stat``. A missing file names nothing. See
    :func:`~mgit_monitoring.check_support.provider_probes` for what each provider gives.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: Any = ()
        self._targets: Tuple[List[str], List[Endpoint]] = ([], [])

    def _current(self) -> Tuple[List[str], List[Endpoint]]:
        try:
            info = os.stat(self.path)
            key: Any = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            key = None
        with self._lock:
            if key != self._key:
                found = configured_providers(self.path) if key is not None else []
                self._targets = provider_probes([(p.name, p.kind, p.url) for p in found])
                self._key = key
            return self._targets

    def hosts(self) -> List[str]:
        """``host:port`` of every provider mgit's config names."""
        return list(self._current()[0])

    def endpoints(self) -> List[Endpoint]:
        """An anonymous API endpoint per provider mgit's config names."""
        return list(self._current()[1])


def _overridden(value: Any, default: Tuple[Any, ...]) -> bool:
    """Whether a configured host/endpoint list differs from the package default.

    MonitoringConfig's defaults are the public hosts; they mean "not configured", so the
    checks follow mgit's config instead of the public internet.
    """
    if value is None:
        return False
    try:
        return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value) != default
    except TypeError:
        return True


def register_default_checks(
    checker: HealthChecker,
    *,
    config: Any = None,
    environ: Mapping[str, str] | None = None,
    state_dir: str | None = None,
    store_access: str | None = None,
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

    ``config`` (a MonitoringConfig) supplies the store (``store_dir``: None when persistence
    is off), disk_path, the disk and memory thresholds, ``network_hosts``,
    ``provider_endpoints``, ``min_git_version`` and ``validate_credentials``; explicit
    arguments (not None) win. ``environ`` is the environment to inspect for the HTTPS proxy
    (HTTPS_PROXY/https_proxy/ALL_PROXY, NO_PROXY), mgit's config path and credentials;
    None means an empty environment.

    The store: ``state_dir`` (else the config's store directory) and ``store_access``:
    ``"read-write"`` (default), ``"read-only"`` for a reader such as the server, which needs
    to read the store but not write it, or ``"memory"`` (no store; the default when
    persistence is off). The disk check watches the filesystem that holds the store, or
    ``disk_path``; with neither it watches nothing and says so.

    Targets: the network and provider checks probe the providers named in mgit's own
    config (``mgit_config_path``, else ``$MGIT_CONFIG_PATH`` or
    ``~/.config/mgit/config.yaml``; GitHub Enterprise, Azure DevOps Server and Bitbucket
    Server URLs included), re-read when the file changes, unless ``network_hosts`` /
    ``provider_endpoints`` (arguments, or MGIT_MONITORING_NETWORK_HOSTS /
    MGIT_MONITORING_PROVIDER_ENDPOINTS through ``config``) say otherwise. With nothing to
    probe they are healthy, say so, and touch no network. An empty list
    (``MGIT_MONITORING_NETWORK_HOSTS=none``) or ``network=False`` / ``providers=False`` /
    ``auth=False`` leaves the check out. The credential validation base URLs follow the
    provider endpoints (:func:`credential_api_urls`) unless ``credential_urls`` (provider ->
    base URL) is given.
    """
    env: Mapping[str, str] = environ if environ is not None else {}
    if state_dir is not None:
        state: str | None = state_dir
    elif hasattr(config, "store_dir"):
        state = config.store_dir  # None when monitoring or persistence is off
    else:
        state = getattr(config, "state_dir", None)
    access = store_access or (READ_WRITE if state else MEMORY)
    if state is None:
        access = MEMORY
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
    mgit_path = mgit_config_path or default_mgit_config_path(env)
    targets = MgitConfigTargets(mgit_path)
    if network_hosts is None:
        configured_hosts = getattr(config, "network_hosts", None)
        if _overridden(configured_hosts, DEFAULT_NETWORK_HOSTS):
            network_hosts = configured_hosts
    if provider_endpoints is None:
        configured_endpoints = getattr(config, "provider_endpoints", None)
        if _overridden(configured_endpoints, DEFAULT_PROVIDER_URLS):
            provider_endpoints = configured_endpoints
    if validate_credentials is None:
        validate_credentials = bool(getattr(config, "validate_credentials", False))

    system = SystemBasicsCheck(
        state_dir=state if access != MEMORY else getattr(config, "state_dir", None),
        store_access=access,
    )
    checker.register_check("system_basics", system, critical=True, ttl=ttl)
    checker.register_check(
        "git_availability",
        GitCheck(git, git_search_path, timeout=timeout, min_version=min_git_version),
        critical=True,
        timeout=timeout + 1.0,
        ttl=max(ttl, 60.0),
    )
    watched = (
        disk_path or getattr(config, "disk_path", None) or (state if access != MEMORY else None)
    )
    disk = DiskSpaceCheck(
        watched,
        min_free_bytes=getattr(config, "disk_min_free_bytes", GIB),
        warn_free_percent=getattr(config, "disk_warn_free_percent", 20.0),
        fail_free_percent=getattr(config, "disk_fail_free_percent", 10.0),
        unwatched_message=(
            "no store on disk (persistence off) and no MGIT_MONITORING_DISK_PATH; nothing to watch"
        ),
    )
    checker.register_check("disk_space", disk, critical=True, ttl=ttl)
    memory = MemoryCheck(
        proc_root,
        cgroup_root,
        warn_percent=getattr(config, "memory_warn_percent", 85.0),
        fail_percent=getattr(config, "memory_fail_percent", 95.0),
    )
    checker.register_check("memory_usage", memory, ttl=ttl)
    if network and (network_hosts is None or network_hosts):
        net = NetworkCheck(
            targets.hosts if network_hosts is None else network_hosts,
            connect_timeout=min(3.0, timeout),
            proxy=proxy,
            no_proxy=no_proxy,
            nothing_message=(
                f"no provider in mgit's config ({mgit_path}) and no "
                "MGIT_MONITORING_NETWORK_HOSTS; nothing to check"
            ),
        )
        checker.register_check(
            "network_connectivity", net, timeout=net.worst_case_seconds + 1.0, ttl=ttl
        )
    static_endpoints = (
        None if provider_endpoints is None else [as_endpoint(e) for e in provider_endpoints]
    )
    if providers and (static_endpoints is None or static_endpoints):
        prov = ProviderEndpointsCheck(
            targets.endpoints if static_endpoints is None else static_endpoints,
            timeout=timeout,
            proxy=proxy,
            no_proxy=no_proxy,
            nothing_message=(
                f"no provider in mgit's config ({mgit_path}) and no "
                "MGIT_MONITORING_PROVIDER_ENDPOINTS; nothing to check"
            ),
        )
        checker.register_check(
            "provider_endpoints", prov, timeout=2 * timeout + 2.0, ttl=max(ttl, 300.0)
        )
    if auth:
        if credential_urls is None:
            credential_urls = credential_api_urls(
                targets.endpoints() if static_endpoints is None else static_endpoints
            )
        check = AuthenticationCheck(
            env,
            mgit_path,
            validate=validate_credentials,
            api_urls=credential_urls,
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


def create_default_health_checker(
    registry: Any = None, config: Any = None, **options: Any
) -> HealthChecker:
    """A :class:`HealthChecker` on ``registry`` (None: no metrics) with the seven standard checks.

    ``config`` is a :class:`mgit_monitoring.config.MonitoringConfig` (timeouts, intervals,
    thresholds, state and disk paths, network hosts, provider endpoints, minimum git
    version, credential validation); ``options`` go to :func:`register_default_checks`
    (hosts, proxies, git path, paths for /proc and cgroup, which checks to enable, the
    environment to inspect) and win over ``config``. An empty host or endpoint list leaves
    that check out.
    """
    timeout = float(getattr(config, "health_timeout_seconds", 5.0))
    ttl = float(getattr(config, "health_interval_seconds", 30.0))
    checker = HealthChecker(
        registry, default_timeout=timeout, default_ttl=ttl, deadline=max(10.0, 2 * timeout)
    )
    register_default_checks(checker, config=config, **options)
    return checker


# --------------------------------------------------------------------------- the default

_default_lock = threading.Lock()
_default: HealthChecker | None = None


def get_health_checker() -> HealthChecker:
    """The process-wide default checker, created on first use (see :func:`set_health_checker`).

    The first call builds it with :func:`create_default_health_checker` on
    :func:`mgit_monitoring.registry.get_default_registry` (the registry the default metrics
    collector exports, so ``mgit_health_*`` appear there) from
    ``MonitoringConfig.from_env(strict=False)`` (a bad ``MGIT_MONITORING_*`` value is one
    warning and its default),
    inspecting the process environment for the HTTPS proxy and for which providers have
    credentials.
    """
    global _default
    with _default_lock:
        if _default is None:
            config = MonitoringConfig.from_env(os.environ, strict=False)
            _default = create_default_health_checker(
                get_default_registry(), config=config, environ=os.environ
            )
        return _default


def set_health_checker(checker: HealthChecker | None) -> HealthChecker | None:
    """Install ``checker`` as the default (None: recreate lazily); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, checker
    return previous


def reset_health_checker() -> None:
    """Forget the default checker (stopping its background thread); tests use this."""
    previous = set_health_checker(None)
    if previous is not None:
        previous.stop_background()


async def readiness_probe() -> bool:
    """The original module helper: ``await get_health_checker().is_ready()``."""
    return await get_health_checker().is_ready()


async def liveness_probe() -> bool:
    """The original module helper: ``await get_health_checker().is_alive()``."""
    return await get_health_checker().is_alive()


async def health_check_endpoint() -> Dict[str, Any]:
    """The original module helper: ``await get_health_checker().get_overall_health()``."""
    return await get_health_checker().get_overall_health()
