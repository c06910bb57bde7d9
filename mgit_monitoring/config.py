"""Configuration of mgit_monitoring: one immutable object from defaults, environment, arguments.

Every other module takes its settings through its constructor; this module (and the CLI) is
the only place that reads ``MGIT_MONITORING_*`` variables, and it does so only when
:meth:`MonitoringConfig.from_env` is called with a mapping (``os.environ`` when ``None``),
never at import.

Two ways to read the environment, chosen explicitly by the caller:

- ``from_env(strict=True)`` (the default; the CLI and the server): a bad value raises
  :class:`~mgit_monitoring.errors.ConfigError` with a one-line message naming the variable,
  and the command exits 2 with it.
- ``from_env(strict=False)`` (inside an application: ``setup_monitoring_integration()``,
  the decorators and the package defaults): a bad variable is ONE warning naming it (logger
  ``mgit_monitoring.config``, once per variable and value for the life of the process) and
  its default is used, except ``MGIT_MONITORING_ENABLED``, which then means disabled (see
  :func:`enabled_from_env`). Monitoring must never stop mgit. Keyword overrides are code, not
  environment: a bad one raises in both modes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Tuple

from mgit_monitoring.errors import ConfigError
from mgit_monitoring.warn_once import WarnOnce

__all__ = [
    "DEFAULT_NETWORK_HOSTS",
    "DEFAULT_PROVIDER_URLS",
    "ENV_PREFIX",
    "ENV_WARNINGS",
    "MonitoringConfig",
    "default_state_dir",
    "enabled_from_env",
    "parse_bool",
]

ENV_PREFIX = "MGIT_MONITORING_"
"""Prefix of every environment variable this package reads."""

DEFAULT_NETWORK_HOSTS: Tuple[str, ...] = (
    "github.com:443",
    "dev.azure.com:443",
    "bitbucket.org:443",
)
"""The public providers' hosts (what :class:`~mgit_monitoring.network_checks.NetworkCheck`
probes when constructed without hosts). Not a configuration default: an unset
``network_hosts`` means "the providers in mgit's own config"."""

DEFAULT_PROVIDER_URLS: Tuple[Tuple[str, str], ...] = (
    # /rate_limit does not count against GitHub's (anonymous) rate limit.
    ("github", "https://api.github.com/rate_limit"),
    # The public status API needs no organisation and no credentials.
    (
        "azure_devops",
        "https://status.dev.azure.com/_apis/status/health?api-version=7.1-preview.1",
    ),
    # Anonymous: answers 401 with JSON, which proves the API is up without spending quota.
    ("bitbucket", "https://api.bitbucket.org/2.0/user"),
)
"""The public providers' anonymous API endpoints, as (name, url) pairs. Not a configuration
default: an unset ``provider_endpoints`` means "the providers in mgit's own config"."""

_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))
_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
}
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)
_APP_DIR = "mgit-monitoring"
_DISABLED = frozenset(("", "none", "off"))
_ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_VERSION_RE = re.compile(r"^\d+(?:\.\d+){0,2}$")

ENV_WARNINGS = WarnOnce("mgit_monitoring.config", limit=64)
"""Which bad variables the lenient reading already warned about, keyed by (variable, value):
one warning per variable for the life of the process however many times the configuration
is read (tests clear it; so does ``reset_monitoring_integration``)."""


def _bad(label: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{label}={value!r}: {why}")


def parse_bool(value: Any, label: str = "value") -> bool:
    """Parse 1/0, true/false, yes/no, on/off (any case, surrounding blanks ignored)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _bad(label, value, "expected one of 1/0, true/false, yes/no, on/off")


