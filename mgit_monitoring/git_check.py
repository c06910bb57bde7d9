"""The git check: ``git --version`` runs within its timeout, parses, meets a minimum.

Registered critical by :func:`mgit_monitoring.default_checks.register_default_checks`: without
git, mgit cannot work whatever the rest of the world does. The executable is looked up on a
search path given to the constructor, so tests use fake ``git`` scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess  # nosec B404 # runs `git --version` only, an argument list, no shell
import time
from typing import Any, Dict, Sequence, Tuple, Union

from mgit_monitoring.check_support import elapsed_ms
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health_report import DEGRADED, HEALTHY, UNHEALTHY, HealthCheckResult
from mgit_monitoring.masking import mask_credentials

__all__ = ["GitCheck"]


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
    proc = subprocess.Popen(  # nosec B603 # the check's own argv (git's path, --version)
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
        details["response_ms"] = elapsed_ms(start)
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
