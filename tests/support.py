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
import textwrap
import unittest
from types import ModuleType
from typing import NoReturn

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
