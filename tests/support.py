"""Helpers shared by the test modules: interop peers, temporary state, clean environment.

Interop tests talk to real tools (promtool, prometheus, jq, node_exporter, Pushgateway,
prometheus_client's parsers). When one is missing the test skips with a one-line reason,
unless MGIT_MONITORING_REQUIRE_INTEROP=1 (set by .ci/run), where it fails instead.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from types import ModuleType
from typing import Callable, NoReturn

REQUIRE_ENV = "MGIT_MONITORING_REQUIRE_INTEROP"
ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
"""The repository root: what a child Python process needs on PYTHONPATH."""


def interop_required() -> bool:
    """True when a missing interop peer must fail the run instead of skipping."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it when interop is required."""
    if interop_required():
        raise AssertionError(f"{REQUIRE_ENV}=1 but {reason} (run `make test-deps`)")
    raise unittest.SkipTest(reason)


class Clock:
    """A hand-driven clock: tests advance ``now`` instead of sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def need_executable(name: str, *alternatives: str) -> str:
    """Return the path of the first of ``name``/``alternatives`` found on PATH."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    unavailable(f"{name} is not installed")


def need_module(name: str) -> ModuleType:
    """Import a test-only third-party module or skip/fail when it is absent."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python module {name} is not installed")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter with the package importable."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_unprivileged(test: unittest.TestCase, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a forked child for which file modes apply, and fail ``test`` if it fails.

    As root (CI runs as root) the child first drops to the ``nobody`` user, because root
    ignores file modes; otherwise it runs as the current user. Paths ``fn`` uses must be
    reachable by that user (see :func:`open_to_all`).
    """
    if not hasattr(os, "fork"):
        test.skipTest("needs os.fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fn()
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode("utf-8", "replace")
    _pid, status = os.waitpid(pid, 0)
    test.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report or status)


def open_to_all(path: str) -> str:
    """Let every user traverse ``path`` and its temporary parents (for run_unprivileged)."""
    current = os.path.abspath(path)
    top = os.path.abspath(tempfile.gettempdir())
    while current.startswith(top + os.sep):
        os.chmod(current, os.stat(current).st_mode | 0o755)
        current = os.path.dirname(current)
    return path
