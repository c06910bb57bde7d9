"""The checks of this host: Python and writable directories, disk space, memory.

=======================  ========  =====================================================
check                    critical  measures
=======================  ========  =====================================================
system_basics            yes       Python version (unhealthy); state and temp dirs usable
                                   (degraded otherwise, never unready)
disk_space               yes       free bytes / free percent where the store lives
memory_usage             no        cgroup v2/v1 limit and working set, else /proc/meminfo
=======================  ========  =====================================================

(critical as :func:`mgit_monitoring.default_checks.register_default_checks` registers them).
Every path and reader comes in through the constructor, so tests point the checks at fake
``/proc`` and cgroup trees and fake disk usage.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, List, Tuple

from mgit_monitoring.check_support import GIB
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health_report import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthCheckResult,
)
from mgit_monitoring.store_dir import (
    STORE_MEMORY,
    STORE_READ_ONLY,
    STORE_READ_WRITE,
    WRITABLE,
    probe_store_dir,
)

__all__ = [
    "MEMORY",
    "READ_ONLY",
    "READ_WRITE",
    "DiskSpaceCheck",
    "MemoryCheck",
    "SystemBasicsCheck",
]


# --------------------------------------------------------------------------- system basics

READ_WRITE = STORE_READ_WRITE
READ_ONLY = STORE_READ_ONLY
MEMORY = STORE_MEMORY
_STORE_ACCESS = (READ_WRITE, READ_ONLY, MEMORY)


def _temp_dir() -> Tuple[str | None, str]:
    try:
        return tempfile.gettempdir(), ""
    except FileNotFoundError as exc:  # no candidate directory is writable
        return None, str(exc)


class SystemBasicsCheck:
    """Python at least ``min_python`` (unhealthy otherwise); the state and temp directories.

    The directories never make the process unready: one that cannot be used is *degraded*
    with a message naming it, because this process still serves (the store falls back to
    memory). ``store_access`` says what this process needs of the state dir:
    :data:`READ_WRITE` (it must be writable), :data:`READ_ONLY` (a reader: readable is
    enough, read-only by design is healthy) or :data:`MEMORY` (persistence is off: the
    state dir is not looked at). Directories are judged by
    :func:`mgit_monitoring.store_dir.probe_store_dir`, as the disk check judges them.
    """

    name = "system_basics"

    def __init__(
        self,
        state_dir: str | None = None,
        temp_dir: str | None = None,
        min_python: Tuple[int, int] = (3, 8),
        store_access: str = READ_WRITE,
    ) -> None:
        if store_access not in _STORE_ACCESS:
            raise ConfigError(
                f"store_access={store_access!r}: expected one of {', '.join(_STORE_ACCESS)}"
            )
        self.state_dir = state_dir
        self.temp_dir = temp_dir
        self.min_python = tuple(min_python)
        self.store_access = store_access if state_dir else MEMORY

    def __call__(self) -> HealthCheckResult:
        version = ".".join(str(p) for p in sys.version_info[:3])
        details: Dict[str, Any] = {
            "python_version": version,
            "python_implementation": sys.implementation.name,
            "store_access": self.store_access,
        }
        failures: List[str] = []
        problems: List[str] = []
        notes = [f"Python {version}"]
        if tuple(sys.version_info[:2]) < self.min_python:
            failures.append(f"Python {version} is older than {'.'.join(map(str, self.min_python))}")
        if self.store_access == MEMORY:
            details["state_dir"] = self.state_dir
            notes.append(
                f"store in memory (persistence off; state dir {self.state_dir} not used)"
                if self.state_dir
                else "store in memory (persistence off)"
            )
        else:
            state = probe_store_dir(str(self.state_dir))
            details.update(
                state_dir=state.path,
                state_dir_status=state.status,
                state_dir_writable=state.writable,
                state_dir_readable=state.readable,
            )
            if self.store_access == READ_ONLY and state.readable:
                notes.append(f"store read at {state.path}")
            elif state.writable:
                notes.append(f"state dir {state.path} writable")
            elif state.readable:
                problems.append(f"state dir {state.summary}; this process's metrics stay in memory")
            else:
                problems.append(f"state dir {state.summary}; the store is not used")
        temp, why = (self.temp_dir, "") if self.temp_dir else _temp_dir()
        details["temp_dir"] = temp
        if temp is None:
            details["temp_dir_writable"] = False
            problems.append(f"temp dir: {why} (set TMPDIR or mount a writable /tmp)")
        else:
            probed = probe_store_dir(temp)
            details["temp_dir_writable"] = probed.status == WRITABLE
            if probed.status != WRITABLE:
                problems.append(f"temp dir {probed.summary}")
        if failures:
            status = UNHEALTHY
            message = "; ".join(failures + problems)
        elif problems:
            status, message = DEGRADED, "; ".join(problems)
        else:
            status, message = HEALTHY, "; ".join(notes)
        return HealthCheckResult(self.name, status, message, details, component_type="system")


# --------------------------------------------------------------------------- disk


class DiskSpaceCheck:
    """Free space on the filesystem that holds ``path`` (the store's directory).

    Unhealthy below ``min_free_bytes`` or ``fail_free_percent``, degraded below
    ``warn_free_percent``. A path that does not exist yet is measured at its nearest
    existing parent. A path where nothing can be stored (a filesystem without storage such
    as ``/proc``, a file) is *degraded* with the same words the system check uses (both ask
    :func:`mgit_monitoring.store_dir.probe_store_dir`); a read-only filesystem is measured
    but healthy, since nothing is written there. ``path=None`` (no store on disk) watches
    nothing and says so. ``usage`` replaces ``shutil.disk_usage`` in tests.
    """

    name = "disk_space"

    def __init__(
        self,
        path: str | None = ".",
        min_free_bytes: int = GIB,
        warn_free_percent: float = 20.0,
        fail_free_percent: float = 10.0,
        usage: Callable[[str], Any] = shutil.disk_usage,
        unwatched_message: str = "no store on disk (persistence off); nothing to watch",
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
        self.unwatched_message = unwatched_message

    def __call__(self) -> HealthCheckResult:
        if self.path is None:
            return HealthCheckResult(
                self.name,
                HEALTHY,
                self.unwatched_message,
                {"path": None},
                component_type="system",
            )
        state = probe_store_dir(self.path)
        path = state.existing
        if not state.measurable:
            return HealthCheckResult(
                self.name,
                DEGRADED,
                f"Disk space not measured: {state.summary}",
                {"path": path, "watched": state.path, "state_dir_status": state.status},
                component_type="system",
            )
        total, used, free = tuple(self.usage(path))[:3]
        free_pct = 100.0 * free / total if total else 0.0
        used_pct = round(100.0 - free_pct, 2)
        details = {
            "path": path,
            "watched": state.path,
            "read_only_filesystem": state.read_only_fs,
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
        if state.read_only_fs:
            status, message = HEALTHY, f"Read-only filesystem, nothing written there: {summary}"
        elif free < self.min_free_bytes or free_pct < self.fail_free_percent:
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
