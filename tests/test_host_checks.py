"""The host checks: system basics; disk space with fake usage; memory on fake /proc and cgroups."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import namedtuple

from mgit_monitoring.errors import ConfigError
from mgit_monitoring.health import DEGRADED, HEALTHY, UNHEALTHY, UNKNOWN
from mgit_monitoring.host_checks import (
    MEMORY,
    READ_ONLY,
    DiskSpaceCheck,
    MemoryCheck,
    SystemBasicsCheck,
)
from tests.support import ROOT, TempDirCase, open_to_all, run_unprivileged

GIB = 1024**3
Usage = namedtuple("Usage", "total used free")


class TestSystemBasics(TempDirCase):
    def test_writable_dirs(self):
        """Writable state and temp directories and a supported Python are healthy."""
        result = SystemBasicsCheck(state_dir=self.tmp, temp_dir=self.tmp)()
        self.assertEqual(result.status, HEALTHY)
        self.assertTrue(result.details["state_dir_writable"])
        self.assertEqual(
            result.details["python_version"].split(".")[:2], [str(x) for x in sys.version_info[:2]]
        )

    def test_missing_state_dir_under_writable_parent(self):
        """A state dir that does not exist yet but can be created is fine (and is not created)."""
        state = os.path.join(self.tmp, "a", "b")
        result = SystemBasicsCheck(state_dir=state, temp_dir=self.tmp)()
        self.assertEqual(result.status, HEALTHY)
        self.assertFalse(os.path.exists(state))

    def test_state_dir_is_a_file(self):
        """A state path that is a file degrades (never unready), says why, and the disk
        check says the same words about it."""
        path = self.write("file", "x")
        result = SystemBasicsCheck(state_dir=path, temp_dir=self.tmp)()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn(f"{path}: exists but is not a directory", result.message)
        disk = DiskSpaceCheck(path)()
        self.assertEqual(disk.status, DEGRADED)
        self.assertIn(f"{path}: exists but is not a directory", disk.message)

    def test_read_only_dir(self):
        """A read-only state directory degrades with its path; for a reader it is by design.

        Checked as a user file modes apply to (nobody, when run as root).
        """
        state = os.path.join(self.tmp, "state")
        os.mkdir(state)
        open_to_all(state)
        os.chmod(state, 0o555)
        self.addCleanup(os.chmod, state, 0o700)

        def check() -> None:
            result = SystemBasicsCheck(state_dir=state, temp_dir=tempfile.gettempdir())()
            self.assertEqual(result.status, DEGRADED)
            self.assertIn(f"state dir {state}: read-only", result.message)
            self.assertFalse(result.details["state_dir_writable"])
            self.assertTrue(result.details["state_dir_readable"])
            reader = SystemBasicsCheck(
                state_dir=state, temp_dir=tempfile.gettempdir(), store_access=READ_ONLY
            )()
            self.assertEqual(reader.status, HEALTHY, reader.message)
            self.assertIn(f"store read at {state}", reader.message)

        run_unprivileged(self, check)

    def test_state_dir_under_read_only_parent(self):
        """A state dir that cannot be created degrades and names the path and the parent."""
        parent = os.path.join(self.tmp, "ro")
        os.mkdir(parent)
        open_to_all(parent)
        os.chmod(parent, 0o555)
        self.addCleanup(os.chmod, parent, 0o700)
        state = os.path.join(parent, "state")

        def check() -> None:
            result = SystemBasicsCheck(state_dir=state, temp_dir=tempfile.gettempdir())()
            self.assertEqual(result.status, DEGRADED)
            self.assertIn(f"state dir {state}: missing, and cannot be created", result.message)
            reader = SystemBasicsCheck(state_dir=state, store_access=READ_ONLY)()
            self.assertEqual(reader.status, DEGRADED)  # a reader cannot read it either

        run_unprivileged(self, check)

    @unittest.skipUnless(os.path.isdir("/proc/self"), "needs /proc")
    def test_proc_agrees(self):
        """A state dir under /proc is unusable to both the system and the disk check."""
        state = "/proc/mgit-monitoring-state"
        system = SystemBasicsCheck(state_dir=state, temp_dir=self.tmp)()
        disk = DiskSpaceCheck(state)()
        self.assertEqual((system.status, disk.status), (DEGRADED, DEGRADED))
        self.assertFalse(system.details["state_dir_writable"])
        words = f"{state}: /proc is on a filesystem without storage"
        self.assertIn(words, system.message)
        self.assertIn(words, disk.message)

    def test_memory_store_ignores_the_state_dir(self):
        """With persistence off (store_access memory) the state dir is named, not used."""
        result = SystemBasicsCheck(
            state_dir="/nonexistent/state", temp_dir=self.tmp, store_access=MEMORY
        )()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn("/nonexistent/state not used", result.message)
        self.assertEqual(result.details["store_access"], "memory")
        with self.assertRaisesRegex(ConfigError, "store_access='rw'"):
            SystemBasicsCheck(state_dir=self.tmp, store_access="rw")

    def test_unusable_temp_dir_degrades(self):
        """A temp dir that cannot be written degrades with its path."""
        missing = os.path.join(self.write("file", "x"), "tmp")
        result = SystemBasicsCheck(temp_dir=missing)()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn(f"temp dir {missing}", result.message)

    def test_python_too_old(self):
        """A Python older than min_python is unhealthy."""
        result = SystemBasicsCheck(temp_dir=self.tmp, min_python=(99, 0))()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("older than 99.0", result.message)


class TestDisk(TempDirCase):
    def check(self, free: int, total: int = 100 * GIB, **kw):
        return DiskSpaceCheck(self.tmp, usage=lambda p: Usage(total, total - free, free), **kw)()

    def test_thresholds(self):
        """Free percent and free bytes map to healthy, degraded and unhealthy."""
        self.assertEqual(self.check(50 * GIB).status, HEALTHY)
        self.assertEqual(self.check(15 * GIB).status, DEGRADED)
        self.assertEqual(self.check(5 * GIB).status, UNHEALTHY)
        small = self.check(GIB // 2, total=2 * GIB)  # 25 % free but under 1 GiB
        self.assertEqual(small.status, UNHEALTHY)
        self.assertIn("Critical", small.message)

    def test_details_and_observation(self):
        """Details carry bytes, percentages and the original's GiB figures."""
        result = self.check(25 * GIB)
        self.assertEqual(result.details["free_bytes"], 25 * GIB)
        self.assertEqual(result.details["usage_percent"], 75.0)
        self.assertEqual(result.details["free_gb"], 25.0)
        self.assertEqual((result.observed_value, result.measurement), (75.0, "utilization"))

    def test_missing_path_measures_parent(self):
        """A directory that does not exist yet is measured at its nearest existing parent."""
        seen = []
        DiskSpaceCheck(
            os.path.join(self.tmp, "x", "y"),
            usage=lambda p: seen.append(p) or Usage(10 * GIB, GIB, 9 * GIB),
        )()
        self.assertEqual(seen, [os.path.abspath(self.tmp)])

    def test_real_disk(self):
        """The real shutil.disk_usage works on the temp directory."""
        self.assertIn(
            DiskSpaceCheck(self.tmp, min_free_bytes=0)().status, (HEALTHY, DEGRADED, UNHEALTHY)
        )

    def test_no_store_on_disk(self):
        """path=None (persistence off, no disk path) watches nothing, healthy, and says so."""
        result = DiskSpaceCheck(None, usage=lambda p: self.fail(f"measured {p}"))()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn("nothing to watch", result.message)

    @unittest.skipUnless(sys.platform.startswith("linux"), "needs Linux mount namespaces")
    def test_read_only_filesystem_is_not_full(self):
        """A tiny read-only mount is measured but healthy: nothing is written there."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare(1) for a private read-only mount")
        mount = os.path.join(self.tmp, "ro")
        os.mkdir(mount)
        code = (
            "import sys; from mgit_monitoring.host_checks import DiskSpaceCheck; "
            "r = DiskSpaceCheck(sys.argv[1])(); print(r.status); print(r.message)"
        )
        proc = subprocess.run(
            [
                "unshare",
                "-m",
                "sh",
                "-c",
                'mount -t tmpfs -o ro,size=1m none "$1" && exec "$2" -c "$3" "$1/state"',
                "sh",
                mount,
                sys.executable,
                code,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        if proc.returncode != 0 and "mount" in proc.stderr:
            self.skipTest(f"cannot mount here: {proc.stderr.strip()[:200]}")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        status, message = proc.stdout.splitlines()[:2]
        self.assertEqual(status, HEALTHY, message)
        self.assertIn("Read-only filesystem, nothing written there: 0.0 GiB free", message)

    def test_bad_thresholds(self):
        """A fail threshold above the warn threshold is rejected."""
        with self.assertRaisesRegex(ConfigError, "fail_free_percent=30"):
            DiskSpaceCheck(self.tmp, warn_free_percent=20, fail_free_percent=30)


MEMINFO = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n"


class TestMemory(TempDirCase):
    def check(self, **kw):
        return MemoryCheck(os.path.join(self.tmp, "proc"), os.path.join(self.tmp, "cgroup"), **kw)()

    def test_cgroup_v2(self):
        """cgroup v2: the limit and the working set (usage minus inactive_file) are used."""
        self.write("proc/self/cgroup", "0::/kubepods/pod1\n")
        self.write("proc/meminfo", MEMINFO)
        self.write("cgroup/kubepods/pod1/memory.max", "1000000\n")
        self.write("cgroup/kubepods/pod1/memory.current", "900000\n")
        self.write("cgroup/kubepods/pod1/memory.stat", "anon 1\ninactive_file 100000\n")
        result = self.check()
        self.assertEqual(result.details["source"], "cgroup v2")
        self.assertEqual(result.details["used_bytes"], 800000)
        self.assertEqual(result.observed_value, 80.0)
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(self.check(warn_percent=70).status, DEGRADED)
        self.assertEqual(self.check(warn_percent=50, fail_percent=75).status, UNHEALTHY)

    def test_cgroup_v2_limit_on_a_parent(self):
        """An unlimited leaf cgroup uses the nearest ancestor that has a limit."""
        self.write("proc/self/cgroup", "0::/a/b\n")
        self.write("cgroup/a/b/memory.max", "max\n")
        self.write("cgroup/a/b/memory.current", "10\n")
        self.write("cgroup/a/memory.max", "2000\n")
        self.write("cgroup/a/memory.current", "1000\n")
        self.assertEqual(self.check().observed_value, 50.0)

    def test_unlimited_cgroup_falls_back_to_meminfo(self):
        """With no cgroup limit the node's /proc/meminfo is used."""
        self.write("proc/self/cgroup", "0::/\n")
        self.write("cgroup/memory.max", "max\n")
        self.write("cgroup/memory.current", "5\n")
        self.write("proc/meminfo", MEMINFO)
        result = self.check()
        self.assertEqual(result.details["source"], "/proc/meminfo")
        self.assertEqual(result.observed_value, 75.0)

    def test_cgroup_v1(self):
        """cgroup v1: memory.limit_in_bytes and usage_in_bytes minus total_inactive_file."""
        self.write("proc/self/cgroup", "12:cpu,cpuacct:/x\n11:memory:/docker/abc\n")
        self.write("cgroup/memory/docker/abc/memory.limit_in_bytes", "4000\n")
        self.write("cgroup/memory/docker/abc/memory.usage_in_bytes", "3000\n")
        self.write("cgroup/memory/docker/abc/memory.stat", "total_inactive_file 1000\n")
        result = self.check()
        self.assertEqual(result.details["source"], "cgroup v1")
        self.assertEqual(result.observed_value, 50.0)

    def test_cgroup_v1_unlimited(self):
        """cgroup v1's huge 'no limit' value falls back to /proc/meminfo."""
        self.write("proc/self/cgroup", "11:memory:/\n")
        self.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
        self.write("cgroup/memory/memory.usage_in_bytes", "3000\n")
        self.write("proc/meminfo", MEMINFO)
        self.assertEqual(self.check().details["source"], "/proc/meminfo")

    def test_nothing_available(self):
        """Neither cgroup nor /proc/meminfo gives unknown with the reason."""
        result = self.check()
        self.assertEqual(result.status, UNKNOWN)
        self.assertIn("meminfo", result.message)


if __name__ == "__main__":
    unittest.main()
