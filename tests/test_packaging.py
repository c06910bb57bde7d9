"""Distributions: `make dist` builds a wheel and an sdist offline, and both install with
`pip install --no-index` into a fresh venv with no setuptools and no network."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile
from typing import List, Sequence

from mgit_monitoring.version import __version__
from tests.support import ROOT, TempDirCase, closed_port, unavailable

PACKAGE_DIR = pathlib.Path(ROOT) / "mgit_monitoring"
DIST = "mgit_monitoring"
WHEEL = f"{DIST}-{__version__}-py3-none-any.whl"
SDIST = f"{DIST}-{__version__}.tar.gz"
TOP = f"{DIST}-{__version__}"


def _make_dist(outdir: str, source: str = ROOT) -> None:
    """Build both archives from ``source`` the way a user does: `make dist`, or the script
    it runs when make is not installed."""
    make = shutil.which("make")
    if make and os.path.exists(os.path.join(source, "Makefile")):
        cmd = [make, "-s", "-C", source, "dist", f"DIST={outdir}", f"PYTHON={sys.executable}"]
    else:
        cmd = [
            sys.executable,
            os.path.join(source, "tools", "build_backend.py"),
            "--outdir",
            outdir,
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"{cmd} failed: {out.stdout}{out.stderr}")


def _extract(tar: tarfile.TarFile, where: str) -> None:
    # The "data" filter (no absolute paths, links out or special files) where it exists.
    tar.extractall(where, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def _package_files() -> List[str]:
    names = [p.name for p in PACKAGE_DIR.iterdir() if p.suffix == ".py" and p.is_file()]
    return sorted(f"mgit_monitoring/{n}" for n in [*names, "page.html", "py.typed"])


class TestDistributions(unittest.TestCase):
    """The archives `make dist` writes, read back as zip and tar."""

    tmp: tempfile.TemporaryDirectory
    dist: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dist = os.path.join(cls.tmp.name, "dist")
        _make_dist(cls.dist)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def wheel(self) -> zipfile.ZipFile:
        archive = zipfile.ZipFile(os.path.join(self.dist, WHEEL))
        self.addCleanup(archive.close)
        return archive

    def sdist_names(self) -> List[str]:
        with tarfile.open(os.path.join(self.dist, SDIST)) as tar:
            return tar.getnames()

    def test_make_dist_writes_exactly_a_wheel_and_an_sdist(self) -> None:
        """`make dist` leaves the two archives, named for the package's version."""
        self.assertEqual(sorted([WHEEL, SDIST]), sorted(os.listdir(self.dist)))

    def test_wheel_holds_the_package_with_its_data(self) -> None:
        """Every module, page.html and py.typed are in the wheel, byte for byte; nothing else
        outside the dist-info (no tests, no tools)."""
        wheel = self.wheel()
        code = sorted(n for n in wheel.namelist() if not n.startswith(f"{TOP}.dist-info/"))
        self.assertEqual(_package_files(), code)
        self.assertEqual(
            (PACKAGE_DIR / "page.html").read_bytes(), wheel.read("mgit_monitoring/page.html")
        )

    def test_wheel_metadata_and_console_script(self) -> None:
        """METADATA names the project, version and Python floor; the console script is declared."""
        wheel = self.wheel()
        meta = wheel.read(f"{TOP}.dist-info/METADATA").decode()
        head = meta.split("\n\n", 1)[0].splitlines()
        self.assertIn("Name: mgit-monitoring", head)
        self.assertIn(f"Version: {__version__}", head)
        self.assertIn("Requires-Python: >=3.8", head)
        self.assertFalse([line for line in head if line.startswith("Requires-Dist")])
        self.assertIn("# mgit_monitoring", meta.split("\n\n", 1)[1])  # the README
        entry_points = wheel.read(f"{TOP}.dist-info/entry_points.txt").decode()
        self.assertIn("mgit-monitoring = mgit_monitoring.cli:main", entry_points.splitlines())
        tags = wheel.read(f"{TOP}.dist-info/WHEEL").decode().splitlines()
        self.assertIn("Tag: py3-none-any", tags)
        self.assertIn("Root-Is-Purelib: true", tags)
        self.assertEqual(
            pathlib.Path(ROOT, "LICENSE").read_bytes(), wheel.read(f"{TOP}.dist-info/LICENSE")
        )

    def test_record_lists_every_file_with_its_hash(self) -> None:
        """RECORD has one row per file with its sha256 and size (what pip uninstall uses)."""
        wheel = self.wheel()
        rows = list(csv.reader(io.StringIO(wheel.read(f"{TOP}.dist-info/RECORD").decode())))
        self.assertEqual(sorted(wheel.namelist()), sorted(r[0] for r in rows))
        for name, digest, size in rows:
            if name.endswith("/RECORD"):
                self.assertEqual(("", ""), (digest, size))
                continue
            data = wheel.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            self.assertEqual(("sha256=" + want.decode(), str(len(data))), (digest, size), name)

    def test_sdist_carries_tests_license_and_readme(self) -> None:
        """The sdist has PKG-INFO, LICENSE, README, every test module, the build backend and
        the assets the tests compare against; no caches; one top directory."""
        names = self.sdist_names()
        self.assertTrue(all(n == TOP or n.startswith(TOP + "/") for n in names), names[:5])
        rel = {n[len(TOP) + 1 :] for n in names}
        for needed in (
            "PKG-INFO",
            "LICENSE",
            "README.md",
            "CHANGELOG.md",
            "pyproject.toml",
            "setup.cfg",
            "Makefile",
            "tools/build_backend.py",
            "tests/support.py",
            "mgit_monitoring/page.html",
            "mgit_monitoring/py.typed",
            "monitoring_assets/prometheus-alerts.yml",
        ):
            self.assertIn(needed, rel)
        tests = {f"tests/{p.name}" for p in pathlib.Path(ROOT, "tests").glob("*.py")}
        self.assertEqual(set(), tests - rel)
        self.assertFalse([n for n in rel if "__pycache__" in n or n.endswith(".pyc")])

    def test_builds_are_reproducible(self) -> None:
        """Building again gives identical bytes (fixed timestamps, order and modes)."""
        with tempfile.TemporaryDirectory() as again:
            _make_dist(again)
            for name in (WHEEL, SDIST):
                with open(os.path.join(self.dist, name), "rb") as a, open(
                    os.path.join(again, name), "rb"
                ) as b:
                    self.assertEqual(a.read(), b.read(), name)

    def test_the_sdist_rebuilds_the_same_wheel(self) -> None:
        """Unpacked, the sdist builds (offline, `make dist` in it) the very same wheel."""
        with tempfile.TemporaryDirectory() as work:
            with tarfile.open(os.path.join(self.dist, SDIST)) as tar:
                _extract(tar, work)
            rebuilt = os.path.join(work, "out")
            _make_dist(rebuilt, source=os.path.join(work, TOP))
            with open(os.path.join(self.dist, WHEEL), "rb") as a, open(
                os.path.join(rebuilt, WHEEL), "rb"
            ) as b:
                self.assertEqual(a.read(), b.read())


