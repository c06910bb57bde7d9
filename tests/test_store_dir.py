"""probe_store_dir: the one answer about whether a directory can hold the store."""

from __future__ import annotations

import os
import unittest

from mgit_monitoring.store_dir import (
    CREATABLE,
    READ_ONLY,
    UNUSABLE,
    WRITABLE,
    nearest_existing,
    probe_store_dir,
)
from tests.support import TempDirCase, open_to_all, run_unprivileged


class TestProbe(TempDirCase):
    def test_writable_and_creatable(self):
        """An existing writable dir is writable; a missing one under it is creatable and is
        not created; neither leaves a probe file behind."""
        self.assertEqual(probe_store_dir(self.tmp).status, WRITABLE)
        missing = os.path.join(self.tmp, "a", "b")
        state = probe_store_dir(missing)
        self.assertEqual((state.status, state.existing), (CREATABLE, self.tmp))
        self.assertTrue(state.writable and state.readable)
        self.assertFalse(os.path.exists(missing))
        self.assertEqual(os.listdir(self.tmp), [])
        self.assertEqual(nearest_existing(missing), self.tmp)

    def test_file_is_unusable(self):
        """A file where the directory should be, or above it, is unusable."""
        path = self.write("file", "x")
        self.assertEqual(probe_store_dir(path).status, UNUSABLE)
        below = probe_store_dir(os.path.join(path, "state"))
        self.assertEqual(below.status, UNUSABLE)
        self.assertIn("is not a directory", below.note)

    def test_permissions_as_an_ordinary_user(self):
        """As a user file modes apply to: 555 reads only; 000 is unusable; a missing dir in a
        555 parent cannot be created."""
        readable = os.path.join(self.tmp, "r")
        closed = os.path.join(self.tmp, "c")
        for path, mode in ((readable, 0o555), (closed, 0o000)):
            os.mkdir(path)
            open_to_all(path)
            os.chmod(path, mode)
            self.addCleanup(os.chmod, path, 0o700)

        def check() -> None:
            state = probe_store_dir(readable)
            assert state.status == READ_ONLY and state.readable and not state.writable, state
            assert probe_store_dir(closed).status == UNUSABLE
            below = probe_store_dir(os.path.join(readable, "state"))
            assert below.status == UNUSABLE and "cannot be created" in below.note, below

        run_unprivileged(self, check)

    @unittest.skipUnless(os.path.isdir("/proc/self"), "needs /proc")
    def test_proc_is_unusable_even_for_root(self):
        """/proc has no storage: unusable whatever the permission bits (root included)."""
        state = probe_store_dir("/proc/mgit-monitoring")
        self.assertEqual(state.status, UNUSABLE)
        self.assertFalse(state.has_storage)
        self.assertEqual(
            state.summary, "/proc/mgit-monitoring: /proc is on a filesystem without storage"
        )


if __name__ == "__main__":
    unittest.main()
