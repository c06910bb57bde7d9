"""The git check against fake git scripts: versions, failures, hangs, masking."""

from __future__ import annotations

import json
import os
import time
import unittest

from mgit_monitoring.errors import ConfigError
from mgit_monitoring.git_check import GitCheck
from mgit_monitoring.health import DEGRADED, HEALTHY, UNHEALTHY
from tests.support import TempDirCase

POSIX = os.name == "posix"


def _process_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _wait_dead(pid: int) -> str:
    """The grandchild's state once SIGKILL has landed: gone, or a zombie init has not reaped."""
    # SIGKILL is delivered asynchronously and there is no event to await for a process that
    # is not our child, so poll /proc briefly (returns on the first dead reading).
    state = _process_state(pid)
    for _ in range(500):
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.01)
        state = _process_state(pid)
    return state


@unittest.skipIf(not POSIX, "fake git scripts are shell scripts")
class TestGit(TempDirCase):
    def fake_git(self, body: str) -> str:
        path = self.write("bin/git", "#!/bin/sh\n" + body + "\n", mode=0o755)
        return os.path.dirname(path)

    def test_good_git(self):
        """A git printing its version is healthy with the parsed version."""
        bindir = self.fake_git('echo "git version 2.39.5"')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.observed_value, "2.39.5")
        self.assertEqual(result.details["git_path"], os.path.join(bindir, "git"))

    def test_missing_git(self):
        """No git on the search path is unhealthy."""
        os.makedirs(os.path.join(self.tmp, "empty"))
        result = GitCheck(search_path=os.path.join(self.tmp, "empty"))()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("not found", result.message)

    def test_failing_git(self):
        """A git exiting non-zero is unhealthy with its exit code and stderr."""
        bindir = self.fake_git('echo "fatal: broken" >&2; exit 3')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertEqual(result.details["returncode"], 3)
        self.assertIn("fatal: broken", result.details["stderr"])

    def test_hanging_git_is_killed_at_the_timeout(self):
        """A git that hangs is reported as timed out and its process group is killed."""
        pidfile = os.path.join(self.tmp, "pid")
        bindir = self.fake_git(f"sleep 30 & echo $! > {pidfile}; wait")
        result = GitCheck(search_path=bindir, timeout=0.2)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("timed out after 0.2 s", result.message)
        with open(pidfile) as handle:
            child = int(handle.read())
        self.assertIn(_wait_dead(child), ("gone", "Z", "X"))

    def test_old_git(self):
        """A git older than min_version is unhealthy and names both versions."""
        bindir = self.fake_git('echo "git version 1.8.3.1"')
        result = GitCheck(search_path=bindir, min_version="2.20")()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("1.8.3 is older than the required 2.20", result.message)

    def test_vendor_version_strings(self):
        """Apple's and Git for Windows' version strings parse and compare like plain ones."""
        cases = (
            ("git version 2.39.5 (Apple Git-154)", "2.39.5", "2.39"),
            ("git version 2.45.windows.1", "2.45", "2.45.0"),
            ("git version 2.45.1.windows.1", "2.45.1", "2.45.1"),
        )
        for line, parsed, minimum in cases:
            with self.subTest(line=line):
                bindir = self.fake_git(f'echo "{line}"')
                result = GitCheck(search_path=bindir, min_version=minimum)()
                self.assertEqual((result.status, result.observed_value), (HEALTHY, parsed))
                self.assertEqual(result.details["git_version"], line)
        bindir = self.fake_git('echo "git version 2.45.windows.1"')
        old = GitCheck(search_path=bindir, min_version="2.45.1")()
        self.assertEqual(old.status, UNHEALTHY)
        self.assertIn("git 2.45 is older than the required 2.45.1", old.message)

    def test_version_line_after_a_wrapper_banner(self):
        """A wrapper printing a line before git's own still yields the version."""
        bindir = self.fake_git('echo "using /opt/git"; echo "git version 2.43.0"')
        result = GitCheck(search_path=bindir)()
        self.assertEqual((result.status, result.observed_value), (HEALTHY, "2.43.0"))

    def test_stderr_is_masked_before_it_is_shortened(self):
        """A token straddling the 300-character cut of git's stderr does not leak in part."""
        secret = "ghp_" + "L3AKL3AK" * 4 + "abcd"
        url = f"https://user:{secret}@github.com/o/r.git"
        bindir = self.fake_git(f'printf "%0270d {url}" 0 >&2; exit 128')
        result = GitCheck(search_path=bindir)()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("https://user:", result.details["stderr"])
        self.assertNotIn("L3AK", json.dumps(result.to_dict()))

    def test_unparseable_version(self):
        """Output without a version degrades instead of failing."""
        bindir = self.fake_git('echo "hello"')
        self.assertEqual(GitCheck(search_path=bindir)().status, DEGRADED)

    def test_explicit_path_and_bad_min_version(self):
        """git may be given as a path; a bad min_version raises ConfigError naming it."""
        bindir = self.fake_git('echo "git version 2.45.0.windows.1"')
        result = GitCheck(git=os.path.join(bindir, "git"), min_version=(2, 20))()
        self.assertEqual((result.status, result.observed_value), (HEALTHY, "2.45.0"))
        with self.assertRaisesRegex(ConfigError, "'two'"):
            GitCheck(min_version="two")


if __name__ == "__main__":
    unittest.main()