def _parse_level(value: Any, label: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        name = logging.getLevelName(value)
        if isinstance(name, str) and name in _LEVELS:
            return _LEVELS[name]
    elif isinstance(value, str) and value.strip().upper() in _LEVELS:
        return _LEVELS[value.strip().upper()]
    raise _bad(label, value, "expected DEBUG, INFO, WARNING, ERROR or CRITICAL")


def _parse_host(value: Any, label: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        try:
            return str(ipaddress.ip_address(bare))
        except ValueError:
            if _HOSTNAME_RE.match(bare):
                return bare
    raise _bad(label, value, "expected an IP address or a host name")


def _number(value: Any, label: str, kind: type) -> Any:
    if isinstance(value, bool):
        raise _bad(label, value, f"expected {'an integer' if kind is int else 'a number'}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is int and not float(value).is_integer():
            raise _bad(label, value, "expected an integer")
        result = kind(value)
    else:
        try:
            result = kind(str(value).strip())
        except ValueError:
            raise _bad(
                label, value, f"expected {'an integer' if kind is int else 'a number'}"
            ) from None
    if kind is float and (result != result or result in (float("inf"), float("-inf"))):
        raise _bad(label, value, "expected a finite number")
    return result


def _ranged(
    kind: type, low: float, high: float | None, low_open: bool = False
) -> Callable[[Any, str], Any]:
    def parse(value: Any, label: str) -> Any:
        number = _number(value, label, kind)
        too_low = number <= low if low_open else number < low
        if too_low or (high is not None and number > high):
            bound = f"({low}" if low_open else f"[{low}"
            upper = f"{high}]" if high is not None else "inf)"
            raise _bad(label, value, f"expected a value in {bound}, {upper}")
        return number

    return parse


def _parse_size(value: Any, label: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _bad(label, value, "expected a size >= 0")
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if match and match.group(2).lower() in _UNITS:
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise _bad(label, value, "expected a byte count such as 1073741824, 512MiB or 1G")


def _parse_path(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip() and "\0" not in value:
        return value
    raise _bad(label, value, "expected a directory path")


def _items(value: Any, label: str, what: str) -> Tuple[Any, ...]:
    """A comma-separated string or a sequence as a tuple of items; () for none/off/""."""
    if isinstance(value, str):
        if value.strip().lower() in _DISABLED:
            return ()
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise _bad(label, value, f"expected a comma-separated {what} list, or none")


def _host_port(item: Any) -> str | None:
    """``host[:port]``/``[ipv6][:port]``/(host, port) normalised to ``host:port``, else None."""
    if isinstance(item, tuple) and len(item) == 2:
        host, port = str(item[0]), str(item[1])
        if ":" in host:
            host = f"[{host}]"
    elif isinstance(item, str):
        match = re.match(r"^\[([^\]]+)\](?::(\d{1,5}))?$", item.strip()) or re.match(
            r"^([^:\[\]]+)(?::(\d{1,5}))?$", item.strip()
        )
        if match is None:
            return None
        bracketed = item.strip().startswith("[")
        host, port = match.group(1), match.group(2) or "443"
        host = f"[{host}]" if bracketed else host
    else:
        return None
    if not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1])}]:{int(port)}"
        except ValueError:
            return None
    try:
        return f"{ipaddress.IPv4Address(host)}:{int(port)}"
    except ValueError:
        pass
    return f"{host}:{int(port)}" if _HOSTNAME_RE.match(host) else None


def _parse_hosts(value: Any, label: str) -> Tuple[str, ...] | None:
    if value is None:
        return None  # follow mgit's config
    hosts = []
    for item in _items(value, label, "host[:port]"):
        host = _host_port(item)
        if host is None:
            raise _bad(
                label,
                value,
                f"bad entry {item!r}: expected host, host:port or [IPv6]:port (port 1-65535)",
            )
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def _endpoint_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(ch.isspace() for ch in url)
    )


def _redact_userinfo(value: Any) -> Any:
    """``value`` with any ``user:password@`` in URLs replaced, so errors never echo it."""
    if isinstance(value, str):
        return re.sub(r"(?<=://)[^/@\s,]*@", "***@", value)
    if isinstance(value, tuple):
        return tuple(_redact_userinfo(v) for v in value)
    return value


def _parse_endpoints(value: Any, label: str) -> Tuple[Tuple[str, str], ...] | None:
    if value is None:
        return None  # follow mgit's config
    if isinstance(value, Mapping):
        value = tuple(value.items())
    if isinstance(value, list):
        value = tuple(value)
    try:
        return _endpoint_pairs(value, label)
    except ConfigError:
        # Report the error found in the redacted value: the message quotes the value.
        redacted = _redact_userinfo(value)
        try:
            _endpoint_pairs(redacted, label)
        except ConfigError as exc:
            raise exc from None
        raise _bad(label, redacted, "no user:password@ in URLs") from None


