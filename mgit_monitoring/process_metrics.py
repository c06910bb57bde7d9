"""Standard process metrics read from /proc, and ``python_info``, as a registry collector.

The names and meanings are the ones dashboards expect from every Prometheus client:
``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
``process_virtual_memory_bytes``, ``process_open_fds``, ``process_max_fds``,
``process_start_time_seconds`` and ``python_info{implementation,major,minor,patchlevel,version}``.
Values are computed at scrape time. Where /proc (or one of its files) is missing, as on
macOS or Windows, the affected metrics are simply absent: collecting never raises and
never reports a made-up value. Paths, pid, clock ticks and page size are injectable for tests.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Tuple, Union

from mgit_monitoring.registry import Registry
from mgit_monitoring.samples import MetricFamily, metric_family
from mgit_monitoring.warn_once import WarnOnce

__all__ = ["ProcessCollector", "register_process_metrics"]

# An unexpected error reading /proc: one WARNING per error type, then DEBUG.
_WARNINGS = WarnOnce("mgit_monitoring.process_metrics", limit=16)

_IMPLEMENTATIONS = {
    "cpython": "CPython",
    "pypy": "PyPy",
    "ironpython": "IronPython",
    "jython": "Jython",
}


def _sysconf(name: str, default: int) -> int:
    try:
        value = os.sysconf(name)
    except (AttributeError, ValueError, OSError):
        return default
    return value if value > 0 else default


class ProcessCollector:
    """Collects the standard ``process_*`` metrics and ``python_info`` at scrape time.

    ``proc_path`` is the procfs mount point, ``pid`` a pid, ``"self"`` or a callable
    returning one. ``clock_ticks`` and ``page_size`` default to the system's values.
    """

    def __init__(
        self,
        proc_path: str = "/proc",
        pid: Union[int, str, Callable[[], Union[int, str]]] = "self",
        *,
        clock_ticks: Union[int, None] = None,
        page_size: Union[int, None] = None,
        python_info: bool = True,
    ) -> None:
        self.proc_path = proc_path
        self._pid = pid
        self._ticks = clock_ticks
        self._page_size = page_size
        self._python_info = python_info

    def _key(self) -> Tuple[object, ...]:
        return (self.proc_path, self._pid, self._ticks, self._page_size, self._python_info)

    # Equal collectors expose the same families, so registering a second one (say, two
    # MetricsCollectors sharing a registry) is a no-op instead of failing every scrape
    # with a duplicate-name error.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessCollector):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _pid_dir(self) -> str:
        pid = self._pid() if callable(self._pid) else self._pid
        return os.path.join(self.proc_path, str(pid))

    def collect(self) -> List[MetricFamily]:
        """The families available on this system (never raises for missing or odd /proc files)."""
        families: List[MetricFamily] = []
        try:
            families.extend(self._process_families())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because /proc looks odd
            _WARNINGS.warn(
                type(exc).__name__,
                "process metrics left out of the scrape: %s: %s",
                type(exc).__name__,
                exc,
            )
        if self._python_info:
            families.append(_python_info())
        return families

    def _process_families(self) -> List[MetricFamily]:
        base = self._pid_dir()
        out: List[MetricFamily] = []
        stat = _read_stat(os.path.join(base, "stat"))
        if stat is not None:
            ticks = self._ticks or _sysconf("SC_CLK_TCK", 100)
            page = self._page_size or _sysconf("SC_PAGE_SIZE", 4096)
            utime, stime, start, vsize, rss = stat
            cpu_help = "Total user and system CPU time spent in seconds."
            out.append(
                _one("process_cpu_seconds_total", "counter", cpu_help, (utime + stime) / ticks)
            )
            out.append(
                _one(
                    "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize
                )
            )
            out.append(
                _one(
                    "process_resident_memory_bytes",
                    "gauge",
                    "Resident memory size in bytes.",
                    rss * page,
                )
            )
            btime = _boot_time(os.path.join(self.proc_path, "stat"))
            if btime is not None:
                start_help = "Start time of the process since unix epoch in seconds."
                out.append(
                    _one("process_start_time_seconds", "gauge", start_help, start / ticks + btime)
                )
        try:
            fds = len(os.listdir(os.path.join(base, "fd")))
        except OSError:
            pass
        else:
            out.append(_one("process_open_fds", "gauge", "Number of open file descriptors.", fds))
        max_fds = _max_fds(os.path.join(base, "limits"))
        if max_fds is not None:
            out.append(
                _one(
                    "process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds
                )
            )
        return out


def _one(name: str, type: str, help: str, value: float) -> MetricFamily:
    return metric_family(name, type, help, (), [((), value)])


def _read_text(path: str) -> Union[str, None]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_stat(path: str) -> Union[Tuple[int, int, int, int, int], None]:
    """(utime, stime, starttime ticks, vsize bytes, rss pages) from /proc/<pid>/stat."""
    data = _read_text(path)
    if not data or ")" not in data:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(")") + 2 :].split()
    try:
        return int(fields[11]), int(fields[12]), int(fields[19]), int(fields[20]), int(fields[21])
    except (IndexError, ValueError):
        return None


def _boot_time(path: str) -> Union[float, None]:
    data = _read_text(path)
    for line in (data or "").splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _max_fds(path: str) -> Union[int, None]:
    data = _read_text(path)
    for line in (data or "").splitlines():
        if line.startswith("Max open files"):
            try:
                return int(line.split()[3])  # the soft limit
            except (IndexError, ValueError):
                return None
    return None


def _python_info() -> MetricFamily:
    v = sys.version_info
    impl = _IMPLEMENTATIONS.get(sys.implementation.name, sys.implementation.name)
    labels: Dict[str, str] = {
        "implementation": impl,
        "major": str(v.major),
        "minor": str(v.minor),
        "patchlevel": str(v.micro),
        "version": f"{v.major}.{v.minor}.{v.micro}",
    }
    names = ("implementation", "major", "minor", "patchlevel", "version")
    return metric_family(
        "python_info",
        "gauge",
        "Python platform information.",
        names,
        [(tuple(labels[n] for n in names), 1)],
    )


def register_process_metrics(registry: Registry, **kwargs: object) -> ProcessCollector:
    """Create a :class:`ProcessCollector` (``kwargs`` go to it) and register it on ``registry``."""
    collector = ProcessCollector(**kwargs)  # type: ignore[arg-type]
    registry.register_collector(collector)
    return collector
