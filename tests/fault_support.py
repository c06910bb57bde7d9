"""What the fault tests (tests/test_faults.py) share: child scripts, a clean environment,
mount namespaces, libfaketime, and the reading of what a user sees.

Every fault is played by real processes: mgit stand-ins (``WRITER``) that use the
integration the way mgit does, the ``mgit-monitoring`` CLI and server, and the fault itself
(a full tmpfs, a SIGKILL, a process holding the store locked, a clock moved by libfaketime,
an empty PATH, a network namespace whose DNS never answers).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import unittest
from typing import Dict, List, Sequence

from tests.support import ROOT, need_executable, unavailable

STORE = "monitoring.sqlite3"

# An mgit stand-in: decorated operations, the integration as mgit sets it up, and logging
# as an application has it (WARNING and above on stderr, one line each). It prints
# "returned N" once every call has returned its own value.
WRITER = r"""
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from mgit_monitoring.integration import setup_monitoring_integration, monitor_mgit_operation

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone(i):
    return i * 2

setup_monitoring_integration()
n = int(sys.argv[1])
ok = sum(1 for i in range(n) if clone(i) == i * 2)
print("returned", ok, flush=True)
"""

TOTAL = re.compile(
    r'^mgit_operations_total\{operation="clone-all",provider="github"\} (\d+)(?:\.0)?$', re.M
)


def total(exposition: str) -> int:
    """The clone-all operation count in a metrics exposition (0 when absent)."""
    match = TOTAL.search(exposition)
    return int(match.group(1)) if match else 0


def warnings_in(stderr: str) -> List[str]:
    """The WARNING lines a child printed (plain ``WARNING name: msg`` or JSON log lines)."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("WARNING ") or '"level":"WARNING"' in line.replace(" ", "")
    ]


def clean_env(state_dir: str, home: str, **extra: str) -> Dict[str, str]:
    """The environment of an mgit process: no MGIT_* of ours, offline checks, fast flushes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
    env.pop("LD_PRELOAD", None)
    env.update(
        PYTHONPATH=ROOT,
        HOME=home,
        MGIT_MONITORING_STATE_DIR=state_dir,
        MGIT_MONITORING_NETWORK_HOSTS="none",
        MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
        MGIT_MONITORING_FLUSH_INTERVAL="0.2",
    )
    env.update(extra)
    return env


def run(
    args: Sequence[str], env: Dict[str, str], cwd: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run a child to completion (``timeout`` only guards against a hang)."""
    return subprocess.run(
        list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def python(*args: str) -> List[str]:
    """The argv of this interpreter running ``args``."""
    return [sys.executable, *args]


def integrity(path: str) -> str:
    """``PRAGMA integrity_check`` of a store file, read-only ("ok" when sound)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def need_root_namespaces(*flags: str) -> str:
    """The path of unshare(1) when this process may create ``flags`` namespaces (root)."""
    if not sys.platform.startswith("linux"):
        raise unittest.SkipTest("mount and network namespaces are Linux only")
    unshare = need_executable("unshare")
    if os.geteuid() != 0:
        unavailable("needs root for unshare(1) namespaces and a tmpfs mount")
    probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        unavailable(f"unshare {' '.join(flags)} is refused here: {probe.stderr!r}")
    return unshare


def need_libfaketime() -> str:
    """The libfaketime library Debian's faketime package installs (LD_PRELOAD)."""
    need_executable("faketime")
    found = sorted(
        glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
        + glob.glob("/usr/lib/faketime/libfaketime.so.1")
        + glob.glob("/usr/local/lib/faketime/libfaketime.so.1")
    )
    if not found:
        unavailable("libfaketime.so.1 is not installed (Debian package faketime)")
    return found[0]


def need_ip() -> str:
    return shutil.which("ip") or unavailable("ip(8) is not installed (iproute2)")