class OfflineVenvCase(TempDirCase):
    """A fresh venv (with the pip that ensurepip bundles) and commands run without a network:
    in an empty network namespace (`unshare -n`) when this process may create one, else with
    every proxy pointing at a closed port. pip never sees an index or a user config."""

    def setUp(self) -> None:
        super().setUp()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIP_", "PYTHON", "MGIT_MONITORING_", "VIRTUAL_ENV"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        dead = f"http://127.0.0.1:{closed_port()}"
        self.env.update(
            HOME=self.tmp,
            PIP_NO_INDEX="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_CACHE_DIR="1",
            http_proxy=dead,
            https_proxy=dead,
            HTTP_PROXY=dead,
            HTTPS_PROXY=dead,
            MGIT_MONITORING_PERSIST="false",
        )
        self.prefix = _offline_prefix()

    def run_offline(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [*self.prefix, *cmd],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,  # not the checkout: nothing is importable from the current dir
            timeout=300,
        )
        if check and out.returncode != 0:
            self.fail(f"{cmd} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return out

    def make_venv(self, name: str) -> str:
        venv = os.path.join(self.tmp, name)
        out = subprocess.run(
            [sys.executable, "-m", "venv", venv], capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            unavailable(f"python -m venv with ensurepip does not work here: {out.stderr.strip()}")
        return venv

    def bin(self, venv: str, name: str) -> str:
        return os.path.join(venv, "bin", name)

    def site_module(self, venv: str) -> str:
        """Where the venv's interpreter imports mgit_monitoring from."""
        code = "import mgit_monitoring; print(mgit_monitoring.__file__)"
        return self.run_offline(self.bin(venv, "python"), "-c", code).stdout.strip()


def _offline_prefix() -> Sequence[str]:
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return (unshare, "-n")
    return ()


@unittest.skipUnless(sys.platform.startswith("linux"), "venv layout and unshare: Linux")
class TestOfflineInstall(OfflineVenvCase):
    def test_wheel_installs_with_no_index_and_the_console_script_runs(self) -> None:
        """`pip install --no-index mgit_monitoring-*.whl` in a fresh venv, offline; then
        `mgit-monitoring --version` and `mgit-monitoring health --json` run from the venv, with
        the package and its data files from site-packages."""
        dist = os.path.join(self.tmp, "dist")
        _make_dist(dist)
        venv = self.make_venv("venv")
        self.run_offline(self.bin(venv, "pip"), "install", "--no-index", os.path.join(dist, WHEEL))
        out = self.run_offline(self.bin(venv, "mgit-monitoring"), "--version")
        self.assertEqual(f"mgit-monitoring {__version__}", out.stdout.strip())
        health = self.run_offline(
            self.bin(venv, "mgit-monitoring"), "health", "--json", check=False
        )
        self.assertIn(health.returncode, (0, 1), health.stderr)  # 1: unhealthy, still an answer
        self.assertNotIn("Traceback", health.stderr)
        self.assertIn(json.loads(health.stdout)["status"], ("healthy", "degraded", "unhealthy"))
        installed = pathlib.Path(self.site_module(venv)).parent
        self.assertTrue(str(installed.resolve()).startswith(os.path.realpath(venv)), installed)
        self.assertIn("site-packages", installed.parts)
        self.assertTrue((installed / "page.html").is_file())
        self.assertTrue((installed / "py.typed").is_file())
        # The RECORD is complete: uninstalling leaves no file of the package behind.
        self.run_offline(self.bin(venv, "pip"), "uninstall", "-y", "mgit-monitoring")
        self.assertFalse(installed.exists())

    def test_source_tree_installs_with_no_index_and_no_setuptools(self) -> None:
        """`pip install --no-index .` (the command that used to need setuptools) and
        `pip install --no-index -e .` work offline from an unpacked sdist."""
        dist = os.path.join(self.tmp, "dist")
        _make_dist(dist)
        with tarfile.open(os.path.join(dist, SDIST)) as tar:
            _extract(tar, self.tmp)
        source = os.path.join(self.tmp, TOP)
        venv = self.make_venv("venv")
        has_setuptools = self.run_offline(
            self.bin(venv, "python"), "-c", "import setuptools", check=False
        )
        if sys.version_info >= (3, 12):  # the case the issue is about: no setuptools at all
            self.assertNotEqual(0, has_setuptools.returncode)
        self.run_offline(self.bin(venv, "pip"), "install", "--no-index", source)
        self.assertIn("site-packages", self.site_module(venv))
        out = self.run_offline(self.bin(venv, "mgit-monitoring"), "--version")
        self.assertEqual(f"mgit-monitoring {__version__}", out.stdout.strip())
        self.run_offline(self.bin(venv, "pip"), "uninstall", "-y", "mgit-monitoring")
        self.run_offline(self.bin(venv, "pip"), "install", "--no-index", "-e", source)
        self.assertEqual(
            os.path.realpath(os.path.join(source, "mgit_monitoring", "__init__.py")),
            os.path.realpath(self.site_module(venv)),
        )
        self.assertEqual(
            f"mgit-monitoring {__version__}",
            self.run_offline(self.bin(venv, "mgit-monitoring"), "--version").stdout.strip(),
        )


if __name__ == "__main__":
    unittest.main()