def _endpoint_pairs(value: Any, label: str) -> Tuple[Tuple[str, str], ...]:
    pairs: Dict[str, str] = {}
    for item in _items(value, label, "name=url"):
        if isinstance(item, str):
            name, sep, url = (part.strip() for part in item.partition("="))
        elif isinstance(item, tuple) and len(item) >= 2:  # (name, url) or an Endpoint
            name, sep, url = str(item[0]), "=", str(item[1])
        else:
            name, sep, url = "", "", ""
        if not sep or not _ENDPOINT_NAME_RE.match(name) or not _endpoint_url(url):
            raise _bad(label, value, f"bad entry {item!r}: expected name=http(s)://host/path")
        if "@" in urllib.parse.urlsplit(url).netloc:
            # A credential in a URL would end up in health output and logs.
            raise _bad(label, value, f"endpoint {name!r}: no user:password@ in URLs")
        if name in pairs:
            raise _bad(label, value, f"endpoint name {name!r} given twice")
        pairs[name] = url
    return tuple(pairs.items())


def _parse_version(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(
        isinstance(p, int) and not isinstance(p, bool) for p in value
    ):
        value = ".".join(str(p) for p in value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _DISABLED:
            return None
        if _VERSION_RE.match(text):
            return ".".join(str(int(p)) for p in text.split("."))
    raise _bad(label, value, "expected a version such as 2.30 or 2.30.1, or none")


#: field name -> (environment variable, parser). Order is the constructor's positional order
#: (new fields go last).
_FIELDS: Dict[str, Tuple[str, Callable[[Any, str], Any]]] = {
    "enabled": ("ENABLED", parse_bool),
    "log_level": ("LOG_LEVEL", _parse_level),
    "host": ("HOST", _parse_host),
    "port": ("PORT", _ranged(int, 0, 65535)),
    "state_dir": ("STATE_DIR", _parse_path),
    "persist": ("PERSIST", parse_bool),
    "flush_interval_seconds": ("FLUSH_INTERVAL", _ranged(float, 0.0, None, low_open=True)),
    "store_timeout_seconds": ("STORE_TIMEOUT", _ranged(float, 0.0, 600.0)),
    "performance_retention_hours": ("PERF_RETENTION_HOURS", _ranged(float, 0.0, None, True)),
    "performance_max_traces": ("PERF_MAX_TRACES", _ranged(int, 1, None)),
    "trace_timeout_seconds": ("TRACE_TIMEOUT", _ranged(float, 0.0, None, low_open=True)),
    "anomaly_avg_factor": ("ANOMALY_AVG_FACTOR", _ranged(float, 1.0, None)),
    "anomaly_p95_factor": ("ANOMALY_P95_FACTOR", _ranged(float, 1.0, None)),
    "disk_path": ("DISK_PATH", _parse_path),
    "disk_min_free_bytes": ("DISK_MIN_FREE_BYTES", _parse_size),
    "disk_warn_free_percent": ("DISK_WARN_FREE_PERCENT", _ranged(float, 0.0, 100.0)),
    "disk_fail_free_percent": ("DISK_FAIL_FREE_PERCENT", _ranged(float, 0.0, 100.0)),
    "memory_warn_percent": ("MEMORY_WARN_PERCENT", _ranged(float, 0.0, 100.0)),
    "memory_fail_percent": ("MEMORY_FAIL_PERCENT", _ranged(float, 0.0, 100.0)),
    "health_interval_seconds": ("HEALTH_INTERVAL", _ranged(float, 0.0, None, low_open=True)),
    "health_timeout_seconds": ("HEALTH_TIMEOUT", _ranged(float, 0.0, None, low_open=True)),
    "network_hosts": ("NETWORK_HOSTS", _parse_hosts),
    "provider_endpoints": ("PROVIDER_ENDPOINTS", _parse_endpoints),
    "min_git_version": ("MIN_GIT_VERSION", _parse_version),
    "validate_credentials": ("VALIDATE_CREDENTIALS", parse_bool),
    "log_background": ("LOG_BACKGROUND", parse_bool),  # last: positional order is kept
}


_ALL_INTERFACES = "0.0.0.0"  # nosec B104 # the documented default (README): a container server

#: field name -> default (what the bare constructor uses).
_DEFAULTS: Dict[str, Any] = {
    "enabled": True,
    "log_level": "INFO",
    "host": _ALL_INTERFACES,
    "port": 8080,
    "state_dir": None,
    "persist": True,
    "flush_interval_seconds": 5.0,
    "store_timeout_seconds": 5.0,
    "performance_retention_hours": 720.0,
    "performance_max_traces": 10000,
    "trace_timeout_seconds": 21600.0,
    "anomaly_avg_factor": 3.0,
    "anomaly_p95_factor": 2.0,
    "disk_path": None,
    "disk_min_free_bytes": 1024**3,
    "disk_warn_free_percent": 20.0,
    "disk_fail_free_percent": 10.0,
    "memory_warn_percent": 85.0,
    "memory_fail_percent": 95.0,
    "health_interval_seconds": 30.0,
    "health_timeout_seconds": 5.0,
    "network_hosts": None,
    "provider_endpoints": None,
    "min_git_version": None,
    "validate_credentials": False,
    "log_background": True,
}


def enabled_from_env(environ: Mapping[str, str] | None = None, *, strict: bool = True) -> bool:
    """``MGIT_MONITORING_ENABLED`` alone (default true).

    What the package defaults created before any setup consult: a bad value in an
    unrelated variable (say ``MGIT_MONITORING_PORT``) must not cancel
    ``MGIT_MONITORING_ENABLED=false``, as building the whole configuration would.

    A value that is not a boolean raises ConfigError with ``strict``; without it, it is one
    warning (:data:`ENV_WARNINGS`) and the answer is False: monitoring off. Someone who set
    the variable at all most likely meant to change the default (on), and off is the
    choice that cannot touch mgit (no files, threads or output).
    """
    env = os.environ if environ is None else environ
    var = ENV_PREFIX + _FIELDS["enabled"][0]
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return True
    try:
        return parse_bool(raw, var)
    except ConfigError as exc:
        if strict:
            raise
        _warn_bad(var, raw, exc, "enabled")
        return False


def _warn_bad(var: str, raw: str, exc: ConfigError, name: str) -> None:
    """The one warning of the lenient reading for a bad variable; never raises."""
    if name == "enabled":
        outcome = "monitoring is disabled until it is fixed"
    else:
        outcome = f"using the default ({_default(name)!r})"
    try:
        ENV_WARNINGS.warn((var, raw), "%s; %s", exc, outcome)
    except Exception:  # noqa: BLE001  # nosec B110 # logging itself may be what is broken
        pass


def default_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """The XDG state directory for mgit-monitoring, computed from ``environ`` only.

    ``$XDG_STATE_HOME/mgit-monitoring`` when XDG_STATE_HOME is an absolute path (the XDG
    Base Directory spec says relative values are ignored), else
    ``$HOME/.local/state/mgit-monitoring``; on Windows ``%LOCALAPPDATA%\\mgit-monitoring``.
    Without HOME in the mapping the account's home directory from the password database is used.
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, _APP_DIR)
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return os.path.join(env["LOCALAPPDATA"], _APP_DIR)
    home = env.get("HOME", "") or _account_home()
    return os.path.join(home, ".local", "state", _APP_DIR)


def _expand_user(path: str | None, env: Mapping[str, str]) -> str | None:
    """``~`` and ``~/x`` expanded with the mapping's HOME (os.path.expanduser reads os.environ)."""
    if path is None or not path.startswith("~"):
        return path
    head, sep, rest = path[1:].partition(os.sep)
    if head:  # ~otheruser/...: only the password database knows
        return os.path.expanduser(path)
    home = env.get("HOME", "") or _account_home()
    return os.path.join(home, rest) if sep else home


def _account_home() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError, AttributeError):
        # No password database (Windows, or an unnamed uid in a container).
        return os.path.expanduser("~")


class MonitoringConfig:
    """Every setting of mgit_monitoring, validated on construction.

    Precedence, lowest first: the defaults below < environment variables < keyword
    overrides passed to :meth:`from_env` (the CLI passes its flags this way). An environment
    variable that is set but empty counts as unset. Constructing the class directly uses
    only the defaults and the arguments; it reads no environment.

    Fields, their environment variables (``MGIT_MONITORING_`` + the name shown) and defaults:

    - ``enabled`` (ENABLED): true. 1/0, true/false, yes/no, on/off, any case.
    - ``log_level`` (LOG_LEVEL): INFO. DEBUG, INFO, WARNING (WARN), ERROR, CRITICAL.
    - ``log_background`` (LOG_BACKGROUND): true; once :func:`~mgit_monitoring.integration.
      setup_monitoring_integration` applies it, structured log lines (the decorators' and
      every :class:`~mgit_monitoring.structured_logger.StructuredLogger`'s) are built and
      handed to logging's handlers by one background thread, in order, so a monitored
      operation does not wait for formatting and writes (see
      :mod:`mgit_monitoring.log_writer`); false: on the calling thread.
    - ``host`` (HOST): 0.0.0.0, the server's bind address (IP address or host name).
    - ``port`` (PORT): 8080, in 0..65535; 0 picks a free port.
    - ``state_dir`` (STATE_DIR): from_env uses ``$XDG_STATE_HOME/mgit-monitoring`` or
      ``~/.local/state/mgit-monitoring`` (:func:`default_state_dir`); the bare constructor
      leaves it None, which means memory only.
    - ``persist`` (PERSIST): true; share history through the sqlite store in state_dir.
    - ``flush_interval_seconds`` (FLUSH_INTERVAL): 5.0; how often buffered records are
      written to the store in one batch.
    - ``store_timeout_seconds`` (STORE_TIMEOUT): 5.0; sqlite busy timeout, the bound a
      write waits for another process's lock before it is dropped.
    - ``performance_retention_hours`` (PERF_RETENTION_HOURS): 720 (30 days) of trace history.
    - ``performance_max_traces`` (PERF_MAX_TRACES): 10000 completed traces kept in memory.
    - ``trace_timeout_seconds`` (TRACE_TIMEOUT): 21600 (6 h); a trace never ended expires.
    - ``anomaly_avg_factor`` (ANOMALY_AVG_FACTOR): 3.0; slower than this x baseline average
      is an anomaly.
    - ``anomaly_p95_factor`` (ANOMALY_P95_FACTOR): 2.0; slower than this x baseline p95 is
      an anomaly.
    - ``disk_path`` (DISK_PATH): None; the directory the disk check watches (None: the
      health checker's choice, the state dir).
    - ``disk_min_free_bytes`` (DISK_MIN_FREE_BYTES): 1 GiB; fail below. Accepts 512MiB, 1G...
    - ``disk_warn_free_percent`` (DISK_WARN_FREE_PERCENT): 20.0; warn below this % free.
    - ``disk_fail_free_percent`` (DISK_FAIL_FREE_PERCENT): 10.0; fail below this % free.
    - ``memory_warn_percent`` (MEMORY_WARN_PERCENT): 85.0; warn above this % used.
    - ``memory_fail_percent`` (MEMORY_FAIL_PERCENT): 95.0; fail above this % used.
    - ``health_interval_seconds`` (HEALTH_INTERVAL): 30.0; background re-check period.
    - ``health_timeout_seconds`` (HEALTH_TIMEOUT): 5.0; bound on one check.
    - ``network_hosts`` (NETWORK_HOSTS): None, meaning "follow mgit's config": the network
      check connects to the hosts of the providers mgit's own config names (none: healthy,
      nothing checked, no network touched). Set, it overrides that: comma-separated
      ``host[:port]`` (port 443 when omitted), IPv6 literals in brackets
      (``[2001:db8::1]:443``). ``none`` or ``off`` disables the network check; so does
      ``()`` or ``""`` passed as an argument (an empty *variable* counts as unset, like
      every other, so it follows mgit's config).
    - ``provider_endpoints`` (PROVIDER_ENDPOINTS): None, meaning "follow mgit's config" (an
      anonymous API endpoint per provider it names). Set, it overrides that:
      comma-separated ``name=url`` with http(s) URLs and no ``user:password@``. Names
      github, azure_devops and bitbucket tell the checks which API it is (GitHub Enterprise:
      ``github=https://ghe.example/api/v3/rate_limit``). ``none`` or ``off`` disables the
      provider endpoint check. (:data:`DEFAULT_PROVIDER_URLS` lists the public ones.)
    - ``min_git_version`` (MIN_GIT_VERSION): None (no minimum); e.g. ``2.30`` or ``2.30.1``.
    - ``validate_credentials`` (VALIDATE_CREDENTIALS): false; when true the authentication
      check makes one authenticated request per provider with a credential configured
      (GitHub ``/rate_limit``, Azure DevOps ``connectionData``, Bitbucket ``/2.0/user``).

    ``MGIT_MONITORING_LOG_FORMAT`` (default ``default``; ``ecs``, ``gcp``) is not a field: it
    is read by :func:`~mgit_monitoring.logs.setup_structured_logging` when it is called
    without ``profile``.

    A bad value raises :class:`~mgit_monitoring.errors.ConfigError` with a one-line message
    naming the variable (or the field, for arguments) and the value, e.g.
    ``MGIT_MONITORING_PORT='80a': expected an integer``; ``from_env(strict=False)`` turns a
    bad *variable* into one warning and its default instead (see the module docstring).
    """

    enabled: bool
    log_level: str
    log_background: bool
    host: str
    port: int
    state_dir: str | None
    persist: bool
    flush_interval_seconds: float
    store_timeout_seconds: float
    performance_retention_hours: float
    performance_max_traces: int
    trace_timeout_seconds: float
    anomaly_avg_factor: float
    anomaly_p95_factor: float
    disk_path: str | None
    disk_min_free_bytes: int
    disk_warn_free_percent: float
    disk_fail_free_percent: float
    memory_warn_percent: float
    memory_fail_percent: float
    health_interval_seconds: float
    health_timeout_seconds: float
    network_hosts: Tuple[str, ...] | None
    provider_endpoints: Tuple[Tuple[str, str], ...] | None
    min_git_version: str | None
    validate_credentials: bool

    __slots__ = (*_FIELDS, "__weakref__")
    __match_args__ = tuple(_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Positional arguments in field order, or keywords; each validated and normalised
        ("warn" -> "WARNING", "8080" -> 8080). A field not given takes its default."""
        if len(args) > len(_FIELDS):
            msg = f"MonitoringConfig takes at most {len(_FIELDS)} positional arguments"
            raise TypeError(msg)
        values = dict(_DEFAULTS)
        values.update(zip(_FIELDS, args))
        for name, value in kwargs.items():
            if name not in _DEFAULTS:
                raise TypeError(f"MonitoringConfig got an unexpected keyword argument {name!r}")
            if list(_FIELDS).index(name) < len(args):
                raise TypeError(f"MonitoringConfig got multiple values for argument {name!r}")
            values[name] = value
        for name, (_var, parser) in _FIELDS.items():
            object.__setattr__(self, name, parser(values[name], name))
        problems = _pair_problems(self.__getattribute__, {name: name for name in _FIELDS})
        if problems:
            raise ConfigError(problems[0][1])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"MonitoringConfig is immutable: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"MonitoringConfig is immutable: cannot delete {name!r}")

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> Tuple[Any, ...]:  # pickle and copy: rebuilt through __init__
        return (type(self), self._values())

    def replace(self, **changes: Any) -> MonitoringConfig:
        """A copy with ``changes`` (field names), validated as on construction.

        Raises:
            TypeError: an unknown field name (as ``dataclasses.replace`` does).
            ConfigError: a bad value.
        """
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return type(self)(**values)

    __replace__ = replace  # copy.replace() (3.13)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, strict: bool = True, **overrides: Any
    ) -> MonitoringConfig:
        """Build a configuration: defaults < ``environ`` (``os.environ`` if None) < ``overrides``.

        ``overrides`` are field names (``port=0``, ``state_dir="/tmp/x"``); a value of ``None``
        means "not given", so a CLI can pass its unset argparse flags straight through.
        Unknown field names raise ConfigError.

        ``strict`` (the default, for the CLI and the server): a bad variable raises
        ConfigError naming it. ``strict=False`` (for an application): a bad variable is one
        warning naming it (:data:`ENV_WARNINGS`) and its default is used; a bad
        ``MGIT_MONITORING_ENABLED`` disables monitoring (:func:`enabled_from_env`), and a
        pair of thresholds set out of order by variables falls back to both defaults.
        ``overrides`` are validated strictly in both modes.
        """
        env = os.environ if environ is None else environ
        unknown = sorted(set(overrides) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        values: Dict[str, Any] = {}
        labels: Dict[str, str] = {}
        for name, (suffix, parser) in _FIELDS.items():
            var = ENV_PREFIX + suffix
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                try:
                    values[name] = parser(raw, var)
                    labels[name] = var
                except ConfigError as exc:
                    if strict:
                        raise
                    _warn_bad(var, raw, exc, name)
                    if name == "enabled":
                        values[name] = False
            given = overrides.get(name)
            if given is not None:
                values[name] = parser(given, name)
                labels[name] = name
        if values.get("state_dir") is None:
            values["state_dir"] = default_state_dir(env)
        for name in ("state_dir", "disk_path"):
            values[name] = _expand_user(values.get(name), env)
        for name in _FIELDS:
            labels.setdefault(name, name)
        # Cross-field checks name the variables that set the values, not just the fields.
        for low, message in _pair_problems(lambda n: values.get(n, _default(n)), labels):
            high = _PAIRS[low]
            from_env = [n for n in (low, high) if labels[n] != n]
            if strict or not from_env:
                raise ConfigError(message)
            for name in from_env:  # the variables' values are dropped: both defaults, or
                values.pop(name, None)  # the override against the other's default
            try:
                ENV_WARNINGS.warn(
                    tuple((labels[n], env.get(labels[n])) for n in from_env),
                    "%s; using the default%s",
                    message,
                    " for " + " and ".join(labels[n] for n in from_env),
                )
            except Exception:  # noqa: BLE001  # nosec B110 # logging itself may be broken
                pass
            for name in from_env:
                labels[name] = name
        if not strict:
            leftover = _pair_problems(lambda n: values.get(n, _default(n)), labels)
            if leftover:  # an override against a default: the code's mistake, not the env's
                raise ConfigError(leftover[0][1])
        return cls(**values)

    @property
    def store_dir(self) -> str | None:
        """The directory of the shared store, or None when persistence is off (memory only)."""
        if not (self.enabled and self.persist) or self.state_dir is None:
            return None
        return os.path.abspath(self.state_dir)

    def as_dict(self) -> Dict[str, Any]:
        """The settings as a JSON-ready dict (none of them is a secret)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @staticmethod
    def env_var(field_name: str) -> str:
        """The environment variable that sets ``field_name`` (``port`` -> MGIT_MONITORING_PORT)."""
        try:
            return ENV_PREFIX + _FIELDS[field_name][0]
        except KeyError:
            raise ConfigError(f"unknown configuration field: {field_name!r}") from None


_PAIRS = {
    "disk_fail_free_percent": "disk_warn_free_percent",
    "memory_warn_percent": "memory_fail_percent",
}
"""Thresholds that must be ordered: low field -> high field (low <= high)."""


def _pair_problems(get: Callable[[str], Any], labels: Mapping[str, str]) -> List[Tuple[str, str]]:
    """(low field, one-line message) for each ordered pair out of order."""
    problems = []
    for low, high in _PAIRS.items():
        if get(low) > get(high):
            problems.append(
                (low, f"{labels[low]}={get(low)!r} must be <= {labels[high]}={get(high)!r}")
            )
    return problems


def _default(name: str) -> Any:
    return _DEFAULTS[name]
